"""``GET /v1/trends`` (datasets), ``GET /v1/trends/{dataset}/series`` (attribute shares per period with
Wilson intervals), ``GET /v1/trends/{dataset}/report`` (validation, volume, events, forecasts) and
``GET /v1/trends/{dataset}/outlook`` (series ranked by forecast change, see
:mod:`fashionlens.trends.outlook`) for the datasets configured in the settings
(``FASHIONLENS_TRENDS``), loaded once per worker."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from fashionlens.service.deps import PROBLEM_RESPONSES, Problem, ServiceState, get_state
from fashionlens.service.problems import PROBLEM_MEDIA_TYPE, ApiProblem

router = APIRouter(prefix="/v1/trends", tags=["trends"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    404: {"description": "no such dataset", "model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}}}
_REPORT_CACHE_SIZE = 16

Period = Literal["day", "week", "month"]


def _records(df: pd.DataFrame | None, limit: int | None = None) -> list[dict[str, Any]]:
    if df is None or df.empty:
        return []
    if limit is not None:
        df = df.head(limit)
    return json.loads(df.to_json(orient="records", date_format="iso"))


def _dataset(state: ServiceState, name: str) -> Any:
    data = state.models.trends.get(name)
    if data is None:
        raise ApiProblem("not_found", f"expected a trends dataset in {sorted(state.models.trends) or '(none configured)'}; "
                         f"got {name!r}")
    return data


@router.get("", summary="the trends datasets this server holds", responses=PROBLEM_RESPONSES)
async def datasets(state: Annotated[ServiceState, Depends(get_state)]) -> Any:
    state.require_ready()
    out = []
    for name, data in sorted(state.models.trends.items()):
        ts = data.posts["timestamp"]
        out.append({"name": name, "posts": len(data), "attributes": data.attributes,
                    "first": ts.min().isoformat() if len(ts) else None, "last": ts.max().isoformat() if len(ts) else None,
                    "sources": [str(s) for s in data.sources]})
    return JSONResponse({"datasets": out})


_DATASET = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="dataset name")


@router.get("/{dataset}/series", summary="shares of attribute values per period (Wilson 95% intervals)",
            responses=_RESPONSES)
async def series(
    dataset: Annotated[str, _DATASET],
    state: Annotated[ServiceState, Depends(get_state)],
    period: Annotated[Period, Query()] = "month",
    attribute: Annotated[str | None, Query(max_length=64, description="only this attribute")] = None,
    value: Annotated[str | None, Query(max_length=64, description="only this value")] = None,
    place: Annotated[str, Query(max_length=64, description="'all' or a place (city)")] = "all",
    min_support: Annotated[int, Query(ge=1, le=1_000_000, description="labelled posts a period needs to count")
                           ] = 30,
) -> Any:
    state.require_ready()
    data = _dataset(state, dataset)

    def job() -> dict[str, Any]:
        from fashionlens.trends.series import GLOBAL, attribute_shares

        if attribute is not None and attribute not in data.attributes:
            raise ApiProblem("invalid_request", f"attribute: expected one of {data.attributes}; got {attribute!r}")
        shares = attribute_shares(data, period, by_place=place != GLOBAL, min_support=min_support,
                                  attributes=[attribute] if attribute else None)
        shares = shares[shares["place"] == place]
        if value is not None:
            shares = shares[shares["value"] == value]
        out = []
        for (a, v), g in shares.groupby(["attribute", "value"], sort=True):
            out.append({"attribute": a, "value": v, "points": _records(
                g[["period", "n", "k", "share", "ci_low", "ci_high", "supported"]])})
        return {"dataset": dataset, "period": period, "place": place, "min_support": min_support, "series": out}

    return JSONResponse(await state.queue.run(job))


@router.get("/{dataset}/report", summary="validation, volume, events (spikes, shifts, rising/falling), forecasts",
            responses=_RESPONSES)
async def report(
    dataset: Annotated[str, _DATASET],
    state: Annotated[ServiceState, Depends(get_state)],
    period: Annotated[Period, Query()] = "month",
    min_support: Annotated[int, Query(ge=1, le=1_000_000)] = 30,
    horizon: Annotated[int, Query(ge=1, le=24, description="periods to forecast")] = 6,
    max_series: Annotated[int, Query(ge=0, le=32, description="forecast the N most-labelled series (0: none)")] = 8,
) -> Any:
    state.require_ready()
    data = _dataset(state, dataset)
    key = ("trends_report", dataset, period, min_support, horizon, max_series)
    with state.cache_lock:
        cached = state.cache.get(key)
    if cached is not None:
        return JSONResponse(cached)

    def job() -> dict[str, Any]:
        from fashionlens.trends.events import (
            detect_shifts,
            detect_spikes,
            rising_falling,
        )
        from fashionlens.trends.forecast import forecast_all
        from fashionlens.trends.report import forecast_matrix
        from fashionlens.trends.series import (
            GLOBAL,
            attribute_shares,
            post_volume,
            share_matrix,
        )

        shares = attribute_shares(data, period, by_place=bool(data.posts["place"].notna().any()),
                                  min_support=min_support)
        gm, gn = share_matrix(shares, period, place=GLOBAL)
        spikes = detect_spikes(gm, period, counts=gn) if not gm.empty else None
        shifts = detect_shifts(gm, period, counts=gn) if not gm.empty else None
        forecasts = None
        with state.metrics.model_timer("trends_forecast"):
            fm = forecast_matrix(shares, period, max_series=max_series) if max_series else pd.DataFrame()
            if fm.shape[1] and len(fm) >= 8:
                _, forecasts = forecast_all(fm, h=horizon, freq=period, n_origins=4, workers=1)
        return {"dataset": dataset, "period": period, "posts": len(data), "attributes": data.attributes,
                "validation": data.report.to_dict(), "volume": _records(post_volume(data, period)),
                "events": {"spikes": _records(spikes, 50), "shifts": _records(shifts, 50),
                           "rising_falling": _records(rising_falling(shares, period), 50)},
                "forecasts": _records(forecasts)}

    result = await state.queue.run(job)
    with state.cache_lock:
        state.cache[key] = result
        while len(state.cache) > _REPORT_CACHE_SIZE:
            state.cache.popitem(last=False)
    return JSONResponse(result)


def _cached(state: ServiceState, key: tuple) -> Any:
    with state.cache_lock:
        return state.cache.get(key)


def _cache(state: ServiceState, key: tuple, result: Any) -> None:
    with state.cache_lock:
        state.cache[key] = result
        while len(state.cache) > _REPORT_CACHE_SIZE:
            state.cache.popitem(last=False)


@router.get("/{dataset}/outlook",
            summary="series ranked by forecast change: |forecast at the horizon - last share| / interval width, "
                    "series whose backtest beats the naive forecast first",
            responses=_RESPONSES)
async def outlook(
    dataset: Annotated[str, _DATASET],
    state: Annotated[ServiceState, Depends(get_state)],
    period: Annotated[Period, Query()] = "month",
    min_support: Annotated[int, Query(ge=1, le=1_000_000)] = 30,
    horizon: Annotated[int, Query(ge=1, le=24, description="periods to forecast")] = 6,
    attribute: Annotated[str | None, Query(max_length=64, description="only this attribute's series")] = None,
    max_series: Annotated[int, Query(ge=1, le=200, description="forecast the N most-labelled series")] = 48,
    limit: Annotated[int, Query(ge=1, le=64, description="series answered, best first")] = 8,
) -> Any:
    """The ranking of :func:`fashionlens.trends.outlook.forecast_outlook` (binary attributes: only the
    ``yes`` series) with each answered series' observed shares (``points``, as ``/series``) and its
    forecast (``forecasts``: period, step, forecast, lo, hi)."""
    state.require_ready()
    data = _dataset(state, dataset)
    if attribute is not None and attribute not in data.attributes:
        raise ApiProblem("invalid_request", f"attribute: expected one of {data.attributes}; got {attribute!r}")
    key = ("trends_outlook", dataset, period, min_support, horizon, attribute, max_series, limit)
    cached = _cached(state, key)
    if cached is not None:
        return JSONResponse(cached)

    def job() -> dict[str, Any]:
        from fashionlens.trends.outlook import FAST_MODELS, NAIVE, forecast_outlook
        from fashionlens.trends.series import GLOBAL, attribute_shares

        shares = attribute_shares(data, period, min_support=min_support,
                                  attributes=[attribute] if attribute else None)
        with state.metrics.model_timer("trends_forecast"):
            ranking, forecasts = forecast_outlook(shares, period, horizon=horizon, attribute=attribute,
                                                  max_series=max_series)
        g = shares[shares["place"] == GLOBAL]
        out = []
        for row in _records(ranking, limit):
            pts = g[(g["attribute"] == row["attribute"]) & (g["value"] == row["value"])]
            fc = forecasts[forecasts["series"] == row["series"]].sort_values("step")
            out.append({**row, "points": _records(pts[["period", "n", "k", "share", "ci_low", "ci_high", "supported"]]),
                        "forecasts": _records(fc[["period", "step", "model", "forecast", "lo", "hi"]])})
        return {"dataset": dataset, "period": period, "min_support": min_support, "horizon": horizon,
                "attribute": attribute, "models": list(FAST_MODELS), "baseline": NAIVE,
                "candidates": len(ranking), "beat_baseline": int(ranking["beats_baseline"].sum()) if len(ranking) else 0,
                "series": out}

    result = await state.queue.run(job)
    _cache(state, key, result)
    return JSONResponse(result)
