"""Label-imbalance statistics of multi-label data, and an image-size summary.

The label statistics take either

* a binary label matrix ``Y`` (a :class:`numpy.ndarray`, ``n_samples × n_labels``, bool or 0/1), or
* a list of label lists, one per sample (``[["shirts", "jeans"], ["dresses"], ...]``); any
  hashable labels; repeats within a sample count once. Columns are the sorted union of the
  labels; use :func:`label_matrix` to fix the label order (and include labels with no sample).

A numpy array is always read as a label matrix, any other sequence as label lists.

Measures (Charte et al.):

* ``IRLbl(l) = max_l' count(l') / count(l)`` — 1 for the most frequent label, larger for rarer ones.
* ``MeanIR = mean_l IRLbl(l)``.
* ``SCUMBLE`` — how much rare and frequent labels occur *together* in the same samples.

Labels with a zero count are excluded from every measure: their IRLbl is undefined (NaN in
:func:`imbalance_ratio_per_label`) and they are left out of MeanIR and SCUMBLE.

References:
    F. Charte, A. J. Rivera, M. J. del Jesus, F. Herrera. "Addressing imbalance in multilabel
    classification: Measures and random resampling algorithms." Neurocomputing 163 (2015) 3–16.
    (IRLbl, MeanIR)

    F. Charte, A. J. Rivera, M. J. del Jesus, F. Herrera. "Dealing with difficult minority
    labels in imbalanced multilabel data sets." Neurocomputing 326–327 (2019) 39–53.
    (SCUMBLE over the active labels of each sample)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Union

import numpy as np

LabelInput = Union[np.ndarray, Sequence[Iterable[Hashable]]]

__all__ = [
    "LabelInput",
    "image_size_summary",
    "imbalance_ratio_per_label",
    "label_matrix",
    "mean_imbalance_ratio",
    "scumble",
]


def label_matrix(
    samples: Sequence[Iterable[Hashable]], labels: Sequence[Hashable] | None = None
) -> tuple[np.ndarray, list[Hashable]]:
    """Turn label lists into a bool matrix ``(n_samples, n_labels)`` and its column labels.

    ``labels`` fixes the column order (and may list labels no sample has); by default the
    columns are the sorted union of the samples' labels. A label outside ``labels`` raises.
    """
    if isinstance(samples, np.ndarray) or isinstance(samples, (str, bytes)):
        raise ValueError(f"expected a sequence of label lists, got {type(samples).__name__}")
    sets: list[set[Hashable]] = []
    for i, s in enumerate(samples):
        if isinstance(s, (str, bytes)) or not isinstance(s, Iterable):
            raise ValueError(
                f"sample {i}: expected a list of labels, got {type(s).__name__} {s!r}"
                " (wrap a single label in a list)"
            )
        sets.append(set(s))
    if labels is None:
        union = set().union(*sets) if sets else set()
        try:
            columns: list[Hashable] = sorted(union)  # type: ignore[type-var]
        except TypeError:
            raise ValueError(
                "labels of mixed types cannot be sorted; pass labels=[...] to fix the column order"
            ) from None
    else:
        columns = list(labels)
        if len(set(columns)) != len(columns):
            raise ValueError(f"labels repeat a name: {columns}")
    index = {lab: j for j, lab in enumerate(columns)}
    y = np.zeros((len(sets), len(columns)), dtype=bool)
    for i, s in enumerate(sets):
        for lab in s:
            if lab not in index:
                raise ValueError(f"sample {i}: label {lab!r} is not in labels={columns}")
            y[i, index[lab]] = True
    return y, columns


def _as_matrix(y: LabelInput) -> np.ndarray:
    if isinstance(y, np.ndarray):
        if y.ndim != 2:
            raise ValueError(f"expected a 2-D label matrix (n_samples, n_labels), got shape {y.shape}")
        if y.dtype != bool:
            if y.size and not np.isin(y, (0, 1)).all():
                raise ValueError(f"expected a binary label matrix (bool or 0/1), got values {np.unique(y)[:10]}")
            y = y.astype(bool)
        mat = y
    else:
        mat, _ = label_matrix(y)
    if mat.shape[0] == 0 or mat.shape[1] == 0:
        raise ValueError(f"expected at least one sample and one label, got shape {mat.shape}")
    if not mat.any():
        raise ValueError("no sample has any label: imbalance is undefined")
    return mat


def _irlbl(mat: np.ndarray) -> np.ndarray:
    counts = mat.sum(axis=0).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ir = counts.max() / counts
    ir[counts == 0] = np.nan
    return ir


def imbalance_ratio_per_label(Y: LabelInput) -> np.ndarray:
    """IRLbl of every label: ``max count / count of the label`` (Charte et al. 2015).

    Returns a float array with one entry per column (per sorted label for label lists); the
    most frequent label has 1.0, labels with a zero count have NaN (excluded).
    Raises ValueError on empty input or input with no label at all.
    """
    return _irlbl(_as_matrix(Y))


def mean_imbalance_ratio(Y: LabelInput) -> float:
    """MeanIR: the mean IRLbl over labels with a non-zero count (Charte et al. 2015).

    1.0 means perfectly balanced label frequencies.
    """
    ir = _irlbl(_as_matrix(Y))
    return float(np.nanmean(ir))


def scumble(Y: LabelInput) -> float:
    """SCUMBLE: concurrence of imbalanced labels (Charte et al. 2019).

    For a sample ``i`` with active labels ``L_i`` (``|L_i| ≥ 1``) and ``IR_l`` the IRLbl of label ``l``::

        SCUMBLE_i = 1 - (prod_{l in L_i} IR_l) ** (1 / |L_i|) / (sum_{l in L_i} IR_l / |L_i|)

    i.e. one minus the ratio of the geometric to the arithmetic mean of the IRLbl of its labels:
    0 when all its labels are equally (im)balanced (always 0 for a single label), towards 1 when
    a very rare label co-occurs with very frequent ones.
    ``SCUMBLE = mean_i SCUMBLE_i`` over the samples with at least one label; samples with no
    label are left out. In [0, 1).
    """
    mat = _as_matrix(Y)
    ir = _irlbl(mat)
    rows = mat[mat.any(axis=1)]
    # zero-count labels are never active, so NaN IRLbl never enters a row
    log_ir = np.where(rows, np.log(np.nan_to_num(ir, nan=1.0)), 0.0)
    n_active = rows.sum(axis=1)
    geo = np.exp(log_ir.sum(axis=1) / n_active)
    arith = np.where(rows, np.nan_to_num(ir, nan=0.0), 0.0).sum(axis=1) / n_active
    per_sample = 1.0 - geo / arith
    return float(np.clip(per_sample, 0.0, 1.0).mean())


_MP_PERCENTILES = {"min": 0, "p05": 5, "p25": 25, "median": 50, "p75": 75, "p95": 95, "max": 100}


def image_size_summary(sizes: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """Summarise image sizes given as ``(width, height)`` pixel pairs.

    Returns::

        {"n_images": n,
         "width":  {"min", "median", "max"},
         "height": {"min", "median", "max"},
         "megapixels": {"min", "p05", "p25", "median", "p75", "p95", "max"}}

    with plain Python numbers (megapixels = width × height / 1e6, linear-interpolated
    percentiles). Raises ValueError on an empty list or a size that is not two positive integers.
    """
    if isinstance(sizes, np.ndarray):
        sizes = [tuple(s) for s in sizes.tolist()]
    if len(sizes) == 0:
        raise ValueError("expected at least one (width, height) size, got none")
    wh = np.empty((len(sizes), 2), dtype=np.int64)
    for i, s in enumerate(sizes):
        try:
            w, h = s
        except (TypeError, ValueError):
            raise ValueError(f"size {i}: expected a (width, height) pair, got {s!r}") from None
        for v in (w, h):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"size {i}: expected positive integer width and height, got {s!r}")
        wh[i] = (w, h)
    mp = wh[:, 0].astype(float) * wh[:, 1] / 1e6

    def _mmm(col: np.ndarray) -> dict[str, float]:
        return {"min": int(col.min()), "median": float(np.median(col)), "max": int(col.max())}

    return {
        "n_images": len(sizes),
        "width": _mmm(wh[:, 0]),
        "height": _mmm(wh[:, 1]),
        "megapixels": {k: float(np.percentile(mp, q)) for k, q in _MP_PERCENTILES.items()},
    }
