"""Corrections store: add → list → get → export round trip in the RISE release layout, merged
corrections, concurrent writers, input validation, idempotent and atomic export, the command."""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import sqlite3
import threading
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from fashionlens.grading import corrections as corrections_module
from fashionlens.grading.corrections import (
    LABEL_FIELDS,
    MANIFEST_NAME,
    CorrectionStore,
    final_labels,
    model_labels,
    parse_since,
)
from fashionlens.grading.item import empty_item


def encoded(fmt: str = "JPEG", colour: tuple[int, int, int] = (200, 30, 40), size: tuple[int, int] = (32, 24)) -> bytes:
    buf = io.BytesIO()
    rgb = np.zeros((size[1], size[0], 3), np.uint8)
    rgb[...] = colour
    Image.fromarray(rgb).save(buf, format=fmt)
    return buf.getvalue()


JPG = encoded("JPEG")
PNG = encoded("PNG", (10, 200, 30))
LABEL_JPG = encoded("JPEG", (250, 250, 250))


def model_item(item_id: str = "item-1") -> dict[str, Any]:
    rec = empty_item(item_id, [{"role": r, "path": f"{r}.jpg", "error": None} for r in ("front", "back", "label")])
    rec["object_type"] = "upper-body"
    rec["category"] = {"id": "sweater", "score": 0.9}
    rec["attributes"] = {"pattern": {"id": "striped", "score": 0.7},
                         "colours": [{"id": "red", "share": 0.6, "score": 0.9}, {"id": "white", "share": 0.3,
                                                                                 "score": 0.8}],
                         "material": {"id": "wool", "score": 0.6, "source": "image"}}
    rec["composition"] = {"text": "80% wool 20% polyamide", "main_fibre": "wool",
                          "fibres": [{"fibre": "wool", "percent": 80.0}, {"fibre": "polyamide", "percent": 20.0}]}
    rec["brand"] = "Acme"
    rec["grades"] = {"condition": {"id": 3, "score": 0.6}, "season": {"id": "winter", "score": 0.8}}
    rec["route"] = {"decision": "reuse", "reasons": ["wool 80%: high-value fibre"], "rules": "fashionlens-default/1"}
    return rec


@pytest.fixture
def store(tmp_path: Path) -> CorrectionStore:
    return CorrectionStore(tmp_path / "db" / "corrections.sqlite")


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- round trip ---------------------------------------------------------------------------------------
def test_add_list_get_export_round_trip(store, tmp_path):
    cid = store.add(model_item(), {"front": JPG, "back": PNG, "label": LABEL_JPG},
                    {"condition": 4, "usage": "repair", "brand": None, "colors": ["red", "navy"]}, sorter="anna")
    assert isinstance(cid, int)

    listed = store.list()
    assert [(r["id"], r["item_id"], r["sorter"], r["fields"], r["roles"]) for r in listed] == [
        (cid, "item-1", "anna", ["brand", "colors", "condition", "usage"], ["back", "front", "label"])]
    assert datetime.fromisoformat(listed[0]["created_at"]).tzinfo is not None

    got = store.get(cid)
    assert got["item"] == model_item() and got["images"] == {"front": JPG, "back": PNG, "label": LABEL_JPG}
    assert got["corrections"] == {"condition": 4, "usage": "repair", "brand": None, "colors": ["red", "navy"]}

    out = tmp_path / "out"
    manifest = store.export(out)
    folder = out / "item-1"
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "item-1"]
    assert files_of(folder) == {"back.png": PNG, "brand.jpg": LABEL_JPG, "front.jpg": JPG,
                                "labels_item-1.json": (folder / "labels_item-1.json").read_bytes()}
    labels = json.loads((folder / "labels_item-1.json").read_text(encoding="utf-8"))
    assert labels == {"usage": "repair", "condition": 4, "type": "sweater", "material": "80% wool 20% polyamide",
                      "season": "winter", "colors": ["red", "navy"], "pattern": "striped"}  # brand: corrected to none
    assert list(labels) == [f for f in LABEL_FIELDS if f in labels]  # the documented key order

    assert manifest == json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["n_items"] == 1 and manifest["n_corrections"] == 1 and manifest["items"] == ["item-1"]
    assert manifest["fields"] == {"usage": {"corrected": 1, "changed": 1}, "condition": {"corrected": 1, "changed": 1},
                                  "brand": {"corrected": 1, "changed": 1}, "colors": {"corrected": 1, "changed": 1}}
    assert manifest["skipped"] == [] and manifest["since"] is None


