"""Helpers shared by the review tests (a uniquely named module, not ``conftest``): photos, masks and
tag-result / item lines in the shapes ``fashionlens tag`` and ``fashionlens grade`` write."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fashionlens.io.records import encode_mask


def write_photo(path: Path, width: int = 96, height: int = 128, colour: tuple[int, int, int] = (40, 80, 180)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((height, width, 3), 235, np.uint8)
    img[height // 4: 3 * height // 4, width // 4: 3 * width // 4] = colour
    Image.fromarray(img).save(path)
    return path


def box_mask(width: int, height: int, box: tuple[int, int, int, int]) -> dict[str, Any]:
    """COCO RLE (str counts) of the rectangle ``box`` = (x, y, w, h)."""
    x, y, w, h = box
    m = np.zeros((height, width), bool)
    m[y:y + h, x:x + w] = True
    return encode_mask(m)


def unsure(candidates: Iterable[tuple[str, float]]) -> dict[str, Any]:
    cands = [{"id": i, "score": s} for i, s in candidates]
    return {"id": None, "score": cands[0]["score"], "uncertain": True, "candidates": cands}


def sure(value: str, score: float) -> dict[str, Any]:
    return {"id": value, "score": score}


def garment(*, object_type: str = "upper-body", score: float = 0.95, bbox: tuple[int, int, int, int] = (24, 32, 48, 64),
            mask: dict[str, Any] | None = None, category: Mapping[str, Any] | None = None,
            attributes: Mapping[str, Any] | None = None, embedding: np.ndarray | None = None) -> dict[str, Any]:
    g: dict[str, Any] = {"object_type": object_type, "score": score, "bbox": list(bbox), "mask": mask,
                         "category": dict(category or sure("t-shirts", 0.97)),
                         "category_top": [{"id": "t-shirts", "score": 0.97}, {"id": "shirts", "score": 0.02}],
                         "attributes": dict(attributes or {})}
    if embedding is not None:
        from fashionlens.result import encode_embedding

        g["embedding"] = encode_embedding(np.asarray(embedding, np.float32))
    return g


def result_line(photo: Path | str, garments: list[dict[str, Any]], *, width: int = 96, height: int = 128,
                schema: str = "fashionlens/result/v2") -> dict[str, Any]:
    return {"schema": schema, "image": {"path": str(photo), "width": width, "height": height},
            "model": {"name": "test", "version": "1", "backend": "onnx"}, "mode": "detect",
            "garments": garments, "error": None, "timing_ms": {}}


def item_line(item_id: str, front: Path | str, *, category: Mapping[str, Any], attributes: Mapping[str, Any],
              grades: Mapping[str, Any]) -> dict[str, Any]:
    return {"schema": "fashionlens/item/v1", "item_id": item_id,
            "views": [{"role": "front", "path": str(front), "error": None}], "object_type": "upper-body",
            "category": dict(category), "attributes": dict(attributes), "composition": None, "brand": None,
            "label_text": None, "damage": {"any": False, "regions": [], "area_share": {}}, "grades": dict(grades),
            "route": None, "warnings": [], "error": None}


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def three_unsure_fields() -> dict[str, Any]:
    """Attributes with three unsure single-valued fields (pattern, material, fit) and two sure ones."""
    return {"pattern": unsure([("striped", 0.41), ("plain", 0.38), ("checked", 0.1)]),
            "colours": [{"id": "blue", "share": 0.8, "score": 0.96}],
            "material": unsure([("cotton", 0.45), ("polyester", 0.3), ("wool", 0.1)]),
            "sleeve": sure("short", 0.99),
            "fit": unsure([("regular", 0.5), ("loose", 0.3), ("oversize", 0.1)])}
