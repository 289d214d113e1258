"""The ``fashionlens`` command line: parses arguments and calls the library. Nothing else."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


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
    from fashionlens.jobs.local import run_tag_job

    if not args.inputs and args.manifest is None and not (args.job_dir and args.resume):
        args.tag_parser.error("give image files, folders or glob patterns, or --manifest FILE "
                              "(or --job-dir DIR --resume to continue a job with its own inputs)")
    if args.job_dir is None and (args.resume or args.chunk_size is not None or args.format is not None):
        args.tag_parser.error("--resume, --chunk-size and --format need --job-dir")
    if args.streams < 1:
        args.tag_parser.error(f"--streams: expected a positive number; got {args.streams}")
    if args.engine == "ray" and args.streams != 1:
        args.tag_parser.error("--streams is for the local engine; with --engine ray use --ray-actors")
    settings = None
    if not args.whole_image:  # the detector (and torch) is imported only when detecting
        from fashionlens.detection.detector import DetectSettings

        settings = DetectSettings(score_thresh=args.score_thresh, nms_thresh=args.nms_thresh,
                                  rules=tuple(r for r in (args.rules or "").split(",") if r))
    output = args.output if args.output is not None or args.job_dir else "-"
    if args.engine == "ray":
        return _tag_on_ray(args, settings, output)
    if args.ray_address is not None or args.ray_actors is not None:
        args.tag_parser.error("--ray-address and --ray-actors need --engine ray")
    return run_tag_job(args.inputs, output=output, weights=args.weights, backend=args.backend,
                       batch_size=args.batch_size, threads=args.threads, whole_image=args.whole_image,
                       detector=args.detector, detect_settings=settings, render_dir=args.render,
                       detector_backend=args.detector_backend, streams=args.streams,
                       max_pixels=args.max_pixels, progress=not args.quiet,
                       on_summary=lambda line: print(f"fashionlens: {line}", file=sys.stderr),
                       embed=getattr(args, "embed", False), manifest=args.manifest, job_dir=args.job_dir,
                       chunk_size=args.chunk_size, resume=args.resume,
                       formats=None if args.format is None else args.format.split(","),
                       type_fusion=args.type_fusion == "on", pixel_colours=args.pixel_colours == "on")


def _tag_on_ray(args: argparse.Namespace, settings: object, output: str | None) -> int:
    from fashionlens.jobs.ray import TaggerSpec, run_ray_tag_job

    if args.render is not None:
        args.tag_parser.error("--render is not available with --engine ray (the workers may be other machines)")
    spec = TaggerSpec(weights=args.weights, backend=args.backend, threads=args.threads, whole_image=args.whole_image,
                      detector=args.detector, detect_settings=settings, detector_backend=args.detector_backend,
                      embed=getattr(args, "embed", False), type_fusion=args.type_fusion == "on",
                      pixel_colours=args.pixel_colours == "on")
    return run_ray_tag_job(args.inputs, spec=spec, output=output, ray_address=args.ray_address,
                           num_actors=args.ray_actors, batch_size=args.batch_size, max_pixels=args.max_pixels,
                           progress=not args.quiet,
                           on_summary=lambda line: print(f"fashionlens: {line}", file=sys.stderr),
                           manifest=args.manifest, job_dir=args.job_dir, chunk_size=args.chunk_size, resume=args.resume,
                           formats=None if args.format is None else args.format.split(","))


def _cmd_train_detector(args: argparse.Namespace) -> int:
    from fashionlens.train.config import load_config, parse_override
    from fashionlens.train.detector import DetectorTrainConfig, train_detector

    config = load_config(args.config, dict(parse_override(o) for o in args.set or []),
                         config_class=DetectorTrainConfig)
    result = train_detector(config, resume=not args.restart)
    print(json.dumps({"out_dir": config.out_dir, "best_epoch": result["best_epoch"],
                      "val": _box_mask(result["val"]), "test": _box_mask(result["test"])}, indent=2))
    return 0


def _box_mask(result: dict | None) -> dict | None:
    if not result:
        return None
    return {"box": (result.get("bbox") or {}).get("stats"), "mask": (result.get("segm") or {}).get("stats")}


def _cmd_evaluate_detector(args: argparse.Namespace) -> int:
    from fashionlens.detection.detector import DetectSettings, GarmentDetector
    from fashionlens.evaluate.detector_report import evaluate_detector
    from fashionlens.pipeline import Tagger

    if args.save_defaults and args.type_fusion == "on" and not args.no_classify:
        args.ed_parser.error("--save-defaults stores the detector's own threshold: add --type-fusion off")
    if args.coco:
        from fashionlens.io.coco import read_coco

        records = read_coco(args.coco, args.images, mapping=args.mapping)
    else:
        from fashionlens.io.datasets import read_dataset
        from fashionlens.io.splits import group_split

        records = []
        for name in args.dataset.split(","):
            records += group_split(read_dataset(name, args.data_root), seed=args.seed)[args.split]
    if args.limit:
        records = records[: args.limit]
    detector = GarmentDetector(args.weights, settings=DetectSettings(score_thresh=args.score_thresh,
                                                                     nms_thresh=args.nms_thresh))
    fusion = {} if args.type_fusion == "on" else {"type_fusion": None}
    tagger = None if args.no_classify else Tagger(args.classifier, detector=detector, **fusion)
    if args.task == "top1":
        from fashionlens.evaluate.detector_report import top_detection_accuracy

        result = top_detection_accuracy(detector, records, tagger=tagger, progress=not args.quiet)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "top_detection.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
        return 0
    rule_sets = [tuple(r for r in rs.split(",") if r) for rs in (args.rules or [""])]
    result = evaluate_detector(detector, records, out_dir=args.out, rule_sets=rule_sets, tagger=tagger,
                               progress=not args.quiet)
    first = next(iter(result["rule_sets"].values()))
    if args.save_defaults:
        from fashionlens.models.detector_weights import set_detector_defaults

        best = max(first["pr_sweep"], key=lambda row: row["f1"])
        defaults = {"score_thresh": best["score_thresh"], "nms_thresh": detector.nms_thresh,
                    "rules": list(rule_sets[0]), "f1": best["f1"],
                    "measured_on": f"{args.coco or args.dataset} {args.split} (seed {args.seed}), {len(records)} photos"}
        set_detector_defaults(detector.path, defaults)
        print(f"fashionlens: stored defaults {defaults} in {detector.path}", file=sys.stderr)
    print(json.dumps({"images": result["images"], "box": first["bbox"], "mask": first["segm"],
                      "box_garments4": first["bbox_garments4"], "mask_garments4": first["segm_garments4"],
                      "end_to_end": result.get("end_to_end"), "out": args.out}, indent=2))
    return 0


def _cmd_data_stats(args: argparse.Namespace) -> int:
    from fashionlens.evaluate.data_stats import dataset_stats, format_stats

    stats = dataset_stats(args.dataset, args.root)
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    if getattr(args, "damage", None) is not None:
        from fashionlens.runtime.damage_onnx import export_damage_onnx

        print(export_damage_onnx(args.damage or None, args.output))
        return 0
    if args.detector is not None:
        from fashionlens.runtime.detector_onnx import export_detector_onnx

        print(export_detector_onnx(args.detector or None, args.output))
        return 0
    from fashionlens.runtime.onnx_export import export_classifier_onnx

    print(export_classifier_onnx(args.weights, args.output))
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

    from fashionlens.detection.flatlay import (
        FlatlayParams,
        annotate_flatlay,
        dataset_labels,
        write_flatlay_coco,
    )

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
    tag.add_argument("inputs", nargs="*", help="image files, folders or glob patterns")
    tag.add_argument("-o", "--output", default=None, help="JSONL output file ('-' = stdout, the default); with "
                     "--job-dir: the merged results once the job is complete (.parquet → Parquet)")
    tag.add_argument("--manifest", default=None, metavar="FILE", help="more inputs: a file with one path per line, "
                     "or a CSV with a 'path' column (relative paths are relative to the manifest)")
    tag.add_argument("--job-dir", default=None, metavar="DIR", help="resumable job: results in atomically "
                     "committed chunks plus a job manifest in DIR (see docs/batch_jobs.md)")
    tag.add_argument("--chunk-size", type=int, default=None, help="inputs per committed chunk (default 500)")
    tag.add_argument("--format", default=None, help="chunk formats, comma-separated: jsonl,parquet (the default)")
    tag.add_argument("--resume", action="store_true", help="continue the job in --job-dir (same inputs and "
                     "settings; without inputs: the job's own list); starts it when there is none")
    tag.add_argument("--weights", default=None, help="classifier weights (default: the shipped model)")
    tag.add_argument("--backend", choices=["auto", "onnx", "torch"], default="auto")
    tag.add_argument("--whole-image", action="store_true",
                     help="treat each photo as one garment (no detection; for single-garment product photos)")
    tag.add_argument("--detector", default=None, help="detector weights (default: the shipped detector)")
    tag.add_argument("--score-thresh", type=float, default=None, help="keep detections scoring at least this "
                     "(default: the value measured on validation, stored with the detector)")
    tag.add_argument("--nms-thresh", type=float, default=None, help="IoU for same-type suppression")
    tag.add_argument("--rules", default=None, help="post-processing rules, comma-separated: "
                     "duplicates, hand_footwear, sparse_mask")
    tag.add_argument("--type-fusion", choices=["on", "off"], default="on",
                     help="on: a confident classifier's object type replaces the detector's (docs/detection.md); "
                          "off: the detector's types (street photos: +1.3 box AP, product photos: -4.5 points top-1)")
    tag.add_argument("--pixel-colours", choices=["on", "off"], default="on",
                     help="on: colour names average the colour head with a model of the garment's own pixels where "
                          "they are known (mask or plain backdrop; garment-colours-pixels); off: the head alone")
    tag.add_argument("--detector-backend", choices=["auto", "onnx", "torch"], default="auto",
                     help="detector network runtime (auto: ONNX when an export sits next to the weights)")
    tag.add_argument("--render", default=None, metavar="DIR", help="write an annotated copy of each photo to DIR")
    tag.add_argument("--batch-size", type=int, default=16)
    tag.add_argument("--threads", type=int, default=None, help="inference threads (default: all cores)")
    tag.add_argument("--streams", type=int, default=1, metavar="N",
                     help="batches in flight at once, sharing the models (e.g. 2 with --threads 1 on 2 cores: "
                          "docs/performance.md)")
    tag.add_argument("--max-pixels", type=int, default=40_000_000, help="refuse larger images (decompression bombs)")
    tag.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    tag.add_argument("--engine", choices=["local", "ray"], default="local",
                     help="local: this process; ray: Ray Data with an actor pool (pip install 'ray[data]'; docs/ray.md)")
    tag.add_argument("--ray-address", default=None, metavar="ADDR", help="with --engine ray: an existing cluster "
                     "('auto', 'ray://head:10001'); default: a local Ray instance on this machine's CPUs")
    tag.add_argument("--ray-actors", type=int, default=None, metavar="N", help="with --engine ray: actors (model "
                     "copies) in the pool, 1 CPU each (default: the cluster's CPUs); --threads = threads per actor")
    tag.set_defaults(func=_cmd_tag, tag_parser=tag)

    train = sub.add_parser("train", help="train a model").add_subparsers(dest="what", required=True)
    tc = train.add_parser("classifier", help="train the garment classifier")
    tc.add_argument("--config", required=True, help="YAML config (see configs/)")
    tc.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config option")
    tc.add_argument("--restart", action="store_true", help="ignore an existing checkpoint instead of resuming")
    tc.set_defaults(func=_cmd_train_classifier)

    td = train.add_parser("detector", help="train the garment detector (CPU-friendly: cached frozen stem)")
    td.add_argument("--config", required=True, help="YAML config (see configs/detector_*.yaml)")
    td.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config option")
    td.add_argument("--restart", action="store_true", help="ignore an existing checkpoint instead of resuming")
    td.set_defaults(func=_cmd_train_detector)

    ev = sub.add_parser("evaluate", help="evaluate a model").add_subparsers(dest="what", required=True)
    ed = ev.add_parser("detector", help="COCO box/mask AP, PR sweep and end-to-end metrics on labelled photos")
    ed.add_argument("--weights", default=None, help="detector weights (default: the shipped detector)")
    ed.add_argument("--classifier", default=None, help="classifier weights for end-to-end metrics (default: shipped)")
    ed.add_argument("--coco", default=None, help="COCO instances JSON (else --dataset/--split)")
    ed.add_argument("--images", default=None, help="image folder of --coco")
    ed.add_argument("--mapping", default=None, help="taxonomy mapping of the COCO labels (e.g. fashionpedia)")
    ed.add_argument("--dataset", default="ccp", help="development data set(s), comma-separated (with --split)")
    ed.add_argument("--data-root", default="../shared/datasets")
    ed.add_argument("--split", choices=["train", "val", "test"], default="val")
    ed.add_argument("--seed", type=int, default=0, help="split seed (as in training)")
    ed.add_argument("--score-thresh", type=float, default=None, help="operating threshold for end-to-end metrics")
    ed.add_argument("--rules", action="append", metavar="R1,R2", help="rule set to measure (repeatable; '' = none)")
    ed.add_argument("--nms-thresh", type=float, default=None, help="same-type NMS IoU (default: stored)")
    ed.add_argument("--save-defaults", action="store_true",
                    help="store the F1-best score threshold (first rule set) in the detector weights")
    ed.add_argument("--no-classify", action="store_true",
                    help="detector only: no end-to-end classification metrics and no classifier-fused object types")
    ed.add_argument("--type-fusion", choices=["on", "off"], default="on",
                    help="on (as tag): a confident classifier's object type replaces the detector's "
                         "(fashionlens.detection.type_fusion); off: the detector's own types")
    ed.add_argument("--task", choices=["coco", "top1"], default="coco",
                    help="coco: AP on boxes/masks; top1: single-garment photos (clothing, rise), top detection's "
                         "object type vs the label")
    ed.add_argument("--limit", type=int, default=None)
    ed.add_argument("--out", default="runs/evaluate-detector", help="output folder")
    ed.add_argument("-q", "--quiet", action="store_true")
    ed.set_defaults(func=_cmd_evaluate_detector, ed_parser=ed)
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

    ex = sub.add_parser("export", help="export models (ONNX) and data (sorter corrections)").add_subparsers(dest="what", required=True)
    eo = ex.add_parser("onnx", help="export the classifier (default) or the detector network to ONNX")
    eo.add_argument("--weights", default=None, help="classifier weights (default: the shipped classifier)")
    eo.add_argument("--detector", nargs="?", const="", default=None, metavar="WEIGHTS",
                    help="export a detector instead (no value: the shipped detector)")
    eo.add_argument("--damage", nargs="?", const="", default=None, metavar="WEIGHTS",
                    help="export a damage head instead (no value: the shipped damage head)")
    eo.add_argument("--output", default=None, help="ONNX file (default: next to the weights)")
    eo.set_defaults(func=_cmd_export_onnx)
    from fashionlens.cli_sorting import add_export_corrections_parser, add_route_parser
    add_export_corrections_parser(ex)
    add_route_parser(sub)

    _add_trends_parser(sub)
    _add_annotate_parser(sub)
    from fashionlens.cli_search import add_search_parsers
    add_search_parsers(sub)
    from fashionlens.cli_grading import add_grading_parsers
    add_grading_parsers(sub)
    from fashionlens.cli_grader import (
        add_evaluate_grader_parser,
        add_train_grader_parser,
    )
    add_train_grader_parser(train)
    add_evaluate_grader_parser(ev)
    from fashionlens.cli_colours import add_colour_parsers
    add_colour_parsers(train, ev)
    from fashionlens.cli_agreement import add_agreement_parser
    add_agreement_parser(sub)
    from fashionlens.cli_serve import add_serve_parser
    add_serve_parser(sub)
    from fashionlens.cli_job import add_job_parsers
    add_job_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"fashionlens: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (``| head``): nothing more to say
        sys.stderr.close()
        return 1
    except OSError as exc:  # a full disk, a permission, an I/O error: one line, never a traceback
        print(f"fashionlens: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_OS_ERROR


#: exit code of a command stopped by an operating-system error (full disk, permission denied, I/O error)
EXIT_OS_ERROR = 3


def _one_line(exc: BaseException, limit: int = 1000) -> str:
    """An exception as one line of at most ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
