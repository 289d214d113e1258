"""The trends report: every table as CSV plus one self-contained ``report.html`` (PNG charts inlined)."""

from __future__ import annotations

import base64
import html
import io
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fashionlens.trends import report_layout as layout
from fashionlens.trends.events import (
    detect_shifts,
    detect_spikes,
    lead_lag,
    rising_falling,
)
from fashionlens.trends.forecast import forecast_all
from fashionlens.trends.inputs import TrendData
from fashionlens.trends.outlook import rank_forecast_changes, without_binary_negatives
from fashionlens.trends.series import GLOBAL, Freq, attribute_shares, share_matrix
from fashionlens.trends.social import activity, caption_sentiment, hashtags, top_authors

log = logging.getLogger(__name__)


def _png(fig) -> str:
    layout.tidy_dates(fig)
    fig.autofmt_xdate()  # slanted date labels instead of overlapping ones
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=layout.current().dpi, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _table_html(df: pd.DataFrame, rows: int = 15) -> str:
    if df is None or df.empty:
        return "<p><em>none</em></p>"
    return df.head(rows).to_html(index=False, float_format=lambda x: f"{x:.4g}", border=0, classes="t")


def forecast_matrix(shares: pd.DataFrame, freq: Freq, *, max_series: int, min_points: int = 12) -> pd.DataFrame:
    """The global share matrix limited to the ``max_series`` series with the most labelled posts."""
    m, n = share_matrix(shares, freq, place=GLOBAL)
    if m.empty:
        return m
    m = m[without_binary_negatives(list(m.columns))]  # yes/no attributes: the "no" share mirrors "yes"
    ok = m.notna().sum() >= min_points
    volume = (m.notna() * n[m.columns]).sum()[ok].sort_values(ascending=False)
    return m[volume.index[:max_series]]


class _Laps:
    """Seconds spent in each step of :func:`build_report`, logged as each one ends."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._t0 = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self._t0, 3)
        self._t0 = now
        log.info("report: %s done in %.2f s", name, self.timings[name])


@dataclass
class _Analysis:
    """What :func:`build_report` computed: the tables (in CSV order) and the frames the charts need."""

    tables: dict[str, pd.DataFrame]
    shares: pd.DataFrame
    gm: pd.DataFrame  # global share matrix (period × series)
    fm: pd.DataFrame  # the share matrix of the forecast series
    scores: pd.DataFrame
    fcs: pd.DataFrame


def _event_tables(tables: dict[str, pd.DataFrame], shares: pd.DataFrame, freq: Freq) -> pd.DataFrame:
    """Add ``spikes``, ``shifts`` and ``rising_falling`` to ``tables``; returns the global share matrix."""
    gm, gn = share_matrix(shares, freq, place=GLOBAL)
    tables["spikes"] = detect_spikes(gm, freq, counts=gn) if not gm.empty else pd.DataFrame()
    tables["shifts"] = detect_shifts(gm, freq, counts=gn) if not gm.empty else pd.DataFrame()
    tables["rising_falling"] = rising_falling(shares, freq)
    return gm


def _forecast_tables(shares: pd.DataFrame, freq: Freq, *, horizon: int, max_forecast_series: int,
                     backtest_origins: int, models: Sequence[str] | None, workers: int | None,
                     progress: bool) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(forecast matrix, backtest scores, forecasts)``; empty tables when too few series or periods."""
    fm = forecast_matrix(shares, freq, max_series=max_forecast_series)
    if fm.shape[1] and len(fm) >= 8:
        scores, fcs = forecast_all(fm, h=horizon, freq=freq, models=models, n_origins=backtest_origins,
                                   workers=workers, progress=progress)
    else:
        scores, fcs = pd.DataFrame(), pd.DataFrame()
    return fm, scores, fcs


def _lead_lag_table(shares: pd.DataFrame, rf: pd.DataFrame, freq: Freq, lead_lag_series: int) -> pd.DataFrame:
    """Lead–lag between places for the first ``lead_lag_series`` rising or falling local series."""
    ll = []
    cand = rf[rf["place"] != GLOBAL]["series"].drop_duplicates().head(lead_lag_series).tolist() if len(rf) else []
    for key in cand:
        ll.append(lead_lag(shares, key, freq))
    return pd.concat(ll, ignore_index=True) if ll else pd.DataFrame()


