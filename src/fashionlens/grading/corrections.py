"""Sorters' corrections of model output, kept in a local SQLite database and exported as RISE-style training data.

A correction is one item record (``fashionlens/item/v1``, the model's output), the photos it was
made from (role → encoded image bytes, stored as they came) and the fields the sorter corrected::

    store = CorrectionStore("corrections.sqlite")
    cid = store.add(item, {"front": jpg, "back": jpg2, "label": jpg3}, {"condition": 4, "usage": "repair"},
                    sorter="anna")
    store.export("training/")          # training/<item_id>/front.jpg ... labels_<item_id>.json

Storage: one database file in WAL mode with a ``schema_version`` table. Every call opens its own
connection (``busy_timeout`` 30 s) and writes in a ``BEGIN IMMEDIATE`` transaction, so several
threads and processes can add corrections at the same time.

Export writes the RISE release layout read by the grading reader::

    OUT/<item_id>/front.jpg back.jpg brand.jpg   the views that exist ('label' is written as brand.*),
                                                 original bytes, extension from the decoded format
    OUT/<item_id>/labels_<item_id>.json          flat JSON object, keys from LABEL_FIELDS
    OUT/corrections_manifest.json                this export: items, when, how often each field was corrected

The value of a label field is **the sorter's correction when there is one, else the model's value**
(:func:`model_labels`); a field neither has is left out, and a correction to ``null`` means "no
value" and removes the field. When an item was corrected more than once, its corrections are
merged in the order they were added (a later correction of a field wins), the item record is the
latest one and each view is the latest photo of that role. Each item folder is written to a
temporary folder next to it and renamed into place, so a reader never sees half an item; exporting
again into the same folder replaces the items, never duplicates them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from fashionlens.io.atomic import atomic_write
from fashionlens.grading.item import ITEM_SCHEMA, ITEM_SCHEMAS_READ, VIEW_ROLES
from fashionlens.imageio import load_image

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MANIFEST_NAME = "corrections_manifest.json"
MANIFEST_SCHEMA = "fashionlens/corrections-manifest/v1"

#: label fields of the RISE release layout; corrections may only name these
LABEL_FIELDS: tuple[str, ...] = ("usage", "condition", "price", "stains", "holes", "pilling", "damage", "type",
                                 "material", "season", "trend", "brand", "colors", "pattern")
#: file name (without extension) of each view role in the release layout
VIEW_FILE_NAMES: dict[str, str] = {"front": "front", "back": "back", "label": "brand"}
_EXTENSIONS: dict[str, str] = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp",
                               "TIFF": ".tif", "GIF": ".gif"}
_BAD_ID = re.compile(r"[/\\\x00-\x1f]")
_TIMEOUT_S = 30.0

_DDL = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sorter TEXT,
    item_json TEXT NOT NULL,
    corrections_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS corrections_item ON corrections (item_id);
CREATE INDEX IF NOT EXISTS corrections_created ON corrections (created_at);
CREATE TABLE IF NOT EXISTS images (
    correction_id INTEGER NOT NULL REFERENCES corrections (id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    format TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (correction_id, role)
);
"""


# --- labels -----------------------------------------------------------------------------------------
def _head(item: Mapping[str, Any], head: str) -> Any:
    grade = (item.get("grades") or {}).get(head)
    return grade.get("id") if isinstance(grade, Mapping) else None


def _attribute(item: Mapping[str, Any], name: str) -> Any:
    attr = (item.get("attributes") or {}).get(name)
    return attr.get("id") if isinstance(attr, Mapping) else None


def model_labels(item: Mapping[str, Any]) -> dict[str, Any]:
    """The model's value of each label field of an item record; fields without a value are left out.

    ``usage, condition, price, stains, holes, pilling, damage, trend``: the trained grading head of
    that name (``grades[F].id``); ``usage`` falls back to the sorting rules' decision
    (``route.decision``). ``type``: ``grades.type.id``, else the category id. ``material``: the
    care-label composition text as read (``composition.text``), else ``grades.material.id``, else the
    image material attribute. ``season``, ``pattern``: the head, else the attribute. ``brand``: the
    brand read from the label. ``colors``: the colour ids of ``attributes.colours`` in order.
    """
    route = item.get("route")
    category = item.get("category")
    composition = item.get("composition")
    colours = (item.get("attributes") or {}).get("colours")
    values: dict[str, Any] = {
        "usage": _head(item, "usage") or (route.get("decision") if isinstance(route, Mapping) else None),
        "condition": _head(item, "condition"),
        "price": _head(item, "price"),
        "stains": _head(item, "stains"),
        "holes": _head(item, "holes"),
        "pilling": _head(item, "pilling"),
        "damage": _head(item, "damage"),
        "type": _head(item, "type") or (category.get("id") if isinstance(category, Mapping) else None),
        "material": ((composition.get("text") if isinstance(composition, Mapping) else None)
                     or _head(item, "material") or _attribute(item, "material")),
        "season": _head(item, "season") or _attribute(item, "season"),
        "trend": _head(item, "trend"),
        "brand": item.get("brand"),
        "colors": [c["id"] for c in colours if isinstance(c, Mapping) and c.get("id")]
        if isinstance(colours, list) else None,
        "pattern": _head(item, "pattern") or _attribute(item, "pattern"),
    }
    return {k: v for k, v in values.items() if v is not None and v != "" and v != []}


