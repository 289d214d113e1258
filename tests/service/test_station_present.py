"""The sorting station's coherent view: ``POST /v1/station/present``, the ``station`` view in the
``POST /v1/corrections`` answer, and the page in headless Chromium showing one value per field with
its source badge (label / model / person) and the unsure fields highlighted.

The app here has no real models (no torch needed): its grader is a stand-in that answers a fixed item
record with the contradictions the station must resolve (the label says cotton, the material head
acrylic; a stain region and no stains head; the grading head's RISE type; an unsure pattern; a
composition read without spaces). The browser test is skipped without Playwright or Chromium.
"""

from __future__ import annotations

import copy
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fashionlens.grading.item import ITEM_SCHEMA

RECORD: dict[str, Any] = {
    "schema": ITEM_SCHEMA, "item_id": "station-1",
    "views": [{"role": "front", "path": "front.png", "error": None}, {"role": "label", "path": "label.png", "error": None}],
    "object_type": "upper-body",
    "category": {"id": "sweaters", "score": 0.91, "views": 1},
    "attributes": {"material": {"id": "cotton", "score": None, "source": "label"},
                   "pattern": {"id": None, "score": 0.41, "uncertain": True,
                               "candidates": [{"id": "striped", "score": 0.41}, {"id": "plain", "score": 0.33}]},
                   "colours": [{"id": "blue", "share": 0.9, "score": 0.8}, {"id": "multicolour", "share": None, "score": 0.3}]},
    "composition": {"text": "95%cotton 5%elastane", "main_fibre": "cotton",
                    "fibres": [{"fibre": "cotton", "percent": 95.0}, {"fibre": "elastane", "percent": 5.0}]},
    "brand": "Zara", "label_text": ["ZARA", "95%cotton 5%elastane"],
    "damage": {"any": True, "regions": [{"view": "front", "type": "stain", "area_share": 0.004, "score": 0.9,
                                         "bbox": [40, 40, 24, 24], "mask": None}],
               "area_share": {"stain": 0.004, "hole": 0.0, "pilling": 0.0, "fading": 0.0}},
    "grades": {"type": {"id": "Sweater", "score": 0.95}, "material": {"id": "acrylic", "score": 0.97}},
    "route": {"decision": "reuse", "rules": "fashionlens-default/1",
              "reasons": ["no damage or low grade over a rule's threshold: fit for reuse",
                          "damage found, below every rule's threshold: stain on 0.4% of the garment (1 region)"]},
    "warnings": [], "error": None, "model": {"damage_model": "stand-in"},
}


class _FixedGrader:
    """Stand-in item grader: answers RECORD (with the requested item id) for any photos."""

    decode_side = 64

    def grade(self, item: Any, **_: Any) -> tuple[dict[str, Any], None]:  # precision, keep_uncertain: ignored
        rec = copy.deepcopy(RECORD)
        rec["item_id"] = item.item_id
        return rec, None


def _app(db: Path | None) -> Any:
    from fashionlens.service import ServiceSettings, create_app
    from fashionlens.service.models import ServiceModels

    settings = ServiceSettings(preload=False, corrections_db=db)
    models = ServiceModels(settings, grader=_FixedGrader())
    models.ready = True
    return create_app(settings, models=models)


def _png(w: int = 96, h: int = 128) -> bytes:
    img = np.full((h, w, 3), 235, np.uint8)
    img[16:112, 16:80] = (40, 80, 180)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(_app(tmp_path / "corrections.sqlite")) as c:
        yield c


def _fields(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in view["fields"]}


def test_present_resolves_the_record_into_one_value_per_field(client: Any) -> None:
    r = client.post("/v1/station/present", json={"item": RECORD})
    assert r.status_code == 200, r.text
    view = r.json()
    f = _fields(view)
    assert view["schema"] == "fashionlens/station/v1" and view["item_id"] == "station-1"
    assert (f["material"]["value"], f["material"]["source"]) == ("cotton", "label")
    assert "acrylic" in f["material"]["hint"]
    assert f["composition"]["display"] == "95% cotton, 5% elastane"
    assert (f["damage"]["value"], f["stains"]["value"], f["stains"]["uncertain"]) == ("stain", "minor", True)
    assert (f["type"]["value"], f["type"]["display"]) == ("sweaters", "Sweaters")
    assert f["pattern"]["uncertain"] and f["pattern"]["value"] is None
    assert view["route"]["reasons"] == RECORD["route"]["reasons"]
    person = client.post("/v1/station/present", json={"item": RECORD, "corrections": {"pattern": "striped"}}).json()
    assert (_fields(person)["pattern"]["source"], _fields(person)["pattern"]["uncertain"]) == ("person", False)


@pytest.mark.parametrize("body", [{"item": [1, 2]}, {"item": "text"}, {}, {"item": RECORD, "corrections": [1]}])
def test_present_refuses_a_body_that_is_not_an_item_object(client: Any, body: dict[str, Any]) -> None:
    r = client.post("/v1/station/present", json=body)
    assert r.status_code == 422, r.text


