"""The web app's API and pages without a browser: corrections (stored in SQLite, not configured,
bad input), taxonomy, features, garment crops, the pages and their local-only assets."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from service_testing import png_bytes

from fashionlens.grading.corrections import CorrectionStore
from fashionlens.grading.item import ITEM_SCHEMA, empty_item
from fashionlens.service.routers.pages import PAGES, STATIC_DIR


def _light_client(**settings: Any) -> Any:
    """An app whose models are stand-ins (these routes load none)."""
    from fastapi.testclient import TestClient

    from fashionlens.service import ServiceSettings, create_app
    from fashionlens.service.models import ServiceModels

    s = ServiceSettings(preload=False, **settings)
    models = ServiceModels(s)
    models.ready = True
    return TestClient(create_app(s, models=models))


def _item(item_id: str = "it-1") -> dict[str, Any]:
    rec = empty_item(item_id, [{"role": "front", "path": "front.png", "error": None}])
    rec["category"] = {"id": "sweaters", "score": 0.9}
    rec["route"] = {"decision": "reuse", "reasons": ["no damage"], "rules": "default"}
    return rec


def test_correction_is_stored_with_photos_and_model_output(tmp_path: Path) -> None:
    db = tmp_path / "corr.sqlite"
    with _light_client(corrections_db=db) as c:
        r = c.post("/v1/corrections", data={"item": json.dumps(_item()), "sorter": "anna",
                                            "corrections": json.dumps({"usage": "repair", "condition": 2})},
                   files={"front": ("f.png", png_bytes(96, 96), "image/png")})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["item_id"] == "it-1" and body["fields"] == ["condition", "usage"] and body["roles"] == ["front"]
        listed = c.get("/v1/corrections").json()
    stored = CorrectionStore(db).get(body["id"])
    assert stored["corrections"] == {"usage": "repair", "condition": 2} and stored["sorter"] == "anna"
    assert stored["item"]["schema"] == ITEM_SCHEMA and stored["item"]["route"]["decision"] == "reuse"
    assert stored["images"]["front"] == png_bytes(96, 96)
    assert listed["total"] == 1 and listed["corrections"][0]["fields"] == ["condition", "usage"]


@pytest.mark.parametrize(("data", "files", "status", "code"), [
    ({"item": "{not json", "corrections": "{}"}, None, 422, "invalid_request"),
    ({"item": "[1, 2]", "corrections": "{}"}, None, 422, "invalid_request"),
    ({"item": json.dumps(_item()), "corrections": '"usage"'}, None, 422, "invalid_request"),
    ({"item": json.dumps(_item()), "corrections": '{"colour_of_sky": "blue"}'}, None, 422, "invalid_request"),
    ({"item": json.dumps({**_item(), "item_id": "../x"}), "corrections": "{}"}, None, 422, "invalid_request"),
    ({"item": json.dumps(_item()), "corrections": "{}"}, {"front": ("a.txt", b"not an image", "image/png")}, 415,
     "unsupported_media_type"),
    ({"corrections": "{}"}, None, 422, "invalid_request"),
])
def test_bad_corrections_are_refused(tmp_path: Path, data: dict, files: dict | None, status: int, code: str) -> None:
    db = tmp_path / "corr.sqlite"
    with _light_client(corrections_db=db) as c:
        r = c.post("/v1/corrections", data=data, files=files)
    assert r.status_code == status and r.json()["code"] == code, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert len(CorrectionStore(db)) == 0


def test_corrections_without_database_are_not_configured() -> None:
    with _light_client() as c:
        r = c.post("/v1/corrections", data={"item": json.dumps(_item()), "corrections": "{}"})
        assert r.status_code == 404 and r.json()["code"] == "not_configured"
        assert c.get("/v1/corrections").json()["code"] == "not_configured"
        assert c.get("/v1/features").json()["corrections"] == {"available": False}


def test_corrections_need_the_key_when_auth_is_on(tmp_path: Path) -> None:
    with _light_client(corrections_db=tmp_path / "c.sqlite", api_keys=("secret-key-1",)) as c:
        body = {"item": json.dumps(_item()), "corrections": "{}"}
        assert c.post("/v1/corrections", data=body).status_code == 401
        assert c.post("/v1/corrections", data=body, headers={"X-API-Key": "secret-key-1"}).status_code == 200
        assert c.get("/v1/taxonomy").status_code == 401
        assert c.get("/station").status_code == 200  # the page loads; its API calls send the key


def test_taxonomy_lists_the_vocabularies() -> None:
    from fashionlens.taxonomy import load_taxonomy

    with _light_client() as c:
        tax = c.get("/v1/taxonomy").json()
    ref = load_taxonomy()
    assert tax["object_types"] == list(ref.object_types)
    assert [x["id"] for x in tax["categories"]] == list(ref.categories)
    assert {"id": "jeans", "object_type": "lower-body"} in tax["categories"]
    assert tax["attributes"]["pattern"]["values"] == list(ref.attributes["pattern"].values)
    assert tax["routes"] == ["reuse", "repair", "export", "recycle"] and "usage" in tax["correction_fields"]


def test_features_say_what_is_configured(tmp_path: Path) -> None:
    with _light_client(corrections_db=tmp_path / "c.sqlite") as c:
        f = c.get("/v1/features").json()
    assert f["corrections"]["available"] and not f["search"]["available"] and not f["grade"]["available"]
    assert f["trends"] == {"available": False, "datasets": []} and f["auth"] is False


@pytest.mark.parametrize("path", sorted(PAGES))
def test_pages_are_served_with_a_local_only_policy(path: str) -> None:
    with _light_client() as c:
        r = c.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "http" not in csp
    assert '<meta name="viewport"' in r.text and 'lang="en"' in r.text
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', r.text):
        with _light_client() as c:
            assert c.get(asset).status_code == 200, asset


def test_static_files_reference_nothing_outside_the_server() -> None:
    files = sorted(p for p in STATIC_DIR.iterdir() if p.suffix in {".html", ".js", ".css"})
    assert {p.name for p in files} >= {"station.html", "search.html", "trends.html", "common.js", "app.css"}
    for p in files:
        text = p.read_text("utf-8")
        urls = re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[a-z]{2,}", text)
        assert urls == [] or all(u == "http://www.w3.org" for u in urls)  # the SVG namespace name, never fetched, (p.name, urls)


def test_station_page_has_camera_inputs_and_live_regions() -> None:
    html = (STATIC_DIR / "station.html").read_text("utf-8")
    for role in ("front", "back", "label"):
        assert f'id="{role}-camera"' in html and f'<label for="{role}-camera">' in html
    assert html.count('capture="environment"') == 3 and html.count('accept="image/*"') == 6
    assert 'aria-live="polite"' in html and 'role="status"' in html


def test_settings_round_trip_the_corrections_database(tmp_path: Path) -> None:
    from fashionlens.service import ServiceSettings

    s = ServiceSettings(corrections_db=tmp_path / "c.sqlite")
    assert s.to_env()["FASHIONLENS_CORRECTIONS_DB"] == str(tmp_path / "c.sqlite")
    assert ServiceSettings.from_env(s.to_env()) == s
    assert ServiceSettings.from_env({}).corrections_db is None


def test_crop_of_an_indexed_garment(service_data: dict[str, Any]) -> None:
    from service_testing import make_client

    with make_client(service_data) as c:
        hits = c.post("/v1/search", data={"text": "red"}, params={"k": 2}).json()["hits"]
        r = c.get(f"/v1/search/crops/{hits[0]['id']}", params={"size": 64})
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        import io

        from PIL import Image

        im = Image.open(io.BytesIO(r.content))
        assert max(im.size) == 64
        r = c.get("/v1/search/crops/999999")
        assert r.status_code == 404 and r.json()["code"] == "not_found"
        assert c.get("/v1/search/crops/1", params={"size": 5}).status_code == 422


def test_crop_of_a_photo_not_readable_here_is_404(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from fastapi.testclient import TestClient

    from fashionlens.service import ServiceSettings, create_app
    from fashionlens.service.models import ServiceModels

    meta = SimpleNamespace(path=str(tmp_path / "gone.jpg"), xyxy=(0, 0, 10, 10))
    index = SimpleNamespace(get=lambda ids: {0: meta})
    s = ServiceSettings(preload=False)
    models = ServiceModels(s, searcher=SimpleNamespace(index=index))
    models.ready = True
    with TestClient(create_app(s, models=models)) as c:
        r = c.get("/v1/search/crops/0")
    assert r.status_code == 404 and "not" in r.json()["detail"] and "gone.jpg" in r.json()["detail"]
    with _light_client() as c:
        assert c.get("/v1/search/crops/0").json()["code"] == "not_configured"


def test_a_station_correction_also_reaches_the_review_store(tmp_path: Path) -> None:
    from fashionlens.review.store import ReviewStore

    db, review_db = tmp_path / "corr.sqlite", tmp_path / "review.sqlite"
    with _light_client(corrections_db=db, review_db=review_db) as c:
        assert c.get("/v1/features").json()["review"] == {"available": True}
        r = c.post("/v1/corrections", data={"item": json.dumps(_item()), "sorter": "anna",
                                            "corrections": json.dumps({"usage": "repair"})},
                   files={"front": ("f.png", png_bytes(96, 96), "image/png")})
        assert r.status_code == 200, r.text
    [task] = [t for t in ReviewStore(review_db).tasks()]
    assert task.status == "corrected" and task.answers == {"grades.usage": "repair"}


def test_a_broken_review_store_never_loses_the_station_correction(tmp_path: Path) -> None:
    db, review_db = tmp_path / "corr.sqlite", tmp_path / "review.sqlite"
    review_db.write_bytes(b"this is not a SQLite file" * 10)
    with _light_client(corrections_db=db, review_db=review_db) as c:
        r = c.post("/v1/corrections", data={"item": json.dumps(_item()),
                                            "corrections": json.dumps({"usage": "repair"})})
        assert r.status_code == 200, r.text
    assert CorrectionStore(db).get(r.json()["id"])["corrections"] == {"usage": "repair"}
    assert review_db.read_bytes() == b"this is not a SQLite file" * 10
