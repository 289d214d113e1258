"""Multi-view second-hand items for the grading heads: the full RISE release and the shared subset.

**Assumed layout of the official release** (Nauman 2024, *Clothing Dataset for Second-Hand Fashion*,
Zenodo doi:10.5281/zenodo.13788681, CC BY 4.0). The release's own README could not be read
offline, so this reader is written against the layout below and is deliberately tolerant:

.. code-block:: text

    ROOT/ [any sub-folders, e.g. per sorting site] /<item_id>/
        front.jpg | <id>_front.jpg ...          file name contains "front"   (any image suffix, any case)
        back.jpg                                 contains "back"
        brand.jpg | label.jpg | care.jpg         contains "brand", "label" or "care"  (optional)
        labels_<item_id>.json | labels.json | <item_id>.json    one flat JSON object

* An *item folder* is any folder holding an image whose name says front/back/brand/label/care, or a
  JSON file. Its name is the item id. Several candidate images for one role: the first by name is
  used and the rest are reported.
* JSON keys are matched case-insensitively, ignoring ``_``/``-``/spaces, through :data:`KEY_ALIASES`
  (``price``/``price_band``/``pricerange``, ``colors``/``colours``, ``stains``/``stain`` …).
* Values are normalised per grading head (:data:`GRADING_HEADS`): ``condition`` and ``pilling``
  become integers 1–5, ``material`` the main fibre of the free-text composition
  (:func:`fashionlens.taxonomy.composition.main_fibre`), ``usage`` one of ``reuse``/``repair``/
  ``export``/``recycle`` when recognisable, ``stains``/``holes`` ``none``/``minor``/``major`` when
  recognisable, ``damage`` ``none``, one of :data:`fashionlens.grading.item.DAMAGE_TYPES`,
  ``multiple`` or ``other``; the other heads are trimmed, lower-cased strings. Empty values and
  values that cannot be read (a condition of ``"7"``) are *missing* for that head — the masked
  training loss ignores them — and the latter are reported.

Problems never drop an item silently: items with a missing front or back view, no label file or
an unreadable one are kept (with what they have) and listed in the :class:`ItemReadSummary`; only
items with neither a front nor a back photo are left out, and those are listed there too.

The **shared subset** (``garments.jsonl`` + ``images/<id>.jpg``, one front view; see
:mod:`fashionlens.io.rise`) is read into the same :class:`ItemRecord` by :func:`read_rise_subset`
with the same source (``rise``) and groups (``rise/<id>``) as :func:`fashionlens.io.rise.read_rise`,
so :func:`fashionlens.io.splits.group_split` gives both the same seeded split.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fashionlens.io.rise import iter_rise_rows
from fashionlens.taxonomy.composition import main_fibre

log = logging.getLogger(__name__)

__all__ = ["GRADING_HEADS", "HEAD_KINDS", "IMAGE_SUFFIXES", "KEY_ALIASES", "ItemReadSummary", "ItemRecord",
           "canonical_key", "normalise_labels", "read_items", "read_rise_release", "read_rise_subset", "view_role"]

HeadKind = Literal["nominal", "ordinal"]

#: the grading heads and their kind; ordinal heads take integer grades 1–5
HEAD_KINDS: dict[str, HeadKind] = {
    "usage": "nominal", "condition": "ordinal", "price": "nominal", "stains": "nominal", "holes": "nominal",
    "pilling": "ordinal", "damage": "nominal", "type": "nominal", "material": "nominal", "season": "nominal",
    "trend": "nominal",
}
GRADING_HEADS: tuple[str, ...] = tuple(HEAD_KINDS)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif"})

_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "itemid", "item", "garmentid"),
    "usage": ("usage", "use", "route", "sorting", "sortingdecision", "destination"),
    "condition": ("condition", "conditionscore", "conditiongrade", "grade"),
    "price": ("price", "priceband", "pricerange", "pricecategory", "pricelevel", "pricegroup"),
    "stains": ("stains", "stain", "staining"),
    "holes": ("holes", "hole"),
    "pilling": ("pilling", "pills", "pillinggrade"),
    "damage": ("damage", "damages", "damagetype", "damagetypes", "defect", "defects"),
    "type": ("type", "garmenttype", "category", "clothingtype"),
    "material": ("material", "materials", "composition", "fibre", "fiber", "fabric"),
    "season": ("season", "seasons"),
    "trend": ("trend", "trendy", "trendiness", "style"),
    "brand": ("brand", "brandname"),
    "colors": ("colors", "colours", "color", "colour"),
    "cut": ("cut", "cuts"),
    "pattern": ("pattern", "patterns"),
    "gender": ("gender", "sex"),
    "smell": ("smell", "odor", "odour"),
}
#: normalised JSON key (lower case, no ``_``/``-``/space) → canonical key
KEY_ALIASES: dict[str, str] = {alias: key for key, aliases in _ALIASES.items() for alias in aliases}

_USAGE = {"reuse": "reuse", "re-use": "reuse", "reusable": "reuse", "resale": "reuse", "resell": "reuse",
          "repair": "repair", "repairs": "repair", "mend": "repair", "export": "export", "exports": "export",
          "recycle": "recycle", "recycling": "recycle", "recycled": "recycle"}
_SEVERITY = {"none": "none", "no": "none", "0": "none", "false": "none", "n/a": "none", "nothing": "none",
             "minor": "minor", "small": "minor", "few": "minor", "little": "minor", "slight": "minor",
             "major": "major", "large": "major", "big": "major", "many": "major", "severe": "major"}
_DAMAGE_WORDS = {"stain": "stain", "spot": "stain", "dirt": "stain", "hole": "hole", "tear": "hole",
                 "rip": "hole", "pilling": "pilling", "pill": "pilling", "bobbl": "pilling", "fad": "fading",
                 "discolo": "fading", "bleach": "fading"}
_NO_DAMAGE = {"", "none", "no", "no damage", "nothing", "[]", "0", "false", "n/a"}
_FRONT, _BACK, _LABEL = ("front",), ("back",), ("brand", "label", "care")


def canonical_key(key: str) -> str | None:
    """The canonical label key of a JSON key (``"Price_Band"`` → ``"price"``), None when unknown."""
    return KEY_ALIASES.get(re.sub(r"[\s_\-]+", "", str(key).lower()))


def view_role(path: str | Path) -> str | None:
    """``front``/``back``/``label`` from an image file name (``IMG_front.JPG`` → ``front``), else None."""
    p = Path(path)
    if p.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    stem = p.stem.lower()
    for role, words in (("front", _FRONT), ("back", _BACK), ("label", _LABEL)):
        if any(w in stem for w in words):
            return role
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    text = re.sub(r"\s+", " ", str(value)).strip()
    return text or None


def _grade(value: Any, head: str) -> int:
    """An integer grade 1–5 from ``3``, ``"3"``, ``"3.0"`` or ``"3 - good"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        m = re.match(r"\s*(\d+(?:[.,]\d+)?)", str(value))
        if not m:
            raise ValueError(f"{head}: expected a grade 1–5, got {value!r}")
        number = float(m.group(1).replace(",", "."))
    if number != int(number) or not 1 <= number <= 5:
        raise ValueError(f"{head}: expected a whole grade 1–5, got {value!r}")
    return int(number)


