"""Parquet without pyarrow (issue 26): job chunks, merged results and trend metadata go through
fastparquet, so ``pip install fashionlens`` needs no pyarrow (only the ``ray`` extra brings it).

* the core path (a job in both formats, resume, status, merge, reading chunks, trend metadata) runs in
  a subprocess where pyarrow cannot be imported, as in the light install — the test environments have
  pyarrow through Ray Data, so only blocking it shows that nothing needs it;
* chunks written by pyarrow (``tests/fixtures/parquet/``: written by the pyarrow writer this module
  replaced, pyarrow 26.0.1) read as the same records, and a job whose first chunks pyarrow wrote resumes
  and merges; files written now have the schema pyarrow wrote (checked where pyarrow is installed);
* damaged Parquet bytes are a ``ValueError`` naming the file, with nothing printed.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fashionlens.jobs import store
from fashionlens.jobs.store import (
    PARQUET_COLUMNS,
    TagJob,
    frame_to_rows,
    iter_job_records,
    job_status,
    merge_job,
    parse_chunk,
    read_chunk_file,
    record_to_row,
    records_to_frame,
)
from fashionlens.trends.inputs import TrendInputError, ValidationReport, read_post_metadata

FIXTURES = Path(__file__).parent / "fixtures" / "parquet"
OLD_CHUNK = FIXTURES / "pyarrow-chunk-000001.parquet"  # input_index 500..503
OLD_RECORDS = [json.loads(line) for line in (FIXTURES / "pyarrow-chunk-000001.jsonl").read_text("utf-8").splitlines()]
SETTINGS = {"whole_image": True}

#: run in a fresh interpreter with every ``pyarrow`` import failing as if it were not installed
BLOCK_PYARROW = """
import importlib.abc, sys

class NoPyarrow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, NoPyarrow())
for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
    del sys.modules[name]
"""

CORE_PATH = """
import json, sys
from pathlib import Path
from fashionlens.jobs.store import TagJob, iter_job_records, job_status, merge_job, read_chunk_file
from fashionlens.trends.inputs import ValidationReport, read_post_metadata

tmp = Path(sys.argv[1])
records = [json.loads(line) for line in Path(sys.argv[2]).read_text("utf-8").splitlines()]
inputs = [r["image"]["path"] for r in records]
with TagJob.open(tmp / "job", inputs=inputs, settings={"whole_image": True}, chunk_size=3) as job:
    job.commit_chunk(0, records[:3])
with TagJob.open(tmp / "job", inputs=inputs, settings={"whole_image": True}, resume=True) as job:
    job.commit_chunk(1, records[3:])
status = job_status(tmp / "job", verify=True)
assert status.complete and status.problems == [], status
assert list(iter_job_records(tmp / "job", fmt="parquet")) == records
assert merge_job(tmp / "job", tmp / "out.parquet") == len(records)
assert read_chunk_file(tmp / "out.parquet") == records
assert read_chunk_file(sys.argv[3]) == records[:4]  # the chunk pyarrow wrote
meta = tmp / "posts.parquet"
import pandas as pd
pd.DataFrame({"image": inputs, "timestamp": ["2024-05-0%d" % (i + 1) for i in range(len(inputs))],
              "city": ["Paris", None, "Rome", "Oslo", None], "likes": [3, 0, 5, 7, 1]}).to_parquet(meta)
report = ValidationReport()
posts = read_post_metadata(meta, report)
assert posts["image"].tolist() == inputs and report.rows_used == len(inputs), (posts, report)
print("pyarrow imported:", "pyarrow" in sys.modules)
"""


def some_records() -> list[dict[str, Any]]:
    """The fixture's records plus one more, with their own paths (five inputs: two chunks of 3)."""
    extra = {**OLD_RECORDS[2], "image": {"path": "photos/0005.jpg", "width": 3, "height": 4}}
    return [*OLD_RECORDS, extra]


def test_core_path_runs_with_pyarrow_blocked(tmp_path: Path) -> None:
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in some_records()),
                                            encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", BLOCK_PYARROW + CORE_PATH, str(tmp_path),
                           str(tmp_path / "records.jsonl"), str(OLD_CHUNK)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "pyarrow imported: False"


