"""Forecast share series: the GeoStyle model family plus statsmodels ETS, chosen per series by backtest.

Every model is a function ``(y, h, period) -> forecast[h]`` over a gap-free history ``y``
(gaps are linearly interpolated first, see :func:`fill_gaps`):

=================  =============================================================
``mean``           mean of the history
``last``           last value
``linear``         least-squares line, extrapolated
``ar``             AR(2) by least squares, iterated
``exp_smoothing``  simple exponential smoothing (alpha chosen by one-step SSE)
``seasonal_naive`` the value one season (``period``) earlier
``cyclic``         constant + 2 Fourier harmonics of ``period`` (GeoStyle "cyclic")
``cyclic_linear``  ``cyclic`` + a linear trend (GeoStyle's best long-term model)
``ets``            statsmodels ``ExponentialSmoothing``: damped additive trend, additive
                   season when the history holds two full seasons (heuristic initial
                   states: ~0.1 s a fit instead of ~0.4 s with estimated ones)
=================  =============================================================

:func:`rolling_backtest` scores models on rolling origins (MAE, MAPE); :func:`forecast_all` picks
the model with the lowest backtest MAE per series and forecasts with intervals derived from that
model's backtest errors (± z·RMSE at each horizon step).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

ModelFn = Callable[[np.ndarray, int, int], np.ndarray]


def _mean(y: np.ndarray, h: int, period: int) -> np.ndarray:
    return np.full(h, float(np.mean(y)))


def _last(y: np.ndarray, h: int, period: int) -> np.ndarray:
    return np.full(h, float(y[-1]))


def _design(t: np.ndarray, period: int, harmonics: int, linear: bool) -> np.ndarray:
    cols = [np.ones_like(t, dtype=float)]
    if linear:
        cols.append(t.astype(float))
    for k in range(1, harmonics + 1):
        w = 2 * np.pi * k * t / period
        cols += [np.cos(w), np.sin(w)]
    return np.column_stack(cols)


def _lstsq_forecast(y: np.ndarray, h: int, period: int, harmonics: int, linear: bool) -> np.ndarray:
    t = np.arange(len(y))
    # keep the fit determined: at least 3 observations per parameter, else fewer harmonics
    while harmonics > 0 and len(y) < 3 * (1 + linear + 2 * harmonics):
        harmonics -= 1
    if len(y) < 3 and linear:
        return _mean(y, h, period)
    X = _design(t, period, harmonics, linear)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    return _design(np.arange(len(y), len(y) + h), period, harmonics, linear) @ coef


def _linear(y: np.ndarray, h: int, period: int) -> np.ndarray:
    return _lstsq_forecast(y, h, period, 0, True)


def _cyclic(y: np.ndarray, h: int, period: int) -> np.ndarray:
    return _lstsq_forecast(y, h, period, 2, False)


def _cyclic_linear(y: np.ndarray, h: int, period: int) -> np.ndarray:
    return _lstsq_forecast(y, h, period, 2, True)


def _ar(y: np.ndarray, h: int, period: int, p: int = 2) -> np.ndarray:
    p = min(p, max(0, (len(y) - 2) // 3))
    if p == 0:
        return _mean(y, h, period)
    X = np.column_stack([np.ones(len(y) - p)] + [y[p - i - 1: len(y) - i - 1] for i in range(p)])
    coef, *_ = np.linalg.lstsq(X, y[p:], rcond=None)
    hist = list(y[-p:])
    out = []
    for _ in range(h):
        nxt = coef[0] + sum(coef[i + 1] * hist[-i - 1] for i in range(p))
        out.append(nxt)
        hist.append(nxt)
    return np.asarray(out)


def _exp_smoothing(y: np.ndarray, h: int, period: int) -> np.ndarray:
    best, best_level = np.inf, float(y[0])
    for alpha in (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0):
        level, sse = float(y[0]), 0.0
        for v in y[1:]:
            sse += (v - level) ** 2
            level = alpha * v + (1 - alpha) * level
        if sse < best:
            best, best_level = sse, level
    return np.full(h, best_level)


def _seasonal_naive(y: np.ndarray, h: int, period: int) -> np.ndarray:
    if len(y) < period:
        return _last(y, h, period)
    return np.array([y[len(y) - period + (j % period)] for j in range(h)])


def _ets(y: np.ndarray, h: int, period: int) -> np.ndarray:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    if len(y) < 6:
        return _mean(y, h, period)
    seasonal = "add" if len(y) >= 2 * period + 2 else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ExponentialSmoothing(y, trend="add", damped_trend=True, seasonal=seasonal,
                                     seasonal_periods=period if seasonal else None,
                                     initialization_method="legacy-heuristic")
        fit = model.fit()
    return np.asarray(fit.forecast(h), dtype=float)


MODELS: dict[str, ModelFn] = {
    "mean": _mean, "last": _last, "linear": _linear, "ar": _ar, "exp_smoothing": _exp_smoothing,
    "seasonal_naive": _seasonal_naive, "cyclic": _cyclic, "cyclic_linear": _cyclic_linear, "ets": _ets,
}
PERIOD_OF = {"month": 12, "week": 52, "day": 7}


def _check_models(models: Sequence[str] | None) -> list[str]:
    models = list(MODELS) if models is None else list(models)
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(f"unknown model(s) {unknown}; expected some of {list(MODELS)}")
    return models


def fill_gaps(y: np.ndarray) -> np.ndarray:
    """Linearly interpolate NaNs inside ``y``; hold the nearest value at the ends."""
    y = np.asarray(y, dtype=float)
    ok = ~np.isnan(y)
    if ok.all():
        return y
    if not ok.any():
        raise ValueError("series has no values; expected at least one non-NaN value")
    t = np.arange(len(y))
    return np.interp(t, t[ok], y[ok])


def predict(model: str, y: np.ndarray, h: int, period: int, *, clip: tuple[float, float] | None = (0.0, 1.0)
            ) -> np.ndarray:
    """Forecast ``h`` steps after ``y`` (gaps filled) with one named model."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {list(MODELS)}")
    if h < 1:
        raise ValueError(f"horizon must be >= 1; got {h}")
    y = fill_gaps(y)
    f = np.asarray(MODELS[model](y, h, period), dtype=float)
    if not np.all(np.isfinite(f)):
        log.debug("model %s produced non-finite values; falling back to last value", model)
        f = _last(y, h, period)
    return np.clip(f, *clip) if clip is not None else f


