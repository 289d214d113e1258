"""Command line for second-hand grading (issue 4): ``grade``, ``agreement``, ``train/evaluate damage`` and
``train/evaluate grader``. Parses arguments and calls the library (:func:`fashionlens.grading.grade.run_grade_job`,
:mod:`fashionlens.evaluate.agreement`, :mod:`fashionlens.train.damage`, :mod:`fashionlens.train.grader`,
:mod:`fashionlens.evaluate.grading`); ``route`` and ``export corrections`` are in :mod:`fashionlens.cli.sorting`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from fashionlens.paths import runs_path


def precision_arg(text: str) -> float | None:
    """``--precision`` of ``grade`` and ``serve``: a target in (0, 1], or ``off`` (None: every field as sure)."""
    from fashionlens.models.calibration import parse_precision

    try:
        return parse_precision(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cmd_grade(args: argparse.Namespace) -> int:
    from fashionlens.grading.grade import run_grade_job

    return run_grade_job(args.inputs, output=args.output, rules=args.rules, ocr=not args.no_ocr,
                         damage=not args.no_damage, grades=not args.no_grades, threads=args.threads,
                         backend=args.backend, render_dir=args.render, progress=not args.quiet,
                         on_message=lambda line: print(f"fashionlens grade: {line}", file=sys.stderr),
                         precision=args.precision, keep_uncertain=args.keep_uncertain)


# --- agreement ----------------------------------------------------------------------------------------
def _split(text: str | None) -> list[str] | None:
    return None if text is None else [f.strip() for f in text.split(",") if f.strip()]


def _ordinal(args: argparse.Namespace) -> Any:
    """``--ordinal`` (field names; '' = none) and ``--order FIELD=low,…,high`` → the library's argument."""
    fields = _split(args.ordinal)
    if not args.order:
        return fields
    spec: dict[str, list[str] | None] = dict.fromkeys(fields if fields is not None else ())
    if fields is None:
        from fashionlens.evaluate.agreement import DEFAULT_ORDINAL_FIELDS

        spec = dict.fromkeys(DEFAULT_ORDINAL_FIELDS)
    for item in args.order:
        field, sep, values = item.partition("=")
        if not sep or not field.strip() or not _split(values):
            raise ValueError(f"--order: expected FIELD=LOWEST,...,HIGHEST (e.g. condition=poor,fair,good); got {item!r}")
        spec[field.strip()] = _split(values)
    return spec


def _cmd_agreement(args: argparse.Namespace) -> int:
    from fashionlens.evaluate.agreement import agreement_report, write_agreement

    report = agreement_report(args.tables, model=args.model, fields=_split(args.fields), ordinal=_ordinal(args),
                              margin=args.margin, bootstrap=args.bootstrap, seed=args.seed)
    if args.out:
        try:
            paths = write_agreement(report, args.out)
        except OSError as exc:
            raise ValueError(f"--out {args.out}: expected a folder that can be written; {exc}") from exc
        print(f"fashionlens: wrote {paths['json']} and {paths['png']}", file=sys.stderr)
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


# --- damage head ------------------------------------------------------------------------------------
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


# --- grading heads ----------------------------------------------------------------------------------
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


# --- argument tables --------------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction) -> None:
    """Add ``grade`` and ``agreement`` to the top-level sub-commands ``sub``."""
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
    g.add_argument("--precision", type=precision_arg, default=0.90, metavar="P|off",
                   help="operating point: a classifier field or grade whose calibrated score is below the threshold "
                        "at which it reached precision P on validation is emitted as unsure (id null + candidates; "
                        "colours listed only when sure); 'off': every field as sure (docs/grading.md; default 0.90)")
    g.add_argument("--keep-uncertain", action="store_true",
                   help="unsure fields keep their best guess (still marked \"uncertain\": true)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=_cmd_grade)

    a = sub.add_parser("agreement", help="annotator agreement per field (kappa, Krippendorff's alpha) and where the "
                                         "model sits relative to the annotators")
    a.add_argument("tables", nargs="+", metavar="ANNOTATOR.csv",
                   help="two or more annotator CSVs: an item_id (or id) column + one column per field")
    a.add_argument("--model", default=None, metavar="MODEL.jsonl",
                   help="model predictions: fashionlens/item/v1 records, matched by item_id")
    a.add_argument("--fields", default=None, metavar="F1,F2",
                   help="fields to compare (default: every field two or more annotators have)")
    a.add_argument("--ordinal", default=None, metavar="F1,F2",
                   help="ordinal fields: quadratic-weighted kappa, ordinal alpha (default: condition,pilling,price "
                        "when their values are numbers or bands; '' = none)")
    a.add_argument("--order", action="append", default=None, metavar="FIELD=LOW,...,HIGH",
                   help="explicit order of an ordinal field's values (repeatable), e.g. condition=poor,fair,good")
    a.add_argument("--margin", type=float, default=0.05,
                   help="verdict: the model is on par when its mean kappa ≥ the human kappa − MARGIN")
    a.add_argument("--bootstrap", type=int, default=1000,
                   help="resamples for the 95%% interval of the model − human kappa difference (0 = none)")
    a.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    a.add_argument("--out", default=None, metavar="DIR", help="also write agreement.json and agreement_kappa.png here")
    a.set_defaults(func=_cmd_agreement)


def register_train(train_sub: argparse._SubParsersAction) -> None:
    """Add ``damage`` and ``grader`` to the ``train`` group's sub-commands ``train_sub``."""
    td = train_sub.add_parser(
        "damage", help="train the damage head on synthetic damage (stains, holes, pilling, fading)")
    td.add_argument("--config", required=True, help="YAML config (see configs/damage_lite0.yaml)")
    td.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config option")
    td.add_argument("--restart", action="store_true", help="ignore an existing checkpoint instead of resuming")
    td.set_defaults(func=_cmd_train_damage)

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


def register_evaluate(eval_sub: argparse._SubParsersAction) -> None:
    """Add ``damage`` and ``grader`` to the ``evaluate`` group's sub-commands ``eval_sub``."""
    ed = eval_sub.add_parser(
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
