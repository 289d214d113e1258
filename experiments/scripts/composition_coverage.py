"""How well the care-label composition parser covers the RISE ``material`` strings.

Prints the counts (strings, non-empty, parsed to ≥ 1 fibre, percentages adding up to 100 ± 1) and
writes them with the unparsed strings and those whose percentages do not add up to a JSON file::

    .venv/bin/python experiments/scripts/composition_coverage.py /tmp/coverage.json
    .venv/bin/python experiments/scripts/composition_coverage.py /tmp/coverage.json --data ../shared/datasets/rise/garments.jsonl

Keep the JSON outside the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fashionlens.taxonomy.composition import composition_coverage

ROOT = Path(__file__).resolve().parents[2]  # the project root (this file is experiments/scripts/...)
DEFAULT_DATA = ROOT / ".." / "shared" / "datasets" / "rise" / "garments.jsonl"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("output", type=Path, help="JSON report to write (outside the repository)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="RISE garments.jsonl (default: %(default)s)")
    p.add_argument("--tolerance", type=float, default=1.0, help="percent points allowed off 100 (default: 1)")
    args = p.parse_args(argv)
    if not args.data.is_file():
        print(f"error: {args.data} not found", file=sys.stderr)
        return 2
    rows = [json.loads(line) for line in args.data.read_text("utf-8").splitlines() if line.strip()]
    cov = composition_coverage((row.get("material") for row in rows), tolerance=args.tolerance)
    cov["data"] = str(args.data.resolve())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(cov, ensure_ascii=False, indent=2) + "\n", "utf-8")
    print(f"strings {cov['strings']}, non-empty {cov['non_empty']}, "
          f"parsed {cov['parsed']} ({cov['parse_rate']:.1%} of non-empty), "
          f"sum 100±{args.tolerance:g} {cov['sum_100']} ({cov['sum_100_rate']:.1%}); "
          f"{len(cov['unparsed'])} distinct unparsed strings → {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