def _damage(value: Any) -> str:
    items = [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
    text = " ".join(items).strip().lower()
    if text in _NO_DAMAGE:
        return "none"
    kinds = {kind for word, kind in _DAMAGE_WORDS.items() if word in text}
    if not kinds:
        return "other"
    return kinds.pop() if len(kinds) == 1 else "multiple"


def _normalise(head: str, value: Any) -> str | int | None:
    if head in ("condition", "pilling"):
        return None if _text(value) is None else _grade(value, head)
    if head == "damage" and isinstance(value, (list, tuple)):
        return _damage(value)  # an empty list says "no damage"
    text = _text(value)
    if text is None:
        return None
    low = text.lower()
    if head == "material":
        return main_fibre(text)
    if head == "usage":
        return _USAGE.get(low, low)
    if head in ("stains", "holes"):
        return _SEVERITY.get(low, low)
    if head == "damage":
        return _damage(value)
    if head == "type":
        return text[:1].upper() + text[1:]
    return low


def normalise_labels(raw: Mapping[str, Any], *, where: str = "labels") -> tuple[dict[str, Any], list[str]]:
    """Canonical keys and per-head values of one flat label object, and the problems found.

    Returns ``(labels, problems)``: ``labels`` has every key of :data:`GRADING_HEADS` (None =
    missing) plus the other recognised keys (``brand``, ``colors`` …) as given; unknown keys are
    kept under their own name. A value that cannot be read is missing and named in ``problems``.
    """
    labels: dict[str, Any] = {h: None for h in GRADING_HEADS}
    problems: list[str] = []
    seen: dict[str, str] = {}
    for key, value in raw.items():
        canon = canonical_key(key)
        if canon is None:
            labels[str(key)] = value
            continue
        if canon in seen:
            problems.append(f"{where}: keys {seen[canon]!r} and {key!r} both mean {canon!r}; kept {seen[canon]!r}")
            continue
        seen[canon] = str(key)
        if canon in HEAD_KINDS:
            try:
                labels[canon] = _normalise(canon, value)
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
        else:
            labels[canon] = value
    return labels, problems


@dataclass
class ItemRecord:
    """One second-hand item: its photos by role, its labels, and the group it is split by.

    ``views`` maps ``front``/``back``/``label`` to image paths (only the roles found); ``raw`` is the
    label object as read; ``labels`` holds each grading head's normalised value (None = missing) and
    the other recognised keys. ``source`` and ``group`` key :func:`fashionlens.io.splits.group_split`.
    """

    item_id: str
    views: dict[str, Path]
    raw: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)
    group: str = ""
    source: str = "rise-release"

    def __post_init__(self) -> None:
        self.views = {role: Path(p) for role, p in self.views.items()}
        bad = set(self.views) - {"front", "back", "label"}
        if bad:
            raise ValueError(f"item {self.item_id}: view roles must be front, back or label, got {sorted(bad)}")
        self.group = self.group or f"{self.source}/{self.item_id}"

    @property
    def path(self) -> Path:
        """The item's main photo (front, else back): what :func:`group_split` sorts by."""
        return self.views.get("front") or self.views.get("back") or next(iter(self.views.values()), Path(self.item_id))

    def label(self, head: str) -> Any:
        """The normalised value of ``head`` (None when the item has no label for it)."""
        return self.labels.get(head)


