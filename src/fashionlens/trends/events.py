"""Events in share series: spikes, sustained shifts, rising/falling values per place, lead–lag.

* **Spikes**: a robust (bisquare-reweighted) fit of level + linear trend + 2 seasonal harmonics;
  a period is a spike when its residual's robust z-score (residual / 1.4826·MAD) exceeds
  ``z_threshold``.
* **Shifts** (sustained rises/falls): binary segmentation for a change in mean of the
  de-seasonalised series; a split is kept when its t-statistic (noise scale from the MAD of first
  differences) exceeds ``t_threshold`` and both sides have ``min_segment`` periods.
* **Rising/falling**: least-squares slope of the share over the last ``window`` periods, per
  place, with its t-statistic.
* **Lead–lag**: cross-correlation of two places' linearly detrended series; a positive lag means
  the first place moves first.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from fashionlens.trends.forecast import PERIOD_OF, _design
from fashionlens.trends.series import GLOBAL, Freq, share_matrix

log = logging.getLogger(__name__)
_MAD = 1.4826


def _robust_scale(r: np.ndarray) -> float:
    r = r[np.isfinite(r)]
    if len(r) == 0:
        return np.nan
    s = _MAD * np.median(np.abs(r - np.median(r)))
    return float(s) if s > 0 else float(np.std(r)) or 1e-12


def robust_seasonal_fit(t: np.ndarray, y: np.ndarray, period: int, *, iterations: int = 5
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Bisquare-IRLS fit of level + trend + seasonal harmonics at times ``t``.

    Returns ``(fitted, seasonal)``: the fitted values and their seasonal (harmonic) part alone.
    """
    harmonics = 2
    while harmonics > 0 and len(y) < 4 * (2 + 2 * harmonics):
        harmonics -= 1
    X = _design(t.astype(float), period, harmonics, True)
    w = np.ones(len(y))
    coef = np.zeros(X.shape[1])
    for _ in range(iterations):
        sw = np.sqrt(w)
        coef, *_ = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)
        r = y - X @ coef
        s = _robust_scale(r)
        u = r / (4.685 * s)
        w = np.where(np.abs(u) < 1, (1 - u ** 2) ** 2, 0.0)
        if w.sum() < 2 * X.shape[1]:
            break
    return X @ coef, X[:, 2:] @ coef[2:]


def _observed_series(matrix: pd.DataFrame, min_points: int):
    """Per column with at least ``min_points`` finite values: ``(key, values, finite mask, indices)``."""
    for key in matrix.columns:
        y = matrix[key].to_numpy(float)
        ok = np.isfinite(y)
        if ok.sum() >= min_points:
            yield key, y, ok, np.flatnonzero(ok)


def detect_spikes(matrix: pd.DataFrame, freq: Freq = "month", *, counts: pd.DataFrame | None = None,
                  z_threshold: float | None = None, min_points: int = 12) -> pd.DataFrame:
    """Spikes in every column of ``matrix`` (period × series), ranked by |z|.

    The residual scale is the robust (MAD) scale of the series' residuals or, where ``counts``
    (labelled posts per period, same shape) is given and larger, the binomial standard error
    ``sqrt(p(1-p)/n)`` of the expected share (floored at 3/n) — so a rare value seen a few times in
    a small month is not a spike. Columns ``series, period, value, expected, residual, z, direction``.

    ``z_threshold`` defaults to 3.5 with ``counts`` and 4.0 without (tuned on generated series
    for recall >= 0.9 at 6-sigma spikes with <= 1 false event per 100 series-months; see
    docs/trends.md).
    """
    if z_threshold is None:
        z_threshold = 3.5 if counts is not None else 4.0
    period = PERIOD_OF[freq]
    rows = []
    for key, y, ok, t in _observed_series(matrix, min_points):
        fit, _ = robust_seasonal_fit(t, y[ok], period)
        r = y[ok] - fit
        scale = np.full(len(r), _robust_scale(r))
        if counts is not None and key in counts.columns:
            n = np.maximum(counts[key].to_numpy(float)[ok], 1.0)
            # expected counts under ~3 make the Gaussian tail far too thin: floor the share at 3/n
            p = np.clip(fit, np.minimum(3.0 / n, 0.5), 1 - np.minimum(3.0 / n, 0.5))
            scale = np.maximum(scale, np.sqrt(p * (1 - p) / n))
        z = (r - np.median(r)) / scale
        for i in np.flatnonzero(np.abs(z) > z_threshold):
            rows.append({"series": key, "period": matrix.index[t[i]], "value": y[ok][i], "expected": fit[i],
                         "residual": r[i], "z": z[i], "direction": "up" if z[i] > 0 else "down"})
    out = pd.DataFrame(rows, columns=["series", "period", "value", "expected", "residual", "z", "direction"])
    return out.reindex(out["z"].abs().sort_values(ascending=False).index).reset_index(drop=True)


