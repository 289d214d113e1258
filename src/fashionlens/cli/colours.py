"""Command line for the pixel colour model: ``train colours`` and ``evaluate colours``. Parses
arguments and calls the library (:mod:`fashionlens.train.colours`, :mod:`fashionlens.evaluate.colours`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from fashionlens.paths import default_data_root, runs_path


def _cmd_train_colours(args: argparse.Namespace) -> int:
    from fashionlens.train.colours import ColourTrainConfig, train_colours
    from fashionlens.train.config import load_config, parse_override

    config = load_config(args.config, dict(parse_override(o) for o in args.set or []), config_class=ColourTrainConfig)
    result = train_colours(config, progress=not args.quiet)
    print(json.dumps({k: _brief(v) for k, v in result.items()}, indent=2))
    return 0


def _brief(v: Any) -> Any:
    """Metrics without the per-colour tables (they are in the weights' meta and --out files)."""
    if isinstance(v, dict):
        return {k: _brief(x) for k, x in v.items() if k != "per_colour"}
    return v


def _cmd_evaluate_colours(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fashionlens.evaluate.colours import (
        evaluate_colours,
        labelled_colour_records,
        plot_colour_f1,
    )

    records = labelled_colour_records(args.data)[args.split]
    result = {"split": args.split, **evaluate_colours(records, args.weights, classifier=args.classifier,
                                                       threads=args.threads, progress=not args.quiet,
                                                       detect=args.detect)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    plot_colour_f1(result, out / f"colour_f1_{args.split}.png")
    print(json.dumps({**_brief(result), "out": str(out)}, indent=2))
    return 0


def register_train(train_sub: argparse._SubParsersAction) -> None:
    """Add ``colours`` (``fashionlens train colours``) to the ``train`` group's sub-commands ``train_sub``."""
    t = train_sub.add_parser("colours", help="fit the pixel colour model (colour names from a garment's own pixels)")
    t.add_argument("--config", default=None, help="YAML config (see configs/colours_pixels.yaml)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config option")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=_cmd_train_colours)


def register_evaluate(eval_sub: argparse._SubParsersAction) -> None:
    """Add ``colours`` (``fashionlens evaluate colours``) to the ``evaluate`` group's sub-commands ``eval_sub``."""
    e = eval_sub.add_parser("colours", help="colour macro-F1 of tag's colours on RISE: head alone vs head + pixels")
    e.add_argument("--weights", default=None, help="pixel colour model (.npz; default: the shipped one)")
    e.add_argument("--classifier", default=None, help="classifier weights (default: the shipped classifier)")
    e.add_argument("--data", default=default_data_root(), help="folder that holds rise/")
    e.add_argument("--split", choices=["train", "val", "test"], default="val")
    e.add_argument("--detect", action="store_true",
                   help="tag through the shipped detector (tag's default mode; the top garment's colours are scored) "
                        "instead of whole-image mode")
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--out", default=runs_path("eval-colours"), help="folder for metrics.json and the per-colour F1 chart")
    e.add_argument("-q", "--quiet", action="store_true")
    e.set_defaults(func=_cmd_evaluate_colours)