def test_export_reads_back_with_the_rise_layout(store, tmp_path):
    """Every exported folder holds only known view files and one labels file with known keys."""
    store.add(model_item("a"), {"front": JPG}, {})
    store.add(model_item("b"), {"back": PNG, "label": LABEL_JPG}, {"type": "cardigan"})
    store.export(tmp_path / "out")
    for folder in sorted(p for p in (tmp_path / "out").iterdir() if p.is_dir()):
        names = {p.name for p in folder.iterdir()}
        assert f"labels_{folder.name}.json" in names
        assert names - {f"labels_{folder.name}.json"} <= {"front.jpg", "back.png", "brand.jpg"}
        labels = json.loads((folder / f"labels_{folder.name}.json").read_text(encoding="utf-8"))
        assert set(labels) <= set(LABEL_FIELDS)
    b = json.loads((tmp_path / "out" / "b" / "labels_b.json").read_text(encoding="utf-8"))
    assert b["type"] == "cardigan" and b["condition"] == 3


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda r: None, {"usage": "reuse", "condition": 3, "type": "sweater", "material": "80% wool 20% polyamide",
                      "season": "winter", "brand": "Acme", "colors": ["red", "white"], "pattern": "striped"}),
    (lambda r: r.update(grades={"usage": {"id": "export"}, "type": {"id": "Sweater"}, "material": {"id": "wool"},
                                "pattern": {"id": "plain"}, "stains": {"id": "Minor"}, "holes": {"id": "None"},
                                "pilling": {"id": 2}, "damage": {"id": "hole"}, "price": {"id": "50-100"},
                                "trend": {"id": "classic"}}),
     {"usage": "export", "price": "50-100", "stains": "Minor", "holes": "None", "pilling": 2, "damage": "hole",
      "type": "Sweater", "material": "80% wool 20% polyamide", "trend": "classic", "brand": "Acme",
      "colors": ["red", "white"], "pattern": "plain"}),
    (lambda r: r.update(composition=None, route=None, brand=None, category=None, grades={},
                        attributes={"colours": []}), {}),
    (lambda r: r.update(composition=None), {"usage": "reuse", "condition": 3, "type": "sweater", "material": "wool",
                                            "season": "winter", "brand": "Acme", "colors": ["red", "white"],
                                            "pattern": "striped"}),
])
def test_model_labels(edit, expected):
    rec = model_item()
    edit(rec)
    assert model_labels(rec) == expected
    assert model_labels({}) == {}


def test_final_labels_prefer_the_correction():
    rec = model_item()
    assert final_labels(rec, {"condition": 5, "brand": None, "holes": "Minor"})["condition"] == 5
    assert "brand" not in final_labels(rec, {"brand": None})
    assert final_labels(rec, {"holes": "Minor"})["holes"] == "Minor"
    assert final_labels({}, {}) == {}


def test_corrections_of_one_item_are_merged(store, tmp_path):
    store.add(model_item(), {"front": JPG, "back": PNG}, {"condition": 2, "usage": "export"}, sorter="anna")
    newer_front = encoded("PNG", (0, 0, 255))
    later = model_item()
    later["brand"] = "Other"
    store.add(later, {"front": newer_front}, {"condition": 4}, sorter="bo")
    manifest = store.export(tmp_path / "out")
    folder = tmp_path / "out" / "item-1"
    assert sorted(p.name for p in folder.iterdir()) == ["back.png", "front.png", "labels_item-1.json"]
    assert (folder / "front.png").read_bytes() == newer_front and (folder / "back.png").read_bytes() == PNG
    labels = json.loads((folder / "labels_item-1.json").read_text(encoding="utf-8"))
    assert labels["condition"] == 4 and labels["usage"] == "export" and labels["brand"] == "Other"
    assert manifest["n_items"] == 1 and manifest["n_corrections"] == 2
    assert manifest["fields"] == {"usage": {"corrected": 1, "changed": 1}, "condition": {"corrected": 1, "changed": 1}}


def test_item_without_any_photo_is_skipped_and_reported(store, tmp_path):
    store.add(model_item("no-photo"), {}, {"condition": 1})
    store.add(model_item("ok"), {"front": JPG}, {"condition": 3})
    manifest = store.export(tmp_path / "out")
    assert manifest["items"] == ["ok"] and [s["item_id"] for s in manifest["skipped"]] == ["no-photo"]
    assert manifest["fields"] == {"condition": {"corrected": 1, "changed": 0}}  # 3 == the model's 3
    assert not (tmp_path / "out" / "no-photo").exists()


def test_empty_store_exports_an_empty_manifest(store, tmp_path):
    manifest = store.export(tmp_path / "out")
    assert manifest["n_items"] == 0 and manifest["items"] == [] and manifest["fields"] == {}
    assert store.list() == [] and len(store) == 0


