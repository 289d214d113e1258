"""Calibrated classifier scores and per-field operating points, applied in numpy (no torch).

A classifier backend (ONNX or PyTorch) returns probabilities per head. :class:`Calibration` maps them
to calibrated probabilities *after* the backend, so both runtimes are calibrated identically:

* single-label heads (softmax): temperature scaling on the log-probabilities, ``softmax(log p / T)``
  (the backend gives probabilities, so ``log p`` are the logits up to a constant per row);
* multi-label heads (sigmoid): temperature scaling on the log-odds, ``sigmoid(log(p / (1 - p)) / T)``,
  or per-class isotonic regression (stored as knots, applied with ``np.interp``) where that
  measured better on a held-out half of validation.

It also holds one :class:`OperatingCurve` per output field (``category``, ``object_type``, ``pattern``,
``colours``, …): the validation precision and coverage of emitting the field when its calibrated score
is at least a threshold, so any target precision resolves to a threshold at run time
(:meth:`Calibration.thresholds`). A field whose score falls below its threshold is emitted as unsure
(``fashionlens/result/v2``; see ``docs/calibration.md``).

The calibration is fitted on the classifier's validation split (``fashionlens evaluate calibration
--save``, :mod:`fashionlens.evaluate.calibration`) and stored next to the weights as a JSON sidecar,
``<weights stem>.calibration.json`` (:func:`calibration_path`), with the fit's provenance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fashionlens.models.sidecar import read_sidecar, write_sidecar

CALIBRATION_FORMAT = "fashionlens/calibration/v1"
#: the target precision of ``fashionlens tag`` when none is given
DEFAULT_PRECISION = 0.90
_EPS = 1e-7


def parse_precision(text: str) -> float | None:
    """A ``--precision`` / ``?precision=`` / ``FASHIONLENS_PRECISION`` value: ``"0.9"`` → 0.9, ``"off"`` → None
    (no operating point: every field emitted as sure). Anything else raises :class:`ValueError`."""
    if str(text).strip().lower() == "off":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise ValueError(f"expected a target precision in (0, 1] or 'off'; got {text!r}")
    return value


Method = Literal["identity", "temperature", "isotonic"]


def calibration_path(weights: str | Path) -> Path:
    """The calibration sidecar of a weights file: ``model.pt`` / ``model.onnx`` → ``model.calibration.json``."""
    p = Path(weights)
    return p.with_name(f"{p.stem}.calibration.json")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def temperature_single(p: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax probabilities ``p`` (…, K) re-tempered: ``softmax(log p / T)``."""
    logits = np.log(np.clip(np.asarray(p, np.float64), _EPS, 1.0))
    return _softmax(logits / temperature)


def temperature_multi(p: np.ndarray, temperature: float) -> np.ndarray:
    """Sigmoid probabilities ``p`` re-tempered: ``sigmoid(logit(p) / T)``."""
    q = np.clip(np.asarray(p, np.float64), _EPS, 1 - _EPS)
    return 1.0 / (1.0 + np.exp(-np.log(q / (1 - q)) / temperature))


