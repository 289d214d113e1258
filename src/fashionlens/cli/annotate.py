"""``fashionlens annotate flatlay`` (issue 3): flat-lay auto-annotation. Parses arguments and calls
:mod:`fashionlens.detection.flatlay`."""

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