# --- export: idempotent, atomic, since ------------------------------------------------------------------
def test_re_export_into_the_same_folder_does_not_duplicate(store, tmp_path):
    store.add(model_item("a"), {"front": JPG}, {"condition": 4})
    store.add(model_item("b"), {"front": PNG, "label": LABEL_JPG}, {})
    out = tmp_path / "out"
    first = store.export(out)
    before = files_of(out)
    second = store.export(out)
    assert files_of(out).keys() == before.keys()
    assert {k: v for k, v in files_of(out).items() if k != MANIFEST_NAME} == \
        {k: v for k, v in before.items() if k != MANIFEST_NAME}
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", MANIFEST_NAME]  # no temporary folders left
    assert {k: v for k, v in first.items() if k != "exported_at"} == {k: v for k, v in second.items()
                                                                     if k != "exported_at"}


def test_a_failed_item_write_leaves_the_previous_export(store, tmp_path, monkeypatch):
    store.add(model_item("a"), {"front": JPG}, {"condition": 4})
    out = tmp_path / "out"
    store.export(out)
    before = files_of(out / "a")
    store.add(model_item("a"), {"front": PNG}, {"condition": 1})

    class BrokenJson:
        loads = staticmethod(json.loads)

        @staticmethod
        def dumps(*args: Any, **kwargs: Any) -> str:
            raise OSError("disk full")

    monkeypatch.setattr(corrections_module, "json", BrokenJson)
    with pytest.raises(OSError, match="disk full"):
        store.export(out)
    monkeypatch.undo()
    assert files_of(out / "a") == before
    assert sorted(p.name for p in out.iterdir()) == ["a", MANIFEST_NAME]


def test_export_since(store, tmp_path):
    store.add(model_item("old"), {"front": JPG}, {"condition": 2})
    time.sleep(0.01)
    middle = datetime.now(timezone.utc)
    time.sleep(0.01)
    store.add(model_item("new"), {"front": JPG}, {"condition": 5})
    assert store.export(tmp_path / "a", since=middle)["items"] == ["new"]
    assert store.export(tmp_path / "b", since=middle.isoformat())["items"] == ["new"]
    assert store.export(tmp_path / "c", since="2000-01-01")["items"] == ["new", "old"]
    assert store.export(tmp_path / "d", since=date(2999, 1, 1))["items"] == []
    assert [r["item_id"] for r in store.list(since=middle)] == ["new"]
    assert [r["item_id"] for r in store.list(item_id="old")] == ["old"]


@pytest.mark.parametrize(("since", "expected"), [
    ("2026-03-01", "2026-03-01T00:00:00.000000+00:00"),
    ("2026-03-01T08:30:00", "2026-03-01T08:30:00.000000+00:00"),
    ("2026-03-01T08:30:00Z", "2026-03-01T08:30:00.000000+00:00"),
    ("2026-03-01T10:30:00+02:00", "2026-03-01T08:30:00.000000+00:00"),
    (date(2026, 3, 1), "2026-03-01T00:00:00.000000+00:00"),
    (None, None),
])
def test_parse_since(since, expected):
    assert parse_since(since) == expected


@pytest.mark.parametrize(("since", "error"), [("yesterday", ValueError), ("2026-13-01", ValueError), (5, TypeError)])
def test_parse_since_errors(since, error):
    with pytest.raises(error):
        parse_since(since)


# --- validation -----------------------------------------------------------------------------------------
def test_unknown_correction_field_lists_the_allowed_fields(store):
    with pytest.raises(ValueError, match=r"unknown correction field\(s\) 'colour', 'grade'; allowed fields: usage, "
                                         r"condition, price.*pattern"):
        store.add(model_item(), {"front": JPG}, {"colour": "red", "grade": 3, "condition": 2})
    assert len(store) == 0


