"""The trends report: every table as CSV plus one self-contained ``report.html`` (PNG charts inlined)."""

from __future__ import annotations

import base64
import html
import io
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fashionlens.trends.events import (
    detect_shifts,
    detect_spikes,
    lead_lag,
    rising_falling,
)
from fashionlens.trends.forecast import forecast_all
from fashionlens.trends.inputs import TrendData
from fashionlens.trends.series import GLOBAL, Freq, attribute_shares, share_matrix
from fashionlens.trends.social import activity, caption_sentiment, hashtags, top_authors

log = logging.getLogger(__name__)


def _png(fig) -> str:
    fig.autofmt_xdate()  # slanted date labels instead of overlapping ones
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
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
    ok = m.notna().sum() >= min_points
    volume = (m.notna() * n).sum()[ok].sort_values(ascending=False)
    return m[volume.index[:max_series]]


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
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        timings[name] = round(now - t0, 3)
        t0 = now
        log.info("report: %s done in %.2f s", name, timings[name])

    tables: dict[str, pd.DataFrame] = {}
    tables["validation"] = data.report.to_frame()
    shares = attribute_shares(data, freq, by_place=data.posts["place"].notna().any(), min_support=min_support)
    tables["shares"] = shares
    lap("shares")
    gm, gn = share_matrix(shares, freq, place=GLOBAL)
    tables["spikes"] = detect_spikes(gm, freq, counts=gn) if not gm.empty else pd.DataFrame()
    tables["shifts"] = detect_shifts(gm, freq, counts=gn) if not gm.empty else pd.DataFrame()
    tables["rising_falling"] = rising_falling(shares, freq)
    lap("events")
    fm = forecast_matrix(shares, freq, max_series=max_forecast_series)
    if fm.shape[1] and len(fm) >= 8:
        scores, fcs = forecast_all(fm, h=horizon, freq=freq, models=models, n_origins=backtest_origins,
                                    workers=workers, progress=progress)
    else:
        scores, fcs = pd.DataFrame(), pd.DataFrame()
    tables["forecast_scores"], tables["forecasts"] = scores, fcs
    lap("forecast")
    ll = []
    rf = tables["rising_falling"]
    cand = rf[rf["place"] != GLOBAL]["series"].drop_duplicates().head(lead_lag_series).tolist() if len(rf) else []
    for key in cand:
        ll.append(lead_lag(shares, key, freq))
    tables["lead_lag"] = pd.concat(ll, ignore_index=True) if ll else pd.DataFrame()
    lap("lead_lag")
    tables["activity"] = activity(data, freq)
    tables["top_authors_activity"], tables["top_authors_engagement"] = top_authors(data)
    tables["hashtags"], tables["hashtag_pairs"] = hashtags(data)
    tables["sentiment"] = caption_sentiment(data, freq, progress=progress)
    lap("social")

    for name, df in tables.items():
        df.to_csv(out / f"{name}.csv", index=False)
    lap("csv")

    charts: list[tuple[str, str]] = []
    act = tables["activity"]
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(act["period"], act["posts"], width=20 if freq == "month" else 5)
    ax.set_title("posts per period")
    charts.append(("Activity", _png(fig)))
    show = []
    for df in (tables["spikes"], tables["shifts"]):
        if len(df):
            show += df["series"].tolist()
    if len(rf):
        show += rf[rf["place"] == GLOBAL]["series"].tolist()
    show = list(dict.fromkeys(s for s in show if s in gm.columns))[:6]
    if show:
        fig, ax = plt.subplots(figsize=(8, 4))
        g = shares[shares["place"] == GLOBAL]
        for key in show:
            a, v = key.split("=", 1)
            s = g[(g["attribute"] == a) & (g["value"] == v) & g["supported"]]
            ax.plot(s["period"], s["share"], marker=".", label=key)
            ax.fill_between(s["period"], s["ci_low"], s["ci_high"], alpha=0.15)
        sp = tables["spikes"]
        sp = sp[sp["series"].isin(show)] if len(sp) else sp
        if len(sp):
            ax.scatter(sp["period"], sp["value"], s=80, facecolors="none", edgecolors="red", label="spike")
        ax.set_title("shares with 95% Wilson intervals (events and top trends)")
        ax.legend(fontsize=7)
        charts.append(("Trends and events", _png(fig)))
    if len(fcs):
        keys = fcs["series"].drop_duplicates().head(4).tolist()
        fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
        for ax, key in zip(axes[0], keys):
            ax.plot(fm.index, fm[key], marker=".")
            f = fcs[fcs["series"] == key]
            ax.plot(f["period"], f["forecast"], color="C1", label=f["model"].iloc[0])
            ax.fill_between(f["period"], f["lo"], f["hi"], color="C1", alpha=0.2)
            ax.set_title(key, fontsize=8)
            ax.legend(fontsize=7)
            ax.tick_params(labelsize=6)
            ax.tick_params(axis="x", rotation=45)
        charts.append(("Forecasts", _png(fig)))
    sent = tables["sentiment"]
    if len(sent):
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.plot(sent["period"], sent["negative_share"], marker=".", color="C3")
        pk = sent[sent["negative_peak"]]
        ax.scatter(pk["period"], pk["negative_share"], s=80, facecolors="none", edgecolors="k")
        ax.set_title("share of negative captions (VADER)")
        charts.append(("Caption sentiment", _png(fig)))
    hf = tables["hashtags"]
    if len(hf):
        fig, ax = plt.subplots(figsize=(8, 3))
        h = hf.head(15)
        ax.barh(h["hashtag"][::-1], h["posts"][::-1])
        ax.set_title("top hashtags")
        charts.append(("Hashtags", _png(fig)))
    lap("charts")

    rep = data.report
    sections = [f"<h1>fashionlens trends report</h1><p>{len(data.posts):,} posts, {len(data.labels):,} labels, "
                f"period: {freq}, minimum support: {min_support} labelled posts. Sources: "
                f"{html.escape(', '.join(data.sources))}</p>",
                f"<h2>Input validation</h2><p>{rep.rows_read:,} rows read, {rep.rows_used:,} used, "
                f"{rep.rows_rejected:,} rejected.</p>{_table_html(tables['validation'])}"
                + "".join(f"<p>{html.escape(n)}</p>" for n in rep.notes)]
    for title, b64 in charts:
        sections.append(f"<h2>{html.escape(title)}</h2><img src='data:image/png;base64,{b64}'/>")
    for title, key in (("Spikes (robust z of residual from the seasonal fit)", "spikes"),
                       ("Sustained rises and falls (change points)", "shifts"),
                       ("Rising and falling per place (last 12 periods)", "rising_falling"),
                       ("Forecasts (chosen model, interval = ±1.96 backtest RMSE)", "forecasts"),
                       ("Lead–lag between places", "lead_lag"), ("Activity", "activity"),
                       ("Top authors by activity", "top_authors_activity"),
                       ("Top authors by engagement", "top_authors_engagement"),
                       ("Hashtags", "hashtags"), ("Hashtag co-occurrence", "hashtag_pairs"),
                       ("Caption sentiment", "sentiment")):
        sections.append(f"<h2>{html.escape(title)}</h2>{_table_html(tables[key])}")
    if len(scores):
        t = scores.groupby("model")[["mae", "mape"]].mean().sort_values("mae").reset_index()
        sections.append(f"<h2>Backtest (mean over forecast series)</h2>{_table_html(t)}")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>fashionlens trends</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:auto} table.t{border-collapse:collapse;font-size:12px}"
            "table.t td,table.t th{padding:2px 6px;border-bottom:1px solid #ddd}</style></head><body>"
            + "\n".join(sections) + "</body></html>")
    (out / "report.html").write_text(page, encoding="utf-8")
    lap("html")
    return {"out_dir": str(out), "report": str(out / "report.html"), "posts": len(data.posts),
            "labels": len(data.labels), "rejected_rows": rep.rows_rejected,
            "spikes": len(tables["spikes"]), "shifts": len(tables["shifts"]),
            "forecast_series": int(fm.shape[1]) if not fm.empty else 0, "timings_s": timings,
            "tables": sorted(f"{k}.csv" for k in tables)}
