"""The item record (``fashionlens/item/v1``): one second-hand garment seen in several photos.

An *item* is a front photo, a back photo and an optional brand/care-label photo. ``grade`` fuses the
per-view results into one plain-JSON dict with the keys below; the sorting rules
(:mod:`fashionlens.grading.routing`), the corrections store and the service all read this shape.

.. code-block:: text

    schema        "fashionlens/item/v1"
    item_id       str
    views         [{"role": "front"|"back"|"label", "path": str, "error": Error|None}]
    object_type   str|None                       agreed across the garment views
    category      {"id": str, "score": float}|None
    attributes    {"pattern": {"id","score"}, "colours": [{"id","share","score"}],
                   "material": {"id", "score"|None, "source": "label"|"image"}, ...}
    composition   {"text": str, "fibres": [{"fibre": str, "percent": float}], "main_fibre": str|None}|None
    brand         str|None                       read from the label photo
    label_text    [str]|None                     OCR lines of the label photo
    damage        {"any": bool, "regions": [DamageRegion], "area_share": {damage type: float}}
    grades        {head: {"id": str|int, "score": float}}   only heads with a trained model
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
``area_share`` is the region's pixels over the garment's pixels in that view.
"""

from __future__ import annotations

from typing import Any, Literal

from fashionlens.taxonomy import DAMAGE_TYPES, ROUTES  # noqa: F401 - part of the item record's vocabulary

ITEM_SCHEMA = "fashionlens/item/v1"

ViewRole = Literal["front", "back", "label"]
VIEW_ROLES: tuple[str, ...] = ("front", "back", "label")




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