@dataclass
class BacktestResult:
    """Errors of one model on one series: ``errors[origin, step]`` (NaN where the actual is missing)."""

    model: str
    errors: np.ndarray
    actuals: np.ndarray

    @property
    def mae(self) -> float:
        e = np.abs(self.errors)
        return float(np.nanmean(e)) if np.isfinite(e).any() else np.nan

    @property
    def mape(self) -> float:
        ok = np.isfinite(self.errors) & (np.abs(self.actuals) > 1e-9)
        return float(np.mean(np.abs(self.errors[ok]) / np.abs(self.actuals[ok]))) if ok.any() else np.nan

    def rmse_by_step(self) -> np.ndarray:
        e2 = self.errors ** 2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out = np.sqrt(np.nanmean(e2, axis=0))
        overall = np.sqrt(np.nanmean(e2)) if np.isfinite(e2).any() else np.nan
        return np.where(np.isfinite(out), out, overall)


def rolling_backtest(y: np.ndarray, model: str, *, h: int, period: int, n_origins: int = 6, min_train: int = 12,
                     clip: tuple[float, float] | None = (0.0, 1.0)) -> BacktestResult:
    """Rolling-origin backtest: train on ``y[:o]``, forecast ``y[o:o+h]`` for the last ``n_origins`` origins."""
    y = np.asarray(y, dtype=float)
    # full-horizon origins first; partial windows only when the series is too short for any
    origins = list(range(len(y) - h, min_train - 1, -1))[:n_origins] or \
        list(range(len(y) - 1, min_train - 1, -1))[:n_origins]
    if not origins:
        raise ValueError(f"series of length {len(y)} is too short for a backtest with min_train={min_train}")
    errors = np.full((len(origins), h), np.nan)
    actuals = np.full((len(origins), h), np.nan)
    for i, o in enumerate(sorted(origins)):
        if np.isnan(y[:o]).all():
            continue
        f = predict(model, y[:o], h, period, clip=clip)
        act = y[o:o + h]
        actuals[i, :len(act)] = act
        errors[i, :len(act)] = f[:len(act)] - act
    return BacktestResult(model, errors, actuals)


