"""``fashionlens data stats``. Parses arguments and calls :mod:`fashionlens.evaluate.data_stats`."""

from __future__ import annotations

import argparse
import json


def _cmd_data_stats(args: argparse.Namespace) -> int:
    from fashionlens.evaluate.data_stats import dataset_stats, format_stats

    stats = dataset_stats(args.dataset, args.root)
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``data`` group (``data stats``) to the top-level sub-commands ``sub``."""
    data = sub.add_parser("data", help="data set tools").add_subparsers(dest="what", required=True)
    ds = data.add_parser("stats", help="class counts, imbalance (IRLbl, MeanIR, SCUMBLE), image sizes")
    ds.add_argument("dataset", choices=["clothing", "rise", "ccp"])
    ds.add_argument("--root", default="../shared/datasets", help="folder holding the data sets")
    ds.add_argument("--json", action="store_true")
    ds.set_defaults(func=_cmd_data_stats)
