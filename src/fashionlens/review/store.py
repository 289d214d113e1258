"""The review store: one SQLite file (WAL) holding the queued garments/items, the reviewers' answers and
an audit trail of every change.

Identity and version live in the file header: ``PRAGMA application_id`` = :data:`APPLICATION_ID` marks a
fashionlens review store, ``PRAGMA user_version`` = its schema version (:data:`SCHEMA_VERSION`). Tables::

    tasks    one queued garment (of a tag result) or item (of a grade record): kind, source file, line,
             garment index (UNIQUE together: building twice never duplicates), photo path, image size,
             box [x, y, w, h], mask (COCO RLE JSON), object type, item id, sender/folder group,
             garment embedding (float32 blob), the record as JSON, uncertainty, queue priority,
             status (pending | accepted | corrected | skipped), created/updated times
    fields   per task and field: the model's value (JSON), score, uncertain, multi-valued, needs review,
             candidates [{"id", "score"}] (JSON), the field's uncertainty
    answers  per task and field: the reviewer's current answer (JSON), who, when
    audit    every change: task, action (answer | accept | skip | build | station), field, old value, new value, who, when
    builds   each ``review build``: source file, when, entries added / already queued
    photos   photos kept in the store (role, format, bytes): those of sorting-station corrections, whose
             photos exist only in the upload

Every answer is written in its own ``BEGIN IMMEDIATE`` transaction (``synchronous=FULL``) the moment it is
given, together with its audit row, so a crash or a closed browser loses nothing that was answered. Every
call opens its own connection (threads and processes may share the file); a writer blocked longer than the
busy timeout gets :class:`~fashionlens.review.errors.StoreLockedError`. A file that is not a review store,
is damaged, or has a newer schema raises before anything is written, and the file is left as it was.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fashionlens.review.errors import (
    NewerSchemaError,
    NotAReviewStoreError,
    ReviewStoreError,
    StoreCorruptError,
    StoreLockedError,
    UnknownTaskError,
)
from fashionlens.review.fields import (
    FieldState,
    FieldValue,
    QueueEntry,
    entries_of_record,
    field_vocabulary,
)

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "STATUSES", "AuditRow", "ReviewStore", "Task"]

#: ``PRAGMA application_id`` of a review store ("FLRV")
APPLICATION_ID = 0x464C5256
SCHEMA_VERSION = 1
Status = Literal["pending", "accepted", "corrected", "skipped"]
STATUSES: tuple[str, ...] = ("pending", "accepted", "corrected", "skipped")
_SQLITE_MAGIC = b"SQLite format 3\x00"

_DDL = """
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('garment', 'item')),
    source TEXT NOT NULL,
    line INTEGER NOT NULL,
    garment_index INTEGER NOT NULL,
    photo TEXT,
    width INTEGER,
    height INTEGER,
    bbox_json TEXT,
    mask_json TEXT,
    object_type TEXT,
    item_id TEXT,
    group_key TEXT,
    embedding BLOB,
    record_json TEXT NOT NULL,
    uncertainty REAL NOT NULL,
    priority INTEGER,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'accepted', 'corrected', 'skipped')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (source, line, garment_index)
);
CREATE INDEX tasks_queue ON tasks (status, priority, id);
CREATE TABLE fields (
    task_id INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    value_json TEXT NOT NULL,
    score REAL,
    uncertain INTEGER NOT NULL,
    multi INTEGER NOT NULL,
    needs_review INTEGER NOT NULL,
    candidates_json TEXT NOT NULL,
    uncertainty REAL NOT NULL,
    PRIMARY KEY (task_id, name)
);
CREATE TABLE answers (
    task_id INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    field TEXT NOT NULL,
    value_json TEXT NOT NULL,
    reviewer TEXT,
    answered_at TEXT NOT NULL,
    PRIMARY KEY (task_id, field)
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    action TEXT NOT NULL,
    field TEXT,
    old_json TEXT,
    new_json TEXT,
    reviewer TEXT,
    at TEXT NOT NULL
);
CREATE INDEX audit_task ON audit (task_id, id);
CREATE TABLE builds (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    at TEXT NOT NULL,
    added INTEGER NOT NULL,
    existing INTEGER NOT NULL
);
CREATE TABLE photos (
    task_id INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    format TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (task_id, role)
);
"""
_TABLES = frozenset({"tasks", "fields", "answers", "audit", "builds", "photos"})
#: a sorting-station correction's label field → the review field it answers (others: ``grades.<name>``)
STATION_FIELDS: dict[str, str] = {"colors": "colours"}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _entry_attribute(name: str, doc: str) -> property:
    return property(lambda self: getattr(self.entry, name), doc=doc)


@dataclass(frozen=True)
class Task:
    """One queued garment/item: the :class:`~fashionlens.review.fields.QueueEntry` it was queued from (as
    stored; its ``embedding`` is not read back) with its place in the queue, its status and the answers given
    so far. The entry's attributes (``kind``, ``photo``, ``bbox``, ``fields``...) read through."""

    id: int
    entry: QueueEntry
    uncertainty: float
    priority: int | None
    status: str
    answers: dict[str, FieldValue]
    photo_roles: tuple[str, ...] = ()   # photos kept in the store (sorting-station corrections)

    kind = _entry_attribute("kind", "garment | item")
    source = _entry_attribute("source", "the JSONL file it was queued from ('station' for station corrections)")
    line = _entry_attribute("line", "its 1-based line in ``source``")
    index = _entry_attribute("index", "the garment's index on that line (0 for items)")
    photo = _entry_attribute("photo", "the photo's path (None: kept in the store, or unknown)")
    width = _entry_attribute("width", "the photo's width in pixels, when the result gave it")
    height = _entry_attribute("height", "the photo's height in pixels, when the result gave it")
    bbox = _entry_attribute("bbox", "the garment's box [x, y, w, h] in photo pixels")
    mask = _entry_attribute("mask", "the garment's mask (COCO RLE)")
    object_type = _entry_attribute("object_type", "the model's object type")
    item_id = _entry_attribute("item_id", "a graded item's id")
    group = _entry_attribute("group", "the sender/folder group the diversity term reads")
    record = _entry_attribute("record", "the garment or item as read from the JSONL line")

    @property
    def fields(self) -> tuple[FieldState, ...]:
        """The model's fields, in queue order."""
        return tuple(self.entry.fields)

    def field(self, name: str) -> FieldState:
        for f in self.fields:
            if f.name == name:
                return f
        raise UnknownTaskError(f"task {self.id}: expected one of its fields {[f.name for f in self.fields]}; "
                               f"got {name!r}")

    def final_value(self, name: str) -> FieldValue:
        """The reviewer's answer when given, else the model's sure value (None: unknown)."""
        if name in self.answers:
            return self.answers[name]
        return self.field(name).value

    def final_values(self) -> dict[str, FieldValue]:
        return {f.name: self.final_value(f.name) for f in self.fields}


