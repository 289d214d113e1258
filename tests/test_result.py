"""``fashionlens.result``: TagResult/Garments JSON round trips exactly (on the golden outputs and on
generated garments), validation says what was expected, and selection keeps the fields together."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fashionlens.result import (
    RESULT_SCHEMA,
    ColourLabel,
    Garments,
    Label,
    LabelList,
    TagError,
    TagResult,
)

GOLDEN = Path(__file__).parent / "golden"


def _without_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "timing_ms"}


@pytest.mark.parametrize("name", ["tag_detect_default", "tag_detect_tiny", "tag_whole_image", "tag_detect_ccp"])
def test_golden_records_round_trip_exactly(name: str) -> None:
    # the golden records may be v1 (read as v2, written as v2) or v2: all but the schema round-trips exactly
    for record in json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8")):
        again = TagResult.from_json(record).to_json()
        assert again["schema"] == RESULT_SCHEMA
        assert json.dumps(_without_timing(again)) == json.dumps({**record, "schema": RESULT_SCHEMA})


def test_round_trip_without_masks_keeps_everything_else() -> None:
    record = json.loads((GOLDEN / "tag_detect_tiny.json").read_text(encoding="utf-8"))[0]
    result = TagResult.from_json(record, masks=False)
    assert result.garments.mask is None and len(result.garments) == len(record["garments"])
    assert result.garments.category[0].id == record["garments"][0]["category"]["id"]


def _garments(n: int = 2) -> Garments:
    rng = np.random.default_rng(0)
    mask = np.zeros((n, 30, 40), bool)
    mask[:, 5:20, 10:30] = True
    return Garments(xyxy=[[10.123, 5.5, 30.25, 20.0]] * n, object_type=["upper-body"] * n, confidence=[0.9] * n,
                    mask=mask, category=[Label("t-shirts", 0.8)] * n,
                    category_top=[[Label("t-shirts", 0.8), Label("shirts", 0.1)]] * n,
                    attributes=[{"pattern": Label("plain", 0.7),
                                 "colours": [ColourLabel("red", 0.6, 0.9), ColourLabel("white", None, 0.5)]}] * n,
                    embedding=rng.standard_normal((n, 8)).astype(np.float32))


def test_generated_result_round_trips() -> None:
    result = TagResult(path="a.jpg", width=40, height=30, model={"name": "m"}, mode="detect", garments=_garments(),
                       timing_ms={"detect": 1.5})
    record = result.to_json()
    assert list(record) == ["schema", "image", "model", "mode", "garments", "error", "timing_ms"]
    assert list(record["garments"][0]) == ["object_type", "score", "bbox", "mask", "category", "category_top",
                                           "attributes", "embedding"]
    assert record["garments"][0]["bbox"] == [10.12, 5.5, 20.13, 14.5]
    assert TagResult.from_json(json.loads(json.dumps(record))).to_json() == record


def test_failed_result() -> None:
    error = ValueError("nope")
    error.code = "truncated"  # type: ignore[attr-defined]
    record = TagResult.failed("x.jpg", error, model={"name": "m"}).to_json()
    assert record["error"] == {"type": "truncated", "message": "nope"} and record["garments"] == []
    assert TagResult.from_json(record).error == TagError("truncated", "nope")


@pytest.mark.parametrize("kwargs, message", [
    ({"category": [Label("a", 1.0)]}, "expected 2 values of category"),
    ({"embedding": np.zeros((3, 4))}, r"embedding must be \(N=2, D\)"),
])
def test_validation_says_what_was_expected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Garments(xyxy=np.zeros((2, 4)), object_type=["bag", "bag"], confidence=[0.5, 0.5], **kwargs)


def test_select_and_concatenate_keep_fields_together() -> None:
    g = _garments(3)
    g.category = [Label(f"c{i}", 0.5) for i in range(3)]
    picked = g.select([2, 0])
    assert [c.id for c in picked.category] == ["c2", "c0"] and picked.embedding.shape == (2, 8)
    both = Garments.concatenate([picked, g.select(np.array([False, True, False]))])
    assert [c.id for c in both.category] == ["c2", "c0", "c1"] and both.mask.shape == (3, 30, 40)


def test_wrong_schema_is_refused() -> None:
    with pytest.raises(ValueError, match="expected a fashionlens/result/v1 or fashionlens/result/v2 record"):
        TagResult.from_json({"schema": "other"})


_V1_GARMENT = {"object_type": "upper-body", "score": 0.91, "bbox": [1.0, 2.0, 30.0, 40.0], "mask": None,
               "category": {"id": "t-shirts", "score": 0.87},
               "category_top": [{"id": "t-shirts", "score": 0.87}, {"id": "shirts", "score": 0.05}],
               "attributes": {"pattern": {"id": "plain", "score": 0.7},
                              "colours": [{"id": "blue", "share": 0.6, "score": 0.8}]}}


def test_v1_lines_are_still_read() -> None:
    line = json.dumps({"schema": "fashionlens/result/v1", "image": {"path": "a.jpg", "width": 64, "height": 80},
                       "model": {"name": "m", "version": "1"}, "mode": "detect", "garments": [_V1_GARMENT],
                       "error": None, "timing_ms": {"detect": 1.0}})
    result = TagResult.from_json(json.loads(line))
    g = result.garments
    assert g.category[0] == Label("t-shirts", 0.87) and not g.category[0].uncertain
    assert g.attributes[0]["colours"] == [ColourLabel("blue", 0.6, 0.8)]
    out = result.to_json()
    assert out["schema"] == "fashionlens/result/v2"
    assert out["garments"] == [_V1_GARMENT]  # a v1 garment is a v2 garment with every field sure


def test_uncertain_values_round_trip() -> None:
    top = (Label("t-shirts", 0.41), Label("shirts", 0.33), Label("tops", 0.2))
    unsure = Label(None, 0.41, uncertain=True, candidates=top)
    kept = Label("plain", 0.52, uncertain=True, candidates=(Label("plain", 0.52), Label("striped", 0.3)))
    g = Garments(xyxy=[[0, 0, 10, 10]], object_type=["upper-body"], confidence=[0.9], category=[unsure],
                 category_top=[list(top)],
                 attributes=[{"pattern": kept, "colours": LabelList([], uncertain=True)}])
    record = TagResult(path="p.jpg", width=10, height=10, model={}, mode="detect", garments=g).to_json()
    garment = record["garments"][0]
    assert garment["category"] == {"id": None, "score": 0.41, "uncertain": True,
                                   "candidates": [c.to_json() for c in top]}
    assert garment["attributes"]["colours"] == [] and garment["attributes"]["colours_uncertain"] is True
    assert garment["attributes"]["pattern"]["id"] == "plain" and garment["attributes"]["pattern"]["uncertain"]
    again = TagResult.from_json(json.loads(json.dumps(record)))
    assert again.garments.category == [unsure]
    colours = again.garments.attributes[0]["colours"]
    assert colours == [] and isinstance(colours, LabelList) and colours.uncertain
    assert again.to_json() == record


def test_a_sure_label_needs_an_id() -> None:
    with pytest.raises(ValueError, match="None only on an uncertain value"):
        Label(None, 0.3)
