"""Command line for second-hand sorting (issue 4): ``grade``, ``train damage``. Parses arguments and
calls the library; the other grading commands register from their own modules."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from fashionlens.cli_search import _subcommands

log = logging.getLogger(__name__)


def _cmd_grade(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from fashionlens.grading.grade import ItemGrader, discover_items

    found = discover_items(args.inputs)
    for note in found.notes:
        print(f"fashionlens grade: {note}", file=sys.stderr)
    grader = ItemGrader.default(rules=args.rules, ocr=not args.no_ocr, damage=not args.no_damage,
                                grades=not args.no_grades, threads=args.threads, backend=args.backend)
    if grader.grader is not None and grader.grader.untrained:
        print("fashionlens grade: grading heads without a trained model (train them with "
              "`fashionlens train grader --data PATH`): " + ", ".join(sorted(grader.grader.untrained)), file=sys.stderr)
    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    render_dir = Path(args.render) if args.render else None
    if render_dir:
        render_dir.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    warned = 0
    try:
        for item in tqdm(found.items, desc="grade", unit="item", disable=args.quiet, file=sys.stderr):
            rec = _grade_one(grader, item, render_dir)
            if rec["error"] is not None:
                failed.append(item.item_id)
            warned += bool(rec["warnings"])
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    _summary(len(found.items), failed, warned)
    return 1 if failed else 0


def _grade_one(grader: Any, item: Any, render_dir: Path | None) -> dict[str, Any]:
    """One item's record: an error record when grading fails as a whole; a picture that cannot be
    rendered is a warning. Never raises, so one item cannot stop the others."""
    from fashionlens.grading.grade import failed_item

    try:
        rec, details = grader.grade(item)
    except Exception as exc:  # noqa: BLE001 - one item's failure is its error record; the batch goes on
        log.error("item %s: grading failed: %s: %s", item.item_id, type(exc).__name__, exc)
        return failed_item(item, exc)
    if render_dir and details:
        try:
            _render(rec, details, render_dir / f"{item.item_id}.png")
        except Exception as exc:  # noqa: BLE001 - the record stands without its picture
            rec["warnings"].append({"type": "render_failed", "path": str(render_dir / f"{item.item_id}.png"),
                                    "message": f"the picture was not written: {type(exc).__name__}: {exc}"})
    return rec


def _render(rec: dict[str, Any], details: dict[str, Any], path: Path) -> None:
    import numpy as np
    from PIL import Image

    from fashionlens.grading.render_item import render_item

    Image.fromarray(np.ascontiguousarray(render_item(rec, details))).save(path)


def _summary(total: int, failed: list[str], warned: int) -> None:
    """One stderr line when some item failed or has warnings (records say which and why)."""
    if not failed and not warned:
        return
    shown = ", ".join(failed[:10]) + (", …" if len(failed) > 10 else "")
    print(f"fashionlens grade: {total - len(failed)} of {total} items graded; "
          f"{len(failed)} error record(s)" + (f" ({shown})" if failed else "")
          + f"; {warned} with warnings (see each record's error and warnings)", file=sys.stderr)


def _cmd_train_damage(args: argparse.Namespace) -> int:
    from fashionlens.train.config import load_config, parse_override
    from fashionlens.train.damage import DamageTrainConfig, train_damage

    config = load_config(args.config, dict(parse_override(o) for o in args.set or []), config_class=DamageTrainConfig)
    print(json.dumps(train_damage(config, resume=not args.restart), indent=2))
    return 0


def _cmd_evaluate_damage(args: argparse.Namespace) -> int:
    from fashionlens.grading.damage import DEFAULT_DAMAGE_MODEL
    from fashionlens.models.registry import default_weights_path
    from fashionlens.train.config import load_config, parse_override
    from fashionlens.train.damage import DamageTrainConfig, evaluate_damage_model

    config = load_config(args.config, dict(parse_override(o) for o in args.set or []), config_class=DamageTrainConfig)
    weights = args.weights or default_weights_path(DEFAULT_DAMAGE_MODEL)
    print(json.dumps(evaluate_damage_model(weights, config, save_defaults=args.save_defaults,
                                           fit_verifier=args.fit_verifier or None), indent=2))
    return 0


def add_grading_parsers(sub: Any) -> None:
    """Register ``grade`` and ``train damage`` on the ``fashionlens`` sub-command action ``sub``."""
    g = sub.add_parser("grade", help="grade second-hand items (front/back/label photos) → item records (JSONL)")
    g.add_argument("inputs", nargs="+", help="item folders (photos named front/back/brand|label), folders of "
                   "item folders, or manifests (.csv/.jsonl with item_id, front, back, label)")
    g.add_argument("-o", "--output", default="-", help="JSONL output file ('-' = stdout)")
    g.add_argument("--rules", default=None, help="sorting rules YAML (default: the shipped rules)")
    g.add_argument("--render", default=None, metavar="DIR", help="write a picture of each graded item to DIR")
    g.add_argument("--no-ocr", action="store_true", help="do not read the label photo")
    g.add_argument("--no-damage", action="store_true", help="do not look for damage")
    g.add_argument("--no-grades", action="store_true", help="do not run the grading heads")
    g.add_argument("--backend", choices=["auto", "onnx", "torch"], default="auto",
                   help="runtime of every network (auto: ONNX Runtime where an export sits next to the weights)")
    g.add_argument("--threads", type=int, default=1, help="inference threads per model (default 1: the label "
                   "photo is read on a second core meanwhile; measured fastest on 2 cores, docs/grading.md)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=_cmd_grade)
    choices = sub.choices
    if "train" in choices:
        td = _subcommands(choices["train"]).add_parser(
            "damage", help="train the damage head on synthetic damage (stains, holes, pilling, fading)")
        td.add_argument("--config", required=True, help="YAML config (see configs/damage_lite0.yaml)")
        td.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config option")
        td.add_argument("--restart", action="store_true", help="ignore an existing checkpoint instead of resuming")
        td.set_defaults(func=_cmd_train_damage)
    if "evaluate" in choices:
        ed = _subcommands(choices["evaluate"]).add_parser(
            "damage", help="IoU, region recall and false damage of a damage head on held-out synthetic damage")
        ed.add_argument("--weights", default=None, help="damage weights (default: the shipped damage head)")
        ed.add_argument("--config", default="configs/damage_lite0.yaml", help="data and image size (YAML)")
        ed.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config option")
        ed.add_argument("--save-defaults", action="store_true",
                        help="store the validation-chosen threshold and the metrics in the weights")
        ed.add_argument("--fit-verifier", action="store_true",
                        help="fit a region verifier on the validation photos and measure it on test "
                        "(with --save-defaults: store it, and the config's version, in the weights)")
        ed.set_defaults(func=_cmd_evaluate_damage)