def _best_split(d: np.ndarray, min_segment: int) -> tuple[int, float]:
    n = len(d)
    if n < 2 * min_segment:
        return -1, 0.0
    cs = np.cumsum(d)
    k = np.arange(min_segment, n - min_segment + 1)
    m1 = cs[k - 1] / k
    m2 = (cs[-1] - cs[k - 1]) / (n - k)
    stat = np.abs(m2 - m1) / np.sqrt(1 / k + 1 / (n - k))
    i = int(np.argmax(stat))
    return int(k[i]), float(stat[i])


def detect_shifts(matrix: pd.DataFrame, freq: Freq = "month", *, counts: pd.DataFrame | None = None,
                  t_threshold: float = 5.0, min_segment: int = 4, max_depth: int = 2, min_points: int = 12
                  ) -> pd.DataFrame:
    """Sustained level changes per series, ranked by |t|: ``series, period, before, after, change, t, direction``.

    The noise scale is the robust scale of first differences / sqrt(2), floored (with ``counts``)
    at the median binomial standard error of the series' mean share.
    """
    period = PERIOD_OF[freq]
    rows = []
    for key, y, ok, t in _observed_series(matrix, min_points):
        v = y[ok]
        # remove the seasonal part only (level and trend steps stay in d)
        _, harm = robust_seasonal_fit(t, v, period)
        d = v - harm
        scale = _robust_scale(np.diff(d)) / np.sqrt(2)
        if counts is not None and key in counts.columns:
            n = np.maximum(counts[key].to_numpy(float)[ok], 1.0)
            pm = float(np.clip(np.mean(v), 1 / np.median(n), 1 - 1 / np.median(n)))
            scale = max(scale, float(np.median(np.sqrt(pm * (1 - pm) / n))))

        def split(lo: int, hi: int, depth: int) -> None:
            k, stat = _best_split(d[lo:hi], min_segment)
            if k < 0 or depth > max_depth:
                return
            tstat = stat / scale
            if tstat < t_threshold:
                return
            before, after = float(d[lo:lo + k].mean()), float(d[lo + k:hi].mean())
            rows.append({"series": key, "period": matrix.index[t[lo + k]], "before": before, "after": after,
                         "change": after - before, "t": tstat, "direction": "rise" if after > before else "fall"})
            split(lo, lo + k, depth + 1)
            split(lo + k, hi, depth + 1)

        split(0, len(d), 1)
    out = pd.DataFrame(rows, columns=["series", "period", "before", "after", "change", "t", "direction"])
    return out.sort_values("t", ascending=False, ignore_index=True)


