"""The review store: round trip, WAL + schema version, audit trail, and the errors of files it cannot use
(each leaves the file as it was: no saved answer is lost)."""

from __future__ import annotations

import argparse
import sqlite3
import threading
from pathlib import Path

import pytest
from review_testing import (
    garment,
    result_line,
    three_unsure_fields,
    unsure,
    write_jsonl,
    write_photo,
)

from fashionlens.review.errors import (
    NewerSchemaError,
    NotAReviewStoreError,
    StoreCorruptError,
    StoreLockedError,
    UnknownTaskError,
)
from fashionlens.review.queue import build_queue
from fashionlens.review.store import APPLICATION_ID, SCHEMA_VERSION, ReviewStore


@pytest.fixture
def built(tmp_path: Path) -> tuple[ReviewStore, Path]:
    photo = write_photo(tmp_path / "photos" / "a.jpg")
    results = write_jsonl(tmp_path / "results.jsonl", [result_line(photo, [garment(attributes=three_unsure_fields())])])
    store = ReviewStore(tmp_path / "review.sqlite")
    build_queue(results, store)
    return store, tmp_path / "review.sqlite"


def test_round_trip_keeps_fields_candidates_and_answers(built: tuple[ReviewStore, Path]) -> None:
    store, path = built
    task = store.next_task()
    assert task is not None and task.kind == "garment" and task.status == "pending"
    assert task.bbox == [24.0, 32.0, 48.0, 64.0] and task.object_type == "upper-body"
    pattern = task.field("pattern")
    assert pattern.uncertain and pattern.needs_review and pattern.value is None
    assert [(c.id, c.score) for c in pattern.candidates] == [("striped", 0.41), ("plain", 0.38), ("checked", 0.1)]
    assert task.field("sleeve").value == "short" and not task.field("sleeve").needs_review
    assert task.field("colours").multi and task.field("colours").value == ["blue"]

    store.answer(task.id, "pattern", "plain", reviewer="anna")
    store.answer(task.id, "colours", ["blue", "white"], reviewer="anna")
    again = ReviewStore(path).task(task.id)  # a fresh open of the file
    assert again.answers == {"pattern": "plain", "colours": ["blue", "white"]}
    assert again.final_value("pattern") == "plain" and again.final_value("material") is None
    assert again.final_value("sleeve") == "short"


def test_wal_schema_version_and_application_id(built: tuple[ReviewStore, Path]) -> None:
    _, path = built
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_audit_trail_records_who_when_old_and_new(built: tuple[ReviewStore, Path]) -> None:
    store, _ = built
    tid = store.next_task().id  # type: ignore[union-attr]
    store.answer(tid, "pattern", "striped", reviewer="anna")
    store.answer(tid, "pattern", "striped", reviewer="anna")  # a retried request: no second row
    store.answer(tid, "pattern", "plain", reviewer="ben")
    assert store.finish(tid, "accept", reviewer="ben") == "corrected"
    rows = [r for r in store.audit(tid) if r.action != "build"]
    assert [(r.action, r.field, r.old, r.new, r.reviewer) for r in rows] == [
        ("answer", "pattern", None, "striped", "anna"),
        ("answer", "pattern", "striped", "plain", "ben"),
        ("accept", "status", "pending", "corrected", "ben"),
    ]
    assert all(r.at.endswith("Z") for r in rows)
    assert store.stats()["corrected"] == 1 and store.next_task() is None


def test_accept_without_a_changed_value_is_accepted(built: tuple[ReviewStore, Path]) -> None:
    store, _ = built
    tid = store.next_task().id  # type: ignore[union-attr]
    store.answer(tid, "sleeve", "short")  # the model's own value
    assert store.finish(tid, "accept") == "accepted"


def test_answers_are_checked_against_the_field(built: tuple[ReviewStore, Path]) -> None:
    store, _ = built
    tid = store.next_task().id  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="pattern: expected one of"):
        store.answer(tid, "pattern", "sparkly")
    with pytest.raises(ValueError, match="expected a list"):
        store.answer(tid, "colours", "blue")
    with pytest.raises(UnknownTaskError, match="expected one of its fields"):
        store.answer(tid, "collar", "x")
    with pytest.raises(UnknownTaskError, match="no task 999"):
        store.answer(999, "pattern", "plain")
    assert store.task(tid).answers == {}


