"""Benchmarks for issue 6 (trends): forecasting target on StreetStyle, spike detection on generated
series, and the full report on generated tagged posts (time and peak memory).

    python benchmarks/bench_trends.py                       # all three, 100k posts
    python benchmarks/bench_trends.py --posts 100000 1000000 --out runs/bench_trends

Writes ``results.json`` and prints markdown tables (copied into docs/trends.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fashionlens.trends.events import detect_spikes
from fashionlens.trends.forecast import holdout_evaluation, summarise_holdout
from fashionlens.trends.inputs import load_inputs
from fashionlens.trends.series import attribute_shares, eligible_series
from fashionlens.trends.synthetic import make_share_series, write_tagged_posts

STREETSTYLE = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "streetstyle"


def _markdown(df: pd.DataFrame) -> str:
    def fmt(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def bench_forecast() -> dict:
    files = sorted(STREETSTYLE.glob("*.csv"))
    if not files:
        print("StreetStyle CSVs not found; skipping the forecast benchmark", file=sys.stderr)
        return {}
    t0 = time.perf_counter()
    data = load_inputs(files)
    m = eligible_series(attribute_shares(data, "month"), "month", min_periods=24, min_support=50)
    ev = holdout_evaluation(m, holdout=6, progress=True)
    table = summarise_holdout(ev)
    chosen = {k: ev[ev["model"] == k]["chosen"].value_counts().to_dict()
              for k in ("selected_pooled", "selected_per_series")}
    print(f"\n## StreetStyle monthly global forecast ({m.shape[1]} series, {len(m)} months "
          f"{m.index[0]:%Y-%m}..{m.index[-1]:%Y-%m}, last 6 held out)\n")
    print(_markdown(table.reset_index()))
    print("\nchosen models:", chosen)
    return {"series": int(m.shape[1]), "months": int(len(m)), "first": str(m.index[0].date()),
            "last": str(m.index[-1].date()), "rows_rejected": data.report.rows_rejected,
            "table": table.reset_index().to_dict("records"), "chosen": chosen,
            "seconds": round(time.perf_counter() - t0, 1)}


def bench_spikes(n_series: int = 300, months: int = 36, seeds: tuple[int, ...] = (1, 2, 3)) -> list[dict]:
    rows = []
    for sd in (0.0, 4.0, 5.0, 6.0, 8.0):  # 0: nothing planted (false events only)
        for use_counts, thr in ((True, None), (True, 4.0), (False, None), (False, 5.0)):
            hits = found = planted = cells = 0
            for seed in seeds:
                m, truth = make_share_series(n_series, months, n_posts=400, spike_sd=sd, seed=seed,
                                             spike_prob=1.0 if sd else 0.0)
                counts = pd.DataFrame(400, index=m.index, columns=m.columns) if use_counts else None
                sp = detect_spikes(m, "month", counts=counts, z_threshold=thr)
                hits += len(sp.merge(truth, on=["series", "period"]))
                found += len(sp)
                planted += len(truth)
                cells += m.size
            rows.append({"spike_sd": sd, "counts": use_counts,
                         "z_threshold": thr if thr is not None else (3.5 if use_counts else 4.0),
                         "recall": hits / planted if planted else np.nan,
                         "false_per_100_series_months": 100 * (found - hits) / cells})
    t = pd.DataFrame(rows)
    print(f"\n## Planted spikes ({n_series} series × {months} months × {len(seeds)} seeds, 400 posts/month)\n")
    print(_markdown(t))
    return rows


def bench_report(n_posts: int, work: Path) -> dict:
    gen = work / f"gen_{n_posts}"
    if not (gen / "results.jsonl").is_file():
        t0 = time.perf_counter()
        write_tagged_posts(gen, n_posts)
        print(f"generated {n_posts} posts in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    code = ("import json,resource,sys,time\n"
            "t0=time.perf_counter()\n"
            "from fashionlens.trends.inputs import load_inputs\n"
            "from fashionlens.trends.report import build_report\n"
            f"d=load_inputs([{str(gen / 'results.jsonl')!r}], {str(gen / 'posts.csv')!r})\n"
            "t1=time.perf_counter()\n"
            f"s=build_report(d, {str(work / f'report_{n_posts}')!r}, progress=False)\n"
            "t2=time.perf_counter()\n"
            "me, ch = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "print(json.dumps({'load_s': t1-t0, 'report_s': t2-t1, 'total_s': t2-t0, 'timings': s['timings_s'],"
            " 'cpu_s': me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime,"
            " 'peak_rss_mb': me.ru_maxrss/1024, 'peak_rss_worker_mb': ch.ru_maxrss/1024}))\n")
    load_before = os.getloadavg()[0]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "MPLBACKEND": "Agg"})
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["posts"] = n_posts
    res["loadavg_before"], res["loadavg_after"] = load_before, os.getloadavg()[0]
    print(f"\nreport on {n_posts:,} posts: {res['total_s']:.1f} s wall (load {res['load_s']:.1f} s, "
          f"report {res['report_s']:.1f} s), {res['cpu_s']:.1f} s CPU, peak RSS {res['peak_rss_mb']:.0f} MB "
          f"(+ workers {res['peak_rss_worker_mb']:.0f} MB), machine load average {load_before:.1f} → "
          f"{res['loadavg_after']:.1f}; {res['timings']}")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, nargs="*", default=[100_000])
    ap.add_argument("--out", default="runs/bench_trends")
    ap.add_argument("--skip", nargs="*", default=[], choices=["forecast", "spikes", "report"])
    args = ap.parse_args()
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"cpu_count": os.cpu_count()}
    if "forecast" not in args.skip:
        results["forecast"] = bench_forecast()
    if "spikes" not in args.skip:
        results["spikes"] = bench_spikes()
    if "report" not in args.skip:
        results["report"] = [bench_report(n, work) for n in args.posts]
    (work / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwrote {work / 'results.json'}")


if __name__ == "__main__":
    main()
