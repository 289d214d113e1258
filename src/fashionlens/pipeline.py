"""The Tagger: photo → garments → ``fashionlens/result/v1`` records.

Until a detector ships, each photo is one garment (``whole_image``): the photo is classified as a
whole, its object type is the category head's probabilities summed per object type, and colour
shares come from the central region's pixels.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fashionlens.colours import colour_shares, garment_pixels
from fashionlens.garments import Garments
from fashionlens.imageio import DecodedImage
from fashionlens.models.meta import ClassifierMeta
from fashionlens.runtime.backends import BackendName, ClassifierBackend, create_backend
from fashionlens.taxonomy import load_taxonomy

RESULT_SCHEMA = "fashionlens/result/v1"

#: attributes reported only for garments of these object types
_ATTRIBUTE_OBJECT_TYPES: dict[str, tuple[str, ...]] = {
    "sleeve": ("upper-body", "full-body"),
    "neckline": ("upper-body", "full-body"),
    "fit": ("upper-body", "lower-body", "full-body"),
}


def preprocess(rgb: np.ndarray, meta: ClassifierMeta) -> np.ndarray:
    """``H×W×3`` uint8 → normalised float32 ``(3, S, S)``, squashed to ``S × S`` as in training."""
    s = meta.input_size
    if rgb.shape[:2] != (s, s):
        rgb = np.asarray(Image.fromarray(rgb).resize((s, s), Image.BILINEAR))
    mean = np.asarray(meta.mean, dtype=np.float32) * 255.0
    std = np.asarray(meta.std, dtype=np.float32) * 255.0
    return ((rgb.astype(np.float32) - mean) / std).transpose(2, 0, 1)


def error_record(path: str, exc: BaseException, *, model: dict[str, str]) -> dict[str, Any]:
    code = getattr(exc, "code", None) or type(exc).__name__
    return {"schema": RESULT_SCHEMA, "image": {"path": path, "width": None, "height": None}, "model": model,
            "garments": [], "error": {"type": code, "message": str(exc)}, "timing_ms": {}}


class Tagger:
    """Load a classifier once, then tag batches of decoded images.

    >>> tagger = Tagger()                       # the shipped default model, ONNX when exported
    >>> records = tagger.tag_batch([decoded], ["photo.jpg"])
    """

    def __init__(self, weights: str | Path | None = None, *, backend: BackendName = "auto",
                 threads: int | None = None, top_k: int = 3) -> None:
        self.backend: ClassifierBackend = create_backend(weights, backend=backend, threads=threads)
        self.meta = self.backend.meta
        self.top_k = top_k
        self.taxonomy = load_taxonomy()
        cat_values = self.meta.head("category").values
        self._cat_type_index = np.array([self.taxonomy.object_type_index(self.taxonomy.object_type_of(c))
                                         for c in cat_values])

    @property
    def model_info(self) -> dict[str, str]:
        return {"name": self.meta.name, "version": self.meta.version, "backend": self.backend.name}

    @property
    def input_size(self) -> int:
        return self.meta.input_size

    def predict(self, images: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Head probabilities for ``H×W×3`` uint8 images (any size)."""
        if not images:
            return {h.name: np.zeros((0, h.num_outputs), np.float32) for h in self.meta.heads}
        batch = np.stack([preprocess(im, self.meta) for im in images])
        return self.backend.run(batch)

    def _garment(self, probs: dict[str, np.ndarray], i: int, rgb: np.ndarray, width: int, height: int
                 ) -> dict[str, Any]:
        tax = self.taxonomy
        cat = probs["category"][i]
        type_p = np.bincount(self._cat_type_index, weights=cat, minlength=len(tax.object_types))
        t = int(type_p.argmax())
        object_type = tax.object_types[t]
        cat_values = self.meta.head("category").values
        # the category is the best one *within* the chosen object type
        in_type = np.where(self._cat_type_index == t, cat, -1.0)
        order = np.argsort(-cat)[: self.top_k]
        best = int(in_type.argmax())
        attrs: dict[str, Any] = {}
        for h in self.meta.heads:
            if h.name == "category":
                continue
            allowed = _ATTRIBUTE_OBJECT_TYPES.get(h.name)
            if allowed and object_type not in allowed:
                continue
            p = probs[h.name][i]
            if h.kind == "single":
                j = int(p.argmax())
                attrs[h.name] = {"id": h.values[j], "score": round(float(p[j]), 4)}
            else:
                thr = self.meta.thresholds.get(h.name, 0.5)
                chosen = [j for j in np.argsort(-p) if p[j] >= thr] or [int(p.argmax())]
                names = [h.values[j] for j in chosen]
                if h.name == "colours":
                    shares = colour_shares(garment_pixels(rgb), names)
                    attrs[h.name] = [{"id": n, "share": round(shares[n], 4) if n in shares else None,
                                      "score": round(float(p[h.values.index(n)]), 4)} for n in names]
                else:
                    attrs[h.name] = [{"id": n, "score": round(float(p[h.values.index(n)]), 4)} for n in names]
        garments = Garments.whole_image(width, height, object_type, float(type_p[t]))
        x0, y0, x1, y1 = (float(v) for v in garments.xyxy[0])
        return {
            "object_type": object_type,
            "score": round(float(type_p[t]), 4),
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "mask": None,
            "category": {"id": cat_values[best], "score": round(float(cat[best]), 4)},
            "category_top": [{"id": cat_values[j], "score": round(float(cat[j]), 4)} for j in order],
            "attributes": attrs,
        }

    def tag_batch(self, images: Sequence[DecodedImage], paths: Sequence[str],
                  decode_ms: Sequence[float] | None = None,
                  inputs: Sequence[np.ndarray] | None = None) -> list[dict[str, Any]]:
        """Result records (``fashionlens/result/v1``) for decoded images, one garment each.

        ``inputs``: the images already passed through :func:`preprocess` (e.g. in decode threads).
        """
        if len(images) != len(paths):
            raise ValueError(f"expected one path per image, got {len(images)} images and {len(paths)} paths")
        t0 = time.perf_counter()
        if inputs is not None:
            probs = self.backend.run(np.stack(inputs)) if len(inputs) else self.predict([])
        else:
            probs = self.predict([im.rgb for im in images])
        infer_ms = (time.perf_counter() - t0) * 1000 / max(1, len(images))
        out = []
        for i, (im, path) in enumerate(zip(images, paths)):
            t1 = time.perf_counter()
            garment = self._garment(probs, i, im.rgb, im.width, im.height)
            timing = {"infer": round(infer_ms, 2), "post": round((time.perf_counter() - t1) * 1000, 2)}
            if decode_ms is not None:
                timing["decode"] = round(decode_ms[i], 2)
            out.append({"schema": RESULT_SCHEMA, "image": {"path": path, "width": im.width, "height": im.height},
                        "model": self.model_info, "garments": [garment], "error": None, "timing_ms": timing})
        return out
