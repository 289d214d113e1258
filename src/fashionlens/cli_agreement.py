"""Command line for annotator agreement (issue 4): ``fashionlens agreement A.csv B.csv [C.csv ...]``.
Parses arguments and calls :mod:`fashionlens.evaluate.agreement`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


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


def add_agreement_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``agreement`` on the ``fashionlens`` sub-command action ``sub``."""
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