def final_labels(item: Mapping[str, Any], corrections: Mapping[str, Any]) -> dict[str, Any]:
    """The exported labels: each field's correction when given (``None`` removes it), else the model's value."""
    labels = model_labels(item)
    for field, value in corrections.items():
        if value is None:
            labels.pop(field, None)
        else:
            labels[field] = value
    return {k: labels[k] for k in LABEL_FIELDS if k in labels}


# --- validation -------------------------------------------------------------------------------------
def _check_item(item: Any) -> str:
    if not isinstance(item, Mapping):
        raise TypeError(f"expected an item record (dict, schema {ITEM_SCHEMA!r}); got {type(item).__name__}")
    if item.get("schema", ITEM_SCHEMA) not in ITEM_SCHEMAS_READ:
        raise ValueError(f"expected an item record with schema {' or '.join(map(repr, ITEM_SCHEMAS_READ))}; "
                         f"got {item.get('schema')!r}")
    item_id = item.get("item_id")
    if not isinstance(item_id, str) or not item_id.strip() or item_id.strip() in (".", "..") \
            or _BAD_ID.search(item_id) or len(item_id) > 200 or item_id != item_id.strip():
        raise ValueError("expected item_id to be a non-empty text usable as a folder name (no slashes, control "
                         f"characters or surrounding spaces, at most 200 characters); got {item_id!r}")
    return item_id


def _check_corrections(corrections: Any) -> dict[str, Any]:
    if not isinstance(corrections, Mapping):
        raise TypeError(f"expected corrections as a mapping field → corrected value; got {type(corrections).__name__}")
    unknown = sorted(str(k) for k in corrections if k not in LABEL_FIELDS)
    if unknown:
        raise ValueError(f"unknown correction field(s) {', '.join(map(repr, unknown))}; "
                         f"allowed fields: {', '.join(LABEL_FIELDS)}")
    for field, value in corrections.items():
        scalar = (str, int, float, bool)
        if not (value is None or isinstance(value, scalar)
                or (isinstance(value, list) and all(isinstance(v, scalar) for v in value))):
            raise ValueError(f"correction of {field!r}: expected a text, number, true/false, null or a list of "
                             f"those; got {value!r} ({type(value).__name__})")
    return dict(corrections)


def _check_images(images: Any) -> dict[str, tuple[bytes, str]]:
    if not isinstance(images, Mapping):
        raise TypeError(f"expected images as a mapping role → image bytes; got {type(images).__name__}")
    checked: dict[str, tuple[bytes, str]] = {}
    for role, data in images.items():
        if role not in VIEW_ROLES:
            raise ValueError(f"unknown image role {role!r}; expected one of {', '.join(VIEW_ROLES)}")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"image {role!r}: expected encoded image bytes; got {type(data).__name__}")
        data = bytes(data)
        try:
            decoded = load_image(data, min_side=64)
        except ValueError as exc:  # ImageDecodeError is a ValueError with a stable code
            raise ValueError(f"image {role!r} is not a readable image: {exc}") from exc
        checked[role] = (data, decoded.format)
    return checked