def _social_tables(tables: dict[str, pd.DataFrame], data: TrendData, freq: Freq, progress: bool) -> None:
    """Add activity, top authors, hashtags and caption sentiment to ``tables``."""
    tables["activity"] = activity(data, freq)
    tables["top_authors_activity"], tables["top_authors_engagement"] = top_authors(data)
    tables["hashtags"], tables["hashtag_pairs"] = hashtags(data)
    tables["sentiment"] = caption_sentiment(data, freq, progress=progress)


def _analyse(data: TrendData, freq: Freq, lap: _Laps, *, min_support: int, horizon: int,
             max_forecast_series: int, backtest_origins: int, models: Sequence[str] | None,
             lead_lag_series: int, workers: int | None, progress: bool) -> _Analysis:
    """Every table of the report: validation, shares, events, forecasts, lead–lag and social analytics."""
    tables: dict[str, pd.DataFrame] = {}
    tables["validation"] = data.report.to_frame()
    shares = attribute_shares(data, freq, by_place=data.posts["place"].notna().any(), min_support=min_support)
    tables["shares"] = shares
    lap("shares")
    gm = _event_tables(tables, shares, freq)
    lap("events")
    fm, scores, fcs = _forecast_tables(shares, freq, horizon=horizon, max_forecast_series=max_forecast_series,
                                       backtest_origins=backtest_origins, models=models, workers=workers,
                                       progress=progress)
    tables["forecast_scores"], tables["forecasts"] = scores, fcs
    tables["forecast_ranking"] = rank_forecast_changes(fm, scores, fcs)
    lap("forecast")
    tables["lead_lag"] = _lead_lag_table(shares, tables["rising_falling"], freq, lead_lag_series)
    lap("lead_lag")
    _social_tables(tables, data, freq, progress)
    lap("social")
    return _Analysis(tables, shares, gm, fm, scores, fcs)


def _activity_chart(act: pd.DataFrame, freq: Freq) -> str:
    fig, ax = layout.subplots(3)
    ax.bar(act["period"], act["posts"], width=20 if freq == "month" else 5)
    ax.set_title("posts per period")
    return _png(fig)


def _chart_series(a: _Analysis) -> list[str]:
    """Up to six global series to chart: those with spikes or shifts, then the global rising/falling ones."""
    show = []
    for df in (a.tables["spikes"], a.tables["shifts"]):
        if len(df):
            show += df["series"].tolist()
    rf = a.tables["rising_falling"]
    if len(rf):
        show += rf[rf["place"] == GLOBAL]["series"].tolist()
    return list(dict.fromkeys(s for s in show if s in a.gm.columns))[:6]


def _trends_chart(a: _Analysis, show: list[str]) -> str:
    fig, ax = layout.subplots(4)
    g = a.shares[a.shares["place"] == GLOBAL]
    for key in show:
        attr, v = key.split("=", 1)
        s = g[(g["attribute"] == attr) & (g["value"] == v) & g["supported"]]
        ax.plot(s["period"], s["share"], marker=".", label=key)
        ax.fill_between(s["period"], s["ci_low"], s["ci_high"], alpha=0.15)
    sp = a.tables["spikes"]
    sp = sp[sp["series"].isin(show)] if len(sp) else sp
    if len(sp):
        ax.scatter(sp["period"], sp["value"], s=80, facecolors="none", edgecolors="red", label="spike")
    ax.set_title("shares with 95% Wilson intervals\n(events and top trends)")
    layout.legend(fig)
    return _png(fig)


