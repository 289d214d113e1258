"""Time to first result of each inference command in a fresh process, light install against the torch path
(issue 26), side by side in one run.

Each command starts a new ``fashionlens`` process and is timed from the start of the process to its first
line of output (the result) and to its exit; ``serve`` from the start to the first ``200`` of ``/readyz``.
Columns, run interleaved (light, torch, [before], light, torch, ...) so that machine load hits them alike:

* ``light``: the light environment (``pip install ".[test]"``, no torch: ``--light-venv``), default options;
* ``torch``: the full environment (``[train,test]``: ``--full-venv``) with ``--backend torch`` where the
  command has that option (``serve`` has none: the same command in the full environment); ``--no-torch``
  leaves it out;
* ``before`` (``--before REF``, e.g. the commit before issue 26): that commit's ``src/`` (``git archive``,
  read-only) run by the full environment's Python with default options — today's behaviour;
* ``NAME`` (``--src-column NAME=DIR``, repeatable): the ``fashionlens`` package in folder ``DIR`` (e.g. a copy of
  ``src/`` taken before a change) run by the light environment's Python with default options, to compare
  a change with the code before it side by side.

Commands (the photos are real where ``../shared/datasets`` is present, else generated, and say so):

* ``tag``: detect mode on one CCP photo; ``tag --whole-image``: the same photo;
* ``grade``: one 3-photo item (a RISE photo, its mirror image as the back, a rendered care label);
* ``search --text`` / ``search --image`` (the CCP photo) on a 1,000-garment index, built once with the
  light environment (``index build --whole-image`` over 1,000 clothing photos) and kept in ``--work``;
* ``serve``: until ``/readyz`` answers 200.

Each command runs once unmeasured (page cache, like any second start), then ``--repeats`` times; medians are
reported. Also the size on disk (``du``) of each environment, and of ``--plain-venv`` if given (a venv with
only ``pip install .``, the number the issue's ≤ 1.2 GB target is about). Prints a table; writes JSON.

Usage (from the project root)::

    .venv-light/bin/python benchmarks/bench_startup.py --json runs/bench_startup.json
    .venv-light/bin/python benchmarks/bench_startup.py --before 42c9fd2 --plain-venv /tmp/light
    .venv-light/bin/python benchmarks/bench_startup.py --repeats 1 --commands tag,serve     # a quick check
    .venv-light/bin/python benchmarks/bench_startup.py --commands grade --src-column unchanged=/tmp/src-copy

The light install keeps each model's optimised ONNX graph in a per-machine cache
(:mod:`fashionlens.runtime.session_cache`); the unmeasured first start fills it, as a user's first start does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "datasets"
CCP_PHOTO = DATA / "ccp" / "photos" / "0001.jpg"
CLOTHING = DATA / "clothing" / "images"
RISE = DATA / "rise"
COMMANDS = ("tag", "tag-whole-image", "grade", "search-text", "search-image", "serve")
TEXT_QUERY = "red striped cotton shirt"


def log(message: str) -> None:
    print(f"[bench_startup] {message}", file=sys.stderr, flush=True)


# --- inputs ------------------------------------------------------------------------------------------------

def generated_photo(path: Path, seed: int, size: tuple[int, int] = (550, 825)) -> Path:
    """A product-style photo: one garment-shaped polygon (a T-shirt) on a plain backdrop."""
    import random

    rng = random.Random(seed)
    w, h = size
    img = Image.new("RGB", size, tuple(rng.randint(190, 240) for _ in range(3)))
    d = ImageDraw.Draw(img)
    colour = tuple(rng.randint(0, 200) for _ in range(3))
    cx, top, bw = w / 2, h * 0.2, w * rng.uniform(0.25, 0.4)
    shirt = [(cx - bw, top), (cx - bw * 1.9, top + h * 0.15), (cx - bw * 1.5, top + h * 0.25),
             (cx - bw, top + h * 0.18), (cx - bw, h * 0.85), (cx + bw, h * 0.85), (cx + bw, top + h * 0.18),
             (cx + bw * 1.5, top + h * 0.25), (cx + bw * 1.9, top + h * 0.15), (cx + bw, top)]
    d.polygon(shirt, fill=colour)
    if rng.random() < 0.5:  # stripes
        for y in range(int(top), int(h * 0.85), 24):
            d.line([(cx - bw, y), (cx + bw, y)], fill=tuple(255 - c for c in colour), width=6)
    img.save(path, quality=92)
    return path


def query_photo(work: Path) -> tuple[Path, str]:
    if CCP_PHOTO.is_file():
        return CCP_PHOTO.resolve(), "CCP photo 0001.jpg"
    return generated_photo(work / "query.jpg", 0), "generated photo (../shared/datasets/ccp absent)"


def grade_item(work: Path) -> tuple[Path, str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_grade import care_label  # the rendered care label of the grade benchmark

    item = work / "item"
    if (item / "label.jpg").is_file():
        return item, (item / "source.txt").read_text()
    item.mkdir(parents=True, exist_ok=True)
    if (RISE / "garments.jsonl").is_file():
        first = json.loads((RISE / "garments.jsonl").read_text().splitlines()[0])
        photo = Image.open(RISE / "images" / f"{first['id']}.jpg").convert("RGB")
        source = f"RISE photo {first['id']} (front; mirrored: back) + rendered care label"
    else:
        photo = Image.open(generated_photo(work / "front-src.jpg", 1)).convert("RGB")
        source = "generated photo (../shared/datasets/rise absent) + rendered care label"
    photo.save(item / "front.jpg", quality=92)
    photo.transpose(Image.FLIP_LEFT_RIGHT).save(item / "back.jpg", quality=92)
    care_label(item / "label.jpg", "ZARA", ["80% WOOL", "20% POLYAMIDE"])
    (item / "source.txt").write_text(source)
    return item, source


def garment_index(work: Path, fashionlens: Path, n: int) -> tuple[Path, str]:
    """A ``n``-garment index built once (whole-image) with ``fashionlens``; reused while it exists."""
    index = work / f"index-{n}"
    source_file = work / f"index-{n}.source.txt"
    if source_file.is_file() and index.is_dir() and any(index.iterdir()):
        return index, source_file.read_text()
    photos_dir = work / f"index-photos-{n}"
    photos_dir.mkdir(parents=True, exist_ok=True)
    if CLOTHING.is_dir():
        photos = sorted(CLOTHING.glob("*.jpg"))[:n]
        source = f"{len(photos)} clothing-data-set photos, whole image"
    else:
        photos = [generated_photo(photos_dir / f"g{i:04d}.jpg", 100 + i) for i in range(n)]
        source = f"{n} generated photos (../shared/datasets/clothing absent), whole image"
    list_file = work / f"index-{n}.inputs.txt"
    list_file.write_text("".join(f"{p}\n" for p in photos))
    log(f"building the {n}-garment index once ({source}) ...")
    t0 = time.perf_counter()
    if index.exists():
        shutil.rmtree(index)
    subprocess.run([str(fashionlens), "index", "build", *map(str, photos), "--index", str(index), "--whole-image",
                    "--quiet"], check=True, stdout=subprocess.DEVNULL)
    log(f"index built in {time.perf_counter() - t0:.0f} s")
    source_file.write_text(source)
    return index, source


# --- one timed start ---------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_output(command: str, stdout: bytes) -> None:
    """Raise unless ``stdout`` is a real result of ``command`` (not an error record, not empty)."""
    if command.startswith("search"):
        hits = json.loads(stdout).get("hits")
        if not hits:
            raise RuntimeError(f"{command}: no hits")
        return
    record = json.loads(stdout.splitlines()[0])
    if record.get("error") is not None:
        raise RuntimeError(f"{command}: an error record: {record['error']}")
    if command.startswith("tag") and not record.get("garments"):
        raise RuntimeError(f"{command}: no garment in the result")


def time_command(command: str, argv: list[str], env: dict[str, str], timeout: float = 300) -> dict[str, float]:
    """Seconds from the start of ``argv`` to its first line on stdout and to its exit (which must be 0 with a
    real result: :func:`check_output`), and the CPU seconds (user + system) the process used: less
    sensitive than wall time to other load on the machine."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env, cwd=ROOT)
        assert proc.stdout is not None
        first_line = proc.stdout.readline()
        t_first = time.perf_counter() - t0
        rest = proc.stdout.read()
        if hasattr(os, "wait4"):  # the exit status and the child's CPU time
            _, status, usage = os.wait4(proc.pid, 0)
            rc = proc.returncode = os.waitstatus_to_exitcode(status)
            cpu = usage.ru_utime + usage.ru_stime
        else:
            rc, cpu = proc.wait(timeout=timeout), float("nan")
        t_exit = time.perf_counter() - t0
        if rc != 0 or not first_line:
            err.seek(0)
            raise RuntimeError(f"{' '.join(argv[:4])} ... exited {rc}: {err.read().decode()[-600:]}")
    check_output(command, first_line + rest)
    return {"first_s": t_first, "exit_s": t_exit, "cpu_s": cpu}