def _utc_iso(moment: datetime | None = None) -> str:
    return (moment or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat(timespec="microseconds")


def parse_since(since: str | date | datetime | None) -> str | None:
    """``since`` as the stored timestamp format (UTC ISO 8601); a date means its midnight UTC, a naive time is UTC."""
    if since is None:
        return None
    if isinstance(since, str):
        text = since.strip()
        try:
            moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise ValueError(f"expected an ISO date or time such as 2026-03-01 or 2026-03-01T08:00:00; got {since!r}") \
                from None
    elif isinstance(since, datetime):
        moment = since
    elif isinstance(since, date):
        moment = datetime(since.year, since.month, since.day)
    else:
        raise TypeError(f"expected since as an ISO text, date or datetime; got {type(since).__name__}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return _utc_iso(moment)


# --- the store --------------------------------------------------------------------------------------
class CorrectionStore:
    """Corrections in one SQLite file (created with its schema unless ``create=False``).

    Safe for concurrent writers: each method opens its own connection, so a store can be shared by
    threads, and several processes can open the same file.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise FileNotFoundError(f"expected a corrections database; {str(self.path)!r} does not exist")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("%s: SQLite kept journal mode %s (WAL not available here)", self.path, mode)
            conn.execute("BEGIN IMMEDIATE")  # the schema is created once, even with several processes starting
            for statement in filter(None, (s.strip() for s in _DDL.split(";"))):
                conn.execute(statement)
            row = conn.execute("SELECT version FROM schema_version").fetchall()
            if not row:
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif len(row) != 1 or row[0][0] != SCHEMA_VERSION:
                conn.execute("ROLLBACK")
                raise ValueError(f"{self.path}: expected corrections database schema version {SCHEMA_VERSION}; "
                                 f"got {[r[0] for r in row]}")
            conn.execute("COMMIT")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, timeout=_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise ValueError(f"{self.path}: cannot open the corrections database: {exc}") from exc
        with closing(conn):
            conn.execute(f"PRAGMA busy_timeout = {int(_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            try:
                yield conn
            except sqlite3.DatabaseError as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise ValueError(f"{self.path}: corrections database error: {exc}") from exc

    def add(self, item_record: Mapping[str, Any], images: Mapping[str, bytes], corrections: Mapping[str, Any], *,
            sorter: str | None = None) -> int:
        """Store one correction; returns its id.

        Raises:
            ValueError: an unknown correction field (the message lists the allowed ones), a value that
                is not JSON text/number/list, an unknown image role, bytes that do not decode as an
                image, an item record without a usable ``item_id``.
            TypeError: arguments of the wrong kind.
        """
        item_id = _check_item(item_record)
        checked = _check_corrections(corrections)
        views = _check_images(images)
        if sorter is not None and not isinstance(sorter, str):
            raise TypeError(f"expected sorter as text or None; got {type(sorter).__name__}")
        try:
            item_json = json.dumps(item_record, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"item {item_id!r}: the item record is not plain JSON: {exc}") from exc
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.execute(
                "INSERT INTO corrections (item_id, created_at, sorter, item_json, corrections_json) "
                "VALUES (?, ?, ?, ?, ?)",
                (item_id, _utc_iso(), sorter, item_json, json.dumps(checked, ensure_ascii=False, allow_nan=False)))
            cid = int(cur.lastrowid)
            conn.executemany("INSERT INTO images (correction_id, role, format, data) VALUES (?, ?, ?, ?)",
                             [(cid, role, fmt, data) for role, (data, fmt) in views.items()])
            conn.execute("COMMIT")
        log.debug("stored correction %d of item %s (%s)", cid, item_id, ", ".join(checked) or "no fields")
        return cid

    def list(self, *, item_id: str | None = None, since: str | date | datetime | None = None) -> list[dict[str, Any]]:
        """Corrections without their photos or record, oldest first:
        ``{"id", "item_id", "created_at", "sorter", "fields", "roles"}``."""
        where, params = [], []
        if item_id is not None:
            where.append("c.item_id = ?")
            params.append(item_id)
        if since is not None:
            where.append("c.created_at >= ?")
            params.append(parse_since(since))
        sql = ("SELECT c.id, c.item_id, c.created_at, c.sorter, c.corrections_json, "
               "(SELECT group_concat(role, ',') FROM images i WHERE i.correction_id = c.id) FROM corrections c"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY c.id")
        with self._connect() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [{"id": r[0], "item_id": r[1], "created_at": r[2], "sorter": r[3], "fields": sorted(json.loads(r[4])),
                 "roles": sorted((r[5] or "").split(",")) if r[5] else []} for r in rows]

    def get(self, correction_id: int) -> dict[str, Any]:
        """One correction in full: ``{"id", "item_id", "created_at", "sorter", "item", "corrections", "images"}``
        with ``images`` as role → bytes.

        Raises:
            KeyError: no correction has this id.
        """
        with self._connect() as conn:
            row = conn.execute("SELECT id, item_id, created_at, sorter, item_json, corrections_json "
                               "FROM corrections WHERE id = ?", (int(correction_id),)).fetchone()
            if row is None:
                raise KeyError(f"no correction with id {correction_id} in {self.path}")
            images = conn.execute("SELECT role, data FROM images WHERE correction_id = ? ORDER BY role",
                                  (row[0],)).fetchall()
        return {"id": row[0], "item_id": row[1], "created_at": row[2], "sorter": row[3], "item": json.loads(row[4]),
                "corrections": json.loads(row[5]), "images": {role: bytes(data) for role, data in images}}

    def __len__(self) -> int:
        with self._connect() as conn:
            return int(conn.execute("SELECT count(*) FROM corrections").fetchone()[0])

    def _merged(self, conn: sqlite3.Connection, item_id: str) -> dict[str, Any]:
        rows = conn.execute("SELECT id, item_json, corrections_json FROM corrections WHERE item_id = ? ORDER BY id",
                            (item_id,)).fetchall()
        corrections: dict[str, Any] = {}
        for _, _, corr in rows:
            corrections.update(json.loads(corr))
        images: dict[str, tuple[bytes, str]] = {}
        for role, fmt, data in conn.execute(
                "SELECT i.role, i.format, i.data FROM images i JOIN corrections c ON c.id = i.correction_id "
                "WHERE c.item_id = ? ORDER BY c.id", (item_id,)):
            images[role] = (bytes(data), fmt)  # a later photo of a role replaces an earlier one
        return {"item": json.loads(rows[-1][1]), "corrections": corrections, "images": images,
                "n_corrections": len(rows)}

    def export(self, out_dir: str | os.PathLike[str], *, since: str | date | datetime | None = None) -> dict[str, Any]:
        """Write every corrected item (with ``since``: those corrected at or after it) in the RISE release layout.

        Returns the manifest also written to ``OUT/corrections_manifest.json``: ``items`` (exported
        ids), ``n_items``, ``n_corrections``, ``fields`` (per field: ``corrected`` = items whose field a
        sorter set, ``changed`` = of those, how many differ from the model's value), ``skipped``
        (items without any photo, with the reason).
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        since_iso = parse_since(since)
        exported: list[str] = []
        skipped: list[dict[str, str]] = []
        fields = {f: {"corrected": 0, "changed": 0} for f in LABEL_FIELDS}
        n_corrections = 0
        with self._connect() as conn:
            conn.execute("BEGIN")  # one consistent snapshot of the database for the whole export
            sql = "SELECT DISTINCT item_id FROM corrections" + (" WHERE created_at >= ?" if since_iso else "")
            item_ids = [r[0] for r in conn.execute(sql + " ORDER BY item_id", (since_iso,) if since_iso else ())]
            for item_id in item_ids:
                merged = self._merged(conn, item_id)
                if not merged["images"]:
                    skipped.append({"item_id": item_id, "reason": "no photo was stored with any of its corrections"})
                    continue
                model = model_labels(merged["item"])
                labels = final_labels(merged["item"], merged["corrections"])
                _write_item(out, item_id, merged["images"], labels)
                exported.append(item_id)
                n_corrections += merged["n_corrections"]
                for field, value in merged["corrections"].items():
                    fields[field]["corrected"] += 1
                    fields[field]["changed"] += int(model.get(field) != value)
            conn.execute("COMMIT")
        manifest = {"schema": MANIFEST_SCHEMA, "exported_at": _utc_iso(), "database": str(self.path),
                    "since": since_iso, "n_items": len(exported), "n_corrections": n_corrections,
                    "fields": {f: c for f, c in fields.items() if c["corrected"]}, "items": exported,
                    "skipped": skipped,
                    "labels": "each field is the sorter's correction when given, else the model's value"}
        _write_json_atomic(out / MANIFEST_NAME, manifest)
        log.info("exported %d corrected items to %s (%d skipped)", len(exported), out, len(skipped))
        return manifest


def _write_json_atomic(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8"))


def _write_item(out: Path, item_id: str, images: Mapping[str, tuple[bytes, str]], labels: Mapping[str, Any]) -> None:
    """Write one item folder in a temporary folder next to it, then rename it into place."""
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{item_id[:40]}-", dir=out))
    old = out / f".old-{uuid.uuid4().hex}"
    final = out / item_id
    try:
        for role, (data, fmt) in images.items():
            (tmp / f"{VIEW_FILE_NAMES[role]}{_EXTENSIONS.get(fmt, '.img')}").write_bytes(data)
        (tmp / f"labels_{item_id}.json").write_text(json.dumps(dict(labels), ensure_ascii=False, indent=2),
                                                     encoding="utf-8")
        if final.exists():
            final.rename(old)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not final.exists():
            old.rename(final)  # put the previous export back
        raise
    shutil.rmtree(old, ignore_errors=True)
