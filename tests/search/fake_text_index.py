"""A tiny garment index for text-search tests (issue 27), with no model to run.

Toy alignment heads (16-d garment embeddings → 8-d text space) make a valid index; each garment's
text-space part is set directly so that its cosine with the one fake query vector
(:func:`fake_text_queries`, whatever the words) is the ``cosine`` given in :data:`CATALOGUE` — the
order the embedding alone would give. The metadata are what the tagger would have stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.models.alignment import AlignmentMeta, load_alignment, save_alignment
from fashionlens.search._store import GarmentMeta
from fashionlens.search.catalogue import EmbeddingSpace
from fashionlens.search.index import GarmentIndex

IMAGE_DIM, TEXT_DIM = 16, 8

#: (name, cosine with the query, category, colours, pattern, material): the issue's "red dress" at #5
CATALOGUE: list[tuple[str, float, str, list[str], str, str]] = [
    ("green-dress", 0.50, "dresses", ["green"], "plain", "polyester"),
    ("black-dress", 0.48, "dresses", ["black"], "plain", "viscose"),
    ("blue-dress", 0.46, "dresses", ["blue"], "floral", "cotton"),
    ("white-dress", 0.45, "dresses", ["white"], "plain", "cotton"),
    ("red-dress", 0.44, "dresses", ["red"], "plain", "viscose"),
    ("black-sweater", 0.43, "sweaters", ["black"], "plain", "wool"),
    ("black-striped-sweater", 0.42, "sweaters", ["black"], "striped", "acrylic"),
    ("red-sweater", 0.41, "sweaters", ["red"], "plain", "wool"),
    ("grey-sweater", 0.40, "sweaters", ["grey"], "plain", "wool"),
    ("black-white-striped-sweater", 0.36, "sweaters", ["white", "black"], "striped", "cotton"),
    ("red-white-dress", 0.30, "dresses", ["red", "white"], "floral", "cotton"),
    ("blue-jeans", 0.20, "jeans", ["blue"], "plain", "cotton"),
]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def query_direction() -> np.ndarray:
    return _unit(np.arange(1, TEXT_DIM + 1, dtype=np.float64))


def build_fake_index(root: Path, rows: Sequence[tuple[str, float, str, list[str], str, str]] = CATALOGUE
                     ) -> tuple[Path, Path]:
    """``(index_dir, heads_path)`` of an index of ``rows`` under ``root``."""
    rng = np.random.default_rng(0)
    heads_path = save_alignment(AlignmentMeta(name="toy-align", version="t", image_dim=IMAGE_DIM, dim=TEXT_DIM),
                                {"image.0.weight": rng.standard_normal((TEXT_DIM, IMAGE_DIM)),
                                 "image.0.bias": np.zeros(TEXT_DIM),
                                 "text.0.weight": rng.standard_normal((TEXT_DIM, 384)),
                                 "text.0.bias": np.zeros(TEXT_DIM)}, root / "heads.npz", half=False)
    space = EmbeddingSpace(IMAGE_DIM, load_alignment(heads_path))
    u = query_direction()
    other = _unit(np.r_[-u[1], u[0], np.zeros(TEXT_DIM - 2)])  # orthogonal to u
    vectors, metas = [], []
    for name, cosine, category, colours, pattern, material in rows:
        text_part = cosine * u + np.sqrt(1 - cosine ** 2) * other
        e = _unit(np.abs(rng.standard_normal(IMAGE_DIM)))
        vectors.append(np.r_[e, text_part] / np.sqrt(2))
        metas.append(GarmentMeta(path=f"{name}.jpg", category=category, object_type="upper-body",
                                 attributes={"garment": 0, "score": 0.9, "colours": colours, "pattern": pattern,
                                             "material": material}))
    index_dir = root / "index"
    GarmentIndex.build(np.asarray(vectors, np.float32), metas, index_dir, kind="flat", info=space.info()).close()
    return index_dir, heads_path


def fake_text_queries(self: Any, texts: Sequence[str]) -> np.ndarray:
    """Stands in for :meth:`EmbeddingSpace.text_queries`: every text is the same query."""
    q = np.r_[np.zeros(IMAGE_DIM), query_direction()]
    return np.tile(q, (len(texts), 1)).astype(np.float32)


def names(hits: Sequence[Any]) -> list[str]:
    """Garment names of hits (objects or dicts), in order."""
    return [Path(h["path"] if isinstance(h, dict) else h.path).stem for h in hits]