def test_a_record_with_odd_field_shapes_is_shown_or_refused_never_a_server_error(client: Any) -> None:
    odd_fibres = {**RECORD, "composition": {"text": "abc", "fibres": [{"fibre": "cotton", "percent": "abc"}]}}
    r = client.post("/v1/station/present", json={"item": odd_fibres})
    assert r.status_code == 200, r.text
    assert _fields(r.json())["composition"]["display"] == "cotton"  # the percent that is not one is left out
    numeric_category = {**RECORD, "category": {"id": 3, "score": 0.9}}
    assert client.post("/v1/station/present", json={"item": numeric_category}).status_code in (200, 422)


def test_a_correction_the_station_cannot_show_is_refused_before_it_is_saved(client: Any,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from fashionlens.grading import presentation

    def broken(record: Any, corrections: Any = None) -> Any:
        raise AttributeError("'int' object has no attribute 'replace'")

    monkeypatch.setattr(presentation, "present_item", broken)
    data = {"item": json.dumps(RECORD), "corrections": json.dumps({"usage": "repair"})}
    for _ in range(2):  # a client retrying after the error stores nothing twice
        r = client.post("/v1/corrections", data=data)
        assert r.status_code == 422 and "cannot be shown" in r.json()["detail"], r.text
    assert client.get("/v1/corrections").json()["total"] == 0
    assert client.post("/v1/station/present", json={"item": RECORD}).status_code == 422


def test_saving_corrections_answers_the_station_view_with_the_persons_values(client: Any) -> None:
    r = client.post("/v1/corrections", data={"item": json.dumps(RECORD), "sorter": "anna",
                                             "corrections": json.dumps({"usage": "repair", "stains": "major"})},
                    files={"front": ("front.png", _png(), "image/png")})
    assert r.status_code == 200, r.text
    station = r.json()["station"]
    f = _fields(station)
    assert (f["stains"]["value"], f["stains"]["source"], f["stains"]["uncertain"]) == ("major", "person", False)
    assert (station["route"]["decision"], station["route"]["source"], station["route"]["rules_decision"]) == (
        "repair", "person", "reuse")
    assert station["route"]["rules_reasons"] == RECORD["route"]["reasons"]


# --- the page in Chromium ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def station_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("playwright.sync_api", reason="pip package playwright is not installed")
    sys.path.insert(0, str(Path(__file__).parent))
    from test_web_browser import CHROMIUM, _Server

    if CHROMIUM is None:
        pytest.skip("no Chromium binary (apt-get install chromium, or set FASHIONLENS_CHROMIUM)")
    with _Server(_app(tmp_path_factory.mktemp("station-db") / "c.sqlite")) as server:
        yield server.url


def test_station_page_shows_sources_hints_and_unsure_fields(browser: Any, station_url: str, artefacts: list[Path],
                                                            tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    (tmp_path / "front.png").write_bytes(_png())
    page.goto(station_url + "/station")
    page.set_input_files("#front-file", str(tmp_path / "front.png"))
    page.click("#grade-button")
    page.wait_for_selector("#facts dd[data-field='material']")
    material = page.locator("#facts dd[data-field='material']")
    assert material.get_attribute("data-source") == "label"
    assert material.locator(".source").inner_text().strip().lower() == "label"
    assert "acrylic" in material.locator(".hint").inner_text()  # the head's guess: a hint only
    assert page.locator("#facts dd[data-field='composition'] .value").inner_text() == "95% cotton, 5% elastane"
    stains = page.locator("#facts dd[data-field='stains']")
    assert stains.locator(".value").inner_text() == "minor" and "unsure" in (stains.get_attribute("class") or "")
    assert page.locator("#facts dd[data-field='damage'] .value").inner_text() == "stain"
    unsure = set(page.eval_on_selector_all("#facts dd.unsure", "els => els.map(e => e.dataset.field)"))
    assert {"stains", "pattern"} <= unsure and "material" not in unsure
    assert set(page.eval_on_selector_all("#correction-fields fieldset.unsure", "els => els.map(e => e.dataset.field)")) \
        >= {"stains", "pattern"}
    # one category vocabulary: the result's words are the form's and the dropdown's
    category = page.locator("#facts dd[data-field='type'] .value").inner_text()
    options = page.locator("#fix-type option").all_inner_texts()
    assert category == "Sweaters" and options[0] == "keep: Sweaters" and "Sweaters" in options[1:]
    assert "sweaters" not in options and "Sweater" not in options
    # the reasons shown are the route's own
    assert page.locator("#reasons li").all_inner_texts() == RECORD["route"]["reasons"]
    page.wait_for_selector("#annotated[data-garments]")
    for d in artefacts:
        (d / "station_sources.png").write_bytes(page.screenshot(full_page=True))
    # a sorter's choice turns the field's badge to "person" and clears its highlight
    page.click("button[data-field='stains'][data-value='major']")
    fs = page.locator("#correction-fields fieldset[data-field='stains']")
    assert fs.get_attribute("data-source") == "person" and "unsure" not in (fs.get_attribute("class") or "")
    page.click("#save-button")
    page.wait_for_selector("#correction-status.ok")
    assert page.locator("#facts dd[data-field='stains']").get_attribute("data-source") == "person"
    assert page.locator("#facts dd[data-field='stains'] .value").inner_text() == "major"
    context.close()
    assert errors == [], errors