@pytest.mark.parametrize(("images", "message"), [
    ({"front": b"this is not an image"}, r"image 'front' is not a readable image: expected an image file"),
    ({"front": JPG, "back": JPG[: len(JPG) // 2]}, r"image 'back' is not a readable image"),
    ({"front": b""}, r"image 'front' is not a readable image"),
    ({"side": JPG}, r"unknown image role 'side'; expected one of front, back, label"),
    ({"brand": JPG}, r"unknown image role 'brand'"),
])
def test_images_must_decode(store, images, message):
    with pytest.raises(ValueError, match=message):
        store.add(model_item(), images, {"condition": 2})
    assert len(store) == 0


@pytest.mark.parametrize(("item_id", "message"), [
    ("", "item_id"), ("a/b", "item_id"), ("..", "item_id"), (" x", "item_id"), ("a\\b", "item_id"),
    ("x" * 201, "item_id"), (None, "item_id"), (7, "item_id"),
])
def test_item_ids_must_be_folder_names(store, item_id, message):
    rec = model_item()
    rec["item_id"] = item_id
    with pytest.raises(ValueError, match=message):
        store.add(rec, {"front": JPG}, {})


@pytest.mark.parametrize(("item", "images", "corrections", "error", "message"), [
    ([], {"front": JPG}, {}, TypeError, "expected an item record"),
    ({**model_item(), "schema": "fashionlens/result/v1"}, {"front": JPG}, {}, ValueError, "schema"),
    ({**model_item(), "extra": object()}, {"front": JPG}, {}, ValueError, "not plain JSON"),
    ({**model_item(), "extra": float("nan")}, {"front": JPG}, {}, ValueError, "not plain JSON"),
    (model_item(), [JPG], {}, TypeError, "images as a mapping"),
    (model_item(), {"front": "front.jpg"}, {}, TypeError, "expected encoded image bytes"),
    (model_item(), {"front": JPG}, [("condition", 3)], TypeError, "corrections as a mapping"),
    (model_item(), {"front": JPG}, {"condition": {"id": 3}}, ValueError, "correction of 'condition': expected"),
    (model_item(), {"front": JPG}, {"colors": [["red"]]}, ValueError, "correction of 'colors'"),
])
def test_add_rejects_bad_inputs(store, item, images, corrections, error, message):
    with pytest.raises(error, match=message):
        store.add(item, images, corrections)
    assert len(store) == 0


def test_sorter_must_be_text(store):
    with pytest.raises(TypeError, match="sorter"):
        store.add(model_item(), {"front": JPG}, {}, sorter=3)  # type: ignore[arg-type]


def test_get_unknown_id(store):
    with pytest.raises(KeyError, match="no correction with id 42"):
        store.get(42)


# --- database -------------------------------------------------------------------------------------------
def test_database_has_wal_and_a_schema_version(store):
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
    CorrectionStore(store.path)  # opening again keeps one version row
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 1


def test_database_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CorrectionStore(tmp_path / "missing.sqlite", create=False)
    assert not (tmp_path / "missing.sqlite").exists()
    newer = tmp_path / "newer.sqlite"
    CorrectionStore(newer)
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE schema_version SET version = 2")
    with pytest.raises(ValueError, match="expected corrections database schema version 1; got \\[2\\]"):
        CorrectionStore(newer)
    not_db = tmp_path / "text.sqlite"
    not_db.write_text("hello, this is not a database" * 20, encoding="utf-8")
    with pytest.raises(ValueError, match="not a database"):
        CorrectionStore(not_db)


def test_concurrent_adds_from_threads(tmp_path):
    path = tmp_path / "c.sqlite"
    shared = CorrectionStore(path)
    ids: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        store = shared if k % 2 else CorrectionStore(path)  # one shared object and one store per thread
        try:
            for j in range(5):
                cid = store.add(model_item(f"t{k}-{j}"), {"front": JPG}, {"condition": j % 5 + 1}, sorter=f"s{k}")
                with lock:
                    ids.append(cid)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(ids) == len(set(ids)) == 40 == len(shared)
    assert len({r["item_id"] for r in shared.list()}) == 40
    assert shared.export(tmp_path / "out")["n_items"] == 40


def _add_in_process(path: str, k: int) -> None:
    store = CorrectionStore(path)
    for j in range(5):
        store.add(model_item(f"p{k}-{j}"), {"front": JPG}, {"condition": 3})


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_concurrent_adds_from_processes(tmp_path):
    path = str(tmp_path / "p.sqlite")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add_in_process, args=(path, k)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(CorrectionStore(path)) == 15


# --- command --------------------------------------------------------------------------------------------
def _run(argv: list[str]) -> int:
    from fashionlens.cli.sorting import register_export

    parser = argparse.ArgumentParser(prog="fashionlens")
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export").add_subparsers(dest="what", required=True)
    register_export(export)
    args = parser.parse_args(argv)
    return args.func(args)


def test_export_corrections_command(tmp_path, capsys):
    db = tmp_path / "c.sqlite"
    store = CorrectionStore(db)
    store.add(model_item("a"), {"front": JPG}, {"condition": 5})
    out = tmp_path / "out"
    assert _run(["export", "corrections", "--db", str(db), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["n_items"] == 1 and printed["out"] == str(out) and "items" not in printed
    assert json.loads((out / "a" / "labels_a.json").read_text(encoding="utf-8"))["condition"] == 5
    assert _run(["export", "corrections", "--db", str(db), "--out", str(tmp_path / "o2"), "--since", "2999-01-01"]) == 0
    assert json.loads(capsys.readouterr().out)["n_items"] == 0
    with pytest.raises(FileNotFoundError):
        _run(["export", "corrections", "--db", str(tmp_path / "none.sqlite"), "--out", str(out)])
    with pytest.raises(ValueError, match="ISO date"):
        _run(["export", "corrections", "--db", str(db), "--out", str(out), "--since", "last week"])
