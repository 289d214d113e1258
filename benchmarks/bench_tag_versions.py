"""`fashionlens tag` throughput of this checkout against an earlier commit, side by side (issue 26's
"throughput within 5 % of today's" check).

Each round runs, for each version in turn, `tag` over the same photos in a fresh process as users run it
(`-o FILE -q`, default options) and takes the wall time; rounds alternate the order of the versions, and
the report gives photos/s per round, the medians and their ratio. Start-up is included, diluted by the
number of photos.

    .venv-light/bin/python benchmarks/bench_tag_versions.py --before 42c9fd2 --before-python .venv/bin/python \
        --rounds 3 --json runs/bench-tag-versions.json

The earlier commit runs from a temporary git worktree (its `src/` on PYTHONPATH) with `--before-python`,
e.g. the full environment when that commit still needed torch for detection.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FASHIONLENS_DATA", ROOT.parent / "shared" / "datasets"))


def _photos(folder: Path, limit: int) -> list[str]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if len(files) < limit:
        raise SystemExit(f"{folder}: expected at least {limit} photos, found {len(files)}")
    return [str(p) for p in files[:limit]]


def _run(python: str, src: Path | None, args: list[str]) -> float:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run([python, "-m", "fashionlens.cli", "tag", *args, "-o", str(Path(tmp) / "out.jsonl"), "-q"],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="the earlier commit (a git ref)")
    ap.add_argument("--before-python", default=sys.executable, help="the interpreter for the earlier commit")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--whole-image", type=int, default=300, help="clothing-set photos for --whole-image")
    ap.add_argument("--detect", type=int, default=40, help="CCP photos for detect mode")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    modes = {"whole-image": ["--whole-image", *_photos(DATA / "clothing" / "images", args.whole_image)],
             "detect": _photos(DATA / "ccp" / "photos", args.detect)}
    sizes = {"whole-image": args.whole_image, "detect": args.detect}
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), args.before], check=True)
        try:
            versions = {"now": (sys.executable, None), args.before: (args.before_python, tree / "src")}
            result: dict[str, dict[str, list[float]]] = {m: {v: [] for v in versions} for m in modes}
            for r in range(args.rounds):
                order = list(versions) if r % 2 == 0 else list(reversed(versions))
                for mode, mode_args in modes.items():
                    for name in order:
                        python, src = versions[name]
                        seconds = _run(python, src, mode_args)
                        result[mode][name].append(sizes[mode] / seconds)
                        print(f"[bench_tag_versions] round {r + 1} {mode:11s} {name:8s} {sizes[mode] / seconds:6.2f} "
                              "photos/s", file=sys.stderr)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    report = {}
    print("\nphotos/s, median over rounds (fresh process each, start-up included)")
    for mode, by_version in result.items():
        med = {v: statistics.median(x) for v, x in by_version.items()}
        ratio = med["now"] / med[args.before]
        report[mode] = {"photos": sizes[mode], "per_round": by_version, "median": med, "now_over_before": ratio}
        print(f"{mode:11s} now {med['now']:6.2f}  {args.before} {med[args.before]:6.2f}  ratio {ratio:.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
