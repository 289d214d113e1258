"""Label-shift (prior-shift) correction of single-label heads, in numpy (no torch).

A softmax head trained where class ``y`` had prior ``π_s(y)`` gives posteriors ``p_s(y | x)``. Where the
same garments appear with other priors ``π_t(y)`` — and only the priors change, ``p(x | y)`` staying the
same — Bayes' rule gives the posteriors of the new domain (Saerens, Latinne & Decaestecker 2002, eq. 2.4)::

    p_t(y | x) = p_s(y | x) · π_t(y)/π_s(y)  /  Σ_y' p_s(y' | x) · π_t(y')/π_s(y')

which is the logit adjustment ``log p_s(y | x) + log(π_t(y)/π_s(y))`` followed by a softmax
(:func:`adjust_priors`). ``π_t`` comes either from labelled garments of the new domain
(:func:`smoothed_frequencies`) or, without labels, from the EM re-estimation of the same paper
(:func:`em_priors`: M. Saerens, P. Latinne, C. Decaestecker, "Adjusting the Outputs of a Classifier to
New a Priori Probabilities: A Simple Procedure", *Neural Computation* 14(1):21–41, 2002), which alternates
adjusting the posteriors to the current prior and setting the prior to their mean. EM assumes the head is
calibrated for ``π_s``; on a domain that differs by more than its priors it can drift the wrong way (it does on
street crops: ``docs/street_labels.md``). With a few labelled rows of the new domain, :func:`fit_priors_ml`
fits the effective ``π_t`` by maximum likelihood instead, which also absorbs a systematic bias of the head.

Why fashionlens needs it: the garment classifier's ``pattern`` head learnt its priors from RISE, where
``plain`` is the label of 30 % of the labelled training items (most plain items carry no pattern label
there, and unlabelled items are left out of the head's loss), while about 83 % of the garments on street
photos are plain (``docs/street_labels.md``). The correction is for **detected street crops**; whole-image
(product photo) tagging keeps the head's own priors. The shipped sidecar holds the :func:`fit_priors_ml`
priors of the street set's train-photo garments (``experiments/scripts/street_pattern_priors.py``).

:class:`PriorShift` holds the fitted priors of one or more heads and their provenance; it is stored next to
the classifier weights as a JSON sidecar (:func:`street_priors_path`: ``<weights stem>.street-priors.json``)
and applied to the backend's raw probabilities before calibration and abstention.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fashionlens.models.sidecar import read_sidecar, write_sidecar

PRIOR_SHIFT_FORMAT = "fashionlens/prior-shift/v1"
_EPS = 1e-12


def street_priors_path(weights: str | Path) -> Path:
    """The street-prior sidecar of a weights file: ``model.pt`` / ``model.onnx`` → ``model.street-priors.json``."""
    p = Path(weights)
    return p.with_name(f"{p.stem}.street-priors.json")


def _check_prior(prior: np.ndarray, k: int, name: str) -> np.ndarray:
    prior = np.asarray(prior, np.float64)
    if prior.shape != (k,):
        raise ValueError(f"{name}: expected {k} class priors, got shape {prior.shape}")
    if not np.all(np.isfinite(prior)) or np.any(prior <= 0):
        raise ValueError(f"{name}: expected positive finite priors (smooth zero counts), got min {prior.min()!r}")
    return prior / prior.sum()


def _check_probs(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, np.float64)
    if p.ndim < 1 or p.shape[-1] < 2:
        raise ValueError(f"expected probabilities of shape (..., K) with K >= 2, got shape {p.shape}")
    if np.any(p < 0) or not np.all(np.isfinite(p)):
        raise ValueError("expected non-negative finite probabilities")
    return p


def adjust_priors(probs: np.ndarray, source_prior: np.ndarray, target_prior: np.ndarray) -> np.ndarray:
    """Posteriors ``probs`` (…, K) of a head trained with ``source_prior`` moved to ``target_prior``
    (each row re-weighted by ``target/source`` and renormalised; rows sum to 1)."""
    p = _check_probs(probs)
    k = p.shape[-1]
    w = _check_prior(target_prior, k, "target_prior") / _check_prior(source_prior, k, "source_prior")
    q = p * w
    s = q.sum(axis=-1, keepdims=True)
    uniform = np.full_like(q, 1.0 / k)
    return np.where(s > _EPS, q / np.maximum(s, _EPS), uniform)


def smoothed_frequencies(labels: Sequence[int] | np.ndarray, n_classes: int, *, alpha: float = 1.0) -> np.ndarray:
    """Class frequencies of integer ``labels`` with additive (Laplace) smoothing ``alpha`` per class,
    so a class absent from a small sample keeps a small positive prior."""
    y = np.asarray(labels, np.int64).ravel()
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels: expected class indices in [0, {n_classes}), got {y.min()}..{y.max()}")
    if alpha < 0 or (alpha == 0 and y.size == 0):
        raise ValueError(f"alpha: expected > 0 (or >= 0 with labels), got {alpha}")
    counts = np.bincount(y, minlength=n_classes).astype(np.float64) + alpha
    return counts / counts.sum()


@dataclass(frozen=True)
class EMResult:
    """The prior :func:`em_priors` found, with how it got there."""

    prior: np.ndarray
    iterations: int
    converged: bool
    log_likelihood: float  # mean log Σ_y p_s(y|x)·π_t(y)/π_s(y) of the rows at ``prior`` (up to a constant)


def em_priors(probs: np.ndarray, source_prior: np.ndarray, *, free: np.ndarray | None = None,
              max_iter: int = 1000, tol: float = 1e-8, min_prior: float = 1e-6) -> EMResult:
    """Saerens et al. (2002) EM estimate of the class priors of the unlabelled rows ``probs`` (n, K).

    Starting from ``source_prior``: E-step, adjust each row to the current prior (:func:`adjust_priors`);
    M-step, the new prior is the mean adjusted row. Stops when no prior moves by more than ``tol``.
    Priors are floored at ``min_prior`` so a class can always come back.

    ``free`` (bool (K,), default all): the classes whose prior is re-estimated; the others keep their source
    prior (for classes the head never saw a label of, its posteriors carry no evidence about their prior,
    and letting EM move them lets it pour the mass of the whole sample into one of them)."""
    p = _check_probs(probs)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"probs: expected a non-empty (n, K) array, got shape {p.shape}")
    src = _check_prior(source_prior, p.shape[1], "source_prior")
    free_mask = np.ones(p.shape[1], bool) if free is None else np.asarray(free, bool)
    if free_mask.shape != (p.shape[1],) or not free_mask.any():
        raise ValueError(f"free: expected a bool mask of {p.shape[1]} classes with at least one True, "
                         f"got shape {free_mask.shape}")
    fixed_mass = float(src[~free_mask].sum())
    prior = src.copy()
    converged, it = False, 0
    for it in range(1, max_iter + 1):
        new = adjust_priors(p, src, prior).mean(axis=0)
        new = np.maximum(new, min_prior)
        new[~free_mask] = src[~free_mask]
        new[free_mask] *= (1.0 - fixed_mass) / new[free_mask].sum()
        delta = float(np.abs(new - prior).max())
        prior = new
        if delta <= tol:
            converged = True
            break
    ll = float(np.mean(np.log(np.maximum((p * (prior / src)).sum(axis=1), _EPS))))
    return EMResult(prior=prior, iterations=it, converged=converged, log_likelihood=ll)


def fit_priors_ml(probs: np.ndarray, labels: Sequence[int] | np.ndarray, source_prior: np.ndarray,
                  init_prior: np.ndarray, *, l2: float = 1.0) -> np.ndarray:
    """Target priors fitted by maximum likelihood on a few *labelled* rows of the new domain.

    The corrected posteriors are ``softmax(log p_s(y|x) + b_y)`` with ``b = log(π_t/π_s)``; ``b`` minimises the
    mean negative log-likelihood of ``labels`` plus ``l2/n · ‖b - b₀‖²`` around ``b₀ = log(init_prior/source_prior)``
    (e.g. the label-shift solution), so classes with few or no labelled rows stay near ``init_prior``. This is
    the bias-only form of bias-corrected calibration (Alexandari, Kundaje & Shrikumar, ICML 2020): unlike a pure
    prior shift it also absorbs a systematic bias of the head on the new domain (here, RISE-trained posteriors
    that under-rate ``plain`` on street crops far more than the priors explain). Returns ``π_t`` (sums to 1)."""
    from scipy.optimize import minimize

    p = _check_probs(probs)
    y = np.asarray(labels, np.int64).ravel()
    if p.ndim != 2 or len(y) != len(p) or len(y) == 0:
        raise ValueError(f"expected (n, K) probabilities and n labels, got {p.shape} and {len(y)}")
    k = p.shape[1]
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"labels: expected class indices in [0, {k}), got {y.min()}..{y.max()}")
    src = _check_prior(source_prior, k, "source_prior")
    b0 = np.log(_check_prior(init_prior, k, "init_prior") / src)
    logp = np.log(np.maximum(p, _EPS))
    onehot = np.eye(k)[y]
    n = len(y)

    def objective(b: np.ndarray) -> tuple[float, np.ndarray]:
        z = logp + b
        z = z - z.max(axis=1, keepdims=True)
        log_q = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        nll = -float((onehot * log_q).sum()) / n
        grad = (np.exp(log_q) - onehot).mean(axis=0)
        d = b - b0
        return nll + l2 / n * float(d @ d), grad + 2 * l2 / n * d

    res = minimize(objective, b0, jac=True, method="L-BFGS-B")
    prior = src * np.exp(res.x - res.x.max())
    return prior / prior.sum()


@dataclass(frozen=True)
class HeadPriors:
    """One single-label head's priors: those it was trained with (``source``) and those of the domain it is
    applied to (``target``), both over ``values`` in the head's order."""

    head: str
    values: tuple[str, ...]
    source: tuple[float, ...]
    target: tuple[float, ...]

    def __post_init__(self) -> None:
        k = len(self.values)
        if k < 2:
            raise ValueError(f"{self.head}: expected at least 2 values, got {k}")
        _check_prior(np.asarray(self.source), k, f"{self.head} source prior")
        _check_prior(np.asarray(self.target), k, f"{self.head} target prior")

    def apply(self, probs: np.ndarray) -> np.ndarray:
        """This head's probabilities (…, K) moved to the target priors."""
        p = np.asarray(probs)
        if p.shape[-1] != len(self.values):
            raise ValueError(f"{self.head}: expected probabilities over {len(self.values)} values, got shape {p.shape}")
        return adjust_priors(p, np.asarray(self.source), np.asarray(self.target))

    def to_dict(self) -> dict[str, Any]:
        return {"head": self.head, "values": list(self.values),
                "source": [round(float(v), 8) for v in self.source], "target": [round(float(v), 8) for v in self.target]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HeadPriors:
        try:
            return cls(str(d["head"]), tuple(str(v) for v in d["values"]), tuple(float(v) for v in d["source"]),
                       tuple(float(v) for v in d["target"]))
        except KeyError as exc:
            raise ValueError(f"head priors: missing key {exc}; expected head, values, source, target") from None


@dataclass(frozen=True)
class PriorShift:
    """Prior-shift corrections of some single-label heads for one domain (e.g. ``"street crops"``), with the
    provenance of the fit (data, split, n, seed, command). :meth:`apply` leaves other heads unchanged."""

    heads: Mapping[str, HeadPriors]
    domain: str
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def apply(self, probs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``probs`` (head → (…, K) probabilities, e.g. a backend's output) with the corrected heads moved to
        their target priors; heads without a correction (and other outputs) are passed through."""
        return {k: (self.heads[k].apply(v) if k in self.heads else v) for k, v in probs.items()}

    def check_heads(self, heads: Sequence[Any]) -> None:
        """Raise ``ValueError`` unless every corrected head is a single-label head of ``heads`` (HeadSpecs)
        with the same values in the same order."""
        by_name = {h.name: h for h in heads}
        for name, hp in self.heads.items():
            h = by_name.get(name)
            if h is None or tuple(h.values) != hp.values or getattr(h, "kind", "single") != "single":
                raise ValueError(f"prior-shift head {name!r} does not fit the classifier (expected a single-label "
                                 f"head with {len(hp.values)} values {list(hp.values)[:4]}…)")

    def to_dict(self) -> dict[str, Any]:
        return {"format": PRIOR_SHIFT_FORMAT, "domain": self.domain, "provenance": dict(self.provenance),
                "heads": [h.to_dict() for h in self.heads.values()]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PriorShift:
        if d.get("format") != PRIOR_SHIFT_FORMAT:
            raise ValueError(f"expected a {PRIOR_SHIFT_FORMAT} prior-shift sidecar, got format {d.get('format')!r}")
        heads = [HeadPriors.from_dict(h) for h in d.get("heads") or []]
        if not heads:
            raise ValueError("prior-shift sidecar: expected at least one head")
        return cls(heads={h.head: h for h in heads}, domain=str(d.get("domain", "")),
                   provenance=dict(d.get("provenance") or {}))

    def save(self, path: str | Path) -> Path:
        """Write the sidecar (atomically: a temporary file renamed over ``path``)."""
        return write_sidecar(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> PriorShift:
        d = read_sidecar(path, "prior-shift sidecar")
        try:
            return cls.from_dict(d)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: {exc}") from None

    @classmethod
    def for_weights(cls, weights: str | Path) -> PriorShift | None:
        """The street-prior sidecar of ``weights`` (:func:`street_priors_path`), or None when there is none."""
        path = street_priors_path(weights)
        return cls.load(path) if path.is_file() else None
