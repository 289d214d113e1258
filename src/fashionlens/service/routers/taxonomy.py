"""``GET /v1/taxonomy``: the label vocabularies (object types, categories with their object type,
attribute values) — what the web pages offer as filters and corrections."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from fashionlens.service.deps import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1", tags=["taxonomy"])

#: values of the grading label fields as the RISE reader normalises them (ordinal grades 1–5, severities)
GRADING_VALUES: dict[str, list[Any]] = {"condition": [1, 2, 3, 4, 5], "pilling": [1, 2, 3, 4, 5],
                                        "stains": ["none", "minor", "major"], "holes": ["none", "minor", "major"]}


def taxonomy_document() -> dict[str, Any]:
    """The packaged taxonomy as plain JSON, plus the routes and label fields of second-hand grading."""
    from fashionlens.grading.corrections import LABEL_FIELDS
    from fashionlens.grading.item import DAMAGE_TYPES, ROUTES
    from fashionlens.taxonomy import load_taxonomy

    tax = load_taxonomy()
    return {"version": tax.version, "object_types": list(tax.object_types),
            "categories": [{"id": c, "object_type": tax.category_object_type[c]} for c in tax.categories],
            "attributes": {name: {"kind": g.kind, "values": list(g.values)} for name, g in tax.attributes.items()},
            "routes": list(ROUTES), "damage_types": list(DAMAGE_TYPES), "correction_fields": list(LABEL_FIELDS),
            "grading_values": GRADING_VALUES}


@router.get("/taxonomy", summary="label vocabularies: object types, categories, attribute values, routes",
            responses=PROBLEM_RESPONSES)
async def taxonomy() -> Any:
    return JSONResponse(taxonomy_document())
