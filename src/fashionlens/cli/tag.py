"""``fashionlens tag``: photos → JSON lines. Parses arguments and calls
:func:`fashionlens.jobs.local.run_tag_job` (or :func:`fashionlens.jobs.ray.run_ray_tag_job` with ``--engine ray``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _cmd_tag(args: argparse.Namespace) -> int:
    from fashionlens.jobs.local import run_tag_job

    _precision(args)  # refuse a bad --precision before anything loads
    _detection_precision(args)
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
                       embed=args.embed, manifest=args.manifest, job_dir=args.job_dir,
                       chunk_size=args.chunk_size, resume=args.resume,
                       formats=None if args.format is None else args.format.split(","),
                       type_fusion=args.type_fusion == "on", pixel_colours=args.pixel_colours == "on",
                       precision=_precision(args), keep_uncertain=args.keep_uncertain,
                       detection_precision=_detection_precision(args), cross_type=args.cross_type == "on")


def _detection_precision(args: argparse.Namespace) -> float | None:
    """``--detection-precision``: a target in (0, 1], or None (the detector's stored score threshold only)."""
    value = args.detection_precision
    if value is not None and not 0.0 < value <= 1.0:
        args.tag_parser.error(f"--detection-precision: expected a number in (0, 1]; got {value}")
    if value is not None and args.whole_image:
        args.tag_parser.error("--detection-precision needs detection (not --whole-image)")
    return value


def _precision(args: argparse.Namespace) -> float | None:
    """``--precision``: a target in (0, 1], or ``off`` (None: every field emitted as sure, as in result v1)."""
    from fashionlens.models.calibration import parse_precision

    try:
        return parse_precision(args.precision)
    except ValueError as exc:
        args.tag_parser.error(f"--precision: {exc}")


def _tag_on_ray(args: argparse.Namespace, settings: Any, output: str | None) -> int:
    from fashionlens.jobs.ray import run_ray_tag_job
    from fashionlens.pipeline import TaggerConfig

    if args.render is not None:
        args.tag_parser.error("--render is not available with --engine ray (the workers may be other machines)")
    spec = TaggerConfig(weights=args.weights, backend=args.backend, threads=args.threads, whole_image=args.whole_image,
                      detector=args.detector, detect_settings=settings, detector_backend=args.detector_backend,
                      embed=args.embed, type_fusion=args.type_fusion == "on",
                      pixel_colours=args.pixel_colours == "on", precision=_precision(args),
                      keep_uncertain=args.keep_uncertain, detection_precision=_detection_precision(args),
                      cross_type=args.cross_type == "on")
    return run_ray_tag_job(args.inputs, spec=spec, output=output, ray_address=args.ray_address,
                           num_actors=args.ray_actors, batch_size=args.batch_size, max_pixels=args.max_pixels,
                           progress=not args.quiet,
                           on_summary=lambda line: print(f"fashionlens: {line}", file=sys.stderr),
                           manifest=args.manifest, job_dir=args.job_dir, chunk_size=args.chunk_size, resume=args.resume,
                           formats=None if args.format is None else args.format.split(","))


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``tag`` to the top-level sub-commands ``sub``."""
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
    tag.add_argument("--cross-type", choices=["on", "off"], default="on",
                     help="on: of two garments whose boxes overlap with IoU > 0.7 (different object types, or one "
                          "type twice after type fusion) only the higher-scored is kept, and a footwear box spanning "
                          "two shoes found one by one is dropped (docs/detection.md, 'Duplicates and footwear pairs'); "
                          "off: every detection is kept")
    tag.add_argument("--pixel-colours", choices=["on", "off"], default="on",
                     help="on: colour names average the colour head with a model of the garment's own pixels where "
                          "they are known (mask or plain backdrop; garment-colours-pixels); off: the head alone")
    tag.add_argument("--precision", default="0.90", metavar="P",
                     help="operating point: a field whose calibrated score is below the threshold at which it reached "
                          "precision P on validation is emitted as unsure (id null + candidates; colours listed only "
                          "when sure); 'off': every field as sure (docs/calibration.md; default 0.90)")
    tag.add_argument("--keep-uncertain", action="store_true",
                     help="unsure fields keep their best guess (still marked \"uncertain\": true)")
    tag.add_argument("--detection-precision", type=float, default=None, metavar="P",
                     help="also drop detected garments whose calibrated score is below the threshold at which "
                          "detections reached precision P on validation (default: only the detector's stored "
                          "score threshold; docs/calibration.md)")
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
    tag.add_argument("--embed", action="store_true",
                     help="store each garment's embedding (1280 float16, base64) in the results")
    tag.set_defaults(func=_cmd_tag, tag_parser=tag)
