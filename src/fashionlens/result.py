"""The one result type: :class:`Garments` (a photo's garments, stage after stage) inside a
:class:`TagResult` (the photo, the models, the mode, timing, or an error).

Modelled on ``supervision.Detections``: parallel arrays (``xyxy`` boxes, optional ``mask``,
``object_type``, ``confidence``, ``embedding``) and parallel lists (``category``,
``category_top``, ``attributes``) that later stages fill in, plus a ``data`` dict for extras.
Validated on construction, with messages that say what was expected and what came.

JSON (``fashionlens/result/v2``) exists only at the edges: :meth:`TagResult.to_json` and
:meth:`TagResult.from_json` are the only translation, round-trip exact (``from_json(r).to_json() ==
r``), with COCO RLE from :mod:`fashionlens.io.records` and embeddings as base64 float16
(:func:`encode_embedding`); ``from_json`` also reads ``fashionlens/result/v1`` records. One garment in JSON::

    {"object_type": "upper-body", "score": 0.98, "bbox": [x, y, w, h], "mask": RLE | null,
     "category": {"id": "t-shirts", "score": 0.97}, "category_top": [{"id", "score"}, ...],
     "attributes": {"pattern": {"id", "score"}, "colours": [{"id", "share", "score"}, ...], ...},
     "embedding": {"dim", "dtype", "encoding", "data"}}          # only with --embed

v2 adds unsure values (scores are calibrated; a field below its operating point is unsure, see
``docs/calibration.md``): a single-valued field becomes ``{"id": null, "score": s, "uncertain": true,
"candidates": [{"id", "score"} × 3]}`` (``--keep-uncertain``: the best guess's id instead of null); a colour
is listed only when sure, and when none is, ``"colours": []`` with ``"colours_uncertain": true``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fashionlens.io.records import decode_mask, encode_mask
from fashionlens.taxonomy import load_taxonomy

__all__ = [
    "RESULT_SCHEMA",
    "RESULT_SCHEMAS_READ",
    "ColourLabel",
    "Garments",
    "Label",
    "LabelList",
    "TagError",
    "TagResult",
    "decode_embedding",
    "encode_embedding",
    "l2_normalise",
]

RESULT_SCHEMA = "fashionlens/result/v2"
#: the schemas :meth:`TagResult.from_json` reads: v2, and v1 (the same record without unsure values)
RESULT_SCHEMAS_READ: tuple[str, ...] = ("fashionlens/result/v1", RESULT_SCHEMA)


# ---------------------------------------------------------------------------------- labels


@dataclass(frozen=True)
class Label:
    """A predicted value and its score (``{"id": ..., "score": ...}`` in JSON).

    ``uncertain``: the score is below the field's operating point (:mod:`fashionlens.models.calibration`).
    An unsure value is emitted with ``id`` None (``--keep-uncertain``: the best guess) and its top
    ``candidates``; in JSON ``"uncertain": true`` and ``"candidates"`` appear only on unsure values."""

    id: str | None
    score: float
    uncertain: bool = False
    candidates: tuple[Label, ...] = ()

    def __post_init__(self) -> None:
        if self.id is None and not self.uncertain:
            raise ValueError("Label: id may be None only on an uncertain value")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "score": self.score}
        if self.uncertain:
            out["uncertain"] = True
            out["candidates"] = [c.to_json() for c in self.candidates]
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Label:
        uncertain = bool(d.get("uncertain", False))
        return cls(id=None if d["id"] is None else str(d["id"]), score=d["score"], uncertain=uncertain,
                   candidates=tuple(Label.from_json(c) for c in d.get("candidates") or ()))


@dataclass(frozen=True)
class ColourLabel:
    """A colour name, its share of the garment's pixels (``None`` when unknown) and its score;
    ``uncertain`` (JSON ``"uncertain": true``) on a best guess kept below the operating point (``--keep-uncertain``)."""

    id: str
    share: float | None
    score: float
    uncertain: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "share": self.share, "score": self.score}
        if self.uncertain:
            out["uncertain"] = True
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ColourLabel:
        return cls(id=str(d["id"]), share=d.get("share"), score=d["score"], uncertain=bool(d.get("uncertain", False)))


class LabelList(list):  # type: ignore[type-arg]
    """The values of a multi-valued attribute (colours), with ``uncertain``: True when none of the head's
    values reached the operating point — JSON ``"<name>": [...]`` plus ``"<name>_uncertain": true``
    (``[]`` unless ``--keep-uncertain`` kept the best guesses, each marked ``uncertain``). It compares equal to
