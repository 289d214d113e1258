"""Argument parsing for ``train grader`` and ``evaluate grader`` (registered by ``cli.py``).

``cli.py`` calls :func:`add_train_grader_parser` with its ``train`` sub-command group and
:func:`add_evaluate_grader_parser` with its ``evaluate`` group; each command sets ``func`` and
returns an exit code, as every ``fashionlens`` command does.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from fashionlens.paths import runs_path


def _cmd_train_grader(args: argparse.Namespace) -> int:
    from fashionlens.train.config import load_config, parse_override
    from fashionlens.train.grader import GraderTrainConfig, train_grader

    overrides = dict(parse_override(o) for o in args.set or [])
    overrides["data"] = args.data
    if args.out:
        overrides["out_dir"] = args.out
    config = load_config(args.config, overrides, config_class=GraderTrainConfig)
    result = train_grader(config, progress=None if args.quiet else lambda m: print(f"fashionlens: {m}",
                                                                                     file=sys.stderr))
    lines = [f"weights: {result['weights']}" + (f" (also {result['shipped_to']})" if result["shipped_to"] else "")]
    lines.append("trained heads (had labels): " + ", ".join(f"{h} ({n} training items)"
                                                           for h, n in result["trained"].items()))
    if result["untrained"]:
        lines.append("NOT trained:")
        lines += [f"  {h}: {why}" for h, why in result["untrained"].items()]
    for split in ("val", "test"):
        for head, m in result["metrics"].get(split, {}).items():
            qwk = f", QWK {m['qwk']}" if m.get("qwk") is not None else ""
            lines.append(f"{split} {head}: accuracy {m['accuracy']} (majority {m['baseline']['accuracy']}), "
                         f"macro-F1 {m['macro_f1']} (majority {m['baseline']['macro_f1']}){qwk}, n={m['n']}")
    print("\n".join(lines))
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


def _cmd_evaluate_grader(args: argparse.Namespace) -> int:
    from fashionlens.evaluate.grading import evaluate_grader

    result = evaluate_grader(args.weights, args.data, split=args.split, out_dir=args.out,
                             classifier=args.classifier, embedding_cache=args.embedding_cache,
                             threads=args.threads, progress=not args.quiet)
    print(json.dumps({"out": args.out, "split": result["split"], "items": result["items"],
                      "heads": {h: {k: m[k] for k in ("n", "accuracy", "macro_f1", "qwk", "baseline") if k in m}
                                for h, m in result["heads"].items()},
                      "labels_outside_vocabulary": result["labels_outside_vocabulary"]}, indent=2))
    return 0


def add_train_grader_parser(train_sub: Any) -> argparse.ArgumentParser:
    """``fashionlens train grader --data PATH [--config YAML] [--out DIR]`` on the ``train`` group."""
    p = train_sub.add_parser("grader", help="train the grading heads (usage, condition, price, damage, type, "
                                            "material, season …) on frozen photo embeddings")
    p.add_argument("--data", required=True, metavar="PATH",
                   help="a RISE-release-layout folder (item folders with front/back photos + labels JSON) or "
                        "the shared subset folder (garments.jsonl)")
    p.add_argument("--config", default=None, help="YAML config (see configs/grader_rise_subset.yaml)")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: the config's out_dir)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config option")
    p.add_argument("--json", action="store_true", help="also print the full result as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_train_grader)
    return p


def add_evaluate_grader_parser(eval_sub: Any) -> argparse.ArgumentParser:
    """``fashionlens evaluate grader --weights W --data PATH --split test`` on the ``evaluate`` group."""
    p = eval_sub.add_parser("grader", help="grading-head metrics vs the majority class + confusion matrices")
    p.add_argument("--weights", default=None, help="grader weights (.npz; default: the shipped rise-grader-lite0)")
    p.add_argument("--data", required=True, metavar="PATH", help="release-layout folder or the shared subset folder")
    p.add_argument("--split", choices=["train", "val", "test"], default="test",
                   help="split (seed and fractions as stored with the weights)")
    p.add_argument("--classifier", default=None, help="classifier weights that embed the photos (default: shipped)")
    p.add_argument("--embedding-cache", default=runs_path("cache", "grader"), help="folder for cached photo embeddings")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=runs_path("eval-grader"), help="folder for metrics.json and PNGs")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_evaluate_grader)
    return p