@dataclass
class ItemReadSummary:
    """What a reader found and everything it had to report (item ids → details)."""

    root: str
    items: int = 0
    missing_views: dict[str, list[str]] = field(default_factory=dict)  # kept, without these roles
    no_labels: list[str] = field(default_factory=list)  # kept, without labels
    bad_labels: dict[str, str] = field(default_factory=dict)  # kept, without labels (unreadable JSON)
    label_problems: list[str] = field(default_factory=list)  # values left missing, extra files
    left_out: dict[str, str] = field(default_factory=dict)  # not read: no front or back photo

    @property
    def problems(self) -> int:
        return (len(self.missing_views) + len(self.no_labels) + len(self.bad_labels) + len(self.label_problems)
                + len(self.left_out))

    def lines(self, *, limit: int = 5) -> list[str]:
        """Human-readable summary lines (at most ``limit`` examples per kind)."""
        out = [f"{self.root}: {self.items} items read"]

        def some(values: list[str]) -> str:
            more = f" … (+{len(values) - limit})" if len(values) > limit else ""
            return ", ".join(values[:limit]) + more

        if self.missing_views:
            out.append(f"{len(self.missing_views)} items miss a view (kept): "
                       + some([f"{k} (no {'/'.join(v)})" for k, v in self.missing_views.items()]))
        if self.no_labels:
            out.append(f"{len(self.no_labels)} items have no label file (kept, unlabelled): {some(self.no_labels)}")
        if self.bad_labels:
            out.append(f"{len(self.bad_labels)} items have an unreadable label file (kept, unlabelled): "
                       + some([f"{k} ({v})" for k, v in self.bad_labels.items()]))
        if self.label_problems:
            out.append(f"{len(self.label_problems)} label values could not be read (left missing): "
                       + some(self.label_problems))
        if self.left_out:
            out.append(f"{len(self.left_out)} folders left out: " + some([f"{k} ({v})" for k, v in self.left_out.items()]))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "items": self.items, "missing_views": self.missing_views,
                "no_labels": self.no_labels, "bad_labels": self.bad_labels, "label_problems": self.label_problems,
                "left_out": self.left_out}


def _label_file(folder: Path, item_id: str, jsons: list[Path]) -> tuple[Path | None, list[Path]]:
    by_name = {p.name.lower(): p for p in jsons}
    for name in (f"labels_{item_id}.json".lower(), "labels.json", f"{item_id}.json".lower()):
        if name in by_name:
            return by_name[name], [p for p in jsons if p != by_name[name]]
    return (jsons[0], jsons[1:]) if jsons else (None, [])


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict):
        data = data[0]
    if isinstance(data, dict):
        return data
    raise ValueError(f"expected one JSON object, got {type(data).__name__}")


