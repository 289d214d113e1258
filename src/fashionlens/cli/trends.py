"""``fashionlens trends report/forecast/events`` (issue 6). Parses arguments, loads the inputs
(:func:`fashionlens.trends.inputs.load_inputs`) and calls :mod:`fashionlens.trends.report`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _trends_data(args: argparse.Namespace) -> Any:
    """The inputs as a :class:`~fashionlens.trends.inputs.TrendData`; rejected rows are summed up on stderr."""
    from fashionlens.trends.inputs import load_inputs

    data = load_inputs(args.inputs, args.meta, min_score=args.min_score)
    if data.report.rows_rejected:
        print(f"fashionlens: input validation: {data.report.summary()}", file=sys.stderr)
    return data


def _cmd_trends_report(args: argparse.Namespace) -> int:
    from fashionlens.trends.report import build_report

    summary = build_report(_trends_data(args), args.out, freq=args.period, min_support=args.min_support,
                           horizon=args.horizon, max_forecast_series=args.max_series, progress=not args.quiet)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _cmd_trends_forecast(args: argparse.Namespace) -> int:
    from fashionlens.trends.report import write_forecasts

    _, forecasts = write_forecasts(_trends_data(args), args.out, freq=args.period, min_support=args.min_support,
                                   horizon=args.horizon, max_series=args.max_series, selection=args.selection,
                                   progress=not args.quiet)
    print(forecasts.to_string(index=False))
    return 0


def _cmd_trends_events(args: argparse.Namespace) -> int:
    from fashionlens.trends.report import write_events

    tables = write_events(_trends_data(args), args.out, freq=args.period, min_support=args.min_support,
                          z_threshold=args.z)
    for name, df in tables.items():
        print(f"== {name} ({len(df)})\n{df.head(10).to_string(index=False)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``trends`` group (``report``, ``forecast``, ``events``) to the top-level sub-commands ``sub``."""
    trends = sub.add_parser("trends", help="attribute trends, forecasts, events, social analytics") \
        .add_subparsers(dest="what", required=True)
    for name, func, helptext in (("report", _cmd_trends_report, "HTML report + CSV tables"),
                                 ("forecast", _cmd_trends_forecast, "backtested forecasts per series"),
                                 ("events", _cmd_trends_events, "spikes, shifts, rising/falling per place")):
        c = trends.add_parser(name, help=helptext)
        c.add_argument("inputs", nargs="+", help="StreetStyle CSVs and/or tag-result JSONL files")
        c.add_argument("--meta", default=None, help="post-metadata CSV/Parquet for JSONL inputs (image, timestamp, ...)")
        c.add_argument("--out", required=True, help="output folder")
        c.add_argument("--period", choices=["day", "week", "month"], default="month")
        c.add_argument("--min-support", type=int, default=30, help="labelled posts a period needs to count")
        c.add_argument("--min-score", type=float, default=0.0, help="ignore tag labels scored below this")
        c.add_argument("--horizon", type=int, default=6, help="periods to forecast")
        c.add_argument("--max-series", type=int, default=16, help="forecast the N most-labelled series")
        c.add_argument("--selection", choices=["pooled", "series"], default="pooled",
                       help="one model for all series (pooled backtest) or the best per series")
        c.add_argument("--z", type=float, default=None, help="spike threshold (robust z; default 3.5)")
        c.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
        c.set_defaults(func=func)