a plain list of the same values: check ``uncertain`` on its own."""

    def __init__(self, values: Sequence[Any] = (), *, uncertain: bool = False) -> None:
        super().__init__(values)
        self.uncertain = uncertain

    def __repr__(self) -> str:
        return f"LabelList({list.__repr__(self)}, uncertain={self.uncertain})"


#: one garment's attributes, in head order: single-label heads give a :class:`Label`, multi-label
#: heads a list of them (colours: :class:`ColourLabel`; a :class:`LabelList` when unsure)
Attributes = dict[str, "Label | list[Label] | list[ColourLabel]"]

#: the JSON key that marks a multi-valued attribute with no sure value
_UNCERTAIN_SUFFIX = "_uncertain"


def _attributes_to_json(attributes: Attributes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in attributes.items():
        if isinstance(v, list):
            out[k] = [x.to_json() for x in v]
            if getattr(v, "uncertain", False):
                out[k + _UNCERTAIN_SUFFIX] = True
        else:
            out[k] = v.to_json()
    return out


def _attributes_from_json(d: Mapping[str, Any]) -> Attributes:
    out: Attributes = {}
    for k, v in d.items():
        if k.endswith(_UNCERTAIN_SUFFIX) and isinstance(v, bool):
            continue
        if isinstance(v, list):
            values = [ColourLabel.from_json(x) if "share" in x else Label.from_json(x) for x in v]
            unsure = d.get(k + _UNCERTAIN_SUFFIX) is True
            out[k] = LabelList(values, uncertain=True) if unsure else values  # type: ignore[assignment]
        else:
            out[k] = Label.from_json(v)
    return out


# ------------------------------------------------------------------------------ embeddings

_DTYPES = {"float16": "<f2", "float32": "<f4"}


def l2_normalise(x: np.ndarray, *, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` (``(n, d)`` or ``(d,)``) scaled to unit length, as float32 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, eps)


def encode_embedding(vector: np.ndarray, *, dtype: str = "float16") -> dict[str, Any]:
    """One ``(d,)`` vector → ``{"dim", "dtype", "encoding": "base64", "data"}`` (little-endian bytes).

    float16 keeps about three significant digits: cosine similarities from decoded vectors differ
    from float32 ones by less than 1e-3, at 3,416 characters per 1280-d garment."""
    if dtype not in _DTYPES:
        raise ValueError(f"dtype: expected one of {sorted(_DTYPES)}; got {dtype!r}")
    v = np.asarray(vector)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"embedding: expected a non-empty 1-D vector; got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("embedding: expected finite numbers; got NaN or inf")
    raw = v.astype(_DTYPES[dtype]).tobytes()
    return {"dim": int(v.size), "dtype": dtype, "encoding": "base64", "data": base64.b64encode(raw).decode("ascii")}


def decode_embedding(obj: Mapping[str, Any] | list[float]) -> np.ndarray:
    """A stored embedding (the dict of :func:`encode_embedding`, or a plain list of numbers) → ``(d,)`` float32."""
    if isinstance(obj, (list, tuple)):
        v = np.asarray(obj, dtype=np.float32)
        if v.ndim != 1 or v.size == 0:
            raise ValueError(f"embedding: expected a non-empty list of numbers; got shape {v.shape}")
        return v
    if not isinstance(obj, Mapping):
        raise TypeError(f"embedding: expected a dict with dim/dtype/data or a list; got {type(obj).__name__}")
    missing = [k for k in ("dim", "dtype", "data") if k not in obj]
    if missing:
        raise ValueError(f"embedding: expected keys dim, dtype, data; missing {missing}")
    if obj["dtype"] not in _DTYPES:
        raise ValueError(f"embedding: expected dtype in {sorted(_DTYPES)}; got {obj['dtype']!r}")
    if obj.get("encoding", "base64") != "base64":
        raise ValueError(f"embedding: expected encoding 'base64'; got {obj.get('encoding')!r}")
    try:
        raw = base64.b64decode(obj["data"], validate=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"embedding: data is not valid base64 ({exc})") from None
    v = np.frombuffer(raw, dtype=_DTYPES[obj["dtype"]])
    if v.size != int(obj["dim"]):
        raise ValueError(f"embedding: expected {obj['dim']} values; got {v.size}")
    return v.astype(np.float32)


# -------------------------------------------------------------------------------- Garments


@dataclass
class Garments:
    """N garments of one photo.

    * ``xyxy``: ``(N, 4)`` float64 boxes ``(x_min, y_min, x_max, y_max)`` in full-resolution pixels;
    * ``object_type``: N taxonomy object types; ``confidence``: ``(N,)`` float64 in [0, 1];
    * ``mask``: ``(N, H, W)`` bool or None;
    * ``category``, ``category_top``, ``attributes``: one per garment once classified, else None;
    * ``embedding``: ``(N, D)`` float32 (L2-normalised backbone features) or None;
    * ``data``: name → list of N per-garment extras.
    """

    xyxy: np.ndarray
    object_type: list[str]
    confidence: np.ndarray
    mask: np.ndarray | None = None
    data: dict[str, list[Any]] = field(default_factory=dict)
    category: list[Label] | None = None
    category_top: list[list[Label]] | None = None
    attributes: list[Attributes] | None = None
    embedding: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float64).reshape(-1, 4)
        self.confidence = np.asarray(self.confidence, dtype=np.float64).reshape(-1)
        n = len(self.xyxy)
        if len(self.object_type) != n or len(self.confidence) != n:
            raise ValueError(f"Garments: expected {n} object types and confidences (one per box), got "
                             f"{len(self.object_type)} and {len(self.confidence)}")
        tax = load_taxonomy()
        for t in self.object_type:
            tax.object_type_index(t)
        if not np.isfinite(self.xyxy).all():
            raise ValueError("Garments: xyxy boxes must be finite numbers")
        if not ((self.confidence >= 0) & (self.confidence <= 1)).all():
            raise ValueError(f"Garments: confidence must be in [0, 1], got {self.confidence.tolist()}")
        if (self.xyxy[:, 2] < self.xyxy[:, 0]).any() or (self.xyxy[:, 3] < self.xyxy[:, 1]).any():
            raise ValueError("Garments: xyxy boxes need x_max >= x_min and y_max >= y_min")
        if self.mask is not None and (self.mask.ndim != 3 or len(self.mask) != n):
            raise ValueError(f"Garments: mask must be (N={n}, H, W), got shape {self.mask.shape}")
        for name in ("category", "category_top", "attributes"):
            values = getattr(self, name)
            if values is not None and len(values) != n:
                raise ValueError(f"Garments: expected {n} values of {name} (one per garment), got {len(values)}")
        if self.embedding is not None:
            self.embedding = np.asarray(self.embedding, dtype=np.float32)
            if self.embedding.ndim != 2 or len(self.embedding) != n:
                raise ValueError(f"Garments: embedding must be (N={n}, D), got shape {self.embedding.shape}")
        for key, values in self.data.items():
            if len(values) != n:
                raise ValueError(f"Garments: data[{key!r}] has {len(values)} values for {n} garments")

    def __len__(self) -> int:
        return len(self.xyxy)

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self)))

    def select(self, keep: np.ndarray | Sequence[int]) -> Garments:
        """The garments picked by a boolean array of length N or by indices (in that order)."""
        keep = np.asarray(keep)
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep.astype(np.int64).reshape(-1)
        if keep.dtype == bool and len(keep) != len(self):
            raise ValueError(f"Garments.select: expected {len(self)} booleans, got {len(keep)}")

        def pick(values: list[Any] | None) -> list[Any] | None:
            return None if values is None else [values[i] for i in idx]

        return Garments(xyxy=self.xyxy[idx], object_type=[self.object_type[i] for i in idx],
                        confidence=self.confidence[idx], mask=None if self.mask is None else self.mask[idx],
                        data={k: [v[i] for i in idx] for k, v in self.data.items()},
                        category=pick(self.category), category_top=pick(self.category_top),
                        attributes=pick(self.attributes),
                        embedding=None if self.embedding is None else self.embedding[idx])

    @classmethod
    def empty(cls) -> Garments:
        return cls(xyxy=np.zeros((0, 4)), object_type=[], confidence=np.zeros(0))

    @classmethod
    def whole_image(cls, width: int, height: int, object_type: str, confidence: float) -> Garments:
        """One garment covering the whole photo (single-garment product photos)."""
        return cls(xyxy=np.array([[0, 0, width, height]]), object_type=[object_type], confidence=[confidence])

    @classmethod
    def concatenate(cls, parts: Sequence[Garments]) -> Garments:
        """The garments of ``parts`` one after another (all classified alike, masks of one size)."""
        if not parts:
            return cls.empty()

        def joined(name: str) -> list[Any] | None:
            values = [getattr(p, name) for p in parts]
            return None if any(v is None for v in values) else [x for v in values for x in v]

        masks = [p.mask for p in parts]
        embeddings = [p.embedding for p in parts]
        return cls(xyxy=np.concatenate([p.xyxy for p in parts]),
                   object_type=[t for p in parts for t in p.object_type],
                   confidence=np.concatenate([p.confidence for p in parts]),
                   mask=None if any(m is None for m in masks) else np.concatenate(masks),
                   data={k: [x for p in parts for x in p.data[k]] for k in parts[0].data},
                   category=joined("category"), category_top=joined("category_top"),
                   attributes=joined("attributes"),
                   embedding=None if any(e is None for e in embeddings) else np.concatenate(embeddings))

    @property
    def xywh(self) -> np.ndarray:
        """``(N, 4)`` boxes as ``(x, y, width, height)``."""
        out = self.xyxy.copy()
        out[:, 2:] -= out[:, :2]
        return out

    # ------------------------------------------------------------------------------- JSON

    def bbox_json(self, i: int) -> list[float]:
        """Garment ``i``'s box as JSON holds it: ``[x, y, width, height]`` rounded to 0.01 px."""
        x0, y0, x1, y1 = (float(v) for v in self.xyxy[i])
        return [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]

    def garment_json(self, i: int) -> dict[str, Any]:
        """Garment ``i`` as in a ``fashionlens/result/v2`` record."""
        out: dict[str, Any] = {
            "object_type": self.object_type[i],
            "score": round(float(self.confidence[i]), 4),
            "bbox": self.bbox_json(i),
            "mask": None if self.mask is None else encode_mask(self.mask[i]),
        }
        if self.category is not None:
            out["category"] = self.category[i].to_json()
        if self.category_top is not None:
            out["category_top"] = [c.to_json() for c in self.category_top[i]]
        if self.attributes is not None:
            out["attributes"] = _attributes_to_json(self.attributes[i])
        if self.embedding is not None:
            out["embedding"] = encode_embedding(self.embedding[i])
        return out

    def to_json(self) -> list[dict[str, Any]]:
        return [self.garment_json(i) for i in self]

    @classmethod
    def from_json(cls, garments: Sequence[Mapping[str, Any]], *, masks: bool = True) -> Garments:
        """Garments from their JSON list; ``masks=False`` skips decoding the masks (``mask`` stays None)."""
        if not garments:
            return cls.empty()
        xyxy = [[g["bbox"][0], g["bbox"][1], g["bbox"][0] + g["bbox"][2], g["bbox"][1] + g["bbox"][3]]
                for g in garments]
        rles = [g.get("mask") for g in garments]
        mask = np.stack([decode_mask(r) for r in rles]) if masks and all(r is not None for r in rles) else None

        def each(key: str, parse: Any) -> list[Any] | None:
            return [parse(g[key]) for g in garments] if all(key in g for g in garments) else None

        embedding = each("embedding", decode_embedding)
        return cls(xyxy=np.asarray(xyxy, np.float64), object_type=[g["object_type"] for g in garments],
                   confidence=[g["score"] for g in garments], mask=mask,
                   category=each("category", Label.from_json),
                   category_top=each("category_top", lambda v: [Label.from_json(c) for c in v]),
                   attributes=each("attributes", _attributes_from_json),
                   embedding=None if embedding is None else np.stack(embedding))


