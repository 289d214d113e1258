"""Argument parsing for the review queue (issue 25): ``review build``, ``review export``, ``review status``.

:mod:`fashionlens.cli.main` registers them with :func:`register`. A review store that cannot be used ends
with one line on stderr and exit 2 (corrupt, not a review store, newer schema) or 3 (locked by another
writer past the busy timeout); see :mod:`fashionlens.review.errors`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable


def _store(args: argparse.Namespace, *, create: bool) -> object:
    from fashionlens.review.store import ReviewStore

    return ReviewStore(args.db, create=create, busy_timeout_s=args.busy_timeout)


def _cmd_build(args: argparse.Namespace) -> int:
    from fashionlens.review.queue import build_queue

    store = _store(args, create=True)
    summary = build_queue(args.results, store, measure=args.measure, aggregate=args.aggregate,  # type: ignore[arg-type]
                          diversity=args.diversity, min_score=args.min_score, include_sure=args.all)
    print(json.dumps(summary.to_json()))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from fashionlens.review.export import export_reviewed

    store = _store(args, create=False)
    summary = export_reviewed(store, args.out, label_space=args.label_space)  # type: ignore[arg-type]
    print(json.dumps(summary.to_json()))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    store = _store(args, create=False)
    print(json.dumps(store.stats()))  # type: ignore[attr-defined]
    return 0


def _store_errors(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run ``command``; a review-store error becomes one line and its exit code (2 or 3)."""

    def run(args: argparse.Namespace) -> int:
        from fashionlens.review.errors import ReviewStoreError

        try:
            return command(args)
        except ReviewStoreError as exc:
            print(f"fashionlens: error: {exc}", file=sys.stderr)
            return exc.exit_code

    return run


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``review`` (with ``build``, ``export``, ``status``) to the top-level sub-commands ``sub``."""
    review = sub.add_parser("review", help="queue unsure garments/items for a person, export the reviewed labels",
                            description="The review queue: `build` queues the garments (tag results) or items "
                            "(grade output) the models are unsure of, `fashionlens serve --review-db` serves the "
                            "/review page, `export` writes the reviewed labels as COCO and in the RISE layout.")
    what = review.add_subparsers(dest="what", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--db", required=True, metavar="REVIEW.sqlite", help="the review store (SQLite)")
        p.add_argument("--busy-timeout", type=float, default=5.0, metavar="SECONDS",
                       help="wait this long for another writer before giving up (exit 3)")

    b = what.add_parser("build", help="queue the unsure garments/items of a results or items JSONL file",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    b.add_argument("results", metavar="RESULTS.jsonl|ITEMS.jsonl",
                   help="`fashionlens tag` output (result v1/v2) or `fashionlens grade` output (item records)")
    common(b)
    b.add_argument("--measure", choices=("least_confidence", "margin"), default="least_confidence",
                   help="uncertainty of a field: 1 - top score, or 1 - (top score - second score)")
    b.add_argument("--aggregate", choices=("mean", "max"), default="mean",
                   help="a garment's uncertainty: the mean or the largest over its unsure fields")
    b.add_argument("--diversity", type=float, default=0.5, metavar="LAMBDA",
                   help="weight of the diversity term in [0, 1] (0: uncertainty order only): near-duplicate "
                   "garments (same sender/folder, same type and category, similar embedding) wait their turn")
    b.add_argument("--min-score", type=float, default=0.5, metavar="P",
                   help="a field scored below this needs review even when not marked unsure (v1 results)")
    b.add_argument("--all", action="store_true", help="queue every garment/item, also those with only sure fields")
    b.set_defaults(func=_store_errors(_cmd_build))

    e = what.add_parser("export", help="write the reviewed labels as COCO (garments) and RISE layout (items)",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    common(e)
    e.add_argument("--out", required=True, metavar="DIR", help="writes DIR/coco/annotations.json and DIR/rise/")
    e.add_argument("--label-space", choices=("category", "object_type"), default="category",
                   help="COCO categories: the 25 taxonomy categories or the 6 object types")
    e.set_defaults(func=_store_errors(_cmd_export))

    s = what.add_parser("status", help="how many garments/items are pending, accepted, corrected, skipped")
    common(s)
    s.set_defaults(func=_store_errors(_cmd_status))
