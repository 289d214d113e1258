"""The ``fashionlens`` command line: parses arguments and calls the library. Nothing else."""

from __future__ import annotations

import argparse
import json
import logging
import sys


def _cmd_train_classifier(args: argparse.Namespace) -> int:
    from fashionlens.train.classifier import train_classifier
    from fashionlens.train.config import load_config, parse_override

    overrides = dict(parse_override(s) for s in args.set or [])
    config = load_config(args.config, overrides)
    result = train_classifier(config, resume=not args.restart)
    test = result["test"]
    print(json.dumps({"out_dir": config.out_dir, "test": {
        "category_accuracy": test["category"]["accuracy"], "object_type_accuracy": test["object_type"]["accuracy"],
        "clothing10_accuracy": test.get("clothing10", {}).get("accuracy"),
        "rise_type_accuracy": test.get("rise_type", {}).get("accuracy"),
        "colours_macro_f1": test.get("colours", {}).get("macro_f1")}}, indent=2))
    return 0


def _cmd_evaluate_classifier(args: argparse.Namespace) -> int:
    from fashionlens.evaluate.report import evaluate_classifier_on_cache

    summary = evaluate_classifier_on_cache(args.weights, args.cache, split=args.split, out_dir=args.out,
                                           batch_size=args.batch_size)
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_tag(args: argparse.Namespace) -> int:
    from fashionlens.tag_job import run_tag_job

    return run_tag_job(args.inputs, output=args.output, weights=args.weights, backend=args.backend,
                       batch_size=args.batch_size, threads=args.threads, whole_image=True,
                       max_pixels=args.max_pixels, progress=not args.quiet,
                       on_summary=lambda line: print(f"fashionlens: {line}", file=sys.stderr))


def _cmd_data_stats(args: argparse.Namespace) -> int:
    from fashionlens.data_stats import dataset_stats, format_stats

    stats = dataset_stats(args.dataset, args.root)
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    from fashionlens.runtime.onnx_export import export_classifier_onnx

    out = export_classifier_onnx(args.weights, args.output)
    print(out)
    return 0


# --- trends (issue 6) ------------------------------------------------------------------------------
def _trends_data(args: argparse.Namespace):
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
    from pathlib import Path

    from fashionlens.trends.forecast import forecast_all
    from fashionlens.trends.report import forecast_matrix
    from fashionlens.trends.series import attribute_shares

    shares = attribute_shares(_trends_data(args), args.period, min_support=args.min_support)
    scores, forecasts = forecast_all(forecast_matrix(shares, args.period, max_series=args.max_series),
                                     h=args.horizon, freq=args.period, selection=args.selection,
                                     progress=not args.quiet)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    scores.to_csv(Path(args.out) / "forecast_scores.csv", index=False)
    forecasts.to_csv(Path(args.out) / "forecasts.csv", index=False)
    print(forecasts.to_string(index=False))
    return 0


