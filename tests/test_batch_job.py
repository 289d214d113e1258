"""Tests for fashionlens.jobs.store (resumable tag jobs) and ``fashionlens tag --job-dir`` / ``job status|merge``.

The job format is tested with hand-made records (no model); the local engine and the CLI with the
shipped classifier in whole-image mode (ONNX, one thread, loaded once per module). Crashes are
simulated in-process by failing a write or interrupting the run; the SIGKILL test is
tests/test_batch_job_kill.py."""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from fashionlens.jobs import local as tag_job, store as batch_job
from fashionlens.jobs.store import (
    JOB_SCHEMA,
    PARQUET_COLUMNS,
    JobError,
    TagJob,
    iter_job_records,
    job_status,
    merge_job,
    frame_to_rows,
    read_chunk_file,
    read_manifest,
    record_to_row,
    records_to_frame,
    resolve_inputs,
    row_to_record,
)
from fashionlens.jobs.local import run_job
from fashionlens.cli import main
from fashionlens.cli.job import register as register_job_commands
from fashionlens.pipeline import RESULT_SCHEMA, Tagger, TaggerConfig

SETTINGS = {"whole_image": True, "weights": None}
MODEL = {"name": "m", "version": "1", "backend": "onnx"}


# ------------------------------------------------------------------------------ helpers


def fake_record(path: str, *, error: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``fashionlens/result/v1``-shaped record without a model."""
    if error:
        rec = {"schema": RESULT_SCHEMA, "image": {"path": path, "width": None, "height": None}, "model": MODEL,
               "mode": None, "garments": [], "error": {"type": "not_an_image", "message": "no"}, "timing_ms": {}}
    else:
        garment = {"object_type": "upper-body", "score": 0.9, "bbox": [0.0, 0.0, 8.0, 6.0], "mask": None,
                   "category": {"id": "t-shirts", "score": 0.7}, "category_top": [{"id": "t-shirts", "score": 0.7}],
                   "attributes": {"pattern": {"id": "plain", "score": 0.5}, "colours": [
                       {"id": "red", "share": 0.6, "score": 0.8}, {"id": "multicolour", "share": None, "score": 0.1}]}}
        rec = {"schema": RESULT_SCHEMA, "image": {"path": path, "width": 8, "height": 6}, "model": MODEL,
               "mode": "whole_image", "garments": [garment], "error": None, "timing_ms": {"decode": 1.5}}
    rec.update(extra or {})
    return rec


def names(n: int) -> list[str]:
    return [f"in/p{i:02d}.jpg" for i in range(n)]


def commit_all(job: TagJob, *, skip: tuple[int, ...] = ()) -> None:
    for k in job.pending_chunks():
        if k not in skip:
            job.commit_chunk(k, [fake_record(p, error=i % 3 == 2) for i, p in enumerate(job.chunk_inputs(k))])


def photos(d: Path, n: int, *, bad: tuple[int, ...] = ()) -> list[Path]:
    """``n`` tiny photos in ``d`` (sorted names); indices in ``bad`` are text files named .jpg."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        p = d / f"p{i:02d}.jpg"
        if i in bad:
            p.write_text("not an image")
        else:
            arr = np.full((40, 32, 3), 235, np.uint8)
            arr[8:32, 6:26] = rng.integers(0, 256, 3)
            Image.fromarray(arr).save(p, "JPEG")
        out.append(p)
    return out


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger(backend="onnx", threads=1)


@pytest.fixture
def shared_tagger(tagger: Tagger, monkeypatch: pytest.MonkeyPatch) -> Tagger:
    """``run_tag_job`` reuses the module's Tagger instead of loading the model again."""
    monkeypatch.setattr(TaggerConfig, "build", lambda self: tagger)
    return tagger


def without_timing(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "timing_ms": None} for r in records]


# ------------------------------------------------------------------------------ manifests and inputs


