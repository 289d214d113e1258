"""The catalogue search page's garment picker in headless Chromium (issue 27), in the style of
``test_web_browser.py`` (whose server, Chromium lookup and polling helpers it uses): a photo of an
outfit — shoes, jacket, trousers, found by a stand-in detector — is searched; the page shows the
three garments as chips cropped from the photo, the jacket (the largest) pressed; tapping the
trousers searches them and the results change. At 390×844 (phone) and 1366×900 (laptop).

Screenshots go to the test's temporary folder, ``$FASHIONLENS_ARTEFACTS/web/`` when that is set,
and one per size to ``$FASHIONLENS_SCREENS`` (default ``/tmp/fashionlens_screens``) as
``picker_<width>x<height>.png``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from picker_testing import JACKET, SHOES, TROUSERS, OutfitDetector, outfit_png
from test_web_browser import CHROMIUM, _Server, _wait

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary (apt-get install chromium, or set "
                                "FASHIONLENS_CHROMIUM)")

SIZES = [(390, 844), (1366, 900)]


@pytest.fixture(scope="module")
def picker_url(service_data: dict[str, Any]) -> Iterator[str]:
    """The app with the service fixtures' models and index, and the outfit stand-in detector."""
    from fashionlens.service import ServiceSettings, create_app
    from fashionlens.service.models import ServiceModels

    s = ServiceSettings(detector_weights=str(service_data["detector_weights"]), preload=False)
    models = ServiceModels(s, tagger=service_data["tagger"], detector=OutfitDetector(),  # type: ignore[arg-type]
                           grader=service_data["grader"], searcher=service_data["searcher"])
    models.load()
    with _Server(create_app(s, models=models)) as server:
        yield server.url


def _results(page: Any) -> list[tuple[str, str]]:
    return page.evaluate("""() => Array.from(document.querySelectorAll('#results li'))
        .map((li) => [li.dataset.id, li.dataset.score])""")


def _pressed(page: Any) -> list[str]:
    return page.evaluate("""() => Array.from(document.querySelectorAll('#garment-chips button[aria-pressed=true]'))
        .map((b) => b.dataset.garment)""")


@pytest.mark.parametrize(("width", "height"), SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_picker_shows_the_garments_and_tapping_one_searches_it(
        browser: Any, picker_url: str, artefacts: list[Path], tmp_path: Path, width: int, height: int) -> None:
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: outside.append(r.url)
            if not r.url.startswith(("http://127.0.0.1:", "blob:", "data:")) else None)
    photo = tmp_path / "outfit.png"
    photo.write_bytes(outfit_png())
    try:
        page.goto(picker_url + "/search")
        page.wait_for_selector("#filter-category option[value='jeans']", state="attached")
        page.set_input_files("#query-photo", str(photo))  # choosing a photo searches it (garment=auto)
        page.wait_for_selector("#garment-picker:not([hidden]) #garment-chips button")
        assert page.locator("#garment-chips button").count() == 3
        assert _pressed(page) == [str(JACKET)]  # the largest garment, not the surest (the shoes, garment 0)
        page.wait_for_selector("#results li")
        _wait(page, "Array.from(document.querySelectorAll('#results img')).every((i) => i.complete)")
        before = _results(page)
        assert before

        # each chip shows its garment cropped from the photo: the jacket chip's middle is red, the shoes' dark
        centre = """(g) => { const c = document.querySelector(`#garment-chips button[data-garment="${g}"] canvas`);
            return Array.from(c.getContext('2d').getImageData(c.width / 2, c.height / 2, 1, 1).data); }"""
        r, g, b, _ = page.evaluate(centre, JACKET)
        assert r > 150 and g < 80 and b < 80, (r, g, b)
        assert max(page.evaluate(centre, SHOES)[:3]) < 60
        # readable captions and a similarity with its meaning; no bare score in a caption
        captions = page.locator("#results .hit-caption").all_inner_texts()
        assert captions and not any(re.search(r"\d", c) for c in captions), captions
        sims = page.locator("#results .similarity span").all_inner_texts()
        assert all(re.fullmatch(r"#\d+ · similarity \d{1,3} %", s) for s in sims), sims
        assert page.is_visible("#similarity-help")
        # fits the screen; the chips are big enough to tap
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        sizes = page.evaluate("""() => Array.from(document.querySelectorAll('#garment-chips button'))
            .map((e) => { const r = e.getBoundingClientRect(); return [r.width, r.height]; })""")
        assert all(w >= 44 and h >= 44 for w, h in sizes), sizes
        _shot(page, artefacts, f"picker-{width}x{height}-auto")

        page.click(f"#garment-chips button[data-garment='{TROUSERS}']")
        _wait(page, f"document.querySelector('#garment-chips button[data-garment=\"{TROUSERS}\"]')"
                    "?.getAttribute('aria-pressed') === 'true'")
        _wait(page, "!document.getElementById('search-button').disabled")
        assert _pressed(page) == [str(TROUSERS)]
        after = _results(page)
        assert after and after != before  # another garment, other results
        assert "like the" in page.inner_text("#status") and "in your photo" in page.inner_text("#status")
        _wait(page, "Array.from(document.querySelectorAll('#results img')).every((i) => i.complete)")
        page.locator("#garment-picker").scroll_into_view_if_needed()
        data = _shot(page, artefacts, f"picker-{width}x{height}-trousers")
        screens = Path(os.environ.get("FASHIONLENS_SCREENS", "/tmp/fashionlens_screens"))
        screens.mkdir(parents=True, exist_ok=True)
        (screens / f"picker_{width}x{height}.png").write_bytes(data)
    finally:
        context.close()
    assert errors == [], errors
    assert outside == [], outside


def _shot(page: Any, dirs: list[Path], name: str) -> bytes:
    data = page.screenshot(full_page=True)
    for d in dirs:
        (d / f"{name}.png").write_bytes(data)
    return data


def test_picker_works_with_the_keyboard(browser: Any, picker_url: str, tmp_path: Path) -> None:
    """Enter on a chip searches its garment; the focus stays on that chip when the chips are redrawn."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    page = context.new_page()
    photo = tmp_path / "outfit.png"
    photo.write_bytes(outfit_png())
    try:
        page.goto(picker_url + "/search")
        page.wait_for_selector("#filter-category option[value='jeans']", state="attached")
        page.set_input_files("#query-photo", str(photo))
        page.wait_for_selector("#garment-picker:not([hidden]) #garment-chips button")
        assert page.evaluate("document.getElementById('status').getBoundingClientRect().top") < 844  # in view
        page.focus(f"#garment-chips button[data-garment='{SHOES}']")
        page.keyboard.press("Enter")
        _wait(page, f"document.querySelector('#garment-chips button[data-garment=\"{SHOES}\"]')"
                    "?.getAttribute('aria-pressed') === 'true'")
        assert page.evaluate("document.activeElement.dataset.garment") == str(SHOES)
        assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    finally:
        context.close()


def test_words_show_no_picker(browser: Any, picker_url: str) -> None:
    """A text query has no garments to pick: no chips; its hits have captions too."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    page = context.new_page()
    try:
        page.goto(picker_url + "/search")
        page.wait_for_selector("#filter-category option[value='jeans']", state="attached")
        page.fill("#query-text", "red sweater")
        page.click("#search-button")
        page.wait_for_selector("#results li")
        assert page.is_hidden("#garment-picker")
        assert page.locator("#results .hit-caption").count() == page.locator("#results li").count()
    finally:
        context.close()