def _cmd_trends_events(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fashionlens.trends.events import detect_shifts, detect_spikes, rising_falling
    from fashionlens.trends.series import attribute_shares, share_matrix

    data = _trends_data(args)
    shares = attribute_shares(data, args.period, by_place=True, min_support=args.min_support)
    m, n = share_matrix(shares, args.period)
    tables = {"spikes": detect_spikes(m, args.period, counts=n, z_threshold=args.z), "shifts": detect_shifts(m, args.period, counts=n),
              "rising_falling": rising_falling(shares, args.period)}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(Path(args.out) / f"{name}.csv", index=False)
        print(f"== {name} ({len(df)})\n{df.head(10).to_string(index=False)}")
    return 0


def _add_trends_parser(sub) -> None:
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


# --- annotate (issue 3: flat-lay auto-annotation) ---------------------------------------------------
def _cmd_annotate_flatlay(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fashionlens.annotate_flatlay import FlatlayParams, annotate_flatlay, dataset_labels, write_flatlay_coco

    labels = dataset_labels(args.dataset, Path(args.root) / args.dataset) if args.dataset else None
    report = annotate_flatlay(args.inputs, labels=labels, params=FlatlayParams(work_side=args.work_side),
                              render_dir=args.render)
    coco = write_flatlay_coco(report, args.out, object_types=args.object_types, image_root=args.image_root)
    print(json.dumps({"out": args.out, **report.summary(), "coco": coco, "no_box_photos": report.no_box}, indent=2))
    return 0


def _add_annotate_parser(sub) -> None:
    annotate = sub.add_parser("annotate", help="automatic annotation tools").add_subparsers(dest="what", required=True)
    fl = annotate.add_parser("flatlay", help="box + mask around the garment of single-garment product photos → COCO")
    fl.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    fl.add_argument("--out", required=True, help="COCO JSON to write")
    fl.add_argument("--render", default=None, metavar="DIR", help="write <stem>.png with the box drawn")
    fl.add_argument("--dataset", choices=["clothing", "rise"], default=None, help="label photos from this data set")
    fl.add_argument("--root", default="../shared/datasets", help="folder holding the data sets (with --dataset)")
    fl.add_argument("--object-types", action="store_true",
                    help="COCO categories = object types (keeps coarse labels) instead of taxonomy categories")
    fl.add_argument("--image-root", default=None, help="file_name is relative to this (default: the JSON's folder)")
    fl.add_argument("--work-side", type=int, default=384, help="shorter side the edge detection works at")
    fl.set_defaults(func=_cmd_annotate_flatlay)


def build_parser() -> argparse.ArgumentParser:
    from fashionlens import __version__

    p = argparse.ArgumentParser(prog="fashionlens", description="Understand photos of clothes.")
    p.add_argument("--version", action="version", version=f"fashionlens {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)

    tag = sub.add_parser("tag", help="tag photos (files, folders, globs) → JSON lines")
    tag.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    tag.add_argument("-o", "--output", default="-", help="JSONL output file ('-' = stdout)")
    tag.add_argument("--weights", default=None, help="classifier weights (default: the shipped model)")
    tag.add_argument("--backend", choices=["auto", "onnx", "torch"], default="auto")
    tag.add_argument("--whole-image", action="store_true", default=True,
                     help="treat each photo as one garment (the only mode until a detector ships)")
    tag.add_argument("--batch-size", type=int, default=16)
    tag.add_argument("--threads", type=int, default=None, help="inference threads (default: all cores)")
    tag.add_argument("--max-pixels", type=int, default=40_000_000, help="refuse larger images (decompression bombs)")
    tag.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    tag.set_defaults(func=_cmd_tag)

    train = sub.add_parser("train", help="train a model").add_subparsers(dest="what", required=True)
    tc = train.add_parser("classifier", help="train the garment classifier")
    tc.add_argument("--config", required=True, help="YAML config (see configs/)")
    tc.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config option")
    tc.add_argument("--restart", action="store_true", help="ignore an existing checkpoint instead of resuming")
    tc.set_defaults(func=_cmd_train_classifier)

    ev = sub.add_parser("evaluate", help="evaluate a model").add_subparsers(dest="what", required=True)
    ec = ev.add_parser("classifier", help="metrics + confusion matrices on a prepared split")
    ec.add_argument("--weights", default=None, help="classifier weights (default: the shipped model)")
    ec.add_argument("--cache", default="runs/cache/classifier-224-s0", help="prepared sample cache")
    ec.add_argument("--split", default="test", choices=["train", "val", "test"])
    ec.add_argument("--out", default="runs/eval", help="folder for metrics.json and PNGs")
    ec.add_argument("--batch-size", type=int, default=64)
    ec.set_defaults(func=_cmd_evaluate_classifier)

    data = sub.add_parser("data", help="data set tools").add_subparsers(dest="what", required=True)
    ds = data.add_parser("stats", help="class counts, imbalance (IRLbl, MeanIR, SCUMBLE), image sizes")
    ds.add_argument("dataset", choices=["clothing", "rise", "ccp"])
    ds.add_argument("--root", default="../shared/datasets", help="folder holding the data sets")
    ds.add_argument("--json", action="store_true")
    ds.set_defaults(func=_cmd_data_stats)

    ex = sub.add_parser("export", help="export models").add_subparsers(dest="what", required=True)
    eo = ex.add_parser("onnx", help="export the classifier to ONNX")
    eo.add_argument("--weights", default=None)
    eo.add_argument("--output", default=None)
    eo.set_defaults(func=_cmd_export_onnx)

    _add_trends_parser(sub)
    _add_annotate_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"fashionlens: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
