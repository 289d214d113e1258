"""Sorting-station corrections go into the review store: a reviewed item task with the sorter's answers,
the photo kept in the store, ``station`` audit rows, and the labels in the RISE export."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from review_testing import item_line, sure, unsure

from fashionlens.review.export import export_reviewed
from fashionlens.review.store import ReviewStore


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((40, 30, 3), 120, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _item() -> dict:
    return item_line("ST-1", "front.jpg", category=sure("sweaters", 0.93),
                     attributes={"pattern": unsure([("striped", 0.4), ("plain", 0.38)]),
                                 "colours": [{"id": "red", "share": 0.7, "score": 0.95}]},
                     grades={"usage": sure("reuse", 0.8), "condition": sure("4", 0.7)})


def test_a_station_correction_becomes_a_corrected_task_with_its_photo(tmp_path: Path) -> None:
    store = ReviewStore(tmp_path / "r.sqlite")
    tid = store.add_station_correction(_item(), {"usage": "repair", "colors": ["Blue"], "pattern": "plain"},
                                       reference=7, sorter="anna", photos={"front": (_png(), "PNG")})
    assert store.add_station_correction(_item(), {"usage": "repair"}, reference=7, sorter="anna") == tid  # once
    task = store.task(tid)
    assert task.status == "corrected" and task.kind == "item" and task.photo is None and task.photo_roles == ("front",)
    assert task.answers == {"grades.usage": "repair", "colours": ["Blue"], "grades.pattern": "plain"}
    assert task.final_value("grades.condition") == "4"
    station = [(r.field, r.old, r.new, r.reviewer) for r in store.audit(tid) if r.action == "station"]
    assert ("grades.usage", "reuse", "repair", "anna") in station and ("status", "pending", "corrected", "anna") in station
    assert store.next_task() is None  # already reviewed: never queued for another person

    summary = export_reviewed(store, tmp_path / "out")
    row = json.loads((tmp_path / "out" / "rise" / "garments.jsonl").read_text())
    assert summary.items == 1 and row["usage"] == "repair" and row["colors"] == "['Blue']" and row["pattern"] == "plain"
    with Image.open(tmp_path / "out" / "rise" / "images" / "ST-1.jpg") as im:
        assert im.format == "JPEG" and im.size == (30, 40)


def test_the_service_helper_records_into_the_configured_store(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from fashionlens.service import ServiceSettings, create_app
    from fashionlens.service.models import ServiceModels
    from fashionlens.service.routers.review import record_station_correction

    s = ServiceSettings(preload=False)
    off = create_app(s, models=ServiceModels(s))
    assert record_station_correction(off, _item(), {"usage": "repair"}, reference=1, sorter=None, images={}) is None
    app = create_app(s, models=ServiceModels(s), review_db=tmp_path / "r.sqlite")
    tid = record_station_correction(app, _item(), {"usage": "repair"}, reference=1, sorter="ben",
                                    images={"front": _png()})
    with TestClient(app) as client:
        task = client.get(f"/v1/review/tasks/{tid}").json()
        assert task["status"] == "corrected" and task["photo_url"]
        photo = client.get(task["photo_url"])
        assert photo.status_code == 200 and photo.headers["content-type"] == "image/png"