def read_rise_release(root: str | Path, *, source: str = "rise-release") -> tuple[list[ItemRecord], ItemReadSummary]:
    """Read every item folder under ``root`` (layout in the module docstring), sorted by item id.

    Returns the items and an :class:`ItemReadSummary` of what was missing or unreadable (also
    logged as warnings). Raises ``FileNotFoundError`` when ``root`` is not a folder and
    ``ValueError`` when two folders carry the same item id.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"RISE release: expected a folder of item folders, got {root}")
    summary = ItemReadSummary(root=str(root))
    files_by_folder: dict[Path, list[Path]] = {}
    for p in sorted(root.rglob("*")):
        if any(part.startswith(".") for part in p.relative_to(root).parts):
            continue  # hidden: an interrupted export's .tmp-* folder, .DS_Store …
        if p.is_file() and (view_role(p) is not None or p.suffix.lower() == ".json"):
            files_by_folder.setdefault(p.parent, []).append(p)
    items: list[ItemRecord] = []
    folder_of: dict[str, Path] = {}
    for folder, files in sorted(files_by_folder.items()):
        item_id = folder.name
        where = str(folder.relative_to(root)) if folder != root else "."
        if item_id in folder_of:
            raise ValueError(f"RISE release: item id {item_id!r} appears twice: {folder_of[item_id]} and {folder}")
        folder_of[item_id] = folder
        views: dict[str, Path] = {}
        for p in files:
            role = view_role(p)
            if role is None:
                continue
            if role in views:
                summary.label_problems.append(f"{where}: several {role} photos, used {views[role].name}, "
                                              f"not {p.name}")
                continue
            views[role] = p
        if "front" not in views and "back" not in views:
            summary.left_out[item_id] = f"{where}: no front or back photo"
            continue
        missing = [r for r in ("front", "back") if r not in views]
        if missing:
            summary.missing_views[item_id] = missing
        raw: dict[str, Any] = {}
        labels: dict[str, Any] = {h: None for h in GRADING_HEADS}
        label_path, extra = _label_file(folder, item_id, [p for p in files if p.suffix.lower() == ".json"])
        if extra:
            summary.label_problems.append(f"{where}: several JSON files, used {label_path.name if label_path else '-'}, "
                                          f"not {', '.join(p.name for p in extra)}")
        if label_path is None:
            summary.no_labels.append(item_id)
        else:
            try:
                raw = _read_json_object(label_path)
            except ValueError as exc:
                summary.bad_labels[item_id] = f"{label_path.name}: {exc}"
            else:
                labels, problems = normalise_labels(raw, where=f"{where}/{label_path.name}")
                summary.label_problems.extend(problems)
        items.append(ItemRecord(item_id=item_id, views=views, raw=raw, labels=labels, source=source))
    items.sort(key=lambda r: r.item_id)
    summary.items = len(items)
    _log_summary(summary)
    return items, summary


def read_rise_subset(root: str | Path) -> tuple[list[ItemRecord], ItemReadSummary]:
    """The shared subset (``garments.jsonl`` + ``images/<id>.jpg``) as one-view :class:`ItemRecord`\\ s.

    Only ``type``, ``material`` and ``season`` are grading labels there (``season`` is empty for
    some items: missing). Items whose photo is absent are kept without views and reported.
    """
    root = Path(root)
    summary = ItemReadSummary(root=str(root))
    items: list[ItemRecord] = []
    for where, row in iter_rise_rows(root):
        if "id" not in row:
            raise ValueError(f"{where}: expected an object with key 'id', got {str(row)[:80]!r}")
        item_id = str(row["id"])
        labels, problems = normalise_labels(row, where=where)
        summary.label_problems.extend(problems)
        image = root / "images" / f"{item_id}.jpg"
        views = {"front": image} if image.is_file() else {}
        if not views:
            summary.missing_views[item_id] = ["front"]
        items.append(ItemRecord(item_id=item_id, views=views, raw=row, labels=labels, source="rise",
                                group=f"rise/{item_id}"))
    summary.items = len(items)
    _log_summary(summary)
    return items, summary


def read_items(path: str | Path) -> tuple[list[ItemRecord], ItemReadSummary]:
    """A folder in either layout: the shared subset when it holds ``garments.jsonl``, else the release."""
    path = Path(path)
    if (path / "garments.jsonl").is_file():
        return read_rise_subset(path)
    return read_rise_release(path)


def _log_summary(summary: ItemReadSummary) -> None:
    lines = summary.lines()
    log.info("%s", lines[0])
    for line in lines[1:]:
        log.warning("%s", line)

