"""The ``/review`` page in headless Chromium, driven from the keyboard on a phone-sized screen: three answers,
a reload (they are still there, saved in the store), Enter to accept, and an answer given offline that is sent
once the connection is back. Uses the service tests' Chromium fixture and live server
(``tests/service/conftest.py``, ``test_web_browser.py``); skipped, saying why, without Playwright or Chromium."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from review_testing import (
    box_mask,
    garment,
    result_line,
    three_unsure_fields,
    unsure,
    write_jsonl,
    write_photo,
)

pytest.importorskip("playwright.sync_api", reason="pip package playwright is not installed")

_SERVICE_TESTS = Path(__file__).resolve().parents[1] / "service"
if str(_SERVICE_TESTS) not in sys.path:
    sys.path.insert(0, str(_SERVICE_TESTS))

from test_web_browser import CHROMIUM, _Server, _wait


# `browser` (the one headless Chromium of every browser test) and `artefacts` come from tests/conftest.py

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary (apt-get install chromium, or set "
                                "FASHIONLENS_CHROMIUM)")

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def review_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    from fashionlens.review.queue import build_queue
    from fashionlens.review.store import ReviewStore
    from fashionlens.service import ServiceSettings, create_app
    from fashionlens.service.models import ServiceModels

    photo = write_photo(tmp_path / "photos" / "a.jpg")
    other = write_photo(tmp_path / "photos" / "b.jpg", colour=(200, 30, 35))
    lines = [result_line(photo, [garment(mask=box_mask(96, 128, (24, 32, 48, 64)), attributes=three_unsure_fields())]),
             result_line(other, [garment(attributes={"pattern": unsure([("plain", 0.7), ("striped", 0.2)])})])]
    db = tmp_path / "review.sqlite"
    build_queue(write_jsonl(tmp_path / "r.jsonl", lines), ReviewStore(db), diversity=0.0)
    s = ServiceSettings(preload=False)
    with _Server(create_app(s, models=ServiceModels(s), review_db=db)) as server:
        yield server.url, db


def _answers_shown(page: Any) -> dict[str, str]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('fieldset.field')].map((f) => {
        const b = f.querySelector('button[aria-pressed="true"]');
        return [f.dataset.field, b ? b.dataset.value : null];
    }))""")


SAVED = "document.getElementById('sync').textContent === 'All answers saved.'"


def test_three_keyboard_answers_survive_a_reload(browser: Any, review_server: tuple[str, Path],
                                                 artefacts: list[Path]) -> None:
    from fashionlens.review.store import ReviewStore

    url, db = review_server
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    try:
        page.goto(url + "/review")
        _wait(page, "document.querySelectorAll('fieldset.field').length === 3")
        assert page.evaluate("document.querySelector('fieldset.field.active').dataset.field") == "pattern"
        for key in ("2", "1", "2"):  # pattern → plain, material → cotton, fit → loose (the active field moves on)
            page.keyboard.press(key)
        _wait(page, SAVED)
        task = ReviewStore(db).next_task()
        assert task is not None
        assert task.answers == {"pattern": "plain", "material": "cotton", "fit": "loose"}

        page.reload()
        _wait(page, "document.querySelectorAll('fieldset.field').length === 3")
        assert _answers_shown(page) == {"pattern": "plain", "material": "cotton", "fit": "loose"}
        # big touch targets, and the page fits a phone's width
        heights = page.evaluate("[...document.querySelectorAll('fieldset.field button')].map((b) => "
                                "b.getBoundingClientRect().height)")
        assert min(heights) >= 44
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        _wait(page, "document.getElementById('photo').width > 1")
        for d in artefacts:
            (d / "review_phone.png").write_bytes(page.screenshot(full_page=True))

        page.keyboard.press("Enter")  # accept: the next garment comes
        _wait(page, "document.querySelectorAll('fieldset.field').length === 1")
        assert ReviewStore(db).task(task.id).status == "corrected"

        context.set_offline(True)  # an answer given offline waits in the outbox...
        page.keyboard.press("2")
        _wait(page, "document.getElementById('sync').textContent.includes('waiting to be sent')")
        context.set_offline(False)  # ...and is sent once the connection is back
        _wait(page, SAVED, timeout_s=30)
        nxt = ReviewStore(db).next_task()
        assert nxt is not None and nxt.answers == {"pattern": "striped"}
    finally:
        context.close()