# -------------------------------------------------------------------------------- TagResult


@dataclass(frozen=True)
class TagError:
    """Why a photo has no garments: a stable machine ``type`` (e.g. ``truncated``, ``inference_failed``)
    and a message for people."""

    type: str
    message: str

    @classmethod
    def from_exception(cls, exc: BaseException) -> TagError:
        return cls(type=str(getattr(exc, "code", None) or type(exc).__name__), message=str(exc))


@dataclass
class TagResult:
    """One photo's result: where it came from, which models looked at it, how, and what they found.

    ``mode``: ``detect``, ``whole_image``, ``whole_image_fallback`` or None (error). ``width`` and
    ``height`` are the full-resolution size (None when the photo could not be decoded).
    """

    path: str
    width: int | None
    height: int | None
    model: dict[str, str]
    mode: str | None
    garments: Garments
    error: TagError | None = None
    timing_ms: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, path: str, error: TagError | BaseException, *, model: Mapping[str, str]) -> TagResult:
        """The result of a photo that could not be tagged."""
        if isinstance(error, BaseException):
            error = TagError.from_exception(error)
        return cls(path=path, width=None, height=None, model=dict(model), mode=None, garments=Garments.empty(),
                   error=error)

    def to_json(self) -> dict[str, Any]:
        """The ``fashionlens/result/v2`` record (what ``fashionlens tag`` writes, one per line)."""
        return {"schema": RESULT_SCHEMA, "image": {"path": self.path, "width": self.width, "height": self.height},
                "model": dict(self.model), "mode": self.mode, "garments": self.garments.to_json(),
                "error": None if self.error is None else {"type": self.error.type, "message": self.error.message},
                "timing_ms": dict(self.timing_ms)}

    @classmethod
    def from_json(cls, record: Mapping[str, Any], *, masks: bool = True) -> TagResult:
        """A record written by :meth:`to_json`, or a ``fashionlens/result/v1`` record (read as v2: it has no
        unsure values; :meth:`to_json` then writes it as v2). ``masks=False``: leave masks undecoded, faster."""
        if record.get("schema") not in RESULT_SCHEMAS_READ:
            raise ValueError(f"expected a {' or '.join(RESULT_SCHEMAS_READ)} record, "
                             f"got schema {record.get('schema')!r}")
        image, error = record["image"], record.get("error")
        return cls(path=image["path"], width=image.get("width"), height=image.get("height"),
                   model=dict(record.get("model") or {}), mode=record.get("mode"),
                   garments=Garments.from_json(record.get("garments") or [], masks=masks),
                   error=None if error is None else TagError(type=error["type"], message=error["message"]),
                   timing_ms=dict(record.get("timing_ms") or {}))