@pytest.mark.parametrize("name, text, expected", [
    ("list.txt", "a.jpg\n\n# comment\n  sub/b.png  \n", ["a.jpg", "sub/b.png"]),
    ("list.txt", "/abs/c.jpg\n", ["/abs/c.jpg"]),
    ("list.csv", "id,path,label\n1,a.jpg,x\n2,/abs/b.jpg,y\n", ["a.jpg", "/abs/b.jpg"]),
    ("list.csv", "\ufeffpath\nweird*name?.jpg\n", ["weird*name?.jpg"]),  # BOM; taken literally, not globbed
])
def test_read_manifest(name: str, text: str, expected: list[str], tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    manifest = tmp_path / "m" / name
    manifest.write_text(text, encoding="utf-8")
    want = [Path(e) if e.startswith("/") else tmp_path / "m" / e for e in expected]
    assert read_manifest(manifest) == want


@pytest.mark.parametrize("name, text, message", [
    ("list.csv", "file,label\na.jpg,x\n", "expected a 'path' column"),
    ("list.csv", "path,label\na.jpg,x\n,y\n", "line 3: expected a path"),
    ("list.txt", "\n# only a comment\n", "found none"),
    ("list.csv", "path\n", "found none"),
])
def test_bad_manifests_are_clear_errors(name: str, text: str, message: str, tmp_path: Path) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=message):
        read_manifest(tmp_path / name)


def test_resolve_inputs_keeps_order_and_each_path_once(tmp_path: Path) -> None:
    folder = photos(tmp_path / "f", 2)
    (tmp_path / "m.txt").write_text("f/p01.jpg\nmissing.jpg\nf/p00.jpg\n")
    got = resolve_inputs([str(tmp_path / "f")], manifest=tmp_path / "m.txt")
    assert got == [*folder, tmp_path / "missing.jpg"]
    with pytest.raises(ValueError, match="nothing to tag"):
        resolve_inputs([])


# ------------------------------------------------------------------------------ Parquet rows


@pytest.mark.parametrize("record", [
    fake_record("a.jpg"), fake_record("b.jpg", error=True), fake_record("c.jpg", extra={"post_id": "x1"}),
    {**fake_record("d.jpg"), "garments": []},
], ids=["tagged", "error", "extra-key", "no-garments"])
def test_parquet_row_round_trip(record: dict[str, Any], tmp_path: Path) -> None:
    row = record_to_row(record, 7)
    assert set(row) == {c for c, _, _ in PARQUET_COLUMNS}
    assert row["input_index"] == 7 and row["path"] == record["image"]["path"]
    assert row["n_garments"] == len(record["garments"])
    assert row["object_type"] == (record["garments"][0]["object_type"] if record["garments"] else None)
    assert (row["error_type"] is None) == (record["error"] is None)
    assert row_to_record(row) == record
    frame = records_to_frame([record], first_index=7)
    assert list(frame.columns) == [c for c, _, _ in PARQUET_COLUMNS] and len(frame) == 1
    assert frame_to_rows(frame) == [row]
    assert row_to_record(frame_to_rows(frame)[0]) == record


def test_empty_frame_has_the_columns_and_types() -> None:
    frame = records_to_frame([])
    assert len(frame) == 0 and list(frame.columns) == [c for c, _, _ in PARQUET_COLUMNS]
    assert {str(frame[c].dtype) for c, kind, _ in PARQUET_COLUMNS if kind == "string"} == {"object"}
    assert [str(frame[c].dtype) for c in ("input_index", "width", "category_score")] == ["Int64", "Int32", "Float64"]


# ------------------------------------------------------------------------------ the job format


