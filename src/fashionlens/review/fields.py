"""What the review queue holds: one :class:`QueueEntry` per garment of a tag result line
(``fashionlens/result/v1`` or ``v2``) or per item of a ``fashionlens grade`` line (``fashionlens/item/v1``),
with one :class:`FieldState` per field the model filled in.

Lines are read as plain JSON objects, defensively, so both result schemas work:

* v2 unsure single-valued field: ``{"id": null, "score": s, "uncertain": true, "candidates": [{"id", "score"}, ...]}``;
* v2 colours: only sure colours listed, ``"colours": []`` plus ``"colours_uncertain": true`` when none is;
* v1: every field ``{"id", "score"}`` (its only candidate is its id), the category's alternatives in ``category_top``.

A field *needs review* when it is marked unsure, or when its score is below ``min_score`` (v1 results,
which have no operating point).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fashionlens.result import decode_embedding, l2_normalise
from fashionlens.taxonomy import load_taxonomy

__all__ = ["Candidate", "EntryKind", "FieldState", "FieldValue", "QueueEntry", "entries_of_record",
           "field_vocabulary", "needs_review", "read_entries"]

EntryKind = Literal["garment", "item"]
#: a field's value: one id, several (colours), or None (unknown / unsure)
FieldValue = str | list[str] | None

_RESULT_PREFIX = "fashionlens/result/"
_ITEM_PREFIX = "fashionlens/item/"


@dataclass(frozen=True)
class Candidate:
    """One value the model proposes for a field, with its (calibrated) score when known."""

    id: str
    score: float | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "score": self.score}


@dataclass(frozen=True)
class FieldState:
    """One field of a garment/item as the model left it.

    ``value``: the model's sure value (a list for multi-valued fields such as colours), None when it is
    unsure or has none. ``candidates``: best first. ``needs_review``: unsure, or scored below ``min_score``."""

    name: str
    value: str | list[str] | None
    score: float | None
    uncertain: bool
    candidates: tuple[Candidate, ...]
    multi: bool
    needs_review: bool

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "score": self.score, "uncertain": self.uncertain,
                "candidates": [c.to_json() for c in self.candidates], "multi": self.multi,
                "needs_review": self.needs_review}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FieldState:
        return cls(name=str(d["name"]), value=d.get("value"), score=d.get("score"), uncertain=bool(d.get("uncertain")),
                   candidates=tuple(Candidate(str(c["id"]), c.get("score")) for c in d.get("candidates") or ()),
                   multi=bool(d.get("multi")), needs_review=bool(d.get("needs_review")))


@dataclass
class QueueEntry:
    """One garment (of a tag result) or item (of a grade record) to queue for review.

    ``source``/``line``/``index`` identify it (the absolute path of the JSONL file, the 1-based line, the
    garment's index on that line; 0 for items): building twice from one file finds the same keys. The review
    store keeps it as it is queued: a :class:`~fashionlens.review.store.Task` holds one."""

    kind: EntryKind
    source: str
    line: int
    index: int
    photo: str | None
    width: int | None
    height: int | None
    bbox: list[float] | None
    mask: dict[str, Any] | None
    object_type: str | None
    item_id: str | None
    group: str | None
    fields: list[FieldState]
    embedding: np.ndarray | None = None
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def category(self) -> str | None:
        for f in self.fields:
            if f.name == "category":
                return f.value if isinstance(f.value, str) else (f.candidates[0].id if f.candidates else None)
        return None


# ---------------------------------------------------------------------------------------------- fields


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _candidates(raw: Any) -> tuple[Candidate, ...]:
    out: list[Candidate] = []
    for c in raw if isinstance(raw, list) else ():
        if isinstance(c, Mapping) and c.get("id") is not None:
            out.append(Candidate(str(c["id"]), _number(c.get("score"))))
    return tuple(sorted(out, key=lambda c: -(c.score if c.score is not None else -1.0)))


def _single_field(name: str, raw: Any, min_score: float, *, alternatives: Any = None) -> FieldState | None:
    """A ``{"id", "score"[, "uncertain", "candidates"]}`` value (``alternatives``: a v1 ``category_top``)."""
    if not isinstance(raw, Mapping):
        return None
    score = _number(raw.get("score"))
    uncertain = raw.get("uncertain") is True or raw.get("id") is None
    value = None if uncertain or raw.get("id") is None else str(raw["id"])
    candidates = _candidates(raw.get("candidates"))
    if not candidates:
        candidates = _candidates(alternatives)[:3]
    if not candidates and raw.get("id") is not None:
        candidates = (Candidate(str(raw["id"]), score),)
    needs = uncertain or (score is not None and score < min_score)
    return FieldState(name, value, score, uncertain, candidates, False, needs)


def _colours_field(name: str, raw: list[Any], unsure: bool, min_score: float) -> FieldState:
    listed = _candidates(raw)
    marked = [c for c, r in zip(listed, raw) if isinstance(r, Mapping) and r.get("uncertain") is True]
    sure = [c.id for c in listed if c not in marked]
    uncertain = unsure or bool(marked)
    low = [c for c in listed if c.score is not None and c.score < min_score]
    value = None if uncertain and not sure else sure
    scores = [c.score for c in listed if c.score is not None]
    return FieldState(name, value, min(scores) if scores else None, uncertain, listed, True, uncertain or bool(low))


def _attribute_fields(attributes: Any, min_score: float, prefix: str = "") -> list[FieldState]:
    out: list[FieldState] = []
    if not isinstance(attributes, Mapping):
        return out
    for key, raw in attributes.items():
        if key.endswith("_uncertain"):
            continue
        if isinstance(raw, list):
            out.append(_colours_field(prefix + key, raw, attributes.get(key + "_uncertain") is True, min_score))
        else:
            f = _single_field(prefix + key, raw, min_score)
            if f is not None:
                out.append(f)
    return out


def field_vocabulary(name: str, object_type: str | None = None) -> list[str]:
    """Every value a reviewer may choose for field ``name`` (the taxonomy's), empty when open-ended."""
    tax = load_taxonomy()
    if name == "category":
        names = list(tax.categories)
        if object_type in tax.object_types:
            names = [c for c in names if tax.category_object_type[c] == object_type] or names
        return names
    if name == "object_type":
        return list(tax.object_types)
    attribute = name.rsplit(".", 1)[-1]
    group = tax.attributes.get(attribute)
    return list(group.values) if group is not None else []


# ---------------------------------------------------------------------------------------------- records


def _resolve_photo(path: Any, base: Path) -> str | None:
    if not isinstance(path, str) or not path:
        return None
    p = Path(path)
    if p.is_absolute():
        return str(p)
    for root in (base, Path.cwd()):
        if (root / p).is_file():
            return str((root / p).resolve())
    return str((base / p).resolve())


def _group(record: Mapping[str, Any], photo: str | None) -> str | None:
    sender = record.get("sender") or (record.get("image") or {}).get("sender")
    if isinstance(sender, str) and sender:
        return "sender:" + sender
    return "folder:" + str(Path(photo).parent) if photo else None


def _embedding(raw: Any) -> np.ndarray | None:
    if raw is None:
        return None
    try:
        vector = np.asarray(decode_embedding(raw), np.float32).reshape(-1)
    except (ValueError, TypeError, KeyError):
        return None
    return l2_normalise(vector) if vector.size else None


def _garment_entries(record: Mapping[str, Any], source: str, line: int, base: Path,
                     min_score: float) -> Iterator[QueueEntry]:
    image = record.get("image") if isinstance(record.get("image"), Mapping) else {}
    photo = _resolve_photo(image.get("path"), base)
    for index, g in enumerate(record.get("garments") or ()):
        if not isinstance(g, Mapping):
            continue
        fields: list[FieldState] = []
        if g.get("object_type") is not None:
            score = _number(g.get("score"))
            fields.append(FieldState("object_type", str(g["object_type"]), score, False,
                                     (Candidate(str(g["object_type"]), score),), False,
                                     score is not None and score < min_score))
        category = _single_field("category", g.get("category"), min_score, alternatives=g.get("category_top"))
        if category is not None:
            fields.append(category)
        fields += _attribute_fields(g.get("attributes"), min_score)
        bbox = g.get("bbox")
        yield QueueEntry(
            kind="garment", source=source, line=line, index=index, photo=photo,
            width=image.get("width") if isinstance(image.get("width"), int) else None,
            height=image.get("height") if isinstance(image.get("height"), int) else None,
            bbox=[float(v) for v in bbox] if isinstance(bbox, list) and len(bbox) == 4 else None,
            mask=g.get("mask") if isinstance(g.get("mask"), Mapping) else None,
            object_type=str(g["object_type"]) if g.get("object_type") is not None else None,
            item_id=None, group=_group(record, photo), fields=fields, embedding=_embedding(g.get("embedding")),
            record=dict(g))


def _item_entry(record: Mapping[str, Any], source: str, line: int, base: Path, min_score: float) -> QueueEntry | None:
    if record.get("error") is not None:
        return None
    views = [v for v in record.get("views") or () if isinstance(v, Mapping)]
    usable = [v for v in views if v.get("error") is None and v.get("role") in ("front", "back")]
    photo = _resolve_photo((usable or views or [{}])[0].get("path"), base)
    fields: list[FieldState] = []
    category = _single_field("category", record.get("category"), min_score)
    if category is not None:
        fields.append(category)
    fields += _attribute_fields(record.get("attributes"), min_score)
    for head, raw in (record.get("grades") or {}).items():
        f = _single_field("grades." + str(head), raw, min_score)
        if f is not None:
            fields.append(f)
    object_type = record.get("object_type")
    return QueueEntry(kind="item", source=source, line=line, index=0, photo=photo, width=None, height=None,
                      bbox=None, mask=None, object_type=str(object_type) if object_type else None,
                      item_id=str(record.get("item_id")) if record.get("item_id") is not None else None,
                      group=_group(record, photo), fields=fields, record=dict(record))


def entries_of_record(record: Mapping[str, Any], *, source: str, line: int, base: Path,
                      min_score: float = 0.5) -> list[QueueEntry]:
    """The queue entries of one JSONL record: its garments (a tag result) or the item (a grade record).
    A record that failed (``error`` set) has none; an unknown ``schema`` raises ValueError."""
    schema = record.get("schema")
    if isinstance(schema, str) and schema.startswith(_RESULT_PREFIX):
        return list(_garment_entries(record, source, line, base, min_score))
    if isinstance(schema, str) and schema.startswith(_ITEM_PREFIX):
        entry = _item_entry(record, source, line, base, min_score)
        return [entry] if entry is not None else []
    raise ValueError(f"{source}:{line}: expected a fashionlens/result/v1|v2 or fashionlens/item/v1 record; "
                     f"got schema {schema!r}")


def read_entries(path: str | Path, *, min_score: float = 0.5) -> list[QueueEntry]:
    """Every queue entry of a results or items JSONL file, in file order (blank lines skipped)."""
    p = Path(path)
    source = str(p.resolve())
    entries: list[QueueEntry] = []
    with p.open(encoding="utf-8") as fh:
        for line_no, text in enumerate(fh, 1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except ValueError as exc:
                raise ValueError(f"{p}:{line_no}: expected one JSON object per line; {exc}") from None
            if not isinstance(record, Mapping):
                raise ValueError(  # noqa: TRY004 - bad input data: the CLI's one-line error, exit 2
                    f"{p}:{line_no}: expected a JSON object; got {type(record).__name__}")
            entries += entries_of_record(record, source=source, line=line_no, base=p.resolve().parent,
                                         min_score=min_score)
    return entries


def needs_review(fields: Sequence[FieldState]) -> bool:
    return any(f.needs_review for f in fields)
