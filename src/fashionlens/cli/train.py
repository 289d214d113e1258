"""``fashionlens train classifier`` and ``train detector``. Parses arguments and calls
:func:`fashionlens.train.classifier.train_classifier` / :func:`fashionlens.train.detector.train_detector`."""

from __future__ import annotations

import argparse
import json
from typing import Any


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


def _cmd_train_detector(args: argparse.Namespace) -> int:
    from fashionlens.train.config import load_config, parse_override
    from fashionlens.train.detector import DetectorTrainConfig, train_detector

    config = load_config(args.config, dict(parse_override(o) for o in args.set or []),
                         config_class=DetectorTrainConfig)
    result = train_detector(config, resume=not args.restart)
    print(json.dumps({"out_dir": config.out_dir, "best_epoch": result["best_epoch"],
                      "val": _box_mask(result["val"]), "test": _box_mask(result["test"])}, indent=2))
    return 0


def _box_mask(result: dict[str, Any] | None) -> dict[str, Any] | None:
    if not result:
        return None
    return {"box": (result.get("bbox") or {}).get("stats"), "mask": (result.get("segm") or {}).get("stats")}


def register_train(train_sub: argparse._SubParsersAction) -> None:
    """Add ``classifier`` and ``detector`` to the ``train`` group's sub-commands ``train_sub``."""
    tc = train_sub.add_parser("classifier", help="train the garment classifier")
    tc.add_argument("--config", required=True, help="YAML config (see configs/)")
    tc.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config option")
    tc.add_argument("--restart", action="store_true", help="ignore an existing checkpoint instead of resuming")
    tc.set_defaults(func=_cmd_train_classifier)

    td = train_sub.add_parser("detector", help="train the garment detector (CPU-friendly: cached frozen stem)")
    td.add_argument("--config", required=True, help="YAML config (see configs/detector_*.yaml)")
    td.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config option")
    td.add_argument("--restart", action="store_true", help="ignore an existing checkpoint instead of resuming")
    td.set_defaults(func=_cmd_train_detector)
