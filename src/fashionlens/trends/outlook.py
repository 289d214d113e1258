"""Which series will change most, and how sure the forecast is of it: the ranking behind the web
app's default trends view and the report's forecast chart.

For every forecast series (:func:`~fashionlens.trends.forecast.forecast_all`):

* ``change = forecast[h] - last observed share`` (``h``: the last forecast step, the horizon);
* ``width = hi[h] - lo[h]``, the forecast interval at the horizon (± 1.96 × backtest RMSE);
* ``confidence = |change| / width``. Above 0.5 the last observed share lies outside the horizon's
  interval: the model expects a change larger than its own backtest error.

Series whose chosen model does not beat the naive forecast (``last`` value) in the rolling backtest
(lower mean absolute error on the same series) are kept but ranked after every series that does: a
change predicted by a model that cannot beat "nothing changes" tells nothing.

Binary attributes (values ``yes``/``no`` only, any case) keep only the ``yes`` series: the ``no``
share is one minus it and would fill the ranking with mirror images.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from fashionlens.trends.forecast import MODELS, forecast_all
from fashionlens.trends.series import GLOBAL, Freq, share_matrix

NAIVE = "last"
# every model but statsmodels ETS (~0.1 s a fit; the others take microseconds): what the service uses
FAST_MODELS: tuple[str, ...] = tuple(m for m in MODELS if m != "ets")
_BINARY_VALUES = frozenset({"yes", "no"})
RANKING_COLUMNS: tuple[str, ...] = (
    "rank", "series", "attribute", "value", "last_period", "last_share", "horizon_period", "forecast", "lo", "hi",
    "change", "width", "confidence", "model", "mae", "baseline_mae", "skill", "beats_baseline")


def _split(key: str) -> tuple[str, str]:
    attribute, _, value = str(key).partition("=")
    return attribute, value


def binary_attributes(keys: Iterable[str]) -> set[str]:
    """Attributes of the ``attribute=value`` series ``keys`` whose values are all ``yes``/``no`` (any case)."""
    values: dict[str, set[str]] = {}
    for key in keys:
        attribute, value = _split(key)
        values.setdefault(attribute, set()).add(value.strip().lower())
    return {a for a, vs in values.items() if vs <= _BINARY_VALUES}


def without_binary_negatives(keys: Sequence[str]) -> list[str]:
    """``keys`` without the ``no`` series of binary attributes (see :func:`binary_attributes`), in order."""
    binary = binary_attributes(keys)
    return [k for k in keys if not (_split(k)[0] in binary and _split(k)[1].strip().lower() == "no")]


def rank_forecast_changes(matrix: pd.DataFrame, scores: pd.DataFrame, forecasts: pd.DataFrame, *,
                          baseline: str = NAIVE, binary_yes_only: bool = True,
                          min_width: float = 1e-6) -> pd.DataFrame:
    """Rank forecast series by how confidently their model predicts a change (see the module docstring).

    ``matrix`` is the period × series share matrix that was forecast, ``scores`` and ``forecasts``
    are :func:`~fashionlens.trends.forecast.forecast_all`'s answer for it; ``scores`` should hold the
    ``baseline`` model's backtest (without it no series counts as beating it). Interval widths below
    ``min_width`` count as ``min_width``.

    Returns one row per forecast series (columns :data:`RANKING_COLUMNS`), best first: series that
    beat the baseline by ``confidence`` (descending), then the others by ``confidence``; ties by
    name. ``rank`` is 1, 2, … for the series that beat the baseline and 0 for the rest; ``skill`` is
    ``1 - mae / baseline_mae``.
    """
    if forecasts is None or forecasts.empty:
        return pd.DataFrame(columns=list(RANKING_COLUMNS))
    keys = list(dict.fromkeys(forecasts["series"]))
    if binary_yes_only:
        keys = without_binary_negatives(keys)
    mae = {}
    base = {}
    if scores is not None and not scores.empty:
        sel = scores[scores["selected"]]
        mae = dict(zip(sel["series"], sel["mae"]))
        b = scores[scores["model"] == baseline]
        base = dict(zip(b["series"], b["mae"]))
    rows = []
    for key in keys:
        f = forecasts[forecasts["series"] == key].sort_values("step")
        end = f.iloc[-1]
        y = matrix[key] if key in matrix.columns else pd.Series(dtype=float)
        y = y[y.notna()]
        if y.empty:
            continue
        last_share = float(y.iloc[-1])
        change = float(end["forecast"]) - last_share
        width = max(float(end["hi"]) - float(end["lo"]), min_width)
        confidence = abs(change) / width if np.isfinite(width) else np.nan
        m, bm = float(mae.get(key, np.nan)), float(base.get(key, np.nan))
        attribute, value = _split(key)
        rows.append({"series": key, "attribute": attribute, "value": value, "last_period": y.index[-1],
                     "last_share": last_share, "horizon_period": end["period"], "forecast": float(end["forecast"]),
                     "lo": float(end["lo"]), "hi": float(end["hi"]), "change": change, "width": width,
                     "confidence": confidence, "model": end["model"], "mae": m, "baseline_mae": bm,
                     "skill": 1 - m / bm if np.isfinite(m) and np.isfinite(bm) and bm > 0 else np.nan,
                     "beats_baseline": bool(np.isfinite(m) and np.isfinite(bm) and m < bm)})
    if not rows:
        return pd.DataFrame(columns=list(RANKING_COLUMNS))
    out = pd.DataFrame(rows)
    out["_c"] = out["confidence"].fillna(-1.0)
    out = out.sort_values(["beats_baseline", "_c", "series"], ascending=[False, False, True], ignore_index=True)
    out["rank"] = np.where(out["beats_baseline"], np.arange(1, len(out) + 1), 0)
    return out[list(RANKING_COLUMNS)]


def outlook_matrix(shares: pd.DataFrame, freq: Freq, *, attribute: str | None = None, max_series: int = 48,
                   min_points: int = 12) -> pd.DataFrame:
    """The global share matrix of the series worth forecasting for :func:`forecast_outlook`: at least
    ``min_points`` supported periods, only ``attribute``'s series when given, binary attributes'
    ``no`` series left out, then the ``max_series`` with the most labelled posts."""
    m, n = share_matrix(shares, freq, place=GLOBAL)
    if m.empty:
        return m
    cols = [c for c in m.columns if attribute is None or _split(c)[0] == attribute]
    cols = without_binary_negatives(cols)
    m = m[cols]
    ok = m.notna().sum() >= min_points
    volume = (m.notna() * n[cols]).sum()[ok].sort_values(ascending=False, kind="stable")
    return m[volume.index[:max_series]]


def forecast_outlook(shares: pd.DataFrame, freq: Freq = "month", *, horizon: int = 6, attribute: str | None = None,
                     max_series: int = 48, min_points: int = 12, models: Sequence[str] | None = FAST_MODELS,
                     baseline: str = NAIVE, n_origins: int = 4, selection: str = "pooled",
                     workers: int | None = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Forecast the series of :func:`outlook_matrix` and rank them with :func:`rank_forecast_changes`.

    ``shares`` is :func:`~fashionlens.trends.series.attribute_shares`' table. ``models`` (default:
    all but ETS; ``None``: all) always gets the ``baseline`` model added. Returns ``(ranking,
    forecasts)``: the ranking (best first) and the forecasts of every ranked series; both empty
    when fewer than 8 periods or no series qualify.
    """
    fm = outlook_matrix(shares, freq, attribute=attribute, max_series=max_series, min_points=min_points)
    models = list(MODELS) if models is None else list(models)
    if baseline not in models:
        models.append(baseline)
    if fm.empty or not fm.shape[1] or len(fm) < 8:
        return pd.DataFrame(columns=list(RANKING_COLUMNS)), pd.DataFrame()
    scores, forecasts = forecast_all(fm, h=horizon, freq=freq, models=models, n_origins=n_origins,
                                     selection=selection, workers=workers)
    ranking = rank_forecast_changes(fm, scores, forecasts, baseline=baseline)
    if not forecasts.empty:
        forecasts = forecasts[forecasts["series"].isin(ranking["series"])].reset_index(drop=True)
    return ranking, forecasts
