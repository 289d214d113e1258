"""Tag-filtered pseudo-labels (issue 28) on synthetic tags and detections: the tag → object-type table,
the keep/drop/ignore rules, the COCO round trip and the guard against val/test photos. No torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fashionlens.io.records import GarmentAnnotation
from fashionlens.train.pseudo_labels import (
    Candidate,
    PseudoLabelRules,
    check_outside_masked_split,
    filter_candidates,
    label_photos,
    load_candidates,
    read_pseudo_coco,
    read_tags,
    rule_quality,
    save_candidates,
    tag_object_types,
    tag_type_table,
    tags_of_mask,
    teacher_candidates,
    write_pseudo_coco,
)

RULES = PseudoLabelRules(keep_score=0.6, uncertain_score=0.3, match_iou=0.5)


def test_tags_map_to_object_types_through_the_ccp_table() -> None:
    named, ambiguous = tag_object_types(["null", "skin", "hair", "blouse", "skirt", "heels", "bag", "sunglasses", "bracelet"])
    assert named == {"upper-body", "lower-body", "footwear", "bag"} and ambiguous == set()
    named, ambiguous = tag_object_types(["suit", "shoes"])
    assert named == {"footwear"} and ambiguous == {"upper-body", "lower-body"}
    named, ambiguous = tag_object_types(["suit", "shirt"])  # a named type is not ambiguous
    assert ambiguous == {"lower-body"}
    table = tag_type_table()
    assert table["jumper"] == "full-body" and table["hat"] == "headwear" and table["purse"] == "bag"
    assert table["skin"] is None and table["tights"] is None and table["suit"] == "upper-body|lower-body"
    with pytest.raises(ValueError, match="unknown CCP tag 'kilt'"):
        tag_object_types(["kilt"])


def test_boxes_of_types_the_tags_rule_out_are_dropped_and_confident_ones_kept() -> None:
    cands = [Candidate((10, 10, 50, 80), "upper-body", 0.9), Candidate((10, 80, 50, 150), "full-body", 0.95),
             Candidate((20, 150, 30, 160), "footwear", 0.7), Candidate((0, 0, 5, 5), "headwear", 0.99)]
    pl = filter_candidates(cands, ["blouse", "heels", "skin"], RULES)
    assert [c.object_type for c in pl.kept] == ["upper-body", "footwear"]
    assert pl.outcome == {"kept": 2, "ruled_out": 2}
    assert pl.ignore_types == [] and pl.named_types == ["footwear", "upper-body"]


def test_named_types_without_a_confident_box_are_ignored_not_background() -> None:
    cands = [Candidate((10, 10, 50, 80), "upper-body", 0.9), Candidate((10, 80, 50, 150), "lower-body", 0.2)]
    pl = filter_candidates(cands, ["shirt", "jeans", "bag"], RULES)
    assert [c.object_type for c in pl.kept] == ["upper-body"]
    assert pl.ignore_types == ["bag", "lower-body"] and pl.outcome["low"] == 1


def test_an_uncertain_second_box_ignores_its_type_unless_it_duplicates_a_kept_one() -> None:
    kept = Candidate((100, 500, 140, 560), "footwear", 0.9)
    duplicate = Candidate((102, 502, 141, 560), "footwear", 0.4)
    other_shoe = Candidate((200, 500, 240, 560), "footwear", 0.4)
    pl = filter_candidates([kept, duplicate], ["heels"], RULES)
    assert pl.ignore_types == [] and pl.outcome == {"kept": 1, "duplicate": 1}
    pl = filter_candidates([kept, other_shoe], ["heels"], RULES)
    assert [c.score for c in pl.kept] == [0.9] and pl.ignore_types == ["footwear"]
    assert pl.outcome == {"kept": 1, "uncertain": 1}


def test_ambiguous_tags_drop_their_types_boxes_and_ignore_them() -> None:
    cands = [Candidate((10, 10, 50, 80), "upper-body", 0.95), Candidate((10, 90, 50, 150), "footwear", 0.9)]
    pl = filter_candidates(cands, ["suit", "shoes"], RULES)
    assert [c.object_type for c in pl.kept] == ["footwear"]
    assert pl.ignore_types == ["lower-body", "upper-body"] and pl.outcome["ambiguous"] == 1


def test_rules_validate_thresholds() -> None:
    with pytest.raises(ValueError, match="uncertain_score <= keep_score"):
        PseudoLabelRules(keep_score=0.3, uncertain_score=0.5)


def test_read_tags_handles_crlf_and_checks_columns(tmp_path: Path) -> None:
    path = tmp_path / "tags.csv"
    path.write_bytes(b"image,tags\r\n1005,null blouse skirt\r\n1007,null bag\r\n")
    assert read_tags(path) == {"1005": ["null", "blouse", "skirt"], "1007": ["null", "bag"]}
    bad = tmp_path / "bad.csv"
    bad.write_text("photo,labels\n1,x\n")
    with pytest.raises(ValueError, match="columns image,tags"):
        read_tags(bad)


def test_tag_only_photos_must_not_be_masked_photos() -> None:
    check_outside_masked_split(["1005", "1007"], ["0001", "1004"])
    with pytest.raises(ValueError, match="also have CCP masks"):
        check_outside_masked_split(["1004", "1005"], ["1004"])


def test_tags_of_mask_lists_present_classes() -> None:
    mask = np.zeros((4, 4), np.uint8)
    mask[1, 1], mask[2, 2] = 2, 5
    assert tags_of_mask(mask, ["null", "a", "b", "c", "d", "e"]) == ["null", "b", "e"]


def test_coco_round_trip_keeps_boxes_and_ignored_types(tmp_path: Path) -> None:
    cands = {"1005": ([Candidate((10.0, 20.0, 60.0, 90.0), "upper-body", 0.9),
                       Candidate((0.0, 0.0, 9.0, 9.0), "headwear", 0.9)], (100, 200)),
             "1007": ([], (120, 160))}
    tags = {"1005": ["blouse", "skirt"], "1007": ["bag", "null"]}
    labels = label_photos(cands, tags, RULES)
    out = tmp_path / "pl.json"
    summary = write_pseudo_coco(labels, out, images="ccp/photos", file_names={"1005": "1005.jpg", "1007": "1007.jpg"},
                                tags=tags, info={"teacher": "synthetic"})
    assert summary["photos"] == 2 and summary["candidates"] == {"kept": 1, "ruled_out": 1}
    assert summary["photos_ignoring_type"] == {"bag": 1, "lower-body": 1}
    doc = json.loads(out.read_text())
    assert doc["annotations"][0]["bbox"] == [10.0, 20.0, 50.0, 70.0]
    records = read_pseudo_coco(out, tmp_path / "data")
    assert [r.path for r in records] == [tmp_path / "data/ccp/photos/1005.jpg", tmp_path / "data/ccp/photos/1007.jpg"]
    first, second = records
    assert first.source == "pseudo-ccp" and first.meta["ignore_types"] == ["lower-body"]
    assert [(g.object_type, g.bbox_xyxy, g.mask_rle) for g in first.garments] == [("upper-body", (10, 20, 60, 90), None)]
    assert second.garments == [] and second.meta["ignore_types"] == ["bag"] and (second.width, second.height) == (120, 160)
    not_pseudo = tmp_path / "plain.json"
    not_pseudo.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    with pytest.raises(ValueError, match="expected a pseudo-label file"):
        read_pseudo_coco(not_pseudo, tmp_path)


def test_candidates_cache_is_reused_only_for_the_same_key(tmp_path: Path) -> None:
    cands = {"1": ([Candidate((1.0, 2.0, 3.0, 4.0), "bag", 0.5)], (10, 20))}
    path = tmp_path / "c.json"
    assert load_candidates(path, {"teacher": "a"}, ["1"]) == {}
    save_candidates(path, cands, {"teacher": "a"})
    assert load_candidates(path, {"teacher": "a"}, ["1"]) == cands
    assert load_candidates(path, {"teacher": "b"}, ["1"]) == {}
    assert load_candidates(path, {"teacher": "a"}, ["1", "2"]) == cands  # a partial run: photo 2 still to do
    assert load_candidates(path, {"teacher": "a"}, ["2"]) == {}


class _FakeDetector:
    """Stands in for GarmentDetector.candidates: one bag box per photo, counting calls."""

    nms_thresh = 0.6

    def __init__(self) -> None:
        self.calls = 0

    def candidates(self, rgb: np.ndarray, limits: object, settings: object) -> object:
        from types import SimpleNamespace

        self.calls += 1
        return SimpleNamespace(xyxy=np.array([[1.0, 2.0, 5.0, 6.0]]), object_type=["bag"], confidence=np.array([0.7]))


def test_teacher_candidates_resume_and_checkpoint(tmp_path: Path) -> None:
    from PIL import Image

    photos = {}
    for i in range(3):
        photos[str(i)] = tmp_path / f"{i}.jpg"
        Image.new("RGB", (16, 12), (i * 40, 0, 0)).save(photos[str(i)])
    det = _FakeDetector()
    saved: list[int] = []
    first = teacher_candidates(det, {k: photos[k] for k in ("0", "1")}, calibration=None, progress=False,
                               checkpoint=lambda so_far: saved.append(len(so_far)), checkpoint_every=1)
    assert det.calls == 2 and saved == [1, 2] and first["0"] == ([Candidate((1.0, 2.0, 5.0, 6.0), "bag", 0.7)], (16, 12))
    both = teacher_candidates(det, photos, calibration=None, progress=False, done=first)
    assert det.calls == 3 and set(both) == {"0", "1", "2"}


def test_rule_quality_counts_matches_ignored_and_false_background() -> None:
    truth = {"p": [GarmentAnnotation(object_type="upper-body", bbox_xyxy=(10, 10, 50, 80)),
                   GarmentAnnotation(object_type="lower-body", bbox_xyxy=(10, 80, 50, 150)),
                   GarmentAnnotation(object_type="footwear", bbox_xyxy=(10, 150, 20, 160)),
                   GarmentAnnotation(object_type="footwear", bbox_xyxy=(30, 150, 40, 160))]}
    cands = {"p": ([Candidate((10, 10, 50, 80), "upper-body", 0.9), Candidate((10, 150, 20, 160), "footwear", 0.9),
                    Candidate((60, 60, 90, 90), "upper-body", 0.8)], (100, 200))}
    labels = label_photos(cands, {"p": ["shirt", "pants", "shoes"]}, RULES)
    q = rule_quality(labels, truth)
    # kept: 2 right of 3; lower-body has no box → ignored; the second shoe is missed in a type not ignored
    assert q == {"photos": 1, "kept": 3, "precision": round(2 / 3, 4), "garments": 4, "recall": 0.5,
                 "ignored_share": 0.25, "false_background": 0.25}
