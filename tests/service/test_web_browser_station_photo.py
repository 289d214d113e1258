"""The sorting station keeps a large photo within the screen (issue 27, item 6), in headless Chromium
as in ``test_web_browser.py`` (Debian's ``chromium`` through Playwright; skipped without them).

A tall 1200×3600 photo used to be drawn at its column's full width: on a 1366×900 desktop the page
was thousands of pixels tall. Now the annotated photo is at most ~60% of the viewport's height on
a desktop and fits a phone's screen. Screenshots go to the test's temporary folder, to
``/tmp/fashionlens_screens/station_*.png``, and to ``$FASHIONLENS_ARTEFACTS/web/`` when set.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

sync_api = pytest.importorskip("playwright.sync_api", reason="pip package playwright is not installed")

from test_web_browser import CHROMIUM, _Server, _StainFinder, _wait

SCREENS = Path("/tmp/fashionlens_screens")


pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary (apt-get install chromium, or set "
                                "FASHIONLENS_CHROMIUM)")


@pytest.fixture(scope="module")
def station_url(service_data: dict[str, Any]) -> Iterator[str]:
    from fashionlens.grading.grade import ItemGrader
    from fashionlens.grading.routing import load_rules
    from fashionlens.service import ServiceSettings, create_app
    from fashionlens.service.models import ServiceModels

    s = ServiceSettings(detector_weights=str(service_data["detector_weights"]), preload=False)
    grader = ItemGrader(tagger=service_data["grader"].tagger, rules=load_rules(), damage=_StainFinder())
    models = ServiceModels(s, tagger=service_data["tagger"], detector=service_data["detector"], grader=grader,
                           searcher=service_data["searcher"], trends={})
    models.load()
    with _Server(create_app(s, models=models)) as server:
        yield server.url


def _tall_photo(path: Path, w: int = 1200, h: int = 3600) -> Path:
    """A long coat on a plain backdrop: 1200×3600 px (4.3 Mpx), JPEG."""
    img = np.full((h, w, 3), 235, np.uint8)
    img[h // 12: h - h // 12, w // 5: w - w // 5] = (40, 80, 180)
    img[h // 12: h // 4, w // 3: w - w // 3] = (30, 60, 150)  # collar / shoulders
    Image.fromarray(img).save(path, quality=90)
    return path


@pytest.mark.parametrize(("device", "viewport"), [("desktop", {"width": 1366, "height": 900}),
                                                  ("phone", {"width": 390, "height": 844})])
def test_a_large_photo_stays_within_the_viewport(browser: Any, station_url: str, tmp_path: Path, device: str,
                                                 viewport: dict[str, int]) -> None:
    context = browser.new_context(viewport=viewport, device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1:", "blob:", "data:"))
            else None)
    try:
        page.goto(station_url + "/station")
        page.set_input_files("#front-file", str(_tall_photo(tmp_path / "coat.jpg")))
        page.click("#grade-button")
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        _wait(page, "/^([0-9]+|unavailable)$/.test(document.getElementById('annotated').dataset.garments || '')", 60)
        canvas = page.locator("#annotated")
        assert page.evaluate("[document.getElementById('annotated').width, document.getElementById('annotated').height]"
                             ) == [1024, 3072]  # drawn at full resolution (up to 1024 px wide) ...
        canvas.evaluate("(e) => e.scrollIntoView({block: 'center'})")
        box = canvas.bounding_box()
        assert box is not None
        vw, vh = viewport["width"], viewport["height"]
        # ... and shown within the viewport: wholly visible once scrolled to, never wider than the screen
        assert 0 <= box["y"] and box["y"] + box["height"] <= vh + 0.5, box
        assert 0 <= box["x"] and box["x"] + box["width"] <= vw + 0.5, box
        limit = 0.6 if device == "desktop" else 0.65  # of the viewport's height (60vh; 65vh on an upright phone)
        assert box["height"] == pytest.approx(limit * vh, abs=1), box  # as large as allowed: still usable ...
        assert box["width"] / box["height"] == pytest.approx(1024 / 3072, rel=0.01), box  # ... and not distorted
        style = page.evaluate("(() => { const s = getComputedStyle(document.getElementById('annotated')); "
                              "return [s.objectFit, s.maxHeight]; })()")
        assert style[0] == "contain", style
        assert page.evaluate("document.documentElement.scrollWidth") <= vw  # no horizontal scrolling
        shots = [tmp_path / f"station_{device}.png", tmp_path / f"station_{device}_full.png"]
        shots[0].write_bytes(page.screenshot())
        shots[1].write_bytes(page.screenshot(full_page=True))
        targets = [SCREENS]
        if os.environ.get("FASHIONLENS_ARTEFACTS"):
            targets.append(Path(os.environ["FASHIONLENS_ARTEFACTS"]) / "web")
        for target in targets:
            target.mkdir(parents=True, exist_ok=True)
            for shot in shots:
                shutil.copy(shot, target / shot.name)
    finally:
        context.close()
    assert errors == [], errors
    assert outside == [], outside