def rising_falling(shares: pd.DataFrame, freq: Freq = "month", *, window: int = 12, min_points: int = 6,
                   t_threshold: float = 2.0) -> pd.DataFrame:
    """Per place and series: slope of the share over the last ``window`` periods (per period), its t,
    and ``trend`` = rising / falling / flat (|t| < ``t_threshold``). Ranked by |t| within place."""
    rows = []
    for place in sorted(shares["place"].unique()):
        m, _ = share_matrix(shares, freq, place=place)
        if m.empty:
            continue
        m = m.iloc[-window:]
        for key in m.columns:
            y = m[key].to_numpy(float)
            ok = np.isfinite(y)
            if ok.sum() < min_points:
                continue
            x = np.arange(len(y))[ok].astype(float)
            yy = y[ok]
            xm = x - x.mean()
            slope = float((xm * (yy - yy.mean())).sum() / (xm ** 2).sum())
            resid = yy - yy.mean() - slope * xm
            se = np.sqrt((resid ** 2).sum() / max(len(yy) - 2, 1) / (xm ** 2).sum())
            tstat = slope / se if se > 0 else 0.0
            trend = "flat" if abs(tstat) < t_threshold else ("rising" if slope > 0 else "falling")
            rows.append({"place": place, "series": key, "slope_per_period": slope, "t": tstat,
                         "first": float(yy[0]), "last": float(yy[-1]), "points": int(ok.sum()), "trend": trend})
    out = pd.DataFrame(rows, columns=["place", "series", "slope_per_period", "t", "first", "last", "points", "trend"])
    return out.reindex(out["t"].abs().sort_values(ascending=False).index).reset_index(drop=True)


def _detrend(y: np.ndarray) -> np.ndarray:
    x = np.arange(len(y), dtype=float)
    coef = np.polyfit(x, y, 1)
    return y - np.polyval(coef, x)


def cross_correlation(a: np.ndarray, b: np.ndarray, max_lag: int) -> dict[int, float]:
    """corr(a[t], b[t + lag]) for lag in [-max_lag, max_lag] (positive lag: ``a`` moves first)."""
    out = {}
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[: len(a) - lag], b[lag:]) if lag >= 0 else (a[-lag:], b[: len(b) + lag])
        if len(x) < 4 or np.std(x) == 0 or np.std(y) == 0:
            continue
        out[lag] = float(np.corrcoef(x, y)[0, 1])
    return out


def lead_lag(shares: pd.DataFrame, series: str, freq: Freq = "month", *, places: list[str] | None = None,
             max_lag: int = 3, min_overlap: int = 12) -> pd.DataFrame:
    """For one ``attribute=value`` series, the best cross-correlation lag between every pair of places.

    Columns ``series, leader, follower, lag, corr, overlap, significant``: ``leader`` shows the
    movement ``lag`` periods before ``follower`` (lag 0: together); ``significant`` when ``corr``
    exceeds the white-noise bound z/sqrt(overlap) with z Bonferroni-corrected over the lags tried
    (detrended series are not white noise, so treat it as a screen, not a test).
    """
    places = places or sorted(p for p in shares["place"].unique() if p != GLOBAL)
    cols = {}
    for p in places:
        m, _ = share_matrix(shares, freq, place=p)
        if series in m.columns:
            cols[p] = m[series]
    if len(cols) < 2:
        return pd.DataFrame(columns=["series", "leader", "follower", "lag", "corr", "overlap", "significant"])
    from scipy.stats import norm

    z_crit = float(norm.ppf(1 - 0.025 / (2 * max_lag + 1)))
    wide = pd.DataFrame(cols)
    rows = []
    names = list(wide.columns)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            pair = wide[[a, b]].dropna()
            if len(pair) < min_overlap:
                continue
            # series with gaps are compared on their common periods only
            cc = cross_correlation(_detrend(pair[a].to_numpy()), _detrend(pair[b].to_numpy()), max_lag)
            if not cc:
                continue
            lag = max(cc, key=lambda k: cc[k])
            leader, follower, l = (a, b, lag) if lag >= 0 else (b, a, -lag)
            # white-noise bound for the best of the tried lags (Bonferroni over lags, 5 %)
            bound = z_crit / np.sqrt(max(len(pair) - abs(lag), 1))
            rows.append({"series": series, "leader": leader, "follower": follower, "lag": l, "corr": cc[lag],
                         "overlap": len(pair), "significant": bool(cc[lag] > bound)})
    out = pd.DataFrame(rows, columns=["series", "leader", "follower", "lag", "corr", "overlap", "significant"])
    return out.sort_values("corr", ascending=False, ignore_index=True)