def time_serve(argv: list[str], env: dict[str, str], timeout: float = 180) -> dict[str, float]:
    """Seconds from the start of ``serve`` to the first ``200`` of ``/readyz``; the server is then stopped."""
    port = free_port()
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([*argv, "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL,
                                stderr=err, env={**env, "FASHIONLENS_API_KEYS": ""}, cwd=ROOT)
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                        if r.status == 200:
                            return {"first_s": time.perf_counter() - t0}
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                if proc.poll() is not None or time.perf_counter() - t0 > timeout:
                    err.seek(0)
                    raise RuntimeError(f"serve did not become ready: {err.read().decode()[-600:]}")
                time.sleep(0.02)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


# --- columns -----------------------------------------------------------------------------------------------

def has_option(fashionlens: list[str], command: list[str], option: str, env: dict[str, str]) -> bool:
    out = subprocess.run([*fashionlens, *command, "--help"], capture_output=True, text=True, env=env, cwd=ROOT)
    return option in out.stdout


def before_tree(ref: str, work: Path) -> Path:
    """``ref``'s ``src/`` unpacked under ``work`` (``git archive``: the repository is only read)."""
    out = work / f"before-{ref}"
    if not (out / "src" / "fashionlens").is_dir():
        out.mkdir(parents=True, exist_ok=True)
        archive = work / f"before-{ref}.tar"
        subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), ref, "src"], cwd=ROOT, check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(out, filter="data")
        archive.unlink()
    return out / "src"


