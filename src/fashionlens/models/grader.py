"""Grading heads on frozen garment embeddings: usage, condition, price band, damage, type, material …

An item's front and back photos are embedded by the garment classifier's backbone (pooled,
L2-normalised, 1280-d for EfficientNet-Lite0) and fused into one vector:

* ``mean``: the mean of the available views' embeddings, L2-normalised again (dim D);
* ``concat``: ``[front·m_f, back·m_b, m_f, m_b]`` with ``m`` = 1 when the view is there (dim 2D + 2).

The fused vector is standardised (train mean/std), optionally passed through one shared hidden
layer (``Linear → ReLU``), and each head is a ``Linear`` giving logits over its vocabulary.
*Nominal* heads decode with argmax. *Ordinal* heads (condition, pilling: grades 1–5) are trained
with plain cross-entropy and decoded by **expected value**: the grade nearest to ``Σ p_k · v_k``
(so a model torn between 2 and 4 answers 3), its probability being the score.

Weights are one ``.npz`` file — fp16 arrays plus a JSON ``meta`` (heads and vocabularies, which
heads were trained on which data, the classifier that made the embeddings, fusion, metrics) —
and run in NumPy: grading needs no torch beyond the classifier backend.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fashionlens.models.weights_io import load_npz_weights, save_npz_weights

__all__ = ["FUSIONS", "GARMENT_VIEWS", "GRADER_FORMAT", "GraderHeadSpec", "GraderMeta", "GraderModel", "classifier_info",
           "fuse_views", "fused_dim", "load_grader", "param_names", "save_grader"]

GRADER_FORMAT = "fashionlens/grader-heads/v1"
Fusion = Literal["mean", "concat"]
FUSIONS: tuple[str, ...] = ("mean", "concat")
GARMENT_VIEWS: tuple[str, ...] = ("front", "back")


@dataclass(frozen=True)
class GraderHeadSpec:
    """One grading head: ``nominal`` (argmax) or ``ordinal`` (integer grades, expected-value decoding)."""

    name: str
    kind: Literal["nominal", "ordinal"]
    values: tuple[str | int, ...]

    def __post_init__(self) -> None:
        if self.kind not in ("nominal", "ordinal"):
            raise ValueError(f"head {self.name}: kind must be nominal or ordinal, got {self.kind!r}")
        if len(self.values) < 2:
            raise ValueError(f"head {self.name}: expected at least 2 values, got {list(self.values)}")
        if len(set(self.values)) != len(self.values):
            raise ValueError(f"head {self.name}: values must be distinct, got {list(self.values)}")
        if self.kind == "ordinal" and (any(isinstance(v, bool) or not isinstance(v, int) for v in self.values)
                                       or list(self.values) != sorted(self.values)):
            raise ValueError(f"head {self.name}: ordinal values must be increasing integers, got {list(self.values)}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "values": list(self.values)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GraderHeadSpec:
        return cls(name=str(d["name"]), kind=d["kind"], values=tuple(d["values"]))


@dataclass
class GraderMeta:
    """Everything about a set of grading heads besides their arrays."""

    name: str = "rise-grader"
    version: str = "0"
    embedding_dim: int = 1280
    fusion: Fusion = "mean"
    hidden: int = 0  # 0: linear heads on the fused embedding; else one shared ReLU layer of this width
    heads: tuple[GraderHeadSpec, ...] = ()
    classifier: dict[str, str] = field(default_factory=dict)  # name/version of the embedding model
    trained_on: dict[str, dict[str, Any]] = field(default_factory=dict)  # head → data, label counts
    untrained: dict[str, str] = field(default_factory=dict)  # head → why it has no trained weights
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.heads = tuple(h if isinstance(h, GraderHeadSpec) else GraderHeadSpec.from_dict(h) for h in self.heads)
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion: expected one of {list(FUSIONS)}, got {self.fusion!r}")
        names = [h.name for h in self.heads]
        if len(set(names)) != len(names):
            raise ValueError(f"head names must be distinct, got {names}")

    def head(self, name: str) -> GraderHeadSpec:
        for h in self.heads:
            if h.name == name:
                return h
        raise KeyError(f"grader has no head {name!r}; heads: {[h.name for h in self.heads]}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["heads"] = [h.to_dict() for h in self.heads]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GraderMeta:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"grader meta: unknown fields {sorted(unknown)}; expected {sorted(known)}")
        return cls(**dict(d))


def classifier_info(meta: Any) -> dict[str, str]:
    """Name, version and backbone of the classifier whose embeddings the heads read.

    ``meta`` is a classifier backend's meta (anything with ``name``, ``version`` and ``backbone``);
    the result is what grader weights store as ``GraderMeta.classifier`` and check on load.
    """
    return {"name": str(meta.name), "version": str(meta.version), "backbone": str(meta.backbone)}


def fused_dim(embedding_dim: int, fusion: str) -> int:
    return embedding_dim if fusion == "mean" else 2 * embedding_dim + 2


def fuse_views(embeddings: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray], *, fusion: str) -> np.ndarray:
    """Fuse per-view embeddings ``{role: (n, D)}`` with presence masks ``{role: (n,) bool}``.

    Only ``front`` and ``back`` are used (the brand/care-label photo is not a garment view). Raises
    ``ValueError`` when an item has neither view.
    """
    if fusion not in FUSIONS:
        raise ValueError(f"fusion: expected one of {list(FUSIONS)}, got {fusion!r}")
    roles = [r for r in GARMENT_VIEWS if r in embeddings]
    if not roles:
        raise ValueError(f"expected front and/or back embeddings, got roles {sorted(embeddings)}")
    n, d = embeddings[roles[0]].shape
    e = {r: np.asarray(embeddings[r], np.float32) if r in embeddings else np.zeros((n, d), np.float32)
         for r in GARMENT_VIEWS}
    m = {r: np.asarray(present[r], bool) if r in embeddings else np.zeros(n, bool) for r in GARMENT_VIEWS}
    none = ~(m["front"] | m["back"])
    if none.any():
        raise ValueError(f"{int(none.sum())} items have neither a front nor a back embedding "
                         f"(first at row {int(np.flatnonzero(none)[0])})")
    mf, mb = m["front"].astype(np.float32)[:, None], m["back"].astype(np.float32)[:, None]
    if fusion == "mean":
        x = (e["front"] * mf + e["back"] * mb) / (mf + mb)
        return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    return np.concatenate([e["front"] * mf, e["back"] * mb, mf, mb], axis=1).astype(np.float32)


def param_names(meta: GraderMeta) -> list[str]:
    """Array names: ``norm.mean/std``, ``trunk.weight/bias`` (with a hidden layer), ``head.<name>.weight/bias``."""
    names = ["norm.mean", "norm.std"] + (["trunk.weight", "trunk.bias"] if meta.hidden else [])
    for h in meta.heads:
        names += [f"head.{h.name}.weight", f"head.{h.name}.bias"]
    return names


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


class GraderModel:
    """NumPy inference of the heads: fused embeddings → probabilities → decoded grades."""

    def __init__(self, meta: GraderMeta, arrays: Mapping[str, np.ndarray]) -> None:
        self.meta = meta
        d_in = fused_dim(meta.embedding_dim, meta.fusion)
        d_feat = meta.hidden or d_in
        expected: dict[str, tuple[int, ...]] = {"norm.mean": (d_in,), "norm.std": (d_in,)}
        if meta.hidden:
            expected |= {"trunk.weight": (meta.hidden, d_in), "trunk.bias": (meta.hidden,)}
        for h in meta.heads:
            expected |= {f"head.{h.name}.weight": (len(h.values), d_feat), f"head.{h.name}.bias": (len(h.values),)}
        missing = [n for n in expected if n not in arrays]
        if missing:
            raise ValueError(f"grader heads: missing arrays {missing}; got {sorted(arrays)}")
        for n, shape in expected.items():
            if tuple(arrays[n].shape) != shape:
                raise ValueError(f"grader heads: {n} expected shape {shape}; got {tuple(arrays[n].shape)}")
        self._w = {n: np.asarray(arrays[n], dtype=np.float32) for n in expected}

    def arrays(self) -> dict[str, np.ndarray]:
        """A copy of the float32 arrays (for :func:`save_grader`)."""
        return {n: a.copy() for n, a in self._w.items()}

    @property
    def input_dim(self) -> int:
        return fused_dim(self.meta.embedding_dim, self.meta.fusion)

    def predict_proba(self, fused: np.ndarray) -> dict[str, np.ndarray]:
        """``(n, input_dim)`` fused embeddings → ``{head: (n, K) probabilities}``."""
        x = np.asarray(fused, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"fused embeddings: expected shape (n, {self.input_dim}); got {x.shape}")
        w = self._w
        h = (x - w["norm.mean"]) / w["norm.std"]
        if self.meta.hidden:
            h = np.maximum(h @ w["trunk.weight"].T + w["trunk.bias"], 0.0)
        return {s.name: _softmax(h @ w[f"head.{s.name}.weight"].T + w[f"head.{s.name}.bias"]) for s in self.meta.heads}

    def decode(self, head: str, probs: np.ndarray) -> np.ndarray:
        """Class indices: argmax (nominal) or the grade nearest the expected value (ordinal)."""
        spec = self.meta.head(head)
        return decode_indices(spec, probs)

    def predict(self, fused: np.ndarray) -> dict[str, list[dict[str, Any]]]:
        """``{head: [{"id": value, "score": p}, …]}`` for every row of ``fused``."""
        out: dict[str, list[dict[str, Any]]] = {}
        for name, p in self.predict_proba(fused).items():
            spec = self.meta.head(name)
            idx = decode_indices(spec, p)
            out[name] = [{"id": spec.values[j], "score": round(float(p[i, j]), 4)} for i, j in enumerate(idx)]
        return out


def decode_indices(spec: GraderHeadSpec, probs: np.ndarray) -> np.ndarray:
    """Decoded class index per row of ``probs`` ``(n, K)`` (see the module docstring)."""
    probs = np.asarray(probs, dtype=np.float64)
    if spec.kind == "nominal":
        return probs.argmax(axis=1)
    values = np.asarray(spec.values, dtype=np.float64)
    expected = probs @ values
    return np.abs(expected[:, None] - values[None, :]).argmin(axis=1)


def save_grader(meta: GraderMeta, arrays: Mapping[str, np.ndarray], path: str | os.PathLike[str], *,
                half: bool = True) -> Path:
    """Write ``path`` (``.npz``) atomically: arrays (fp16 when ``half``; ``norm.*`` stay fp32) + meta JSON."""
    GraderModel(meta, arrays)  # validates names and shapes
    blob = {n: np.asarray(a, dtype=np.float16 if half and not n.startswith("norm.") else np.float32)
            for n, a in arrays.items()}
    return save_npz_weights(path, fmt=GRADER_FORMAT, meta=meta.to_dict(), arrays=blob)


def load_grader(path: str | os.PathLike[str]) -> GraderModel:
    """Load heads saved by :func:`save_grader`."""
    meta, arrays = load_npz_weights(path, fmt=GRADER_FORMAT, what="grader weights")
    return GraderModel(GraderMeta.from_dict(meta), arrays)


def heads_from_vocabularies(vocabularies: Mapping[str, Sequence[Any]], kinds: Mapping[str, str]
                            ) -> tuple[GraderHeadSpec, ...]:
    """Head specs from per-head vocabularies (ordinal vocabularies sorted)."""
    out = []
    for name, values in vocabularies.items():
        kind = kinds[name]
        vals = tuple(sorted(values)) if kind == "ordinal" else tuple(values)
        out.append(GraderHeadSpec(name=name, kind=kind, values=vals))  # type: ignore[arg-type]
    return tuple(out)