@dataclass(frozen=True)
class OperatingCurve:
    """Validation precision and coverage of a field emitted when its calibrated score ≥ ``threshold[i]``.

    ``threshold`` ascends; ``precision[i]`` is the share of emitted values that were right and
    ``coverage[i]`` the share of labelled garments for which a value is emitted; ``n``: labelled garments."""

    threshold: tuple[float, ...]
    precision: tuple[float, ...]
    coverage: tuple[float, ...]
    n: int

    def __post_init__(self) -> None:
        if not (len(self.threshold) == len(self.precision) == len(self.coverage)) or not self.threshold:
            raise ValueError(f"OperatingCurve: expected equally long, non-empty threshold/precision/coverage, got "
                             f"{len(self.threshold)}/{len(self.precision)}/{len(self.coverage)}")
        if any(b < a for a, b in zip(self.threshold, self.threshold[1:])):
            raise ValueError("OperatingCurve: thresholds must ascend")

    def threshold_for(self, precision: float) -> float:
        """The lowest threshold at which validation precision reaches ``precision`` (the most coverage);
        ``inf`` (never emit) when no threshold reaches it."""
        if not 0.0 <= precision <= 1.0:
            raise ValueError(f"precision: expected a number in [0, 1], got {precision}")
        for t, p in zip(self.threshold, self.precision):
            if p >= precision:
                return t
        return math.inf

    def at(self, threshold: float) -> tuple[float, float]:
        """``(precision, coverage)`` on validation at the table's row for ``threshold`` (the highest row ≤ it);
        ``(nan, 0.0)`` for ``inf``."""
        if not math.isfinite(threshold):
            return math.nan, 0.0
        i = max(0, int(np.searchsorted(np.asarray(self.threshold), threshold, side="right")) - 1)
        return self.precision[i], self.coverage[i]

    @classmethod
    def from_scores(cls, scores: np.ndarray, correct: np.ndarray, *, emitted_of: np.ndarray | None = None,
                    n_items: int | None = None, points: int = 200) -> OperatingCurve:
        """The curve of values with calibrated ``scores`` and whether each was ``correct``.

        Single-valued fields: one score per garment. Multi-valued fields (colours): one score per
        (garment, value) pair, ``emitted_of[i]`` the garment of pair ``i`` and ``n_items`` the number of
        garments, so coverage counts garments with at least one value emitted."""
        scores = np.asarray(scores, np.float64).reshape(-1)
        correct = np.asarray(correct, bool).reshape(-1)
        if len(scores) == 0 or len(scores) != len(correct):
            raise ValueError(f"OperatingCurve.from_scores: expected as many scores as outcomes (> 0), got "
                             f"{len(scores)} and {len(correct)}")
        # thresholds at observed scores (quantiles of them, at most ``points`` + 1), and 0 (emit everything)
        grid = np.unique(np.concatenate([[0.0], np.quantile(scores, np.linspace(0, 1, points + 1),
                                                            method="inverted_cdf")]))
        prec, cov = [], []
        n = len(scores) if n_items is None else n_items
        for t in grid:
            keep = scores >= t
            k = int(keep.sum())
            prec.append(float(correct[keep].mean()) if k else 1.0)
            if emitted_of is None:
                cov.append(k / n)
            else:
                cov.append(len(np.unique(np.asarray(emitted_of)[keep])) / max(1, n))
        return cls(tuple(round(float(t), 6) for t in grid), tuple(round(p, 4) for p in prec),
                   tuple(round(c, 4) for c in cov), int(n))

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "threshold": list(self.threshold), "precision": list(self.precision),
                "coverage": list(self.coverage)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OperatingCurve:
        return cls(tuple(float(x) for x in d["threshold"]), tuple(float(x) for x in d["precision"]),
                   tuple(float(x) for x in d["coverage"]), int(d["n"]))