def _saved_answer(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT field, value_json FROM answers").fetchall()


def test_a_file_that_is_not_a_database_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "review.sqlite"
    path.write_bytes(b"this is a text file, not a database\n" * 20)
    before = path.read_bytes()
    with pytest.raises(StoreCorruptError, match="not one") as err:
        ReviewStore(path)
    assert "\n" not in str(err.value) and path.read_bytes() == before


def test_a_damaged_store_raises_and_keeps_its_bytes(built: tuple[ReviewStore, Path]) -> None:
    store, path = built
    store.answer(store.next_task().id, "pattern", "plain")  # type: ignore[union-attr]
    with sqlite3.connect(path) as conn:  # fold the WAL in, then damage the table pages
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(page, len(data), page):
        data[start:start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    before = path.read_bytes()
    with pytest.raises(StoreCorruptError, match="damaged"):
        ReviewStore(path)
    assert path.read_bytes() == before


def test_another_sqlite_database_is_not_a_review_store(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER)")
        conn.execute("INSERT INTO photos VALUES (1)")
    with pytest.raises(NotAReviewStoreError, match="expected a fashionlens review store"):
        ReviewStore(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM photos").fetchone()[0] == 1
        assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master")} == {"photos"}


def test_a_newer_schema_is_refused_and_its_answers_kept(built: tuple[ReviewStore, Path]) -> None:
    store, path = built
    store.answer(store.next_task().id, "pattern", "plain")  # type: ignore[union-attr]
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(NewerSchemaError, match=f"version {SCHEMA_VERSION + 1}"):
        ReviewStore(path)
    assert _saved_answer(path) == [("pattern", '"plain"')]


def test_a_locked_store_gives_a_clear_error_and_loses_nothing(built: tuple[ReviewStore, Path]) -> None:
    store, path = built
    tid = store.next_task().id  # type: ignore[union-attr]
    store.answer(tid, "pattern", "plain")
    slow = ReviewStore(path, busy_timeout_s=0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreLockedError, match="locked by another writer") as err:
            slow.answer(tid, "material", "wool")
        assert err.value.exit_code == 3
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert slow.task(tid).answers == {"pattern": "plain"}
    slow.answer(tid, "material", "wool")  # once the lock is gone the same answer goes through
    assert slow.task(tid).answers == {"pattern": "plain", "material": "wool"}


def test_concurrent_answers_from_threads_are_all_saved(tmp_path: Path) -> None:
    photo = write_photo(tmp_path / "a.jpg")
    lines = [result_line(photo, [garment(attributes={"pattern": unsure([("plain", 0.4), ("striped", 0.3)])})
                                 for _ in range(6)])]
    store = ReviewStore(tmp_path / "r.sqlite")
    build_queue(write_jsonl(tmp_path / "r.jsonl", lines), store)
    ids = [t.id for t in store.tasks()]
    threads = [threading.Thread(target=store.answer, args=(tid, "pattern", "striped")) for tid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.stats()["answers"] == len(ids) == 6


@pytest.mark.parametrize("make, code", [("garbage", 2), ("newer", 2), ("locked", 3)])
def test_cli_turns_store_errors_into_one_line_and_an_exit_code(
        built: tuple[ReviewStore, Path], capsys: pytest.CaptureFixture[str], make: str, code: int) -> None:
    from fashionlens.cli import review

    _, path = built
    holder = None
    if make == "garbage":
        path.write_bytes(b"garbage" * 100)
    elif make == "newer":
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA user_version = 99")
    else:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
    parser = argparse.ArgumentParser()
    review.register(parser.add_subparsers(dest="command"))
    # a write (build): in WAL mode a held write lock blocks writers only, readers go on
    args = parser.parse_args(["review", "build", str(path.parent / "results.jsonl"), "--db", str(path),
                              "--busy-timeout", "0.2"])
    try:
        assert args.func(args) == code
    finally:
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
    err = capsys.readouterr().err.strip()
    assert err.startswith("fashionlens: error: ") and "\n" not in err


def test_answering_after_accepting_updates_the_status(built: tuple[ReviewStore, Path]) -> None:
    store, _ = built
    tid = store.next_task().id  # type: ignore[union-attr]
    assert store.finish(tid, "accept") == "accepted"
    store.answer(tid, "sleeve", "long", reviewer="ben")
    assert store.task(tid).status == "corrected"
    assert store.audit(tid)[-1].new == "corrected"


def test_two_processes_creating_one_store_at_once(tmp_path: Path) -> None:
    import multiprocessing

    path = tmp_path / "new.sqlite"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        pool.map(ReviewStore, [path, path])
    assert ReviewStore(path).stats()["total"] == 0
