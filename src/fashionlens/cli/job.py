"""Command line for resumable tag jobs (issue 8, part 3): ``job status DIR`` and ``job merge DIR OUT``.
Parses arguments and calls :mod:`fashionlens.jobs.store`. Jobs are run by ``fashionlens tag --job-dir``.

Errors, a damaged job included (:class:`~fashionlens.jobs.store.ChunkDamagedError`, a ``JobError``),
reach ``fashionlens.cli.main``, which prints them as one line and exits 2."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def _cmd_job_status(args: argparse.Namespace) -> int:
    from fashionlens.jobs.store import job_status

    status = job_status(args.job_dir, verify=args.verify)
    print(json.dumps(asdict(status), indent=2, ensure_ascii=False))
    return 1 if status.problems else 0


def _cmd_job_merge(args: argparse.Namespace) -> int:
    from fashionlens.jobs.store import merge_job

    n = merge_job(args.job_dir, args.output, partial=args.partial)
    print(json.dumps({"job_dir": args.job_dir, "output": args.output, "records": n}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``job`` group (``job status``, ``job merge``) to the top-level sub-commands ``sub``."""
    job = sub.add_parser("job", help="resumable tag jobs (tag --job-dir): status, merge") \
        .add_subparsers(dest="what", required=True)
    st = job.add_parser("status", help="progress of a job as JSON (readable while the job runs)")
    st.add_argument("job_dir", metavar="DIR")
    st.add_argument("--verify", action="store_true",
                    help="read every committed chunk and check its checksum, records and paths (exit 1 on problems)")
    st.set_defaults(func=_cmd_job_status)
    mg = job.add_parser("merge", help="a job's results as one file, in input order (.parquet → Parquet, else JSONL); "
                                      "every committed chunk is checked against job.json first (damaged: exit 2)")
    mg.add_argument("job_dir", metavar="DIR")
    mg.add_argument("output", metavar="OUT", help="OUT.jsonl or OUT.parquet (written atomically)")
    mg.add_argument("--partial", action="store_true", help="merge the committed chunks of an unfinished job")
    mg.set_defaults(func=_cmd_job_merge)
