"""``fashionlens train classifier`` and ``train detector``. Parses arguments and calls
:func:`fashionlens.train.classifier.train_classifier` / :func:`fashionlens.train.detector.train_detector`."""

from __future__ import annotations

import argparse
import json
from typing import Any

#: the recipe ``train classifier --corrections`` uses when no ``--config`` is given
CORRECTIONS_RECIPE = "configs/classifier_lite0_cpu.yaml"


def _cmd_train_corrections(args: argparse.Namespace) -> int:
    """``train classifier --corrections REVIEW.sqlite``: heads fine-tuned on train + reviewed labels, recalibrated."""
    import sys

    from fashionlens.review.errors import ReviewStoreError
    from fashionlens.train.config import load_config, parse_override
    from fashionlens.train.corrections import (
        HeadRecipe,
        NoCorrectionsError,
        retrain_from_corrections,
    )

    config_path = args.config or CORRECTIONS_RECIPE
    overrides = dict(parse_override(s) for s in args.set or [])
    config = load_config(config_path, overrides)
    out_dir = args.out or (config.out_dir + "-corrections")
    try:
        summary = retrain_from_corrections(
            args.corrections, config, base_weights=args.base_weights, out_dir=out_dir,
            recipe=HeadRecipe(epochs=args.head_epochs, correction_weight=args.correction_weight),
            config_path=config_path, recalibrate=not args.no_recalibrate)
    except (ReviewStoreError, NoCorrectionsError, FileNotFoundError) as exc:
        print(f"fashionlens: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    print(json.dumps(summary, indent=2, default=float))
    return 0


def _cmd_train_classifier(args: argparse.Namespace) -> int:
    from fashionlens.train.classifier import train_classifier
    from fashionlens.train.config import load_config, parse_override

    if args.corrections:
        return _cmd_train_corrections(args)
    if not args.config:
        args.parser.error("--config is required (unless --corrections is given)")
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
    tc.add_argument("--config", help="YAML config (see configs/); required unless --corrections is given, "
                    f"which defaults to {CORRECTIONS_RECIPE}")
    tc.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config option")
    tc.add_argument("--restart", action="store_true", help="ignore an existing checkpoint instead of resuming")
    corr = tc.add_argument_group("retraining from review corrections (docs/review.md)")
    corr.add_argument("--corrections", metavar="REVIEW.sqlite",
                      help="fine-tune the heads of --base-weights on the recipe's training split plus the accepted/"
                      "corrected labels of this review store (frozen backbone, cached features), then recalibrate")
    corr.add_argument("--base-weights", metavar="MODEL.pt", help="the weights to start from (default: the shipped "
                      "classifier)")
    corr.add_argument("--out", metavar="DIR", help="where model.pt, its calibration sidecar and the reports go "
                      "(default: the config's out_dir + '-corrections')")
    corr.add_argument("--head-epochs", type=int, default=12, metavar="N", help="epochs of the heads fine-tune")
    corr.add_argument("--correction-weight", type=float, default=1.0, metavar="W",
                      help="a reviewed garment's loss weight relative to an original training sample")
    corr.add_argument("--no-recalibrate", action="store_true", help="skip the calibration refit on validation")
    tc.set_defaults(func=_cmd_train_classifier, parser=tc)

    td = train_sub.add_parser("detector", help="train the garment detector (CPU-friendly: cached frozen stem)")
    td.add_argument("--config", required=True, help="YAML config (see configs/detector_*.yaml)")
    td.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config option")
    td.add_argument("--restart", action="store_true", help="ignore an existing checkpoint instead of resuming")
    td.set_defaults(func=_cmd_train_detector)
