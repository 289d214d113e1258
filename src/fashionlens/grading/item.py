"""The item record (``fashionlens/item/v2``): one second-hand garment seen in several photos.

An *item* is a front photo, a back photo and an optional brand/care-label photo. ``grade`` fuses the
per-view results into one plain-JSON dict with the keys below; the sorting rules
(:mod:`fashionlens.grading.routing`), the corrections store and the service all read this shape.

.. code-block:: text

    schema        "fashionlens/item/v2"
    item_id       str
    views         [{"role": "front"|"back"|"label", "path": str, "error": Error|None}]
    object_type   str|None                       agreed across the garment views (never withheld)
    category      Value|None
    attributes    {"pattern": Value, "colours": [{"id","share","score"}], "colours_uncertain": true (only
                   when no colour was sure), "material": Value + {"source": "label"|"image"}, ...}
    composition   {"text": str, "fibres": [{"fibre": str, "percent": float}], "main_fibre": str|None}|None
    brand         str|None                       read from the label photo
    label_text    [str]|None                     OCR lines of the label photo
    damage        {"any": bool, "regions": [DamageRegion], "area_share": {damage type: float}}
    grades        {head: Value}                  only heads with a trained model (id str|int)
    route         {"decision": route, "reasons": [str], "rules": str}|None
    warnings      [{"type": str, "path": str, "message": str}]   inputs found but not graded
    error         Error|None                     set when the item could not be graded at all

An ``Error`` is ``{"type": str, "message": str}``, like the tag records' ``error``. A view's error
says why that photo was not used (its decoding code such as ``truncated`` or ``not_found``,
``inference_failed`` when tagging or the damage search failed on it, ``label_unreadable`` when OCR
failed); the item is then graded from its other views. The item's ``error`` types:
``no_garment_photo`` (the item folder or manifest row has no front or back photo),
``no_usable_view`` (no front or back photo could be decoded and graded), ``unreadable_folder``, or
the exception's class name when grading failed as a whole. ``warnings`` types: ``no_role`` (a
photo whose name says no role), ``duplicate_role`` (a second photo of a role; the message names
the one graded), ``not_a_photo``, ``subfolder`` and ``unused_column`` (a photo path in a manifest
column other than front/back/label). Warnings do not make the item fail.

A ``DamageRegion`` is ``{"view", "type", "area_share", "score", "bbox": [x, y, w, h], "mask": RLE}``;
``area_share`` is the region's pixels over the garment's pixels in that view; ``score`` is the damage
head's score (calibrated to "is real damage" when the damage weights have a calibration sidecar).

A ``Value`` is ``{"id", "score", "views"}`` (``views``: how many garment views voted; grades have none)
when sure; v2 adds the *unsure* value of an operating point (``fashionlens grade --precision``,
``docs/grading.md``), in the shape of ``fashionlens/result/v2``::

    {"id": null, "score": s, "views": n, "uncertain": true, "candidates": [{"id", "score"}, ...top 3]}

(``--keep-uncertain``: ``"id"`` is the best guess). ``"uncertain"`` and ``"candidates"`` appear only on
unsure values, so a v2 record whose fields are all sure has the shape of a v1 record; an unsure colour
is left out (kept with ``"uncertain": true`` under ``--keep-uncertain``) and ``"colours_uncertain": true``
marks a garment with no sure colour. :func:`read_item` reads v1 and v2 records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from fashionlens.taxonomy import DAMAGE_TYPES, ROUTES  # noqa: F401 - part of the item record's vocabulary

ITEM_SCHEMA = "fashionlens/item/v2"
#: the schemas :func:`read_item` reads: v2, and v1 (the same record without unsure values)
ITEM_SCHEMAS_READ: tuple[str, ...] = ("fashionlens/item/v1", ITEM_SCHEMA)

ViewRole = Literal["front", "back", "label"]
VIEW_ROLES: tuple[str, ...] = ("front", "back", "label")


def read_item(record: Mapping[str, Any]) -> dict[str, Any]:
    """An item record of any schema in :data:`ITEM_SCHEMAS_READ` as a v2 record (a copy; a v1 record is a
    v2 record without unsure values, so only ``schema`` changes). A record without ``schema`` is taken as
    the current one. Raises ``TypeError`` for a non-object and ``ValueError`` for another schema."""
    if not isinstance(record, Mapping):
        raise TypeError(f"expected an item record (a JSON object, schema {ITEM_SCHEMA!r}); got {type(record).__name__}")
    schema = record.get("schema", ITEM_SCHEMA)
    if schema not in ITEM_SCHEMAS_READ:
        raise ValueError(f"expected an item record with schema {' or '.join(map(repr, ITEM_SCHEMAS_READ))}; "
                         f"got {schema!r}")
    return {**record, "schema": ITEM_SCHEMA}


def read_items(path: str | Path) -> list[dict[str, Any]]:
    """The item records of a JSONL file (``fashionlens grade`` output, v1 or v2), each through :func:`read_item`.
    Blank lines are skipped; a line that is not JSON is a ``ValueError`` naming it."""
    out = []
    with Path(path).open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(read_item(json.loads(line)))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: expected one JSON item record per line ({exc.msg})") from None
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{n}: {exc}") from None
    return out


def is_uncertain(value: Any) -> bool:
    """Whether a field value of an item record is unsure (``"uncertain": true``)."""
    return isinstance(value, Mapping) and value.get("uncertain") is True


def item_error(kind: str, message: str) -> dict[str, str]:
    """An ``error`` of an item record or of one of its views: ``{"type": kind, "message": message}``."""
    return {"type": kind, "message": message}


def empty_item(item_id: str, views: list[dict[str, Any]], *,
               warnings: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """An item record with every key present and nothing found yet."""
    return {
        "schema": ITEM_SCHEMA,
        "item_id": item_id,
        "views": views,
        "object_type": None,
        "category": None,
        "attributes": {},
        "composition": None,
        "brand": None,
        "label_text": None,
        "damage": {"any": False, "regions": [], "area_share": {t: 0.0 for t in DAMAGE_TYPES}},
        "grades": {},
        "route": None,
        "warnings": list(warnings or []),
        "error": None,
    }