@dataclass(frozen=True)
class HeadCalibration:
    """How one head's probabilities are calibrated.

    ``method``: ``identity``, ``temperature`` (``temperature`` > 0) or ``isotonic`` (multi-label only:
    per class, ``knots[k] = (x, y)`` increasing, applied with ``np.interp``)."""

    head: str
    kind: Literal["single", "multi"]
    values: tuple[str, ...]
    method: Method = "temperature"
    temperature: float = 1.0
    knots: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("single", "multi"):
            raise ValueError(f"HeadCalibration {self.head!r}: kind must be single or multi, got {self.kind!r}")
        if self.method not in ("identity", "temperature", "isotonic"):
            raise ValueError(f"HeadCalibration {self.head!r}: method must be identity, temperature or isotonic, "
                             f"got {self.method!r}")
        if self.method == "temperature" and not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"HeadCalibration {self.head!r}: temperature must be a positive number, "
                             f"got {self.temperature}")
        if self.method == "isotonic":
            if self.kind != "multi":
                raise ValueError(f"HeadCalibration {self.head!r}: isotonic is for multi-label heads")
            if len(self.knots) != len(self.values):
                raise ValueError(f"HeadCalibration {self.head!r}: expected {len(self.values)} knot sets (one per "
                                 f"class), got {len(self.knots)}")

    def apply(self, p: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of backend probabilities ``p`` (…, K), as float32."""
        p = np.asarray(p)
        if p.shape[-1] != len(self.values):
            raise ValueError(f"calibration of head {self.head!r}: expected {len(self.values)} probabilities per "
                             f"row, got shape {p.shape}")
        if self.method == "identity":
            return p.astype(np.float32)
        if self.method == "temperature":
            f = temperature_single if self.kind == "single" else temperature_multi
            return f(p, self.temperature).astype(np.float32)
        out = np.empty(p.shape, np.float32)
        for k, (x, y) in enumerate(self.knots):
            out[..., k] = np.interp(np.asarray(p[..., k], np.float64), x, y)
        return out

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"head": self.head, "kind": self.kind, "values": list(self.values), "method": self.method}
        if self.method == "temperature":
            d["temperature"] = self.temperature
        if self.method == "isotonic":
            d["knots"] = [{"x": list(x), "y": list(y)} for x, y in self.knots]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HeadCalibration:
        knots = tuple((tuple(float(v) for v in k["x"]), tuple(float(v) for v in k["y"])) for k in d.get("knots", ()))
        return cls(head=str(d["head"]), kind=d["kind"], values=tuple(d["values"]), method=d["method"],
                   temperature=float(d.get("temperature", 1.0)), knots=knots)


@dataclass(frozen=True)
class Calibration:
    """A classifier's calibration: per-head maps, per-field operating curves, and where they came from.

    ``provenance``: how it was fitted (split, n, seed, command, weights); ``metrics``: what the fit
    measured (expected calibration error before/after per head, precision/coverage at 0.90)."""

    heads: dict[str, HeadCalibration]
    operating: dict[str, OperatingCurve] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def apply(self, probs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Backend outputs with every calibrated head replaced by its calibrated probabilities
        (other outputs, e.g. ``embedding``, pass through)."""
        return {k: self.heads[k].apply(v) if k in self.heads else v for k, v in probs.items()}

    def thresholds(self, precision: float = DEFAULT_PRECISION) -> dict[str, float]:
        """Field → the calibrated-score threshold at which validation precision reaches ``precision``."""
        return {name: curve.threshold_for(precision) for name, curve in self.operating.items()}

    def check_heads(self, heads: Sequence[Any]) -> None:
        """Raise ``ValueError`` unless every calibrated head is one of ``heads`` (HeadSpecs) with the same values."""
        by_name = {h.name: h for h in heads}
        for name, hc in self.heads.items():
            h = by_name.get(name)
            if h is None or tuple(h.values) != hc.values or h.kind != hc.kind:
                raise ValueError(f"calibration head {name!r} does not fit the classifier (expected a {hc.kind} head "
                                 f"with {len(hc.values)} values {list(hc.values)[:4]}…)")

    def to_dict(self) -> dict[str, Any]:
        return {"format": CALIBRATION_FORMAT, "provenance": self.provenance, "metrics": self.metrics,
                "heads": [h.to_dict() for h in self.heads.values()],
                "operating": {k: v.to_dict() for k, v in self.operating.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        if d.get("format") != CALIBRATION_FORMAT:
            raise ValueError(f"expected a {CALIBRATION_FORMAT} calibration, got format {d.get('format')!r}")
        heads = [HeadCalibration.from_dict(h) for h in d["heads"]]
        return cls(heads={h.head: h for h in heads},
                   operating={k: OperatingCurve.from_dict(v) for k, v in (d.get("operating") or {}).items()},
                   provenance=dict(d.get("provenance") or {}), metrics=dict(d.get("metrics") or {}))

    def save(self, path: str | Path) -> Path:
        return write_sidecar(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        d = read_sidecar(path, "calibration")
        try:
            return cls.from_dict(d)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"calibration {path} is not a valid {CALIBRATION_FORMAT} file: {exc}") from None

    @classmethod
    def for_weights(cls, weights: str | Path) -> Calibration | None:
        """The sidecar calibration of ``weights`` (:func:`calibration_path`), or None when there is none."""
        path = calibration_path(weights)
        return cls.load(path) if path.is_file() else None


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, *, bins: int = 15) -> float:
    """ECE: the mean |accuracy − confidence| over ``bins`` equal-width confidence bins, weighted by their size."""
    confidence = np.asarray(confidence, np.float64).reshape(-1)
    correct = np.asarray(correct, np.float64).reshape(-1)
    if len(confidence) == 0:
        return math.nan
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.sum() * abs(correct[m].mean() - confidence[m].mean())
    return float(total / len(confidence))