def test_new_job_chunks_commit_and_read_back(tmp_path: Path) -> None:
    inputs = names(7)
    with TagJob.open(tmp_path / "job", inputs=inputs, settings=SETTINGS, chunk_size=3) as job:
        assert job.n_chunks == 3 and job.pending_chunks() == [0, 1, 2]
        assert [job.chunk_range(k) for k in range(3)] == [(0, 3), (3, 6), (6, 7)]
        commit_all(job)
        assert job.pending_chunks() == [] and job.n_done == 7
        assert job.n_failed == 2  # inputs 2 and 5 (i % 3 == 2 within chunks 0 and 1)
    manifest = json.loads((tmp_path / "job" / "job.json").read_text())
    assert manifest["schema"] == JOB_SCHEMA and manifest["inputs"]["count"] == 7
    assert [(c["start"], c["stop"]) for c in manifest["chunks"]] == [(0, 3), (3, 6), (6, 7)]
    for c in manifest["chunks"]:
        for fmt in ("jsonl", "parquet"):
            records = read_chunk_file(tmp_path / "job" / c["files"][fmt]["name"])
            assert [r["image"]["path"] for r in records] == inputs[c["start"]:c["stop"]]
    records = list(iter_job_records(tmp_path / "job"))
    assert [r["image"]["path"] for r in records] == inputs
    assert list(iter_job_records(tmp_path / "job", fmt="parquet")) == records
    status = job_status(tmp_path / "job", verify=True)
    assert status.complete and status.problems == [] and status.uncommitted_files == []
    assert (status.n_done, status.n_failed, status.chunks_committed, status.chunks_total) == (7, 2, 3, 3)


@pytest.mark.parametrize("formats", [("jsonl",), ("parquet",)])
def test_one_format_jobs_merge_into_both(formats: tuple[str, ...], tmp_path: Path) -> None:
    inputs = names(5)
    with TagJob.open(tmp_path / "job", inputs=inputs, settings=SETTINGS, chunk_size=2, formats=formats) as job:
        commit_all(job)
    assert {p.suffix for p in (tmp_path / "job" / "chunks").iterdir()} == {f".{formats[0]}"}
    assert merge_job(tmp_path / "job", tmp_path / "out.jsonl") == 5
    assert merge_job(tmp_path / "job", tmp_path / "out.parquet") == 5
    jsonl = read_chunk_file(tmp_path / "out.jsonl")
    assert [r["image"]["path"] for r in jsonl] == inputs
    assert read_chunk_file(tmp_path / "out.parquet") == jsonl
    import fastparquet

    merged = fastparquet.ParquetFile(str(tmp_path / "out.parquet"))
    assert merged.to_pandas(index=False)["input_index"].tolist() == list(range(5))
    assert len(merged.row_groups) == 3  # one row group per chunk


def test_commit_refuses_wrong_records(tmp_path: Path) -> None:
    with TagJob.open(tmp_path / "job", inputs=names(4), settings=SETTINGS, chunk_size=2) as job:
        with pytest.raises(ValueError, match="chunk 0: expected records for 2 inputs"):
            job.commit_chunk(0, [fake_record("in/p00.jpg")])
        with pytest.raises(ValueError, match="chunk 1: expected"):
            job.commit_chunk(1, [fake_record("in/p03.jpg"), fake_record("in/p02.jpg")])
        with pytest.raises(ValueError, match=r"chunk index in \[0, 2\)"):
            job.commit_chunk(2, [])
        job.commit_chunk(0, [fake_record("in/p00.jpg"), fake_record("in/p01.jpg")])
        with pytest.raises(ValueError, match="already committed"):
            job.commit_chunk(0, [fake_record("in/p00.jpg"), fake_record("in/p01.jpg")])
        assert job.pending_chunks() == [1]


@pytest.mark.parametrize("kwargs, message", [
    ({"chunk_size": 0}, "positive chunk size"),
    ({"formats": ["csv"]}, "expected chunk formats"),
    ({"formats": []}, "expected chunk formats"),
    ({"settings": {"x": object()}}, "JSON-serialisable"),
    ({"inputs": []}, "at least one input"),
])
def test_bad_job_arguments(kwargs: dict[str, Any], message: str, tmp_path: Path) -> None:
    args = {"inputs": names(2), "settings": SETTINGS, **kwargs}
    with pytest.raises(ValueError, match=message):
        TagJob.open(tmp_path / "job", **args)


# ------------------------------------------------------------------------------ resuming