def _backtest_series(args: tuple) -> dict[str, BacktestResult]:
    y, models, h, period, n_origins, min_train, clip = args
    return {m: rolling_backtest(y, m, h=h, period=period, n_origins=n_origins, min_train=min_train, clip=clip)
            for m in models}


def forecast_all(matrix: pd.DataFrame, *, h: int = 6, freq: str = "month", models: Sequence[str] | None = None,
                 n_origins: int = 6, min_train: int | None = None, z: float = 1.96, progress: bool = False,
                 clip: tuple[float, float] | None = (0.0, 1.0), selection: str = "pooled",
                 workers: int | None = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Backtest every model on every column of ``matrix`` (period × series), pick the best, forecast.

    ``selection='series'`` picks, per series, the model with the lowest backtest MAE;
    ``'pooled'`` (default) picks the one model with the lowest backtest MAE averaged over all
    series and uses it for every series — on StreetStyle the per-series choice over-fits the few
    backtest origins (see docs/trends.md). ``workers > 1`` runs the backtests in that many
    processes (``None``: one per CPU).

    Returns ``(scores, forecasts)``: ``scores`` has one row per (series, model) with ``mae``,
    ``mape`` and ``selected``; ``forecasts`` has one row per (series, future period) with the
    chosen ``model``, ``forecast``, ``lo`` and ``hi`` (± z × backtest RMSE at that step).
    """
    models = _check_models(models)
    period = PERIOD_OF.get(freq)
    if period is None:
        raise ValueError(f"unknown period {freq!r}; expected one of {list(PERIOD_OF)}")
    min_train = min_train if min_train is not None else max(6, min(period, len(matrix) // 2))
    from fashionlens.trends.series import _OFFSET

    if isinstance(matrix.index, pd.DatetimeIndex) and len(matrix.index):
        future = pd.date_range(matrix.index[-1], periods=h + 1, freq=_OFFSET[freq])[1:]
    else:
        future = pd.RangeIndex(len(matrix), len(matrix) + h)
    if selection not in ("series", "pooled"):
        raise ValueError(f"unknown selection {selection!r}; expected 'series' or 'pooled'")
    cols = list(matrix.columns)
    backtests: dict[str, dict[str, BacktestResult]] = {}
    todo = []
    for key in cols:
        y = matrix[key].to_numpy(dtype=float)
        if np.isfinite(y).sum() < min_train + 1:
            log.info("skipping %s: %d values, need %d", key, int(np.isfinite(y).sum()), min_train + 1)
            continue
        todo.append(key)
    args = [(matrix[k].to_numpy(dtype=float), models, h, period, n_origins, min_train, clip) for k in todo]
    workers = min(workers if workers is not None else (os.cpu_count() or 1), len(todo))
    if workers > 1 and len(todo) >= 4:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as ex:
            results_iter = ex.map(_backtest_series, args)
            if progress:
                from tqdm.auto import tqdm
                results_iter = tqdm(results_iter, total=len(todo), desc="forecast backtests", unit="series")
            backtests = dict(zip(todo, results_iter))
    else:
        it = args
        if progress:
            from tqdm.auto import tqdm
            it = tqdm(args, desc="forecast backtests", unit="series")
        backtests = dict(zip(todo, (_backtest_series(a) for a in it)))
    pooled_best = None
    if backtests:
        pooled = {m: np.nanmean([r[m].mae for r in backtests.values()]) for m in models}
        pooled_best = min(models, key=lambda m: pooled[m] if np.isfinite(pooled[m]) else np.inf)
    score_rows, fc_rows = [], []
    for key, results in backtests.items():
        maes = {m: r.mae for m, r in results.items()}
        if selection == "pooled":
            best = pooled_best
        else:
            best = min((m for m in models if np.isfinite(maes[m])), key=lambda m: maes[m], default=models[0])
        for m, r in results.items():
            score_rows.append({"series": key, "model": m, "mae": r.mae, "mape": r.mape, "selected": m == best})
        y = matrix[key].to_numpy(dtype=float)
        f = predict(best, y, h, period, clip=clip)
        spread = z * results[best].rmse_by_step()
        lo, hi = f - spread, f + spread
        if clip is not None:
            lo, hi = np.clip(lo, *clip), np.clip(hi, *clip)
        for j in range(h):
            fc_rows.append({"series": key, "period": future[j], "step": j + 1, "model": best,
                            "forecast": f[j], "lo": lo[j], "hi": hi[j]})
    return pd.DataFrame(score_rows), pd.DataFrame(fc_rows)


def holdout_evaluation(matrix: pd.DataFrame, *, holdout: int = 6, freq: str = "month",
                       models: Sequence[str] | None = None, n_origins: int = 6, progress: bool = False
                       ) -> pd.DataFrame:
    """Hold out the last ``holdout`` periods; per series, the holdout MAE/MAPE of every model and of
    the models :func:`forecast_all` selects on the remaining history (rows ``selected_per_series``
    and ``selected_pooled``; ``chosen`` names the model). MAPE skips zero actuals."""
    models = _check_models(models)
    if len(matrix) <= holdout + 6:
        raise ValueError(f"need more than {holdout + 6} periods for a {holdout}-period holdout; got {len(matrix)}")
    train, test = matrix.iloc[:-holdout], matrix.iloc[-holdout:]
    chosen: dict[str, dict[str, str]] = {}
    for sel in ("series", "pooled"):
        scores, _ = forecast_all(train, h=holdout, freq=freq, models=models, n_origins=n_origins,
                                 progress=progress, selection=sel)
        chosen[sel] = dict(zip(scores.loc[scores["selected"], "series"], scores.loc[scores["selected"], "model"]))
    period = PERIOD_OF[freq]
    rows = []
    for key in matrix.columns:
        y, act = train[key].to_numpy(float), test[key].to_numpy(float)
        ok = np.isfinite(act)
        if not ok.any() or np.isfinite(y).sum() < 2:
            continue
        per_model = {}
        for m in models:
            f = predict(m, y, holdout, period)
            err = np.abs(f - act)[ok]
            nz = np.abs(act[ok]) > 1e-9
            mape = float(np.mean(err[nz] / np.abs(act[ok][nz]))) if nz.any() else np.nan
            per_model[m] = {"mae": float(err.mean()), "mape": mape}
            rows.append({"series": key, "model": m, **per_model[m], "chosen": m})
        for sel, name in (("series", "selected_per_series"), ("pooled", "selected_pooled")):
            c = chosen[sel].get(key, "mean")
            rows.append({"series": key, "model": name, **per_model[c], "chosen": c})
    return pd.DataFrame(rows)


def summarise_holdout(evaluation: pd.DataFrame) -> pd.DataFrame:
    """Mean holdout MAE/MAPE per model, with the improvement over the ``mean`` and ``last`` baselines."""
    t = evaluation.groupby("model").agg(series=("series", "nunique"), mae=("mae", "mean"), mape=("mape", "mean"))
    for base in ("mean", "last"):
        if base in t.index:
            t[f"vs_{base}"] = 1 - t["mae"] / t.loc[base, "mae"]
    return t.sort_values("mae")
