"""End-to-end tests of the web app in headless Chromium (Debian's ``chromium``, driven by Playwright
with ``executable_path``; no browser download). The app runs in uvicorn on a free loopback port in
a thread, with the small models of the service fixtures and a stand-in damage finder that reports
one stain. Screenshots go to a temporary folder and, when ``FASHIONLENS_ARTEFACTS`` is set, there.

Skipped, with the reason, when Playwright or a Chromium binary is missing.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

sync_api = pytest.importorskip("playwright.sync_api", reason="pip package playwright is not installed")


def _chromium() -> str | None:
    for candidate in (os.environ.get("FASHIONLENS_CHROMIUM"), shutil.which("chromium"),
                      shutil.which("chromium-browser"), "/usr/lib/chromium/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary (apt-get install chromium, or set "
                                "FASHIONLENS_CHROMIUM)")


class _StainFinder:
    """Stand-in damage head: one stain, the 24×24 square at (40, 40) of every garment photo."""

    def __init__(self) -> None:
        self.info = {"damage": "stand-in"}

    def find(self, rgb: np.ndarray, garment: np.ndarray | None = None) -> list[Any]:
        from fashionlens.grading.damage import FoundDamage

        mask = np.zeros(rgb.shape[:2], bool)
        mask[40:64, 40:64] = True
        return [FoundDamage("stain", 0.05, 0.9, (40.0, 40.0, 64.0, 64.0), mask)]


class _Server:
    """uvicorn serving ``app`` on 127.0.0.1:<free port> in a daemon thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> _Server:  # noqa: PYI034
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def _shot(page: Any, dirs: list[Path], name: str) -> None:
    data = page.screenshot(full_page=True)
    for d in dirs:
        (d / f"{name}.png").write_bytes(data)


@pytest.fixture(scope="module")
def web(service_data: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The full app (grading with a stand-in stain, index, trends, corrections DB) and a bare one."""
    from fashionlens.grading.grade import ItemGrader
    from fashionlens.grading.routing import load_rules
    from fashionlens.service import ServiceSettings, create_app
    from fashionlens.service.models import ServiceModels

    db = tmp_path_factory.mktemp("web-db") / "corrections.sqlite"
    s = ServiceSettings(detector_weights=str(service_data["detector_weights"]), corrections_db=db,
                        trends={"synthetic": service_data["trends_inputs"]}, preload=False)
    grader = ItemGrader(tagger=service_data["grader"].tagger, rules=load_rules(), damage=_StainFinder())
    models = ServiceModels(s, tagger=service_data["tagger"], detector=service_data["detector"], grader=grader,
                           searcher=service_data["searcher"], trends=service_data.get("trends_loaded"))
    models.load()
    service_data.setdefault("trends_loaded", dict(models.trends))
    bare_settings = ServiceSettings(preload=False)
    bare = ServiceModels(bare_settings)
    bare.ready = True
    with _Server(create_app(s, models=models)) as full, _Server(create_app(bare_settings, models=bare)) as empty:
        yield {"url": full.url, "bare_url": empty.url, "db": db}


@pytest.fixture
def page(browser: Any, web: dict[str, Any]) -> Iterator[Any]:
    """A phone-sized page (390×844); fails the test on script errors or a request off this machine."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    pg = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1:", "blob:", "data:"))
          else None)
    yield pg
    context.close()
    assert errors == [], errors
    assert outside == [], outside