def _forecast_chart(fm: pd.DataFrame, fcs: pd.DataFrame, ranking: pd.DataFrame) -> str:
    """The four series with the largest forecast change (:func:`~fashionlens.trends.outlook.rank_forecast_changes`)."""
    keys = (ranking["series"] if len(ranking) else fcs["series"].drop_duplicates()).head(4).tolist()
    fig, axes = layout.panels(len(keys), 2.6)
    for ax, key in zip(axes, keys):
        ax.plot(fm.index, fm[key], marker=".", label="observed share")
        f = fcs[fcs["series"] == key]
        ax.plot(f["period"], f["forecast"], color="C1", label="forecast")
        ax.fill_between(f["period"], f["lo"], f["hi"], color="C1", alpha=0.2, label="95% interval")
        ax.set_title(f"{key} ({f['model'].iloc[0]})")
    layout.legend(fig)
    return _png(fig)


def _sentiment_chart(sent: pd.DataFrame) -> str:
    fig, ax = layout.subplots(3)
    ax.plot(sent["period"], sent["negative_share"], marker=".", color="C3")
    pk = sent[sent["negative_peak"]]
    ax.scatter(pk["period"], pk["negative_share"], s=80, facecolors="none", edgecolors="k")
    ax.set_title("share of negative captions (VADER)")
    return _png(fig)


def _hashtag_chart(hf: pd.DataFrame) -> str:
    fig, ax = layout.subplots(3.5)
    h = hf.head(15)
    ax.barh(h["hashtag"][::-1], h["posts"][::-1])
    ax.set_title("top hashtags")
    return _png(fig)


def _charts(a: _Analysis, freq: Freq) -> list[tuple[str, str, str]]:
    """``(title, wide PNG, narrow PNG)`` (base64, see :mod:`~fashionlens.trends.report_layout`) of each chart
    that has data to show."""
    both = layout.draw_both
    charts = [("Activity", *both(_activity_chart, a.tables["activity"], freq))]
    show = _chart_series(a)
    if show:
        charts.append(("Trends and events", *both(_trends_chart, a, show)))
    if len(a.fcs):
        charts.append(("Forecasts: the largest changes", *both(_forecast_chart, a.fm, a.fcs,
                                                               a.tables["forecast_ranking"])))
    if len(a.tables["sentiment"]):
        charts.append(("Caption sentiment", *both(_sentiment_chart, a.tables["sentiment"])))
    if len(a.tables["hashtags"]):
        charts.append(("Hashtags", *both(_hashtag_chart, a.tables["hashtags"])))
    return charts


_TABLE_SECTIONS: tuple[tuple[str, str], ...] = (
    ("Spikes (robust z of residual from the seasonal fit)", "spikes"),
    ("Sustained rises and falls (change points)", "shifts"),
    ("Rising and falling per place (last 12 periods)", "rising_falling"),
    ("Largest forecast changes (change to the horizon ÷ interval width; beating the naive forecast first)",
     "forecast_ranking"),
    ("Forecasts (chosen model, interval = ±1.96 backtest RMSE)", "forecasts"),
    ("Lead–lag between places", "lead_lag"), ("Activity", "activity"),
    ("Top authors by activity", "top_authors_activity"),
    ("Top authors by engagement", "top_authors_engagement"),
    ("Hashtags", "hashtags"), ("Hashtag co-occurrence", "hashtag_pairs"),
    ("Caption sentiment", "sentiment"))


def _report_html(data: TrendData, a: _Analysis, charts: list[tuple[str, str, str]], freq: Freq,
                 min_support: int) -> str:
    """The self-contained ``report.html`` page: summary, input validation, charts, then the tables."""
    rep = data.report
    sections = [f"<h1>fashionlens trends report</h1><p>{len(data.posts):,} posts, {len(data.labels):,} labels, "
                f"period: {freq}, minimum support: {min_support} labelled posts. Sources: "
                f"{html.escape(', '.join(data.sources))}</p>",
                f"<h2>Input validation</h2><p>{rep.rows_read:,} rows read, {rep.rows_used:,} used, "
                f"{rep.rows_rejected:,} rejected.</p>"
                + (_table_html(a.tables["validation"]) if len(a.tables["validation"]) else "")
                + "".join(f"<p>{html.escape(n)}</p>" for n in rep.notes)]
    kept, left_out = layout.split_sections(_TABLE_SECTIONS, a.tables, data.posts, min_support=min_support)
    sections += [f"<p class='left-out'>{html.escape(line)}</p>" for line in left_out]
    for title, wide, narrow in charts:
        sections.append(f"<h2>{html.escape(title)}</h2>{layout.picture_html(wide, narrow, title)}")
    for title, key in kept:
        sections.append(f"<h2>{html.escape(title)}</h2>{_table_html(a.tables[key])}")
    if len(a.scores):
        t = a.scores.groupby("model")[["mae", "mape"]].mean().sort_values("mae").reset_index()
        sections.append(f"<h2>Backtest (mean over forecast series)</h2>{_table_html(t)}")
    return (f"<!doctype html><html><head><meta charset='utf-8'>{layout.VIEWPORT}<title>fashionlens trends</title>"
            f"<style>{layout.PAGE_CSS}</style></head><body>"
            + "\n".join(sections) + "</body></html>")


