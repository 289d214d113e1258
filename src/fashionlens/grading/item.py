"""The item record (``fashionlens/item/v1``): one second-hand garment seen in several photos.

An *item* is a front photo, a back photo and an optional brand/care-label photo. ``grade`` fuses the
per-view results into one plain-JSON dict with the keys below; the sorting rules
(:mod:`fashionlens.grading.routing`), the corrections store and the service all read this shape.

.. code-block:: text

    schema        "fashionlens/item/v1"
    item_id       str
    views         [{"role": "front"|"back"|"label", "path": str, "error": str|None}]
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
    error         str|None

A ``DamageRegion`` is ``{"view", "type", "area_share", "score", "bbox": [x, y, w, h], "mask": RLE}``;
``area_share`` is the region's pixels over the garment's pixels in that view.
"""

from __future__ import annotations

from typing import Any, Literal

ITEM_SCHEMA = "fashionlens/item/v1"

ViewRole = Literal["front", "back", "label"]
VIEW_ROLES: tuple[str, ...] = ("front", "back", "label")

DAMAGE_TYPES: tuple[str, ...] = ("stain", "hole", "pilling", "fading")
"""Damage types the damage head predicts (index + 1 in its masks; 0 = no damage)."""

ROUTES: tuple[str, ...] = ("reuse", "repair", "export", "recycle")


def empty_item(item_id: str, views: list[dict[str, Any]]) -> dict[str, Any]:
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
        "error": None,
    }