def test_resume_continues_where_it_stopped(tmp_path: Path) -> None:
    inputs = names(6)
    with TagJob.open(tmp_path / "job", inputs=inputs, settings=SETTINGS, chunk_size=2) as job:
        commit_all(job, skip=(1, 2))
        first = (tmp_path / "job" / "chunks" / "000000.jsonl").read_bytes()
    status = job_status(tmp_path / "job")
    assert not status.complete and status.n_done == 2
    with pytest.raises(JobError, match=r"not complete \(2/6"):
        list(iter_job_records(tmp_path / "job"))
    assert len(list(iter_job_records(tmp_path / "job", partial=True))) == 2
    with TagJob.open(tmp_path / "job", inputs=None, settings=SETTINGS, resume=True) as job:  # stored inputs
        assert job.inputs == inputs and job.chunk_size == 2 and job.pending_chunks() == [1, 2]
        commit_all(job)
    assert (tmp_path / "job" / "chunks" / "000000.jsonl").read_bytes() == first  # never rewritten
    assert [r["image"]["path"] for r in iter_job_records(tmp_path / "job")] == inputs


@pytest.mark.parametrize("change, message", [
    ({"resume": False}, r"already holds a job \(2/4 inputs done\)"),
    ({"inputs": names(5)}, "the job has 4 inputs, this run 5"),
    ({"inputs": [*names(3), "in/other.jpg"]}, "first difference at input 3: job has 'in/p03.jpg', this run 'in/other.jpg'"),
    ({"settings": {**SETTINGS, "whole_image": False}}, "whole_image: job has True, this run False"),
    ({"settings": {**SETTINGS, "embed": True}}, "embed: job has None, this run True"),
    ({"chunk_size": 3}, "chunk size: job has 2, this run 3"),
    ({"formats": ["jsonl"]}, "formats: job has"),
])
def test_resume_with_other_inputs_or_settings_is_refused(change: dict[str, Any], message: str,
                                                         tmp_path: Path) -> None:
    with TagJob.open(tmp_path / "job", inputs=names(4), settings=SETTINGS, chunk_size=2) as job:
        commit_all(job, skip=(1,))
    args = {"inputs": names(4), "settings": SETTINGS, "resume": True, **change}
    with pytest.raises(JobError, match=message):
        TagJob.open(tmp_path / "job", **args)
    with TagJob.open(tmp_path / "job", inputs=names(4), settings=SETTINGS, resume=True) as job:  # unchanged: fine
        assert job.pending_chunks() == [1]


def test_resume_without_a_job_starts_one_and_needs_inputs(tmp_path: Path) -> None:
    with pytest.raises(JobError, match="no job to resume"):
        TagJob.open(tmp_path / "job", inputs=None, settings=SETTINGS, resume=True)
    with TagJob.open(tmp_path / "job", inputs=names(2), settings=SETTINGS, resume=True) as job:
        assert job.pending_chunks() == [0]


def test_model_is_bound_on_first_run(tmp_path: Path) -> None:
    with TagJob.open(tmp_path / "job", inputs=names(2), settings=SETTINGS) as job:
        job.bind_model(MODEL)
        job.bind_model(MODEL)
    with TagJob.open(tmp_path / "job", inputs=names(2), settings=SETTINGS, resume=True) as job, \
            pytest.raises(JobError, match="another model"):
        job.bind_model({**MODEL, "backend": "torch"})


def test_a_job_is_used_by_one_process_at_a_time(tmp_path: Path) -> None:
    job = TagJob.open(tmp_path / "job", inputs=names(2), settings=SETTINGS)
    try:
        with pytest.raises(JobError, match="in use by another process"):
            TagJob.open(tmp_path / "job", inputs=names(2), settings=SETTINGS, resume=True)
    finally:
        job.close()
    TagJob.open(tmp_path / "job", inputs=names(2), settings=SETTINGS, resume=True).close()


# ------------------------------------------------------------------------------ crashes (simulated in-process)


