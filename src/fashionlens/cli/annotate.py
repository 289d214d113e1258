"""``fashionlens annotate flatlay`` (issue 3): flat-lay auto-annotation, and ``annotate pseudo-labels``
(issue 28): tag-filtered teacher boxes for tag-only photos. Parse arguments and call
:mod:`fashionlens.detection.flatlay` / :mod:`fashionlens.train.pseudo_labels`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


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


def _cmd_annotate_pseudo_labels(args: argparse.Namespace) -> int:
    from fashionlens.detection.detector import GarmentDetector
    from fashionlens.models.calibration import Calibration
    from fashionlens.paths import default_data_root
    from fashionlens.train.pseudo_labels import (
        CCP_LAST_MASKED_ID,
        PseudoLabelRules,
        check_outside_masked_split,
        finite_threshold,
        label_photos,
        load_candidates,
        read_tags,
        save_candidates,
        teacher_candidates,
        write_pseudo_coco,
    )

    root = Path(args.root or default_data_root())
    tags_path = Path(args.tags) if Path(args.tags).is_file() else root / args.tags
    tags = read_tags(tags_path)
    photo_dir = Path(args.images) if args.images else tags_path.parent / "photos"
    photos = {pid: photo_dir / f"{pid}.jpg" for pid in tags}
    missing = [str(p) for p in photos.values() if not p.is_file()]
    if missing:
        raise SystemExit(f"annotate pseudo-labels: {len(missing)} tagged photos not found, e.g. {missing[:3]}")
    mask_dir = tags_path.parent / "masks"
    masked = {p.stem for p in mask_dir.glob("*.png")} if mask_dir.is_dir() else set()
    check_outside_masked_split(photos, masked)
    above = [pid for pid in photos if pid.isdigit() and int(pid) <= CCP_LAST_MASKED_ID]
    if above and tags_path.parent.name == "ccp":
        raise SystemExit(f"annotate pseudo-labels: CCP tag-only photos must have ids > {CCP_LAST_MASKED_ID}, "
                         f"got {above[:5]}")
    if args.limit:
        photos = dict(sorted(photos.items())[: args.limit])
    detector = GarmentDetector(args.teacher, threads=args.threads)
    calibration = None if args.uncalibrated else Calibration.for_weights(detector.path)
    if calibration is None and not args.uncalibrated:
        raise SystemExit(f"annotate pseudo-labels: {detector.path} has no calibration sidecar; "
                         "pass --uncalibrated to threshold its raw scores")
    curve = calibration.operating.get("detection") if calibration is not None else None
    if curve is None and (args.check_val or args.keep_score is None or args.uncertain_score is None):
        why = ("--uncalibrated" if calibration is None
               else f"{detector.path}'s calibration sidecar has no detection operating curve")
        raise SystemExit(f"annotate pseudo-labels: {why}: expected --keep-score and --uncertain-score (raw scores); "
                         "the precision targets and --check-val need the calibration's operating curve")
    keep = (args.keep_score if args.keep_score is not None
            else finite_threshold(curve.threshold_for(args.keep_precision), f"--keep-precision {args.keep_precision}"))
    uncertain = (args.uncertain_score if args.uncertain_score is not None
                 else finite_threshold(curve.threshold_for(args.uncertain_precision),
                                       f"--uncertain-precision {args.uncertain_precision}"))
    rules = PseudoLabelRules(keep_score=keep, uncertain_score=min(uncertain, keep), match_iou=args.match_iou)
    if args.check_val:
        return _check_on_ccp_val(detector, calibration, curve, root, args)
    cache = Path(args.out).with_suffix(".candidates.json")
    key = {"teacher": str(Path(detector.path).resolve()), "version": detector.meta.version,
           "calibrated": calibration is not None, "hflip_tta": args.hflip_tta}
    done = load_candidates(cache, key, photos)
    cands = teacher_candidates(detector, photos, calibration=calibration, hflip_tta=args.hflip_tta, done=done,
                               checkpoint=lambda so_far: save_candidates(cache, so_far, key))
    if len(done) < len(photos):
        save_candidates(cache, cands, key)
    labels = label_photos(cands, tags, rules)
    try:
        images = str(photo_dir.resolve().relative_to(root.resolve()))
    except ValueError:
        images = str(photo_dir.resolve())
    val_at = {name: (dict(zip(("precision", "recall"), curve.at(t))) if curve is not None else None)
              for name, t in (("keep", keep), ("uncertain", rules.uncertain_score))}
    info = {"teacher": {**detector.model_info, "path": str(detector.path)},
            "tags": str(tags_path), "rules": {"keep_score": keep, "uncertain_score": rules.uncertain_score,
                                              "match_iou": args.match_iou, "calibrated": calibration is not None,
                                              "hflip_tta": args.hflip_tta, "ccp_val_at_threshold": val_at}}
    summary = write_pseudo_coco(labels, args.out, images=images, file_names={p: photos[p].name for p in labels},
                                tags=tags, info=info)
    print(json.dumps({"out": args.out, **info, "summary": summary}, indent=2))
    return 0


def _check_on_ccp_val(detector: object, calibration: object, curve: object, root: Path,
                      args: argparse.Namespace) -> int:
    """The rules on CCP's *validation* photos (tags read off their masks) for a grid of operating points."""
    import numpy as np
    from PIL import Image

    from fashionlens.io.datasets import read_dataset
    from fashionlens.io.splits import group_split
    from fashionlens.train.pseudo_labels import (
        PseudoLabelRules,
        label_photos,
        rule_quality,
        tag_ids_of_records,
        tags_of_mask,
        teacher_candidates,
    )

    val = group_split(read_dataset("ccp", root), seed=0)["val"]
    photos, truth = tag_ids_of_records(val)
    labels_json = json.loads((root / "ccp" / "labels.json").read_text("utf-8"))
    tags = {pid: tags_of_mask(np.asarray(Image.open(root / "ccp" / "masks" / f"{pid}.png")), labels_json)
            for pid in photos}
    cands = teacher_candidates(detector, photos, calibration=calibration, hflip_tta=args.hflip_tta)
    rows = []
    for keep_p in (0.70, 0.75, 0.80, 0.85):
        for unc_p in (0.50, 0.60, 0.70, 1.01):
            keep = curve.threshold_for(keep_p)  # type: ignore[attr-defined]
            unc = keep if unc_p > 1 else min(keep, curve.threshold_for(unc_p))  # type: ignore[attr-defined]
            q = rule_quality(label_photos(cands, tags, PseudoLabelRules(keep, unc, args.match_iou)), truth)
            rows.append({"keep_precision": keep_p, "uncertain_precision": None if unc_p > 1 else unc_p,
                         "keep_score": keep, "uncertain_score": unc, **q})
    result = {"split": "ccp val (seed 0)", "photos": len(photos), "hflip_tta": args.hflip_tta, "grid": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``annotate`` group (``annotate flatlay``) to the top-level sub-commands ``sub``."""
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

    pl = annotate.add_parser("pseudo-labels", help="teacher boxes on tag-only photos, filtered by their tags → COCO "
                             "with per-photo ignored object types (docs/detection.md)")
    pl.add_argument("--teacher", default=None, help="detector weights (.pt or .onnx; default: the shipped detector)")
    pl.add_argument("--tags", default="ccp/tags.csv", help="image,tags CSV (path, or relative to --root)")
    pl.add_argument("--images", default=None, help="folder of <image>.jpg (default: photos/ next to the tags)")
    pl.add_argument("--root", default=None, help="data root (default: $FASHIONLENS_DATA or ../shared/datasets)")
    pl.add_argument("--out", required=True, help="COCO JSON to write")
    pl.add_argument("--keep-precision", type=float, default=0.80,
                    help="keep boxes whose calibrated score reaches this CCP-val precision (default 0.80)")
    pl.add_argument("--uncertain-precision", type=float, default=0.50,
                    help="unmatched candidates from this precision up to the keep threshold make their type "
                         "ignored (default 0.50)")
    pl.add_argument("--keep-score", type=float, default=None,
                    help="calibrated score threshold (overrides --keep-precision)")
    pl.add_argument("--uncertain-score", type=float, default=None, help="overrides --uncertain-precision")
    pl.add_argument("--match-iou", type=float, default=0.5, help="IoU at which an uncertain box duplicates a kept one")
    pl.add_argument("--hflip-tta", action="store_true", help="also run the mirrored photo and merge (2x time)")
    pl.add_argument("--uncalibrated", action="store_true", help="threshold raw scores (no calibration sidecar)")
    pl.add_argument("--check-val", action="store_true",
                    help="instead: measure the rules on CCP val (tags read off its masks) for a grid of thresholds")
    pl.add_argument("--limit", type=int, default=None, help="only the first N photos (smoke runs)")
    pl.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
    pl.set_defaults(func=_cmd_annotate_pseudo_labels)
