"""Integrity of committed job bytes (issue 23): a changed chunk file, input list or ``job.json`` is
refused by ``job merge``, by resuming and by ``iter_job_records`` before any result is used.

Jobs are written with hand-made records (no model); the hypothesis test flips one byte of a
committed file of a job built once per module."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fashionlens.jobs import store as batch_job
from fashionlens.jobs.store import (
    ChunkDamagedError,
    JobError,
    TagJob,
    iter_job_records,
    job_status,
    merge_job,
)
from fashionlens.cli import main
from fashionlens.cli.job import register as register_job_commands
from fashionlens.pipeline import RESULT_SCHEMA

SETTINGS = {"whole_image": True, "weights": None}
MODEL = {"name": "m", "version": "1", "backend": "onnx"}
N_INPUTS, CHUNK = 7, 3


def record(path: str, *, error: bool = False) -> dict[str, Any]:
    """A ``fashionlens/result/v1``-shaped record without a model."""
    garments = [] if error else [{"object_type": "upper-body", "score": 0.9, "bbox": [0.0, 0.0, 8.0, 6.0],
                                  "category": {"id": "t-shirts", "score": 0.7}, "attributes": {}}]
    return {"schema": RESULT_SCHEMA, "image": {"path": path, "width": None if error else 8, "height": None if error else 6},
            "model": MODEL, "mode": None if error else "whole_image", "garments": garments,
            "error": {"type": "not_an_image", "message": "no"} if error else None, "timing_ms": {}}


def inputs() -> list[str]:
    return [f"in/p{i:02d}.jpg" for i in range(N_INPUTS)]


def make_job(folder: Path, *, formats: tuple[str, ...] = ("jsonl", "parquet")) -> Path:
    """A complete job: 7 inputs in chunks of 3 (the last one short), input 4 an error record."""
    with TagJob.open(folder, inputs=inputs(), settings=SETTINGS, chunk_size=CHUNK, formats=formats) as job:
        for k in job.pending_chunks():
            job.commit_chunk(k, [record(p, error=p.endswith("04.jpg")) for p in job.chunk_inputs(k)])
    return folder


def resume(folder: Path) -> TagJob:
    return TagJob.open(folder, inputs=None, settings=SETTINGS, resume=True)


def job_cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="fashionlens")
    register_job_commands(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    return args.func(args)


def chunk(folder: Path, index: int, fmt: str) -> Path:
    return folder / "chunks" / f"{index:06d}.{fmt}"


def swap_first_lines(path: Path) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    lines[0], lines[1] = lines[1], lines[0]
    path.write_bytes(b"".join(lines))


def edit_one_character(path: Path) -> None:
    data = path.read_bytes()
    at = data.index(b'"t-shirts"') + 1
    path.write_bytes(data[:at] + b"T" + data[at + 1:])  # same size, one character


def assert_refused(folder: Path, out: Path, match: str) -> None:
    """Resume, merge (both outputs) and reading the records all refuse; nothing is written."""
    with pytest.raises(JobError, match=match):
        resume(folder)
    for name in ("out.jsonl", "out.parquet"):
        with pytest.raises(JobError, match=match):
            merge_job(folder, out / name)
        assert not (out / name).exists() and not list(out.glob(f".{name}*"))
    with pytest.raises(JobError, match=match):
        next(iter_job_records(folder))


# ------------------------------------------------------------------------------ chunk files


@pytest.mark.parametrize("damage", [swap_first_lines, edit_one_character], ids=["swapped-lines", "one-char"])
def test_tampered_jsonl_chunk_is_refused_by_merge_and_resume(damage: Callable[[Path], None], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job")
    before = chunk(job, 1, "jsonl").stat().st_size
    damage(chunk(job, 1, "jsonl"))
    assert chunk(job, 1, "jsonl").stat().st_size == before  # a size check alone would miss it
    match = r"committed chunk 1 of the job in .* is damaged: chunks/000001.jsonl: checksum differs from job.json"
    assert_refused(job, tmp_path, match)
    # the command line: one line on stderr, exit 2 (as for a refused resume)
    assert main(["job", "merge", str(job), str(tmp_path / "out.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fashionlens: error: committed chunk 1 ") and "Traceback" not in err
    assert not (tmp_path / "out.jsonl").exists()
    assert job_status(job, verify=True).problems == ["chunks/000001.jsonl: checksum differs from job.json"]


def test_tampered_parquet_chunk_is_refused_even_when_merging_jsonl(tmp_path: Path) -> None:
    job = make_job(tmp_path / "job")
    path = chunk(job, 2, "parquet")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert_refused(job, tmp_path, "committed chunk 2 .* chunks/000002.parquet: checksum differs")


def test_consistent_rewrite_of_a_chunk_with_its_entry_is_refused(tmp_path: Path) -> None:
    """Swapped records with job.json's sizes and checksums updated to match: the entry's seal catches it."""
    job = make_job(tmp_path / "job", formats=("jsonl",))
    swap_first_lines(chunk(job, 0, "jsonl"))
    manifest = json.loads((job / "job.json").read_text())
    info = manifest["chunks"][0]["files"]["jsonl"]
    info["sha256"] = batch_job.hashlib.sha256(chunk(job, 0, "jsonl").read_bytes()).hexdigest()
    (job / "job.json").write_text(json.dumps(manifest))
    assert_refused(job, tmp_path, "entry of committed chunk 0 does not match its entry_sha256")


def test_records_that_are_not_the_chunks_inputs_are_refused_when_read(tmp_path: Path) -> None:
    """A job.json of an older version (no seals) whose chunk was rewritten with its checksum: the
    records are checked against the input list as they are merged."""
    job = make_job(tmp_path / "job", formats=("jsonl",))
    swap_first_lines(chunk(job, 0, "jsonl"))
    manifest = json.loads((job / "job.json").read_text())
    del manifest["header_sha256"]
    entry = manifest["chunks"][0]
    del entry["entry_sha256"]
    entry["files"]["jsonl"]["sha256"] = batch_job.hashlib.sha256(chunk(job, 0, "jsonl").read_bytes()).hexdigest()
    (job / "job.json").write_text(json.dumps(manifest))
    with pytest.raises(ChunkDamagedError, match=r"chunk 0 .* expected records for \['in/p00.jpg', 'in/p01.jpg'"):
        merge_job(job, tmp_path / "out.parquet")
    assert job_status(job, verify=True).problems[0].startswith("chunks/000000.jsonl: expected records for")


# ------------------------------------------------------------------------------ job.json and inputs.txt


@pytest.mark.parametrize("edit, match", [
    (lambda m: m["chunks"][1].update(failed=0), "entry of committed chunk 1 does not match its entry_sha256"),
    (lambda m: m["chunks"][0]["files"]["jsonl"].update(records=2), "entry of committed chunk 0 does not match"),
    (lambda m: m["settings"].update(whole_image=False), "expected the contents sealed by its header_sha256"),
    (lambda m: m.update(chunk_size=4), "expected the contents sealed by its header_sha256"),
    (lambda m: m.update(chunkz=m.pop("chunks")), "expected the contents sealed by its header_sha256"),
    (lambda m: m["chunks"].append(m["chunks"][0]), "expected each chunk listed once, got chunk 0 twice"),
], ids=["failed-count", "record-count", "settings", "chunk-size", "renamed-chunks-key", "duplicate-entry"])
def test_edited_job_json_is_refused(edit: Callable[[dict[str, Any]], object], match: str, tmp_path: Path) -> None:
    job = make_job(tmp_path / "job")
    manifest = json.loads((job / "job.json").read_text())
    edit(manifest)
    (job / "job.json").write_text(json.dumps(manifest, indent=1))
    with pytest.raises(JobError, match=match):
        resume(job)
    with pytest.raises(JobError, match=match):
        merge_job(job, tmp_path / "out.jsonl")
    with pytest.raises(JobError, match=match):
        job_status(job)


def test_unsealed_entries_must_still_fit_the_job(tmp_path: Path) -> None:
    job = make_job(tmp_path / "job")
    manifest = json.loads((job / "job.json").read_text())
    entry = manifest["chunks"][1]
    del entry["entry_sha256"]
    entry["stop"] = 5
    entry["files"]["jsonl"]["name"] = "../job.json"
    (job / "job.json").write_text(json.dumps(manifest))
    with pytest.raises(JobError, match=r"committed chunk 1: expected inputs \[3, 6\), got \[3, 5\); expected files.jsonl"):
        merge_job(job, tmp_path / "out.jsonl")


def test_changed_input_list_is_refused(tmp_path: Path) -> None:
    job = make_job(tmp_path / "job")
    (job / "inputs.txt").write_text((job / "inputs.txt").read_text().replace("p03", "p33"))
    assert_refused(job, tmp_path, "does not match its fingerprint")


def test_dropped_entries_mean_uncommitted_chunks_not_damage(tmp_path: Path) -> None:
    """Forgetting whole chunks (as if killed before they committed, what the Ray engine tests do) is not
    tampering with results: the chunks are pending again and redone."""
    job = make_job(tmp_path / "job")
    manifest = json.loads((job / "job.json").read_text())
    manifest["chunks"] = manifest["chunks"][:1]
    (job / "job.json").write_text(json.dumps(manifest))
    with resume(job) as resumed:
        assert resumed.pending_chunks() == [1, 2]
    assert [r["image"]["path"] for r in iter_job_records(job, partial=True)] == inputs()[:3]


def test_jobs_written_before_seals_still_resume_and_merge(tmp_path: Path) -> None:
    job = make_job(tmp_path / "job")
    manifest = json.loads((job / "job.json").read_text())
    del manifest["header_sha256"]
    for entry in manifest["chunks"]:
        del entry["entry_sha256"]
    (job / "job.json").write_text(json.dumps(manifest, indent=1))
    assert merge_job(job, tmp_path / "out.parquet") == N_INPUTS
    with resume(job) as resumed:
        assert resumed.n_failed == 1
    assert job_status(job, verify=True).problems == []


def test_intact_job_merges_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job")
    assert job_cli(["job", "merge", str(job), str(tmp_path / "out.parquet")]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == N_INPUTS
    assert [r["image"]["path"] for r in iter_job_records(job, fmt="parquet")] == inputs()
    assert job_cli(["job", "status", str(job), "--verify"]) == 0


# ------------------------------------------------------------------------------ any byte


@pytest.fixture(scope="module")
def pristine_job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_job(tmp_path_factory.mktemp("pristine") / "job")


def _committed_files(job: Path) -> list[str]:
    names = [f"chunks/{k:06d}.{fmt}" for k in range(3) for fmt in ("jsonl", "parquet")]
    return [*names, "inputs.txt"]


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_any_flipped_byte_of_a_committed_file_is_detected(pristine_job: Path, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(_committed_files(pristine_job)), label="file")
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job"
        shutil.copytree(pristine_job, job)
        path = job / name
        raw = bytearray(path.read_bytes())
        offset = data.draw(st.integers(0, len(raw) - 1), label="offset")
        raw[offset] ^= data.draw(st.integers(1, 255), label="xor")
        path.write_bytes(bytes(raw))
        with pytest.raises(JobError):
            resume(job)
        with pytest.raises(JobError):
            merge_job(job, Path(tmp) / "out.jsonl")
        assert not (Path(tmp) / "out.jsonl").exists()
        with pytest.raises(JobError):
            merge_job(job, Path(tmp) / "out.parquet")
