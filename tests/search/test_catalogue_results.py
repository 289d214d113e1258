"""The catalogue reads tag results as :class:`~fashionlens.result.TagResult` (issue 24): JSONL lines via
``TagResult.from_json``, live results as they are; metadata and photo queries are the same either way."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fashionlens.result import ColourLabel, Garments, Label, TagResult, decode_embedding, encode_embedding
from fashionlens.search.catalogue import (
    failed_inputs,
    garment_query,
    garments_from_records,
    read_result_records,
    stored_embeddings,
)


def _result(path: str = "p.jpg", mode: str = "detect", seed: int = 0) -> TagResult:
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((2, 16)).astype(np.float32)
    garments = Garments(xyxy=[[10.004, 20.126, 50.337, 90.991], [1.5, 2.25, 30.0, 40.0]],
                        object_type=["upper-body", "lower-body"], confidence=[0.912345, 0.5],
                        category=[Label("t-shirts", 0.9), Label("jeans", 0.7)],
                        attributes=[{"pattern": Label("striped", 0.6),
                                     "colours": [ColourLabel("red", 0.7, 0.9), ColourLabel("white", None, 0.6)]},
                                    {"colours": [ColourLabel("blue", 0.9, 0.8)]}],
                        embedding=emb / np.linalg.norm(emb, axis=1, keepdims=True))
    return TagResult(path=path, width=100, height=120, model={"name": "m", "version": "1"}, mode=mode,
                     garments=garments)


def test_live_and_saved_results_give_the_same_vectors_and_metadata(tmp_path: Path) -> None:
    live = [_result("a.jpg", seed=1), _result("b.jpg", mode="whole_image", seed=2),
            TagResult.failed("c.jpg", ValueError("broken"), model={"name": "m"})]
    f = tmp_path / "r.jsonl"
    f.write_text("".join(json.dumps(r.to_json()) + "\n" for r in live))
    saved = list(read_result_records(f))
    assert all(r.garments.mask is None for r in saved)
    e_live, m_live, c_live = garments_from_records(live)
    e_saved, m_saved, c_saved = garments_from_records(saved)
    np.testing.assert_array_equal(e_live, e_saved)
    assert m_live == m_saved and c_live == c_saved == {"records": 3, "errors": 1, "garments": 4}
    first = m_live[0]
    x, y, w, h = live[0].to_json()["garments"][0]["bbox"]  # the box as the JSON line gives it
    assert (x, y, w) == (10.0, 20.13, 40.33) and first.xyxy == (x, y, x + w, y + h) and first.category == "t-shirts"
    assert first.attributes == {"garment": 0, "score": 0.9123, "pattern": "striped", "colours": ["red", "white"]}
    assert m_live[2].xyxy is None  # whole-image results have no box in the index
    assert [(f.path, f.type) for f in failed_inputs(saved)] == [("c.jpg", "ValueError")]


def test_query_is_what_the_json_line_says() -> None:
    result = _result()
    record = result.to_json()
    query, emb = garment_query(result, 1, "q.jpg")
    assert query == {"path": "q.jpg", "garment": 1, "object_type": "lower-body", "category": "jeans",
                     "bbox": record["garments"][1]["bbox"], "mode": "detect"}
    np.testing.assert_array_equal(emb, decode_embedding(record["garments"][1]["embedding"]))
    np.testing.assert_array_equal(stored_embeddings(result.garments)[0],
                                  decode_embedding(encode_embedding(result.garments.embedding[0])))


def test_a_damaged_line_makes_the_file_unreadable(tmp_path: Path) -> None:
    record = _result().to_json()
    record["garments"][0]["embedding"]["data"] = "not base64!"
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps(_result().to_json()) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: expected a fashionlens tag result; ValueError: embedding"):
        list(read_result_records(f))


def test_results_without_embeddings_are_refused() -> None:
    result = _result()
    result.garments.embedding = None
    with pytest.raises(ValueError, match="p.jpg: the garments have no embedding; tag with `fashionlens tag --embed`"):
        garments_from_records([result])