def du_mb(path: Path) -> float | None:
    if not path.is_dir():
        return None
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True)
    return float(out.stdout.split()[0]) if out.returncode == 0 else None


def du_sizes(args: argparse.Namespace) -> dict[str, float | None]:
    sizes = {"light_venv_mb": du_mb(args.light_venv), "full_venv_mb": du_mb(args.full_venv)}
    if args.plain_venv:
        sizes["plain_venv_mb"] = du_mb(args.plain_venv)
    return sizes


def make_report(args: argparse.Namespace, results: dict[str, Any], sizes: dict[str, Any], photo_source: str,
                item_source: str, index_source: str | None) -> dict[str, Any]:
    return {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "load_avg": os.getloadavg()},
        "inputs": {"photo": photo_source, "item": item_source, "index": index_source, "text_query": TEXT_QUERY},
        "repeats": args.repeats, "sizes": sizes, "results": results,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def write_json(path: Path | None, report: dict[str, Any]) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--light-venv", type=Path, default=ROOT / ".venv-light")
    ap.add_argument("--full-venv", type=Path, default=ROOT / ".venv")
    ap.add_argument("--plain-venv", type=Path, default=None,
                    help="a venv with only `pip install .` (no test tools): its size is reported too")
    ap.add_argument("--before", default=None, metavar="REF", help="also time this commit's code (a git ref)")
    ap.add_argument("--no-torch", action="store_true", help="leave out the torch column (a quicker light-only run)")
    ap.add_argument("--src-column", action="append", default=[], metavar="NAME=DIR",
                    help="also time the fashionlens package in DIR (PYTHONPATH=DIR) with the light environment")
    ap.add_argument("--commands", default=",".join(COMMANDS), help=f"comma-separated, of {', '.join(COMMANDS)}")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--index-size", type=int, default=1000)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-startup",
                    help="inputs and the index are made here once and reused")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    commands = [c.strip() for c in args.commands.split(",") if c.strip()]
    unknown = sorted(set(commands) - set(COMMANDS))
    if unknown:
        ap.error(f"--commands: unknown {unknown}; expected some of {COMMANDS}")
    for venv in (args.light_venv, args.full_venv):
        if not (venv / "bin" / "fashionlens").is_file():
            ap.error(f"no fashionlens in {venv} (README step 1 makes .venv and .venv-light)")
    args.work.mkdir(parents=True, exist_ok=True)

    base_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    columns: dict[str, dict[str, Any]] = {
        "light": {"fashionlens": [str(args.light_venv / "bin" / "fashionlens")], "env": base_env, "torch": False},
        "torch": {"fashionlens": [str(args.full_venv / "bin" / "fashionlens")], "env": base_env, "torch": True},
    }
    if args.no_torch:
        del columns["torch"]
    if args.before:
        src = before_tree(args.before, args.work)
        columns["before"] = {"fashionlens": [str(args.full_venv / "bin" / "python"), "-m", "fashionlens.cli"],
                             "env": {**base_env, "PYTHONPATH": str(src)}, "torch": False}

    for spec in args.src_column:
        name, sep, folder = spec.partition("=")
        src_dir = Path(folder).resolve()
        if not sep or not name or name in columns or not (src_dir / "fashionlens" / "__init__.py").is_file():
            ap.error(f"--src-column: expected NAME=DIR with a new NAME and DIR/fashionlens/__init__.py; got {spec!r}")
        columns[name] = {"fashionlens": [str(args.light_venv / "bin" / "python"), "-m", "fashionlens.cli"],
                         "env": {**base_env, "PYTHONPATH": str(src_dir)}, "torch": False}

    photo, photo_source = query_photo(args.work)
    item, item_source = grade_item(args.work)
    index, index_source = (None, None)
    if {"search-text", "search-image"} & set(commands):
        index, index_source = garment_index(args.work, args.light_venv / "bin" / "fashionlens", args.index_size)

    def argv_for(command: str, column: dict[str, Any]) -> tuple[list[str], bool]:
        fl, env = column["fashionlens"], column["env"]
        words = {"tag": ["tag", str(photo), "-o", "-"],
                 "tag-whole-image": ["tag", str(photo), "--whole-image", "-o", "-"],
                 "grade": ["grade", str(item), "-o", "-", "-q"],
                 "search-text": ["search", "--index", str(index), "--text", TEXT_QUERY, "-k", "10"],
                 "search-image": ["search", "--index", str(index), "--image", str(photo), "-k", "10"],
                 "serve": ["serve"]}[command]
        torch_flag = False
        if column["torch"] and command != "serve" and has_option(fl, words[:1], "--backend", env):
            words = [*words, "--backend", "torch"]
            torch_flag = True
        return [*fl, *words], torch_flag

    results: dict[str, dict[str, Any]] = {}
    for command in commands:
        results[command] = {}
        plans = {name: argv_for(command, col) for name, col in columns.items()}
        timings: dict[str, list[dict[str, float]]] = {name: [] for name in columns}
        errors: dict[str, str] = {}
        for round_ in range(args.repeats + 1):  # round 0: the unmeasured start
            for name, column in columns.items():
                if name in errors:
                    continue
                argv, _ = plans[name]
                try:
                    t = (time_serve(argv, column["env"]) if command == "serve"
                         else time_command(command, argv, column["env"]))
                except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
                    errors[name] = " ".join(str(exc).split())[:400]
                    log(f"{command} [{name}] failed: {errors[name]}")
                    continue
                if round_:
                    timings[name].append(t)
        for name in columns:
            row: dict[str, Any] = {"argv": " ".join(plans[name][0][len(columns[name]["fashionlens"]):]),
                                   "backend_torch": plans[name][1]}
            if name in errors:
                row["error"] = errors[name]
            elif timings[name]:
                for key in timings[name][0]:
                    values = [t[key] for t in timings[name]]
                    row[f"{key}_median"] = round(statistics.median(values), 3)
                    row[f"{key}_all"] = [round(v, 3) for v in values]
            results[command][name] = row
        log(f"{command}: " + ", ".join(f"{n} {r.get('first_s_median', 'error')}"
                                       + (f" (cpu {r['cpu_s_median']})" if "cpu_s_median" in r else "")
                                       for n, r in results[command].items()))
        write_json(args.json, make_report(args, results, {}, photo_source, item_source, index_source))  # so far

    report = make_report(args, results, du_sizes(args), photo_source, item_source, index_source)
    write_json(args.json, report)
    names = list(columns)
    print(f"\ntime to first result, median of {args.repeats} fresh processes (s); exit time in brackets")
    print(f"{'command':<18}" + "".join(f"{n:>20}" for n in names))
    for command, row in results.items():
        cells = []
        for n in names:
            r = row[n]
            if "error" in r:
                cells.append(f"{'error':>20}")
            else:
                exit_s = f" ({r['exit_s_median']:.2f})" if "exit_s_median" in r else ""
                cells.append(f"{r['first_s_median']:.2f}{exit_s}".rjust(20))
        print(f"{command:<18}" + "".join(cells))
    print("sizes (du -sm): " + ", ".join(f"{k} {v}" for k, v in report["sizes"].items()))
    if args.json:
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