def _fail_on(monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    """Make ``os.replace`` raise when it would move a temporary file into ``target`` (a crash there)."""
    real = os.replace

    def replace(src, dst):
        if Path(dst).name == target:
            raise OSError("simulated crash")
        return real(src, dst)
    monkeypatch.setattr(batch_job.os, "replace", replace)


@pytest.mark.parametrize("crash_at, uncommitted", [
    ("000001.parquet", ["chunks/000001.jsonl"]),  # JSONL in place, Parquet still a temporary file
    ("job.json", ["chunks/000001.jsonl", "chunks/000001.parquet"]),  # chunk files in place, not listed
])
def test_a_crash_while_committing_loses_and_repeats_nothing(crash_at: str, uncommitted: list[str], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = names(6)
    with TagJob.open(tmp_path / "job", inputs=inputs, settings=SETTINGS, chunk_size=2) as job:
        commit_all(job, skip=(1, 2))
        with monkeypatch.context() as m:
            _fail_on(m, crash_at)
            with pytest.raises(OSError, match="simulated crash"):
                job.commit_chunk(1, [fake_record(p) for p in job.chunk_inputs(1)])
    # a process killed mid-write leaves its temporary file (an exception removes it): one such leftover
    (tmp_path / "job" / "chunks" / f".tmp-0123456789ab-{crash_at}").write_bytes(b"half a file")
    status = job_status(tmp_path / "job", verify=True)
    assert status.n_done == 2 and status.problems == []
    assert [f for f in status.uncommitted_files if ".tmp-" not in f] == uncommitted
    assert len(list(iter_job_records(tmp_path / "job", partial=True))) == 2  # readers ignore the leftovers
    with TagJob.open(tmp_path / "job", inputs=inputs, settings=SETTINGS, resume=True) as job:
        assert not any(".tmp-" in p.name for d in (tmp_path / "job", tmp_path / "job" / "chunks") for p in d.iterdir())
        assert job.pending_chunks() == [1, 2]
        commit_all(job)
    assert [r["image"]["path"] for r in iter_job_records(tmp_path / "job")] == inputs
    assert job_status(tmp_path / "job").uncommitted_files == []


@pytest.mark.parametrize("damage, problem", [
    (lambda p: p.unlink(), "chunks/000000.jsonl: missing"),
    (lambda p: p.write_bytes(p.read_bytes()[:-5]), r"chunks/000000.jsonl: \d+ bytes, expected \d+"),
    (lambda p: p.write_bytes(p.read_bytes().replace(b"in/p00", b"in/pXX")),  # same size
     "chunks/000000.jsonl: checksum differs from job.json"),
], ids=["missing", "truncated", "edited"])
def test_damaged_committed_chunks_are_reported(damage, problem: str, tmp_path: Path) -> None:
    with TagJob.open(tmp_path / "job", inputs=names(4), settings=SETTINGS, chunk_size=2, formats=["jsonl"]) as job:
        commit_all(job, skip=(1,))
    damage(tmp_path / "job" / "chunks" / "000000.jsonl")
    message = f"committed chunk 0 of the job in .* is damaged: {problem}; the job folder was changed"
    with pytest.raises(batch_job.ChunkDamagedError, match=message):
        TagJob.open(tmp_path / "job", inputs=names(4), settings=SETTINGS, resume=True)
    with pytest.raises(batch_job.ChunkDamagedError, match=message):
        merge_job(tmp_path / "job", tmp_path / "out.jsonl", partial=True)
    assert not (tmp_path / "out.jsonl").exists()
    [found] = job_status(tmp_path / "job", verify=True).problems
    assert re.fullmatch(problem, found)


@pytest.mark.parametrize("content, message", [
    (b'{"schema": "fashionlens/result/v1"}\n{"sch', "line 2 is not terminated"),
    (b'{"a": 1}\nnot json\n', "line 2 is not JSON"),
])
def test_unreadable_chunk_files_are_errors(content: bytes, message: str, tmp_path: Path) -> None:
    (tmp_path / "c.jsonl").write_bytes(content)
    (tmp_path / "c.parquet").write_bytes(b"PAR1 nonsense")
    with pytest.raises(ValueError, match=message):
        read_chunk_file(tmp_path / "c.jsonl")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        read_chunk_file(tmp_path / "c.parquet")


def test_not_a_job_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a job folder"):
        job_status(tmp_path)
    (tmp_path / "job.json").write_text('{"schema": "something/else"}')
    with pytest.raises(JobError, match="expected schema 'fashionlens/tag-job/v1', got 'something/else'"):
        job_status(tmp_path)


# ------------------------------------------------------------------------------ the local engine


def test_run_job_tags_every_input_once_and_resumes_after_an_interruption(tagger: Tagger, tmp_path: Path) -> None:
    paths = [str(p) for p in photos(tmp_path / "in", 7, bad=(3,))]
    seen = []

    def stop_at_fifth(_im, result) -> None:
        seen.append(result.path)
        if len(seen) == 5:
            raise KeyboardInterrupt  # not an Exception: stops the run like Ctrl-C
    with TagJob.open(tmp_path / "job", inputs=paths, settings=SETTINGS, chunk_size=2) as job:
        with pytest.raises(KeyboardInterrupt):
            run_job(job, tagger, batch_size=2, progress=False, on_image=stop_at_fifth)
        assert job.pending_chunks() == [2, 3]  # chunks 0 and 1 committed, chunk 2 lost with the interruption
    with TagJob.open(tmp_path / "job", inputs=paths, settings=SETTINGS, resume=True) as job:
        stats = run_job(job, tagger, batch_size=2, progress=False)
        assert (stats.tagged, stats.failed, stats.chunks) == (3, 0, 2)
        assert job.n_failed == 1
    records = list(iter_job_records(tmp_path / "job"))
    assert [r["image"]["path"] for r in records] == paths
    assert [r["error"] is not None for r in records] == [i == 3 for i in range(7)]
    assert records[3]["error"]["type"] and records[0]["garments"][0]["bbox"] == [0.0, 0.0, 32.0, 40.0]


# ------------------------------------------------------------------------------ the command line


def test_cli_job_matches_the_plain_run(shared_tagger: Tagger, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    photos(tmp_path / "in", 5, bad=(1,))
    (tmp_path / "m.csv").write_text("path\nin/p04.jpg\nin/extra.jpg\n")  # one repeat, one missing file
    common = ["tag", str(tmp_path / "in"), "--manifest", str(tmp_path / "m.csv"), "--whole-image", "-q"]
    assert main([*common, "-o", str(tmp_path / "plain.jsonl")]) == 1
    plain = read_chunk_file(tmp_path / "plain.jsonl")
    assert len(plain) == 6 and plain[-1]["image"]["path"] == str(tmp_path / "in" / "extra.jpg")

    job = ["--job-dir", str(tmp_path / "job"), "--chunk-size", "4", "--batch-size", "3"]
    assert main([*common, *job, "-o", str(tmp_path / "merged.parquet")]) == 1
    err = capsys.readouterr().err
    assert "tagged 4/6 images (2 failed)" in err and "6/6 inputs done (0 before this run), 2 failed, 2/2 chunks" in err
    assert without_timing(read_chunk_file(tmp_path / "merged.parquet")) == without_timing(plain)
    assert without_timing(list(iter_job_records(tmp_path / "job"))) == without_timing(plain)

    assert main([*common, *job]) == 2
    assert "already holds a job" in capsys.readouterr().err
    assert main([*common[:-2], "-q", *job, "--resume"]) == 2  # without --whole-image: other settings
    assert "whole_image: job has True, this run False" in capsys.readouterr().err
    assert main(["tag", "--job-dir", str(tmp_path / "job"), "--resume", "--whole-image", "-q"]) == 1
    assert "nothing left to tag; job" in capsys.readouterr().err


@pytest.mark.parametrize("damage", [
    lambda data: b"".join([*reversed(data.splitlines(keepends=True))]),  # the two records swapped
    lambda data: data.replace(b'"whole_image"', b'"whole_imagE"', 1),  # one character
], ids=["swapped-lines", "one-char"])
def test_cli_resume_and_merge_refuse_a_tampered_chunk(damage, shared_tagger: Tagger, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    photos(tmp_path / "in", 4)
    job = tmp_path / "job"
    common = ["tag", str(tmp_path / "in"), "--whole-image", "-q", "--job-dir", str(job), "--chunk-size", "2"]
    assert main(common) == 0
    capsys.readouterr()
    chunk = job / "chunks" / "000001.jsonl"
    data = chunk.read_bytes()
    chunk.write_bytes(damage(data))
    assert chunk.read_bytes() != data and chunk.stat().st_size == len(data)
    for argv in ([*common, "--resume", "-o", str(tmp_path / "out.jsonl")],
                 ["job", "merge", str(job), str(tmp_path / "out.jsonl")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith(f"fashionlens: error: committed chunk 1 of the job in {str(job)!r} is damaged: "
                              "chunks/000001.jsonl: checksum differs from job.json")
        assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("argv, message", [
    (["tag", "--whole-image"], "give image files, folders or glob patterns, or --manifest FILE"),
    (["tag", "x.jpg", "--resume"], "need --job-dir"),
    (["tag", "x.jpg", "--chunk-size", "5"], "need --job-dir"),
])
def test_cli_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def _job_cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="fashionlens")
    register_job_commands(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    return args.func(args)


def test_job_status_and_merge_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with TagJob.open(tmp_path / "job", inputs=names(5), settings=SETTINGS, chunk_size=2) as job:
        commit_all(job, skip=(2,))
    assert _job_cli(["job", "status", str(tmp_path / "job"), "--verify"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["n_done"], status["n_inputs"], status["complete"], status["problems"]) == (4, 5, False, [])
    with pytest.raises(JobError, match="not complete"):
        _job_cli(["job", "merge", str(tmp_path / "job"), str(tmp_path / "out.jsonl")])
    assert not (tmp_path / "out.jsonl").exists() and not list(tmp_path.glob(".out.jsonl*"))
    assert _job_cli(["job", "merge", str(tmp_path / "job"), str(tmp_path / "out.jsonl"), "--partial"]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == 4
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 4
    (tmp_path / "job" / "chunks" / "000001.parquet").write_bytes(b"x" * (tmp_path / "job" / "chunks" / "000001.parquet").stat().st_size)
    assert _job_cli(["job", "status", str(tmp_path / "job"), "--verify"]) == 1
    assert json.loads(capsys.readouterr().out)["problems"] == ["chunks/000001.parquet: checksum differs from job.json"]


def test_a_new_job_removes_chunk_files_left_without_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "job" / "chunks").mkdir(parents=True)
    (tmp_path / "job" / "chunks" / "000000.jsonl").write_text('{"stale": true}\n')
    (tmp_path / "job" / "chunks" / "notes.txt").write_text("not ours")
    with TagJob.open(tmp_path / "job", inputs=names(2), settings=SETTINGS) as job:
        assert job.pending_chunks() == [0]
    assert job_status(tmp_path / "job").uncommitted_files == ["chunks/notes.txt"]


def test_detection_job_records_its_detector_settings(upper_body_detector: Any, one_thread: None,
                                                     tmp_path: Path) -> None:
    from fashionlens.detection.detector import DetectSettings

    inputs = [str(p) for p in photos(tmp_path / "in", 3)]
    common = {"detector": str(upper_body_detector.path), "detector_backend": upper_body_detector.backend, "threads": 1,
              "progress": False, "job_dir": tmp_path / "job", "chunk_size": 2}
    assert tag_job.run_tag_job(inputs, **common) == 0
    manifest = json.loads((tmp_path / "job" / "job.json").read_text())
    assert manifest["settings"]["whole_image"] is False
    assert manifest["settings"]["detect_settings"]["score_thresh"] is None  # None and DetectSettings() are the same
    records = list(iter_job_records(tmp_path / "job"))
    assert [r["mode"] for r in records] == ["detect"] * 3
    assert all(g["object_type"] == "upper-body" for r in records for g in r["garments"])
    assert tag_job.run_tag_job(inputs, detect_settings=DetectSettings(), resume=True, **common) == 0
    with pytest.raises(JobError, match="detect_settings: job has .*'score_thresh': None.*'score_thresh': 0.9"):
        tag_job.run_tag_job(inputs, detect_settings=DetectSettings(score_thresh=0.9), resume=True, **common)


def test_parquet_row_keeps_every_model_key():
    from fashionlens.jobs.store import record_to_row, row_to_record

    record = {"schema": "fashionlens/result/v1", "image": {"path": "a.jpg", "width": 4, "height": 3},
              "model": {"name": "c", "version": "1", "backend": "onnx", "detector": "d", "detector_version": "2",
                        "detector_backend": "onnx"},
              "mode": "detect", "garments": [], "error": None, "timing_ms": {"detect": 1.0}}
    assert row_to_record(record_to_row(record, 0)) == record
