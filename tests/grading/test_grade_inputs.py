"""Issue 23 (hostile input): every item folder, manifest row and photo given to ``grade`` is accounted
for, and one view's failure stays with that view (one item's failure with that item).

Fast: small generated photos and fake models (a tagger that can be told to fail on one photo)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from PIL import Image

from fashionlens.grading.damage import FoundDamage
from fashionlens.grading.grade import ItemGrader, discover_items
from fashionlens.grading.item import ITEM_SCHEMA
from fashionlens.result import Garments, Label, TagError, TagResult


def _photo(path: Path, colour: tuple[int, int, int] = (30, 60, 150)) -> None:
    if path.suffix.lower() == ".heic":  # the start of a real HEIC file: recognised, not decodable here
        path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(100))
        return
    rgb = np.full((128, 96, 3), 240, np.uint8)
    rgb[20:110, 20:76] = colour
    fmt = {".png": "PNG"}.get(path.suffix.lower(), "JPEG")
    Image.fromarray(rgb).save(path, fmt)


def _make_folder(folder: Path, names: tuple[str, ...]) -> Path:
    """An item folder with these entries: ``name/`` a sub-folder, ``*.txt`` text, else a photo."""
    folder.mkdir(parents=True)
    for name in names:
        if name.endswith("/"):
            (folder / name).mkdir()
            _photo(folder / name / "front.jpg")
        elif name.endswith((".txt", ".json")) or name.startswith(".DS"):
            (folder / name).write_text("{}")
        else:
            _photo(folder / name)
    return folder


class SwitchTagger:
    """Tags every view as a blue sweater, except that a photo whose path contains ``fail_on`` raises
    (``mode="raise"``, the tagger today) or comes back as an error record (``mode="record"``, a tagger
    that isolates per-photo failures itself)."""

    model_info: ClassVar[dict[str, str]] = {"name": "switch-tagger", "version": "0", "backend": "none"}

    def __init__(self, fail_on: tuple[str, ...] = (), mode: str = "raise") -> None:
        self.fail_on, self.mode, self.calls = fail_on, mode, []

    def tag(self, images: list[Any], paths: list[str]) -> list[TagResult]:
        self.calls.append(paths[0])
        if any(f in paths[0] for f in self.fail_on):
            if self.mode == "raise":
                raise ValueError("box with zero width after resizing a 1x10000 photo")
            return [TagResult.failed(paths[0], TagError("inference_failed", "ValueError: zero width"),
                                     model=self.model_info)]
        garments = Garments(xyxy=[[20, 20, 76, 110]], object_type=["upper-body"], confidence=[0.9],
                            category=[Label("sweaters", 0.8)], attributes=[{"pattern": Label("plain", 0.8)}])
        return [TagResult(path=paths[0], width=images[0].width, height=images[0].height, model=self.model_info,
                          mode="detect", garments=garments)]


class HoleDamage:
    """A hole on every view; raises on the views named in ``fail_views`` (by call order)."""

    info: ClassVar[dict[str, str]] = {"damage_model": "fake", "damage_version": "0"}

    def __init__(self, fail_calls: tuple[int, ...] = ()) -> None:
        self.fail_calls, self.calls = fail_calls, 0

    def find(self, rgb: np.ndarray, garment: np.ndarray) -> list[FoundDamage]:
        self.calls += 1
        if self.calls in self.fail_calls:
            raise RuntimeError("damage head failed")
        m = np.zeros(rgb.shape[:2], bool)
        m[40:44, 30:40] = True
        return [FoundDamage("hole", float(m.sum()) / garment.sum(), 0.9, (30.0, 40.0, 40.0, 44.0), m)]


class RecordingGrader:
    weights = type("W", (), {"name": "fake-grader.npz"})()
    untrained: ClassVar[list[str]] = []

    def __init__(self) -> None:
        self.seen: list[set[str]] = []

    def grade_views(self, views: dict[str, np.ndarray]) -> dict[str, Any]:
        self.seen.append(set(views))
        return {"type": {"id": "Sweater", "score": 0.7}}


class ReuseRules:
    def route(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"decision": "reuse", "reasons": ["fake"], "rules": "fake/1"}


# ---------------------------------------------------------------- item folders → items


@pytest.mark.parametrize(("names", "views", "error", "warnings"), [
    (("front.jpg", "back.jpg", "label.jpg"), {"front": "front.jpg", "back": "back.jpg", "label": "label.jpg"},
     None, []),
    (("IMG_front.JPG", ".DS_Store"), {"front": "IMG_front.JPG"}, None, []),           # hidden files are no input
    (("label.jpg",), {"label": "label.jpg"}, "no_garment_photo", []),                 # only a label photo
    ((), {}, "no_garment_photo", []),                                                 # an empty item folder
    (("IMG_0001.jpg", "photo.png"), {}, "no_garment_photo",                           # names with no role
     [("no_role", "IMG_0001.jpg"), ("no_role", "photo.png")]),
    (("front.jpg", "Front2.jpg", "back.jpg"), {"front": "front.jpg", "back": "back.jpg"}, None,
     [("duplicate_role", "Front2.jpg")]),                                             # a second front
    (("back.jpg", "IMG_back_retake.jpg"), {"back": "back.jpg"}, None, [("duplicate_role", "IMG_back_retake.jpg")]),
    (("front.jpg", "notes.txt", "raw/"), {"front": "front.jpg"}, None,
     [("not_a_photo", "notes.txt"), ("subfolder", "raw")]),
    (("front.heic", "back.jpg"), {"front": "front.heic", "back": "back.jpg"}, None, []),  # fails at decoding
])
def test_every_item_folder_becomes_an_item(tmp_path: Path, names: tuple[str, ...], views: dict[str, str],
                                           error: str | None, warnings: list[tuple[str, str]]) -> None:
    _make_folder(tmp_path / "items" / "A0", ("front.jpg", "back.jpg"))  # a good neighbour: a folder of items
    _make_folder(tmp_path / "items" / "A1", names)
    found = discover_items([tmp_path / "items"])
    assert [i.item_id for i in found.items] == ["A0", "A1"] and found.notes == []
    item = found.items[1]
    assert {r: p.name for r, p in item.views.items()} == views
    assert (item.error or {}).get("type") == error
    if error:
        assert "expected a front or back photo" in item.error["message"]
    assert [(w["type"], Path(w["path"]).name) for w in item.warnings] == warnings
    for w in item.warnings:
        assert w["message"].startswith(Path(w["path"]).name + ":")


def test_the_duplicate_warning_names_the_photo_graded(tmp_path: Path) -> None:
    [item] = discover_items([_make_folder(tmp_path / "A1", ("Front2.jpg", "front.jpg", "back.jpg"))]).items
    assert item.views["front"].name == "front.jpg"
    assert "front.jpg was graded" in item.warnings[0]["message"]


def test_loose_files_in_a_folder_of_items_are_noted(tmp_path: Path) -> None:
    _make_folder(tmp_path / "items" / "A1", ("front.jpg",))
    (tmp_path / "items" / "readme.txt").write_text("hi")
    found = discover_items([tmp_path / "items"])
    assert [i.item_id for i in found.items] == ["A1"]
    assert len(found.notes) == 1 and "readme.txt" in found.notes[0] and "not graded" in found.notes[0]


def test_role_photos_next_to_item_folders_are_refused(tmp_path: Path) -> None:
    _make_folder(tmp_path / "items" / "A1", ("front.jpg",))
    _photo(tmp_path / "items" / "front.jpg")
    with pytest.raises(ValueError, match="found both"):
        discover_items([tmp_path / "items"])


# ---------------------------------------------------------------- manifests → items


@pytest.mark.parametrize(("text", "suffix", "error", "warnings"), [
    ("item_id,front,back,label\nX,a/front.jpg,,\n", ".csv", None, []),
    ("Item_ID, Front ,Back\nX,a/front.jpg,\n", ".csv", None, []),                      # header spelling
    ("item_id,front,back,label\nX,,,a/label.jpg\n", ".csv", "no_garment_photo", []),  # label only
    ("item_id,front,back,label\nX,,,\n", ".csv", "no_garment_photo", []),             # no photo at all
    ("item_id,front,side\nX,a/front.jpg,a/side.jpg\n", ".csv", None, [("unused_column", "side.jpg")]),
    ('{"item_id": "X", "label": "a/label.jpg"}\n', ".jsonl", "no_garment_photo", []),
    ('{"id": 7, "back": "a/back.jpg", "sku": "S-1"}\n', ".jsonl", None, []),
])
def test_every_manifest_row_becomes_an_item(tmp_path: Path, text: str, suffix: str, error: str | None,
                                            warnings: list[tuple[str, str]]) -> None:
    manifest = tmp_path / f"m{suffix}"
    manifest.write_text(text)
    [item] = discover_items([manifest]).items
    assert (item.error or {}).get("type") == error
    if error:
        assert "row 1" in item.error["message"] and "expected a front or back photo" in item.error["message"]
    assert [(w["type"], Path(w["path"]).name) for w in item.warnings] == warnings


@pytest.mark.parametrize(("name", "data", "message"), [
    ("empty.csv", b"", "found no rows"),
    ("header.csv", b"item_id,front,back,label\n", "found no rows"),
    ("empty.jsonl", b"\n\n", "found no rows"),
    ("latin1.csv", b"item_id,front\nX,caf\xe9/front.jpg\n", "UTF-8"),
    ("list.jsonl", b'["X", "front.jpg"]\n', "row 1: expected an item_id"),
    ("no-id.csv", b"item_id,front\n,front.jpg\n", "row 1: expected an item_id"),
])
def test_an_unusable_manifest_is_a_usage_error(tmp_path: Path, name: str, data: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(data)
    with pytest.raises(ValueError, match=message):
        discover_items([tmp_path / name])


# ---------------------------------------------------------------- one view's failure stays with the view


@pytest.mark.parametrize("mode", ["raise", "record"])
def test_a_view_whose_tagging_fails_is_reported_and_the_item_graded_from_the_rest(tmp_path: Path, mode: str) -> None:
    [item] = discover_items([_make_folder(tmp_path / "A1", ("front.jpg", "back.jpg"))]).items
    grader_heads = RecordingGrader()
    grader = ItemGrader(tagger=SwitchTagger(fail_on=("front.jpg",), mode=mode), damage=HoleDamage(),
                        grader=grader_heads, rules=ReuseRules())
    rec, details = grader.grade(item)
    views = {v["role"]: v for v in rec["views"]}
    assert rec["error"] is None and rec["category"]["id"] == "sweaters" and rec["category"]["views"] == 1
    assert views["back"]["error"] is None
    assert views["front"]["error"]["type"] == "inference_failed" and "tagging" in views["front"]["error"]["message"]
    assert [r["view"] for r in rec["damage"]["regions"]] == ["back"]
    assert grader_heads.seen == [{"back"}] and set(details) == {"back"} and rec["route"]["decision"] == "reuse"
    json.dumps(rec)


def test_a_view_whose_damage_search_fails_is_reported(tmp_path: Path) -> None:
    [item] = discover_items([_make_folder(tmp_path / "A1", ("front.jpg", "back.jpg"))]).items
    rec, _ = ItemGrader(tagger=SwitchTagger(), damage=HoleDamage(fail_calls=(2,)), rules=ReuseRules()).grade(item)
    views = {v["role"]: v for v in rec["views"]}
    assert rec["error"] is None and views["front"]["error"] is None
    assert views["back"]["error"]["type"] == "inference_failed" and "damage" in views["back"]["error"]["message"]
    assert {r["view"] for r in rec["damage"]["regions"]} == {"front"}


@pytest.mark.parametrize(("names", "fail_on", "view_errors"), [
    (("front.jpg", "back.jpg"), ("front.jpg", "back.jpg"), {"front": "inference_failed", "back": "inference_failed"}),
    (("front.jpg",), ("front.jpg",), {"front": "inference_failed"}),
    (("front.heic", "back.jpg"), ("back.jpg",), {"front": "unsupported_format", "back": "inference_failed"}),
])
def test_no_usable_garment_view_is_an_error_record(tmp_path: Path, names: tuple[str, ...], fail_on: tuple[str, ...],
                                                   view_errors: dict[str, str]) -> None:
    [item] = discover_items([_make_folder(tmp_path / "A1", names)]).items
    rec, details = ItemGrader(tagger=SwitchTagger(fail_on=fail_on), rules=ReuseRules()).grade(item)
    assert rec["schema"] == ITEM_SCHEMA and details == {} and rec["route"] is None
    assert rec["error"]["type"] == "no_usable_view"
    assert {v["role"]: v["error"]["type"] for v in rec["views"] if v["error"]} == view_errors
    for role in view_errors:
        assert role in rec["error"]["message"]


# ---------------------------------------------------------------- the command: records, messages, exit codes


def _use_fake_models(monkeypatch: pytest.MonkeyPatch, tagger: SwitchTagger, grader: Any = None) -> None:
    monkeypatch.setattr(ItemGrader, "default", classmethod(
        lambda cls, **kw: cls(tagger=tagger, damage=HoleDamage(), grader=grader, rules=ReuseRules())))


def test_cli_writes_a_record_for_every_item_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from fashionlens.cli import main

    items = tmp_path / "items"
    _make_folder(items / "A-good", ("front.jpg", "back.jpg", "label.jpg"))
    _make_folder(items / "B-label-only", ("label.jpg",))
    _make_folder(items / "C-empty", ())
    _make_folder(items / "D-no-roles", ("IMG_0001.jpg",))
    _make_folder(items / "E-extra-front", ("front.jpg", "Front2.jpg"))
    _make_folder(items / "F-front-crashes", ("front.jpg", "back.jpg"))
    (items / "stray.txt").write_text("x")
    tagger = SwitchTagger(fail_on=("F-front-crashes/front",))
    _use_fake_models(monkeypatch, tagger)
    out = tmp_path / "out.jsonl"
    assert main(["grade", str(items), "-o", str(out), "-q"]) == 1
    recs = {r["item_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert list(recs) == ["A-good", "B-label-only", "C-empty", "D-no-roles", "E-extra-front", "F-front-crashes"]
    assert {k: (r["error"] or {}).get("type") for k, r in recs.items()} == {
        "A-good": None, "B-label-only": "no_garment_photo", "C-empty": "no_garment_photo",
        "D-no-roles": "no_garment_photo", "E-extra-front": None, "F-front-crashes": None}
    assert [w["type"] for w in recs["E-extra-front"]["warnings"]] == ["duplicate_role"]
    assert [w["type"] for w in recs["D-no-roles"]["warnings"]] == ["no_role"]
    f_views = {v["role"]: v["error"] for v in recs["F-front-crashes"]["views"]}
    assert f_views["front"]["type"] == "inference_failed" and f_views["back"] is None
    assert recs["F-front-crashes"]["category"]["id"] == "sweaters"
    err = capsys.readouterr().err
    assert "stray.txt" in err and "3 error record(s)" in err and "B-label-only" in err


def test_cli_all_good_exits_0_without_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from fashionlens.cli import main

    _make_folder(tmp_path / "items" / "A1", ("front.jpg", "back.jpg"))
    _use_fake_models(monkeypatch, SwitchTagger())
    assert main(["grade", str(tmp_path / "items"), "-o", str(tmp_path / "o.jsonl"), "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_cli_one_item_crashing_as_a_whole_leaves_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fashionlens.cli import main

    class CrashingHeads(RecordingGrader):
        def grade_views(self, views: dict[str, np.ndarray]) -> dict[str, Any]:
            if len(self.seen) == 0:
                self.seen.append(set(views))
                raise RuntimeError("grading heads failed")
            return super().grade_views(views)

    _make_folder(tmp_path / "items" / "A1", ("front.jpg",))
    _make_folder(tmp_path / "items" / "A2", ("front.jpg",))
    _use_fake_models(monkeypatch, SwitchTagger(), grader=CrashingHeads())
    out = tmp_path / "out.jsonl"
    assert main(["grade", str(tmp_path / "items"), "-o", str(out), "-q"]) == 1
    a1, a2 = map(json.loads, out.read_text().splitlines())
    assert a1["error"] == {"type": "RuntimeError", "message": "grading heads failed"} and a2["error"] is None


@pytest.mark.parametrize("text", ["", "item_id,front,back,label\n"])
def test_cli_empty_manifest_exits_2_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str], text: str) -> None:
    from fashionlens.cli import main

    (tmp_path / "m.csv").write_text(text)
    _use_fake_models(monkeypatch, SwitchTagger())
    assert main(["grade", str(tmp_path / "m.csv"), "-o", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "found no rows" in err[0] and err[0].startswith("fashionlens: error:")


def test_cli_manifest_rows_without_garment_photo_are_error_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    from fashionlens.cli import main

    _make_folder(tmp_path / "a", ("front.jpg", "label.jpg"))
    (tmp_path / "m.csv").write_text("item_id,front,back,label\nX,a/front.jpg,,\nY,,,a/label.jpg\nZ,a/missing.jpg,,\n")
    _use_fake_models(monkeypatch, SwitchTagger())
    out = tmp_path / "o.jsonl"
    assert main(["grade", str(tmp_path / "m.csv"), "-o", str(out), "-q"]) == 1
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["item_id"], (r["error"] or {}).get("type")) for r in recs] == [
        ("X", None), ("Y", "no_garment_photo"), ("Z", "no_usable_view")]
    assert recs[2]["views"][0]["error"]["type"] == "not_found"
