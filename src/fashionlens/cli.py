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
                       max_pixels=args.max_pixels, progress=not args.quiet)


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