def test_blocking_pyarrow_is_felt() -> None:
    """The blocker of the test above really stops ``import pyarrow``, installed or not."""
    proc = subprocess.run([sys.executable, "-c", BLOCK_PYARROW + "import pyarrow"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0 and "blocked by the test" in proc.stderr


def test_chunk_written_by_pyarrow_reads_as_its_records() -> None:
    assert read_chunk_file(OLD_CHUNK) == OLD_RECORDS
    assert store._count_records(OLD_CHUNK.read_bytes(), "parquet", OLD_CHUNK.name) == len(OLD_RECORDS)
    rows = store._parquet_rows(OLD_CHUNK.read_bytes(), OLD_CHUNK.name)
    assert rows == [record_to_row(r, 500 + i) for i, r in enumerate(OLD_RECORDS)]
    assert rows[1]["width"] is None and rows[1]["category_score"] is None and rows[1]["mode"] is None


def test_written_chunk_reads_back() -> None:
    records = some_records()
    data = store._parquet_bytes(records_to_frame(records, first_index=10))
    assert data[:4] == data[-4:] == b"PAR1"
    assert parse_chunk(data, "parquet", "c.parquet") == records
    assert store._parquet_rows(data, "c.parquet") == [record_to_row(r, 10 + i) for i, r in enumerate(records)]


def test_written_files_have_the_schema_pyarrow_wrote(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed (it comes with the ray extra)")
    from fashionlens.jobs.ray import arrow_schema

    records = some_records()
    data = store._parquet_bytes(records_to_frame(records, first_index=10))
    (tmp_path / "new.parquet").write_bytes(data)
    table = pq.read_table(tmp_path / "new.parquet")
    assert table.schema.remove_metadata() == arrow_schema()
    assert pq.read_table(OLD_CHUNK).schema.remove_metadata() == arrow_schema()
    assert table.to_pylist() == [record_to_row(r, 10 + i) for i, r in enumerate(records)]


def test_job_started_with_pyarrow_resumes_and_merges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job whose first chunk the pyarrow writer committed (before issue 26) resumes with fastparquet;
    both chunks read back and merge into one file, in either format."""
    pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (it comes with the ray extra)")
    import pyarrow.parquet as pq

    from fashionlens.jobs.ray import arrow_schema

    def pyarrow_bytes(frame: pd.DataFrame) -> bytes:  # the writer this module had before
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(frame_to_rows(frame), schema=arrow_schema()), sink)
        return sink.getvalue().to_pybytes()

    records = some_records()
    inputs = [r["image"]["path"] for r in records]
    with monkeypatch.context() as patch:
        patch.setattr(store, "_parquet_bytes", pyarrow_bytes)
        with TagJob.open(tmp_path / "job", inputs=inputs, settings=SETTINGS, chunk_size=3) as job:
            job.commit_chunk(0, records[:3])
    old = (tmp_path / "job" / "chunks" / "000000.parquet").read_bytes()
    assert b"parquet-cpp-arrow" in old  # pyarrow's writer signature: the chunk really is pyarrow's
    with TagJob.open(tmp_path / "job", inputs=inputs, settings=SETTINGS, resume=True) as job:
        assert job.pending_chunks() == [1]
        job.commit_chunk(1, records[3:])
    assert b"parquet-cpp-arrow" not in (tmp_path / "job" / "chunks" / "000001.parquet").read_bytes()
    assert job_status(tmp_path / "job", verify=True).problems == []
    assert list(iter_job_records(tmp_path / "job", fmt="parquet")) == records
    assert merge_job(tmp_path / "job", tmp_path / "out.parquet") == 5
    assert read_chunk_file(tmp_path / "out.parquet") == records
    assert pq.read_table(tmp_path / "out.parquet").column("input_index").to_pylist() == list(range(5))


def test_merge_streams_one_row_group_per_chunk(tmp_path: Path) -> None:
    import fastparquet

    records = some_records()
    with TagJob.open(tmp_path / "job", inputs=[r["image"]["path"] for r in records], settings=SETTINGS,
                     chunk_size=2, formats=("jsonl",)) as job:
        for k in range(job.n_chunks):
            start, stop = job.chunk_range(k)
            job.commit_chunk(k, records[start:stop])
    assert merge_job(tmp_path / "job", tmp_path / "out.parquet") == 5
    merged = fastparquet.ParquetFile(str(tmp_path / "out.parquet"))
    assert [rg.num_rows for rg in merged.row_groups] == [2, 2, 1]
    assert read_chunk_file(tmp_path / "out.parquet") == records


def test_empty_merge_is_a_parquet_file_with_the_columns(tmp_path: Path) -> None:
    with TagJob.open(tmp_path / "job", inputs=["a.jpg"], settings=SETTINGS, chunk_size=2):
        pass
    assert merge_job(tmp_path / "job", tmp_path / "out.parquet", partial=True) == 0
    assert read_chunk_file(tmp_path / "out.parquet") == []
    parquet = store._parquet_file((tmp_path / "out.parquet").read_bytes(), "out.parquet")
    assert list(parquet.columns) == [c for c, _, _ in PARQUET_COLUMNS] and parquet.count() == 0


def _damaged() -> dict[str, bytes]:
    good = store._parquet_bytes(records_to_frame(some_records()))
    footer = int.from_bytes(good[-8:-4], "little")
    scrambled = bytearray(good)
    scrambled[-8 - footer:-8] = bytes((b * 7 + 13) % 256 for b in good[-8 - footer:-8])
    return {"empty": b"", "not-parquet": b"PAR1 nonsense", "text": b"image,timestamp\n" * 20,
            "truncated": good[: len(good) // 2], "footer-too-long": b"PAR1" + b"x" * 20 + struct.pack("<I", 999) + b"PAR1",
            "scrambled-footer": bytes(scrambled)}


#: damage that the framing checks catch before fastparquet's decoder, which may crash on the rest
#: (a scrambled footer: see the trend metadata test, which reads in a child process)
FRAMING = ["empty", "not-parquet", "text", "truncated", "footer-too-long"]


@pytest.mark.parametrize("kind", FRAMING)
def test_damaged_parquet_is_a_value_error_and_prints_nothing(kind: str, capfd: pytest.CaptureFixture[str]) -> None:
    data = _damaged()[kind]
    with pytest.raises(ValueError, match=r"^c\.parquet: not a readable Parquet file: "):
        parse_chunk(data, "parquet", "c.parquet")
    with pytest.raises(ValueError, match=r"^c\.parquet: not a readable Parquet file: "):
        store._count_records(data, "parquet", "c.parquet")
    assert capfd.readouterr().out == ""


def test_other_columns_are_refused(tmp_path: Path) -> None:
    import fastparquet

    fastparquet.write(str(tmp_path / "other.parquet"), pd.DataFrame({"path": ["a.jpg"], "x": [1]}), write_index=False)
    with pytest.raises(ValueError, match=r"other\.parquet: expected Parquet columns \['input_index', 'path'"):
        read_chunk_file(tmp_path / "other.parquet")


# ------------------------------------------------------------------------------ trend metadata


def test_trend_metadata_parquet_reads_through_fastparquet(tmp_path: Path) -> None:
    import fastparquet

    frame = pd.DataFrame({"image": ["a.jpg", "b.jpg", "c.jpg"], "timestamp": ["2024-05-01", "2024-05-02", "bad"],
                          "city": ["Paris", None, "Rome"], "likes": [3, 0, 5]})
    fastparquet.write(str(tmp_path / "posts.parquet"), frame, write_index=False)
    report = ValidationReport()
    posts = read_post_metadata(tmp_path / "posts.parquet", report)
    assert posts["image"].tolist() == ["a.jpg", "b.jpg"] and posts["city"].tolist()[0] == "Paris"
    assert report.rows_read == 3 and sum(report.rejected.values()) == 1  # the bad timestamp, counted


@pytest.mark.parametrize("kind", ["not-parquet", "truncated", "scrambled-footer"])
def test_damaged_trend_metadata_is_a_trend_input_error(kind: str, tmp_path: Path,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "posts.parquet").write_bytes(_damaged()[kind])
    with pytest.raises(TrendInputError, match=r"posts\.parquet: not a readable Parquet file \("):
        read_post_metadata(tmp_path / "posts.parquet")
    assert capfd.readouterr().out == ""


def _crash(path: str) -> pd.DataFrame:
    os.kill(os.getpid(), signal.SIGSEGV)  # what fastparquet's decoder may do on hostile bytes
    raise AssertionError("unreachable")


def _hang(path: str) -> pd.DataFrame:
    import time

    time.sleep(60)  # a decoder that loops on hostile bytes
    raise AssertionError("unreachable")


def test_a_parquet_reader_that_hangs_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    import fastparquet

    from fashionlens.trends import inputs

    fastparquet.write(str(tmp_path / "posts.parquet"), pd.DataFrame({"image": ["a.jpg"], "timestamp": ["2024-05-01"]}),
                      write_index=False)
    monkeypatch.setattr(inputs, "_read_parquet", _hang)
    monkeypatch.setattr(inputs, "PARQUET_READ_TIMEOUT_S", 1.0)
    t0 = time.monotonic()
    with pytest.raises(TrendInputError, match=r"posts\.parquet: not a readable Parquet file \(reading it took over 1 s"):
        read_post_metadata(tmp_path / "posts.parquet")
    assert time.monotonic() - t0 < 30  # the child was killed, not waited for


def test_a_crashing_parquet_reader_costs_the_file_not_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fastparquet

    from fashionlens.trends import inputs

    fastparquet.write(str(tmp_path / "posts.parquet"), pd.DataFrame({"image": ["a.jpg"], "timestamp": ["2024-05-01"]}),
                      write_index=False)
    monkeypatch.setattr(inputs, "_read_parquet", _crash)
    with pytest.raises(TrendInputError, match=r"posts\.parquet: not a readable Parquet file \(the Parquet reader crashed"):
        read_post_metadata(tmp_path / "posts.parquet")
