"""Argument parsing for second-hand sorting (issue 4): ``route`` and ``export corrections``.

:mod:`fashionlens.cli.main` registers these with :func:`register` (top-level sub-commands) and
:func:`register_export` (the ``export`` group's sub-commands). Nothing else here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from contextlib import ExitStack


def _cmd_route(args: argparse.Namespace) -> int:
    from fashionlens.grading.routing import OverlongLine, load_rules, read_item_lines, route_lines

    rules = load_rules(args.rules)
    if args.check:
        print(json.dumps(rules.summary(), indent=2))
        return 0
    if args.items is None:
        raise ValueError("expected an ITEMS.jsonl file ('-' = stdin) to route, or --check")
    counts: dict[str, int] = {}
    failed = 0
    with ExitStack() as stack:
        # bytes, line by line: a line that is not UTF-8 or too long is an error record for that line only
        lines: Iterable[str | bytes | OverlongLine]
        if args.items != "-":
            lines = read_item_lines(stack.enter_context(open(args.items, "rb")))
        else:  # a replaced text stdin (no .buffer) is read as text
            lines = read_item_lines(sys.stdin.buffer) if hasattr(sys.stdin, "buffer") else sys.stdin
        dst = sys.stdout if args.output == "-" else stack.enter_context(open(args.output, "w", encoding="utf-8"))
        for record in route_lines(lines, rules):
            if record["route"] is None:
                failed += 1
            else:
                decision = record["route"]["decision"]
                counts[decision] = counts.get(decision, 0) + 1
            dst.write(json.dumps(record, ensure_ascii=False) + "\n")
    per_route = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
    print(f"fashionlens: routed {sum(counts.values())} items with {rules.label} ({per_route}); {failed} failed",
          file=sys.stderr)
    return 1 if failed else 0


def _cmd_export_corrections(args: argparse.Namespace) -> int:
    from fashionlens.grading.corrections import CorrectionStore

    manifest = CorrectionStore(args.db, create=False).export(args.out, since=args.since)
    print(json.dumps({"out": args.out, **{k: v for k, v in manifest.items() if k != "items"}}, indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``route`` to the top-level sub-commands ``sub``."""
    r = sub.add_parser("route", help="sorting decision (reuse/repair/export/recycle) for item records → JSON lines")
    r.add_argument("items", nargs="?", default=None, help="item records as JSON lines ('-' = stdin)")
    r.add_argument("--rules", default=None, metavar="FILE", help="sorting rules YAML (default: the shipped rules)")
    r.add_argument("--check", action="store_true", help="only validate the rules file and print a summary")
    r.add_argument("-o", "--output", default="-", help="JSONL output file ('-' = stdout)")
    r.set_defaults(func=_cmd_route)


def register_export(export_sub: argparse._SubParsersAction) -> None:
    """Add ``corrections`` to the ``export`` group's sub-commands ``export_sub``."""
    c = export_sub.add_parser("corrections", help="sorters' corrections → RISE-layout training data")
    c.add_argument("--db", required=True, help="corrections database (SQLite)")
    c.add_argument("--out", required=True, help="output folder (<item_id>/ folders + corrections_manifest.json)")
    c.add_argument("--since", default=None, metavar="ISO_DATE",
                   help="only items corrected at or after this date/time (UTC unless a zone is given)")
    c.set_defaults(func=_cmd_export_corrections)