@dataclass(frozen=True)
class AuditRow:
    id: int
    task_id: int
    action: str
    field: str | None
    old: Any
    new: Any
    reviewer: str | None
    at: str


class ReviewStore:
    """A review store file (module docstring). Opening it checks it (and creates it when missing and
    ``create``); every method opens its own connection."""

    def __init__(self, path: str | Path, *, create: bool = True, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = float(busy_timeout_s)
        if not self.path.exists() or self.path.stat().st_size == 0:
            if not create:
                raise FileNotFoundError(f"{self.path}: expected a review store (`fashionlens review build` "
                                        "creates one); there is no such file")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        else:
            with self.path.open("rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
            if head != _SQLITE_MAGIC:
                raise StoreCorruptError(f"{self.path}: expected a review store (a SQLite database); the file is "
                                        "not one (damaged, or another kind of file) — it was left untouched")
        self._open()

    # ------------------------------------------------------------------------------------- connections

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except ReviewStoreError:
            raise
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if "locked" in text or "busy" in text:
                raise StoreLockedError(f"{self.path}: the review database is locked by another writer (waited "
                                       f"{self.busy_timeout_s:g} s); nothing was changed by this call, answers "
                                       "saved before are kept — try again") from None
            if "malformed" in text or "not a database" in text or "corrupt" in text:
                raise StoreCorruptError(f"{self.path}: the review database is damaged ({exc}); it was left as it "
                                        f"is — restore a backup or try `sqlite3 {self.path} .recover`") from None
            raise ReviewStoreError(f"{self.path}: the review database could not be used: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise StoreCorruptError(f"{self.path}: the review database is damaged ({exc}); it was left as it is — "
                                    f"restore a backup or try `sqlite3 {self.path} .recover`") from None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._errors(), closing(self._connect()) as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed when the block ends, rolled back on an error."""
        with self._errors(), closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _open(self) -> None:
        with self._errors(), closing(self._connect()) as conn:
            # one read transaction, so the three reads see one snapshot: read one by one, they could straddle
            # another process's creation of the store (its tables seen, its application id not yet)
            conn.execute("BEGIN")
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            conn.execute("COMMIT")
            if app_id == APPLICATION_ID:
                if version > SCHEMA_VERSION:
                    raise NewerSchemaError(f"{self.path}: expected a review store of schema version "
                                           f"<= {SCHEMA_VERSION}; this one has version {version} (written by a newer "
                                           "fashionlens) — upgrade fashionlens; the file was left untouched")
                if not _TABLES <= tables:
                    raise StoreCorruptError(f"{self.path}: the review store lacks tables "
                                            f"{sorted(_TABLES - tables)}; it was left untouched")
                check = conn.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise StoreCorruptError(f"{self.path}: the review database is damaged (integrity check: "
                                            f"{check}); it was left as it is — restore a backup or try "
                                            f"`sqlite3 {self.path} .recover`")
                return
            if app_id != 0 or tables:
                raise NotAReviewStoreError(f"{self.path}: expected a fashionlens review store; this SQLite database "
                                           f"is something else (application id {app_id}, tables "
                                           f"{sorted(tables)[:5]}) — it was left untouched")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            if conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID:
                conn.execute("ROLLBACK")  # another process created it meanwhile: check that one
                return self._open()
            try:  # statement by statement: executescript would commit half-way
                for statement in (s.strip() for s in _DDL.split(";")):
                    if statement:
                        conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # ------------------------------------------------------------------------------------------- build

    def add_entries(self, entries: Sequence[QueueEntry], uncertainties: Sequence[float],
                    field_uncertainties: Sequence[Sequence[float]], *, source: str) -> tuple[int, int]:
        """Queue ``entries`` (one transaction); an entry already queued (same source, line, index) is left as
        it is. Returns (added, already queued)."""
        added = existing = 0
        now = _now()
        with self._write() as conn:
            for entry, u, fu in zip(entries, uncertainties, field_uncertainties, strict=True):
                emb = None if entry.embedding is None else np.asarray(entry.embedding, "<f4").tobytes()
                cur = conn.execute(
                    "INSERT OR IGNORE INTO tasks (kind, source, line, garment_index, photo, width, height, bbox_json,"
                    " mask_json, object_type, item_id, group_key, embedding, record_json, uncertainty, created_at,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (entry.kind, entry.source, entry.line, entry.index, entry.photo, entry.width, entry.height,
                     None if entry.bbox is None else _dump(entry.bbox),
                     None if entry.mask is None else _dump(entry.mask), entry.object_type, entry.item_id,
                     entry.group, emb, _dump(entry.record), float(u), now, now))
                if cur.rowcount == 0:
                    existing += 1
                    continue
                added += 1
                task_id = cur.lastrowid
                for position, (f, fu_i) in enumerate(zip(entry.fields, fu, strict=True)):
                    conn.execute(
                        "INSERT INTO fields (task_id, position, name, value_json, score, uncertain, multi,"
                        " needs_review, candidates_json, uncertainty) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (task_id, position, f.name, _dump(f.value), f.score, int(f.uncertain), int(f.multi),
                         int(f.needs_review), _dump([c.to_json() for c in f.candidates]), float(fu_i)))
                conn.execute("INSERT INTO audit (task_id, action, new_json, at) VALUES (?, 'build', ?, ?)",
                             (task_id, _dump({"source": entry.source, "line": entry.line, "index": entry.index}),
                              now))
            conn.execute("INSERT INTO builds (source, at, added, existing) VALUES (?, ?, ?, ?)",
                         (source, now, added, existing))
        return added, existing

    def ranking_inputs(self) -> list[tuple[int, float, str | None, str | None, str | None, np.ndarray | None]]:
        """(id, uncertainty, group, object type, category, embedding) of every pending task, by id."""
        out = []
        with self._read() as conn:
            rows = conn.execute(
                "SELECT t.id, t.uncertainty, t.group_key, t.object_type, t.embedding, f.value_json, f.candidates_json"
                " FROM tasks t LEFT JOIN fields f ON f.task_id = t.id AND f.name = 'category'"
                " WHERE t.status = 'pending' ORDER BY t.id").fetchall()
        for tid, u, group, otype, emb, value_json, cands_json in rows:
            category = json.loads(value_json) if value_json else None
            if category is None and cands_json:
                cands = json.loads(cands_json)
                category = cands[0]["id"] if cands else None
            vector = None if emb is None else np.frombuffer(emb, "<f4").copy()
            out.append((tid, float(u), group, otype, category, vector))
        return out

    def set_priorities(self, order: Sequence[int]) -> None:
        """Queue positions: ``order`` lists task ids, first to review first."""
        with self._write() as conn:
            conn.executemany("UPDATE tasks SET priority = ? WHERE id = ?", [(i, tid) for i, tid in enumerate(order)])

    # ------------------------------------------------------------------------------------------- reads

    def _task(self, conn: sqlite3.Connection, row: Sequence[Any]) -> Task:
        (tid, kind, source, line, index, photo, width, height, bbox, mask, otype, item_id, group, record, u,
         priority, status) = row
        fields = tuple(
            FieldState(name=r[0], value=json.loads(r[1]), score=r[2], uncertain=bool(r[3]), multi=bool(r[4]),
                       needs_review=bool(r[5]),
                       candidates=tuple(FieldState.from_json({"name": "", "candidates": json.loads(r[6])}).candidates))
            for r in conn.execute("SELECT name, value_json, score, uncertain, multi, needs_review, candidates_json"
                                  " FROM fields WHERE task_id = ? ORDER BY position", (tid,)))
        answers = {r[0]: json.loads(r[1]) for r in
                   conn.execute("SELECT field, value_json FROM answers WHERE task_id = ?", (tid,))}
        roles = tuple(r[0] for r in conn.execute("SELECT role FROM photos WHERE task_id = ? ORDER BY role", (tid,)))
        entry = QueueEntry(kind=kind, source=source, line=line, index=index, photo=photo, width=width,
                           height=height, bbox=json.loads(bbox) if bbox else None,
                           mask=json.loads(mask) if mask else None, object_type=otype, item_id=item_id, group=group,
                           fields=list(fields), record=json.loads(record))
        return Task(id=tid, entry=entry, uncertainty=u, priority=priority, status=status, answers=answers,
                    photo_roles=roles)

    _TASK_COLUMNS = ("id, kind, source, line, garment_index, photo, width, height, bbox_json, mask_json, object_type,"
                     " item_id, group_key, record_json, uncertainty, priority, status")

    def task(self, task_id: int) -> Task:
        with self._read() as conn:
            row = conn.execute(f"SELECT {self._TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                raise UnknownTaskError(f"expected the id of a queued garment/item; there is no task {task_id}")
            return self._task(conn, row)

    def next_task(self, *, after: int | None = None) -> Task | None:
        """The pending task to review next (lowest priority); with ``after``, the next one after that task's
        place in the queue (to move past one without answering it)."""
        with self._read() as conn:
            key = (-1, -1)
            if after is not None:
                r = conn.execute("SELECT coalesce(priority, 1 << 62), id FROM tasks WHERE id = ?", (after,)).fetchone()
                key = (r[0], r[1]) if r else key
            row = conn.execute(
                f"SELECT {self._TASK_COLUMNS} FROM tasks WHERE status = 'pending'"
                " AND (coalesce(priority, 1 << 62), id) > (?, ?) ORDER BY coalesce(priority, 1 << 62), id LIMIT 1",
                key).fetchone()
            return None if row is None else self._task(conn, row)

    def tasks(self, *, statuses: Sequence[str] = STATUSES) -> Iterator[Task]:
        """Every task with one of ``statuses``, in queue order."""
        marks = ",".join("?" * len(statuses))
        with self._read() as conn:
            rows = conn.execute(f"SELECT {self._TASK_COLUMNS} FROM tasks WHERE status IN ({marks})"
                                " ORDER BY coalesce(priority, 1 << 62), id", tuple(statuses)).fetchall()
            tasks = [self._task(conn, r) for r in rows]
        yield from tasks

    def photo(self, task_id: int) -> tuple[bytes, str] | None:
        """A photo kept in the store for the task (front first, then back, then any), with its format."""
        with self._read() as conn:
            row = conn.execute("SELECT data, format FROM photos WHERE task_id = ? ORDER BY CASE role WHEN 'front' "
                               "THEN 0 WHEN 'back' THEN 1 ELSE 2 END, role LIMIT 1", (task_id,)).fetchone()
        return None if row is None else (bytes(row[0]), str(row[1]))

    def stats(self) -> dict[str, int]:
        """Tasks per status, plus ``total`` and ``answers`` (answered fields)."""
        with self._read() as conn:
            counts = dict.fromkeys(STATUSES, 0)
            counts.update({s: n for s, n in conn.execute("SELECT status, count(*) FROM tasks GROUP BY status")})
            counts["total"] = sum(counts[s] for s in STATUSES)
            counts["answers"] = conn.execute("SELECT count(*) FROM answers").fetchone()[0]
        return counts

    def audit(self, task_id: int | None = None) -> list[AuditRow]:
        """The audit trail (oldest first), of one task or of all."""
        sql = "SELECT id, task_id, action, field, old_json, new_json, reviewer, at FROM audit"
        args: tuple[Any, ...] = ()
        if task_id is not None:
            sql, args = sql + " WHERE task_id = ?", (task_id,)
        with self._read() as conn:
            rows = conn.execute(sql + " ORDER BY id", args).fetchall()
        return [AuditRow(r[0], r[1], r[2], r[3], None if r[4] is None else json.loads(r[4]),
                         None if r[5] is None else json.loads(r[5]), r[6], r[7]) for r in rows]

    # ------------------------------------------------------------------------------------------ writes

    def answer(self, task_id: int, field: str, value: FieldValue, *, reviewer: str | None = None) -> str:
        """Save one answer now (its own transaction, with its audit row); returns when it was saved. Giving
        the same answer again changes nothing (a retried request is harmless). ``value``: one of the field's
        values (a list of them for a multi-valued field), or None for "none of these / cannot tell"."""
        now = _now()
        with self._write() as conn:
            row = conn.execute("SELECT status, object_type FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                raise UnknownTaskError(f"expected the id of a queued garment/item; there is no task {task_id}")
            f = conn.execute("SELECT multi, candidates_json FROM fields WHERE task_id = ? AND name = ?",
                             (task_id, field)).fetchone()
            if f is None:
                names = [r[0] for r in conn.execute("SELECT name FROM fields WHERE task_id = ? ORDER BY position",
                                                    (task_id,))]
                raise UnknownTaskError(f"task {task_id}: expected one of its fields {names}; got {field!r}")
            value = _check_value(field, value, multi=bool(f[0]), candidates=[c["id"] for c in json.loads(f[1])],
                                 object_type=row[1])
            old = conn.execute("SELECT value_json, answered_at FROM answers WHERE task_id = ? AND field = ?",
                               (task_id, field)).fetchone()
            if old is not None and json.loads(old[0]) == value:
                return str(old[1])
            conn.execute("INSERT INTO answers (task_id, field, value_json, reviewer, answered_at) VALUES (?, ?, ?, ?, ?)"
                         " ON CONFLICT (task_id, field) DO UPDATE SET value_json = excluded.value_json,"
                         " reviewer = excluded.reviewer, answered_at = excluded.answered_at",
                         (task_id, field, _dump(value), reviewer, now))
            conn.execute("INSERT INTO audit (task_id, action, field, old_json, new_json, reviewer, at)"
                         " VALUES (?, 'answer', ?, ?, ?, ?, ?)",
                         (task_id, field, None if old is None else old[0], _dump(value), reviewer, now))
            conn.execute("UPDATE tasks SET updated_at = ? WHERE id = ?", (now, task_id))
            if row[0] in ("accepted", "corrected"):  # answered again after accepting: the status follows
                status = self._accepted_status(conn, task_id)
                if status != row[0]:
                    conn.execute("UPDATE tasks SET status = ? WHERE id = ?", (status, task_id))
                    conn.execute("INSERT INTO audit (task_id, action, field, old_json, new_json, reviewer, at)"
                                 " VALUES (?, 'answer', 'status', ?, ?, ?, ?)",
                                 (task_id, _dump(row[0]), _dump(status), reviewer, now))
        return now

    @staticmethod
    def _accepted_status(conn: sqlite3.Connection, task_id: int) -> str:
        """``corrected`` when an answer differs from the model's value, else ``accepted``."""
        model = {r[0]: json.loads(r[1]) for r in
                 conn.execute("SELECT name, value_json FROM fields WHERE task_id = ?", (task_id,))}
        answers = {r[0]: json.loads(r[1]) for r in
                   conn.execute("SELECT field, value_json FROM answers WHERE task_id = ?", (task_id,))}
        return "corrected" if any(_differs(model.get(k), v) for k, v in answers.items()) else "accepted"

    def finish(self, task_id: int, action: Literal["accept", "skip"], *, reviewer: str | None = None) -> str:
        """Accept (status ``corrected`` when an answer differs from the model's value, else ``accepted``) or
        skip a task; returns its new status. Answers stay as they are."""
        if action not in ("accept", "skip"):
            raise ValueError(f"action: expected 'accept' or 'skip'; got {action!r}")
        now = _now()
        with self._write() as conn:
            row = conn.execute("SELECT status FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                raise UnknownTaskError(f"expected the id of a queued garment/item; there is no task {task_id}")
            if action == "skip":
                status = "skipped"
            else:
                status = self._accepted_status(conn, task_id)
            if status != row[0]:
                conn.execute("UPDATE tasks SET status = ?, updated_at = ? WHERE id = ?", (status, now, task_id))
                conn.execute("INSERT INTO audit (task_id, action, field, old_json, new_json, reviewer, at)"
                             " VALUES (?, ?, 'status', ?, ?, ?, ?)",
                             (task_id, action, _dump(row[0]), _dump(status), reviewer, now))
        return status


    def add_station_correction(self, item: Mapping[str, Any], corrections: Mapping[str, Any], *,
                               reference: int, sorter: str | None = None,
                               photos: Mapping[str, tuple[bytes, str]] | None = None) -> int:
        """Record a sorting-station correction (``POST /v1/corrections``) as a reviewed item task: the item
        record's fields, each corrected label field as an answer by ``sorter`` (``colors`` answers
        ``colours``, any other field ``grades.<field>``), its photos (role → (bytes, format)), status
        ``corrected`` (``accepted`` when nothing differs from the model), all in one transaction with
        ``station`` audit rows. ``reference``: the correction's id in the corrections store — recording one
        reference twice changes nothing. Returns the task id."""
        if not isinstance(item, Mapping) or not isinstance(corrections, Mapping):
            raise TypeError("expected an item record and a corrections object (mappings)")
        entries = entries_of_record(item, source="station", line=int(reference), base=Path("."), min_score=0.0)
        if not entries:
            raise ValueError(f"correction {reference}: expected an item record that was graded; it has an error")
        entry = entries[0]
        entry.photo = None  # the photos came with the upload; they are kept below
        fields = {f.name: f for f in entry.fields}
        answers: dict[str, Any] = {}
        for label, value in corrections.items():
            name = STATION_FIELDS.get(str(label), f"grades.{label}")
            if name not in fields:
                fields[name] = FieldState(name, None, None, False, (), name == "colours", False)
            if fields[name].multi and value is not None and not isinstance(value, list):
                value = [value]
            answers[name] = value
        entry.fields = list(fields.values())
        now = _now()
        with self._write() as conn:
            row = conn.execute("SELECT id FROM tasks WHERE source = 'station' AND line = ? AND garment_index = 0",
                               (int(reference),)).fetchone()
            if row is not None:
                return int(row[0])
            cur = conn.execute(
                "INSERT INTO tasks (kind, source, line, garment_index, object_type, item_id, group_key, record_json,"
                " uncertainty, status, created_at, updated_at) VALUES ('item', 'station', ?, 0, ?, ?, ?, ?, 0, "
                "'pending', ?, ?)", (int(reference), entry.object_type, entry.item_id, entry.group,
                                     _dump(entry.record), now, now))
            task_id = int(cur.lastrowid or 0)
            for position, f in enumerate(entry.fields):
                conn.execute(
                    "INSERT INTO fields (task_id, position, name, value_json, score, uncertain, multi, needs_review,"
                    " candidates_json, uncertainty) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                    (task_id, position, f.name, _dump(f.value), f.score, int(f.uncertain), int(f.multi),
                     int(f.needs_review), _dump([c.to_json() for c in f.candidates])))
            for role, (data, fmt) in (photos or {}).items():
                conn.execute("INSERT INTO photos (task_id, role, format, data) VALUES (?, ?, ?, ?)",
                             (task_id, str(role), str(fmt), sqlite3.Binary(data)))
            for name, value in answers.items():
                conn.execute("INSERT INTO answers (task_id, field, value_json, reviewer, answered_at)"
                             " VALUES (?, ?, ?, ?, ?)", (task_id, name, _dump(value), sorter, now))
                conn.execute("INSERT INTO audit (task_id, action, field, old_json, new_json, reviewer, at)"
                             " VALUES (?, 'station', ?, ?, ?, ?, ?)",
                             (task_id, name, _dump(fields[name].value), _dump(value), sorter, now))
            status = "corrected" if any(_differs(fields[k].value, v) for k, v in answers.items()) else "accepted"
            conn.execute("UPDATE tasks SET status = ? WHERE id = ?", (status, task_id))
            conn.execute("INSERT INTO audit (task_id, action, field, old_json, new_json, reviewer, at)"
                         " VALUES (?, 'station', 'status', ?, ?, ?, ?)", (task_id, _dump("pending"), _dump(status),
                                                                          sorter, now))
        return task_id


def _differs(model: Any, answer: Any) -> bool:
    if isinstance(model, list) and isinstance(answer, list):
        return sorted(model) != sorted(answer)
    return bool(model != answer)


def _check_value(field: str, value: Any, *, multi: bool, candidates: Sequence[str],
                 object_type: str | None) -> FieldValue:
    allowed = set(candidates) | set(field_vocabulary(field, object_type)) | set(field_vocabulary(field))
    open_ended = not field_vocabulary(field)

    def check(v: Any) -> str:
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f"{field}: expected a value name (text); got {v!r}")
        if not open_ended and v not in allowed:
            raise ValueError(f"{field}: expected one of {sorted(allowed)}; got {v!r}")
        return v

    if value is None:
        return None
    if multi:
        if not isinstance(value, list):
            raise ValueError(f"{field}: expected a list of values (a multi-valued field); got {value!r}")
        return list(dict.fromkeys(check(v) for v in value))
    if isinstance(value, list):
        raise ValueError(f"{field}: expected one value (a single-valued field); got a list")  # noqa: TRY004
    return check(value)