def _wait(page: Any, js: str, timeout_s: float = 20.0) -> None:
    """Poll ``js`` (an expression) until true. ``page.wait_for_function`` would need 'unsafe-eval',
    which the pages' Content-Security-Policy refuses."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(f"() => Boolean({js})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {js}")
        time.sleep(0.1)


def _photo(path: Path) -> Path:
    img = np.full((128, 96, 3), 235, np.uint8)
    img[16:112, 16:80] = (40, 80, 180)
    Image.fromarray(img).save(path)
    return path


def test_station_grades_draws_and_saves_a_correction(page: Any, web: dict[str, Any], artefacts: list[Path],
                                                     tmp_path: Path) -> None:
    from fashionlens.grading.corrections import CorrectionStore

    page.goto(web["url"] + "/station")
    page.set_input_files("#front-file", str(_photo(tmp_path / "front.png")))
    page.click("#grade-button")
    page.wait_for_selector("#result:not([hidden])")
    assert page.inner_text("#route") in {"reuse", "repair", "export", "recycle"}
    assert page.locator("#reasons li").count() >= 1
    assert "stain on the front" in page.inner_text("#damage")
    _wait(page, "/^[1-9]/.test(document.getElementById('annotated').dataset.garments || '')")
    canvas = page.evaluate("""() => { const c = document.getElementById('annotated');
        const px = (x, y) => Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data);
        return {w: c.width, h: c.height, damage: c.dataset.damage, stain: px(52, 52), cloth: px(30, 100)}; }""")
    assert (canvas["w"], canvas["h"], canvas["damage"]) == (96, 128, "1")
    r, _, b, _ = canvas["stain"]
    assert r > b + 20, canvas  # the stain mask is painted red over the blue garment ...
    r, _, b, _ = canvas["cloth"]
    assert b > r + 50, canvas  # ... and the rest of the garment stays blue
    _shot(page, artefacts, "station-result")
    page.click("button[data-field='usage'][data-value='repair']")
    page.select_option("#fix-type", "jeans")
    page.fill("#sorter", "browser-test")
    page.click("#save-button")
    page.wait_for_selector("#correction-status.ok")
    assert "Saved correction" in page.inner_text("#correction-status")
    _shot(page, artefacts, "station-corrected")
    store = CorrectionStore(web["db"])
    [row] = store.list()
    saved = store.get(row["id"])
    assert saved["corrections"] == {"usage": "repair", "type": "jeans"} and saved["sorter"] == "browser-test"
    assert saved["item"]["damage"]["regions"][0]["type"] == "stain" and set(saved["images"]) == {"front"}
    assert Image.open(io.BytesIO(saved["images"]["front"])).size == (96, 128)


def test_station_fits_a_phone_and_works_with_the_keyboard(page: Any, web: dict[str, Any]) -> None:
    page.goto(web["url"] + "/station")
    sizes = page.evaluate("""() => Array.from(document.querySelectorAll(
            'button, .photo-buttons label, nav a, select, input:not([type=file])'))
        .filter((e) => e.offsetParent !== null)
        .map((e) => { const r = e.getBoundingClientRect(); return [e.textContent.trim() || e.id, r.width, r.height]; })""")
    assert sizes and all(w >= 44 and h >= 44 for _, w, h in sizes), [s for s in sizes if min(s[1:]) < 44]
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    order = []
    for _ in range(12):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
    assert order.index("front-camera") < order.index("front-file") < order.index("back-camera")
    page.focus("#back-file")  # the input is visually hidden; its label (the big button) shows the focus
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "back-file"
    assert page.evaluate("getComputedStyle(document.querySelector('label[for=back-file]')).outlineStyle") != "none"
    page.click("#grade-button")  # no photo: says so instead of calling the API
    assert "front or back photo" in page.inner_text("#status")


def test_rle_decoding_in_the_page_matches_pycocotools(page: Any, web: dict[str, Any]) -> None:
    from pycocotools import mask as mask_utils

    page.goto(web["url"] + "/station")
    rng = np.random.default_rng(3)
    for h, w in ((7, 5), (40, 33), (300, 200)):
        m = (rng.random((h, w)) > 0.6).astype(np.uint8)
        m[: h // 2, : w // 2] = 1  # long runs as well as short ones
        rle = mask_utils.encode(np.asfortranarray(m))
        doc = {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
        got = page.evaluate("(rle) => Array.from(FL.decodeRle(rle).mask)", doc)
        assert np.array_equal(np.asarray(got, np.uint8).reshape(h, w), m), (h, w)
    assert page.evaluate("() => FL.rleCounts({size: [2, 2], counts: [1, 2, 1]})") == [1, 2, 1]


def test_search_by_words_with_a_filter_shows_a_grid(page: Any, web: dict[str, Any], artefacts: list[Path]) -> None:
    page.goto(web["url"] + "/search")
    page.wait_for_selector("#filter-category option[value='jeans']", state="attached")
    page.fill("#query-text", "red sweater")
    page.click("#search-button")
    page.wait_for_selector("#results li")
    n = page.locator("#results li").count()
    assert 1 <= n <= 5  # the index holds five photos
    _wait(page, "Array.from(document.querySelectorAll('#results img')).every((i) => i.complete)")
    widths = page.evaluate("Array.from(document.querySelectorAll('#results img')).map((i) => i.naturalWidth)")
    assert widths and all(w > 0 for w in widths)  # real crops from /v1/search/crops
    _shot(page, artefacts, "search-results")
    category = page.evaluate("document.querySelector('#results li').dataset.category")
    page.select_option("#filter-category", category)
    page.click("#search-button")
    _wait(page, "document.getElementById('status').textContent.includes('garments like')")
    categories = page.evaluate("Array.from(document.querySelectorAll('#results li')).map((li) => li.dataset.category)")
    assert category and categories and all(c == category for c in categories)


def test_trends_draws_shares_forecasts_and_events(page: Any, web: dict[str, Any], artefacts: list[Path]) -> None:
    page.goto(web["url"] + "/trends")
    page.wait_for_selector("#dataset option[value='synthetic']", state="attached")
    page.select_option("#attribute", "category")  # every post has one: its series are the most labelled
    page.click("#trends-button")
    page.wait_for_selector("svg.chart[data-series='category=shirts'] polyline.line")
    page.wait_for_selector("#charts[data-forecasts]", timeout=45_000)
    assert int(page.get_attribute("#charts", "data-forecasts")) >= 1
    assert page.locator("svg.chart polyline.forecast").count() >= 1
    _shot(page, artefacts, "trends")
    page.select_option("#attribute", "pattern")
    page.click("#trends-button")
    page.wait_for_selector("svg.chart[data-series='pattern=striped'] polyline.line")
    _wait(page, "document.getElementById('status').textContent.includes('with forecasts')")
    assert "pattern=striped" in page.inner_text("#events")  # the generated data's rising 'striped'
    assert page.locator("svg.chart[data-series='pattern=striped'] path.event").count() >= 1


def test_pages_say_plainly_what_is_not_configured(page: Any, web: dict[str, Any], artefacts: list[Path]) -> None:
    base = web["bare_url"]
    page.goto(base + "/search")
    page.wait_for_selector("#feature-notices .notice")
    assert "no garment index is configured" in page.inner_text("#feature-notices")
    assert page.is_disabled("#search-button") and page.locator("#results li").count() == 0
    page.goto(base + "/trends")
    page.wait_for_selector("#feature-notices .notice")
    assert "No trends dataset is loaded" in page.inner_text("#feature-notices")
    page.goto(base + "/station")
    page.wait_for_selector("#feature-notices .notice")
    notices = page.inner_text("#feature-notices")
    assert "Grading is not available" in notices and "Corrections are not saved" in notices
    _shot(page, artefacts, "station-not-configured")
    assert json.loads(page.evaluate("() => fetch('/v1/features').then((r) => r.text())"))["search"] == {
        "available": False}