def build_report(data: TrendData, out_dir: str | Path, *, freq: Freq = "month", min_support: int = 30,
                 horizon: int = 6, max_forecast_series: int = 16, backtest_origins: int = 4,
                 models: Sequence[str] | None = None,
                 lead_lag_series: int = 3, workers: int | None = None, progress: bool = True) -> dict:
    """Compute series, forecasts, events and social analytics; write CSVs and ``report.html`` to ``out_dir``.

    ``workers`` processes run the forecast backtests (``None``: one per CPU). Returns a summary
    dict (paths, counts, timings in seconds).
    """
    import matplotlib

    matplotlib.use("Agg")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lap = _Laps()
    a = _analyse(data, freq, lap, min_support=min_support, horizon=horizon,
                 max_forecast_series=max_forecast_series, backtest_origins=backtest_origins, models=models,
                 lead_lag_series=lead_lag_series, workers=workers, progress=progress)
    for name, df in a.tables.items():
        df.to_csv(out / f"{name}.csv", index=False)
    lap("csv")
    charts = _charts(a, freq)
    lap("charts")
    (out / "report.html").write_text(_report_html(data, a, charts, freq, min_support), encoding="utf-8")
    lap("html")
    return {"out_dir": str(out), "report": str(out / "report.html"), "posts": len(data.posts),
            "labels": len(data.labels), "rejected_rows": data.report.rows_rejected,
            "spikes": len(a.tables["spikes"]), "shifts": len(a.tables["shifts"]),
            "forecast_series": int(a.fm.shape[1]) if not a.fm.empty else 0, "timings_s": lap.timings,
            "tables": sorted(f"{k}.csv" for k in a.tables)}


def write_forecasts(data: TrendData, out_dir: str | Path, *, freq: Freq = "month", min_support: int = 30,
                    horizon: int = 6, max_series: int = 16, selection: str = "pooled",
                    progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Backtested forecasts (:func:`~fashionlens.trends.forecast.forecast_all`, ``horizon`` periods ahead) of the
    ``max_series`` global series with the most labelled posts; writes ``forecast_scores.csv`` and
    ``forecasts.csv`` to ``out_dir`` and returns ``(scores, forecasts)``."""
    shares = attribute_shares(data, freq, min_support=min_support)
    scores, forecasts = forecast_all(forecast_matrix(shares, freq, max_series=max_series),
                                     h=horizon, freq=freq, selection=selection, progress=progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scores.to_csv(out / "forecast_scores.csv", index=False)
    forecasts.to_csv(out / "forecasts.csv", index=False)
    return scores, forecasts


def write_events(data: TrendData, out_dir: str | Path, *, freq: Freq = "month", min_support: int = 30,
                 z_threshold: float | None = None) -> dict[str, pd.DataFrame]:
    """Spikes (robust z above ``z_threshold``; None: the default), sustained shifts of the global series and
    rising/falling series per place; writes ``spikes.csv``, ``shifts.csv`` and ``rising_falling.csv`` to
    ``out_dir`` and returns the tables by name."""
    shares = attribute_shares(data, freq, by_place=True, min_support=min_support)
    m, n = share_matrix(shares, freq)
    tables = {"spikes": detect_spikes(m, freq, counts=n, z_threshold=z_threshold),
              "shifts": detect_shifts(m, freq, counts=n), "rising_falling": rising_falling(shares, freq)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(out / f"{name}.csv", index=False)
    return tables
