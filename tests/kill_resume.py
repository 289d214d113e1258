"""Kill/resume trial for resumable tag jobs (issue 8, part 3): SIGKILL ``fashionlens tag --job-dir`` at
random points, resume it each time, then check that every input is in the output exactly once and that
every committed chunk is readable.

Each round starts the real CLI as a subprocess (``--whole-image``, tiny generated photos plus two
undecodable inputs, small chunks, ``--resume`` every time) and kills it with SIGKILL at one of two kinds
of random point:

* ``startup``: a uniform random delay after the start, up to about one measured start-up time (lands
  during imports, model loading, job creation or the first chunk);
* ``working``: once the process has committed a new chunk, a uniform random delay of up to 1.5
  measured chunk intervals (lands while decoding, classifying, writing or renaming chunk files, or
  rewriting ``job.json``).

After every kill the job folder is checked (``job.json`` readable, every committed chunk's checksum,
record count and paths right, the committed count never goes down). At the end the job runs to
completion and the output is compared with the input list and with an uninterrupted reference run.

    .venv/bin/python tests/kill_resume.py --kills 20              # prints a JSON summary
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fashionlens.jobs.store import JOB_FILE, iter_job_records, job_status
from fashionlens.imageio import iter_image_paths

#: the CLI as a user runs it (the console script may not be installed in every environment)
CLI = [sys.executable, "-c", "import sys; from fashionlens.cli import main; sys.exit(main())"]


def make_images(folder: Path, n: int, *, seed: int = 0) -> list[Path]:
    """``n`` tiny photos (JPEG and PNG, 40–64 px) plus two inputs that fail to decode; returns the folder's
    image list in the order ``fashionlens tag FOLDER`` uses."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        w, h = int(rng.integers(40, 65)), int(rng.integers(40, 65))
        arr = np.full((h, w, 3), 235, np.uint8)
        arr[h // 5: h - h // 5, w // 4: w - w // 4] = rng.integers(0, 256, 3)
        Image.fromarray(arr).save(folder / f"img{i:03d}.{'png' if i % 4 == 3 else 'jpg'}")
    (folder / f"img{n // 3:03d}_bad_text.jpg").write_text("not an image")
    (folder / f"img{2 * n // 3:03d}_bad_truncated.jpg").write_bytes((folder / "img000.jpg").read_bytes()[:60])
    return iter_image_paths([folder])


def _committed(job_dir: Path) -> int:
    try:
        return len(json.loads((job_dir / JOB_FILE).read_text())["chunks"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):  # not created yet (never torn: atomic rename)
        return 0


def _check_after_kill(job_dir: Path) -> list[str]:
    if not (job_dir / JOB_FILE).exists():
        return []
    return job_status(job_dir, verify=True).problems


def run_trial(work: Path, *, n_images: int = 50, kills: int = 20, chunk_size: int = 2, batch_size: int = 2,
              startup_every: int = 4, seed: int = 0, reference: bool = True, timeout_s: float = 120.0
              ) -> dict[str, Any]:
    """Run one kill/resume trial in ``work`` (created; must not hold a job yet); return a summary dict
    (``lost``, ``duplicated``, ``problems`` …). Every ``startup_every``-th round kills during start-up,
    the others while working. Raises RuntimeError when a run fails unexpectedly."""
    rng = random.Random(seed)
    images = work / "images"
    inputs = [str(p) for p in make_images(images, n_images, seed=seed)]
    job_dir = work / "job"
    cmd = [*CLI, "tag", str(images), "--whole-image", "--job-dir", str(job_dir), "--chunk-size", str(chunk_size),
           "--batch-size", str(batch_size), "--threads", "1", "-q", "--resume"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t_start = time.perf_counter()
    startup_s, interval_s = 2.0, 0.2  # first guesses, replaced by measurements
    rounds: list[dict[str, Any]] = []
    problems: list[str] = []
    k = 0
    while sum(r["sigkilled"] for r in rounds) < kills and k < 2 * kills + 5:
        before = _committed(job_dir)
        if before * chunk_size >= len(inputs):
            break  # the job finished: no more kills possible (use more images)
        kind = "startup" if k % startup_every == 0 else "working"
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        first_commit = None
        if kind == "startup":
            delay = rng.uniform(0.0, 1.2 * startup_s)
            while time.perf_counter() - t0 < delay and proc.poll() is None:
                time.sleep(0.002)
        else:
            while _committed(job_dir) == before and proc.poll() is None and time.perf_counter() - t0 < timeout_s:
                time.sleep(0.002)
            first_commit = time.perf_counter() - t0
            delay = rng.uniform(0.0, 1.5 * interval_s)
            t1 = time.perf_counter()
            while time.perf_counter() - t1 < delay and proc.poll() is None:
                time.sleep(0.002)
        finished = proc.poll() is not None
        if not finished:
            proc.send_signal(signal.SIGKILL)
        rc = proc.wait()
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if finished and rc not in (0, 1):
            raise RuntimeError(f"round {k}: the job failed with exit code {rc}: {stderr[-2000:]}")
        alive_s = time.perf_counter() - t0
        after = _committed(job_dir)
        if after < before:
            problems.append(f"round {k}: committed chunks went down from {before} to {after}")
        found = _check_after_kill(job_dir)
        tmp_files = [p.name for d in (job_dir, job_dir / "chunks") if d.is_dir() for p in d.iterdir() if ".tmp-" in p.name]
        uncommitted = job_status(job_dir).uncommitted_files if (job_dir / JOB_FILE).exists() else []
        problems.extend(f"round {k}: {p}" for p in found)
        if first_commit is not None and not finished:
            startup_s = 0.5 * startup_s + 0.5 * first_commit
            if after > before + 1:
                interval_s = 0.5 * interval_s + 0.5 * (alive_s - first_commit) / (after - before - 1)
        rounds.append({"round": k, "kind": kind, "killed_after_s": round(alive_s, 3), "sigkilled": not finished,
                       "committed_before": before, "committed_after": after, "temporary_files": len(tmp_files),
                       "uncommitted_chunk_files": len(uncommitted), "job_created": (job_dir / JOB_FILE).exists()})
        k += 1
    t_final = time.perf_counter()
    final = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=timeout_s)
    if final.returncode not in (0, 1):
        raise RuntimeError(f"the final resume failed with exit code {final.returncode}: {final.stderr[-2000:]}")
    final_s = time.perf_counter() - t_final

    status = job_status(job_dir, verify=True)
    problems.extend(status.problems)
    records = list(iter_job_records(job_dir, fmt="jsonl"))
    parquet_records = list(iter_job_records(job_dir, fmt="parquet"))
    counts = Counter(r["image"]["path"] for r in records)
    lost = [p for p in inputs if counts[p] == 0]
    duplicated = [p for p, c in counts.items() if c > 1]
    unexpected = [p for p in counts if p not in set(inputs)]
    if [r["image"]["path"] for r in records] != inputs:
        problems.append("the output is not in input order")
    if parquet_records != records:
        problems.append("Parquet chunks and JSONL chunks hold different records")
    leftovers = [p.name for d in (job_dir, job_dir / "chunks") for p in d.iterdir() if ".tmp-" in p.name]
    summary: dict[str, Any] = {
        "inputs": len(inputs), "chunk_size": chunk_size, "kills_requested": kills,
        "sigkills": sum(r["sigkilled"] for r in rounds), "rounds": len(rounds),
        "kills_by_kind": dict(Counter(r["kind"] for r in rounds if r["sigkilled"])),
        "chunks_committed_at_kills": [r["committed_after"] for r in rounds],
        "kills_before_job_created": sum(not r["job_created"] for r in rounds if r["sigkilled"]),
        "kills_leaving_temporary_files": sum(r["temporary_files"] > 0 for r in rounds if r["sigkilled"]),
        "kills_leaving_uncommitted_chunk_files": sum(r["uncommitted_chunk_files"] > 0 for r in rounds if r["sigkilled"]),
        "records": len(records), "lost": len(lost), "duplicated": len(duplicated), "unexpected": len(unexpected),
        "error_records": sum(r["error"] is not None for r in records), "final_exit_code": final.returncode,
        "complete": status.complete, "uncommitted_files": status.uncommitted_files, "temporary_files": leftovers,
        "problems": problems, "final_run_s": round(final_s, 2), "total_s": round(time.perf_counter() - t_start, 2),
        "measured_startup_s": round(startup_s, 2), "measured_chunk_interval_s": round(interval_s, 3),
        "round_log": [" ".join(f"{k}={v}" for k, v in r.items()) for r in rounds],
    }
    if reference:  # the same job uninterrupted: same records apart from timings
        ref_dir = work / "reference"
        ref_cmd = [*cmd[: cmd.index("--job-dir") + 1], str(ref_dir), *cmd[cmd.index("--job-dir") + 2:]]
        ref = subprocess.run(ref_cmd, check=False, capture_output=True, text=True, env=env, timeout=timeout_s)
        if ref.returncode not in (0, 1):
            raise RuntimeError(f"the reference run failed with exit code {ref.returncode}: {ref.stderr[-2000:]}")
        ref_records = list(iter_job_records(ref_dir))
        summary["differences_from_uninterrupted_run"] = sum(
            {**a, "timing_ms": None} != {**b, "timing_ms": None} for a, b in zip(records, ref_records)
        ) + abs(len(records) - len(ref_records))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=20, help="SIGKILLs to deliver (default 20)")
    p.add_argument("--images", type=int, default=None, help="generated photos (two undecodable inputs are added; "
                   "default: enough chunks for the kills, 4 × kills × chunk size, at least 60)")
    p.add_argument("--chunk-size", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default=None, help="work folder (default: a temporary one, removed afterwards)")
    args = p.parse_args(argv)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="kill_resume_"))
    try:
        n_images = args.images or max(60, 4 * args.kills * args.chunk_size)
        summary = run_trial(work, n_images=n_images, kills=args.kills, chunk_size=args.chunk_size,
                            batch_size=args.batch_size, seed=args.seed)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summary, indent=2))
    ok = (summary["lost"] == summary["duplicated"] == summary["unexpected"] == 0 and not summary["problems"]
          and summary["complete"] and summary.get("differences_from_uninterrupted_run", 0) == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
