"""``POST /v1/search``: garments like a photo's (multipart ``image``) or matching words (``text``),
with taxonomy filters, against the index configured in the settings (``FASHIONLENS_INDEX``).

The answer has the shape of ``fashionlens search --json``: ``query``, ``filters``, ``hits``. A photo
query is tagged with the worker's loaded models (no model is loaded per request). Filter values must
be the taxonomy's ids (``GET /v1/taxonomy``): an unknown one is a 422 ``invalid_filter`` naming the
parameter, the value and the allowed values — never a silent empty answer.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from fashionlens.detection.detector import DetectSettings
from fashionlens.service.deps import Problem, ServiceState, get_state
from fashionlens.service.limits import decode_upload, read_upload
from fashionlens.service.problems import PROBLEM_MEDIA_TYPE, ApiProblem
from fashionlens.service.routers.tag import IMAGE_RESPONSES
from fashionlens.service.uploads import display_name, store_uploads
from fashionlens.jobs.local import DETECT_MIN_SIDE

router = APIRouter(prefix="/v1", tags=["search"])

_FILTER_FIELDS = (("category", "category"), ("colour", "colours"), ("pattern", "pattern"), ("material", "material"),
                  ("object_type", "object_type"))


class SearchResponse(BaseModel):
    query: dict[str, Any]
    filters: dict[str, Any]
    hits: list[dict[str, Any]]


@lru_cache(maxsize=1)
def allowed_filter_values() -> dict[str, tuple[str, ...]]:
    """Query parameter → the taxonomy ids it accepts."""
    from fashionlens.taxonomy import load_taxonomy

    tax = load_taxonomy()
    return {"category": tuple(tax.categories), "colour": tuple(tax.attributes["colours"].values),
            "pattern": tuple(tax.attributes["pattern"].values), "material": tuple(tax.attributes["material"].values),
            "object_type": tuple(tax.object_types)}


def _filter_values(values: dict[str, list[str] | None]) -> dict[str, list[str]]:
    """Query parameter → its values (repeated and comma-separated), blanks dropped."""
    return {arg: [v.strip() for item in values.get(arg) or [] for v in item.split(",") if v.strip()]
            for arg, _ in _FILTER_FIELDS}


def _unknown_filter_values(given: dict[str, list[str]]) -> list[dict[str, Any]]:
    """One ``errors`` entry per value that is not an id of the taxonomy."""
    allowed = allowed_filter_values()
    errors = []
    for arg, items in given.items():
        for value in items:
            if value in allowed[arg]:
                continue
            close = difflib.get_close_matches(value.lower(), allowed[arg], n=1)
            errors.append({"field": f"query.{arg}", "type": "enum", "value": value, "allowed": list(allowed[arg]),
                           "message": f"unknown {arg} {value!r}; expected one of {', '.join(allowed[arg])}"
                                      + (f" (did you mean {close[0]!r}?)" if close else "")})
    return errors


def _filters(values: dict[str, list[str] | None]) -> dict[str, Any]:
    """The index filters of the query parameters; an :class:`ApiProblem` (422 ``invalid_filter``) when a
    value is not in the taxonomy."""
    given = _filter_values(values)
    errors = _unknown_filter_values(given)
    if errors:
        raise ApiProblem("invalid_filter", "expected filter values from the taxonomy (GET /v1/taxonomy); "
                         + "; ".join(e["message"] for e in errors[:5]), extra={"errors": errors})
    return {field: items if len(items) > 1 else items[0] for (arg, field) in _FILTER_FIELDS
            if (items := given[arg])}


def _filter_query(description: str) -> Any:
    return Query(max_length=20, description=description + " (taxonomy ids, GET /v1/taxonomy; repeat or "
                 "comma-separate; an unknown id is a 422 invalid_filter)")


@router.post("/search", summary="find garments like a photo's or matching words, with filters",
             response_model=SearchResponse,
             responses={**IMAGE_RESPONSES, 404: {"description": "no search index configured", "model": Problem,
                                                 "content": {PROBLEM_MEDIA_TYPE: {}}}})
async def search(
    state: Annotated[ServiceState, Depends(get_state)],
    image: Annotated[UploadFile | None, File(description="query photo")] = None,
    text: Annotated[str | None, Form(max_length=500, description='query words, e.g. "red striped wool sweater"')
                    ] = None,
    k: Annotated[int, Query(ge=1, le=100, description="number of results")] = 10,
    garment: Annotated[int, Query(ge=0, le=100, description="which garment of the query photo (0 = the first)")] = 0,
    whole_image: Annotated[bool, Query(description="the query photo is one garment: no detection")] = False,
    category: Annotated[list[str] | None, _filter_query("only these categories")] = None,
    colour: Annotated[list[str] | None, _filter_query("only garments with these colours")] = None,
    pattern: Annotated[list[str] | None, _filter_query("only these patterns")] = None,
    material: Annotated[list[str] | None, _filter_query("only these materials")] = None,
    object_type: Annotated[list[str] | None, _filter_query("only these object types")] = None,
) -> Any:
    searcher = state.require_searcher()
    has_text = text is not None and text.strip() != ""
    if (image is None) == (not has_text):
        raise ApiProblem("invalid_request", "expected exactly one of a query photo (image) or query words (text); "
                         f"got {'both' if image is not None else 'neither'}",
                         extra={"errors": [{"field": "body.image", "message": "give image or text", "type": "value_error"}]})
    filters = _filters({"category": category, "colour": colour, "pattern": pattern, "material": material,
                        "object_type": object_type})
    settings = state.settings
    data = await read_upload(image, field="image", max_bytes=settings.max_upload_bytes) if image is not None else None
    name = display_name(image.filename, "query") if image is not None else None

    def hits_for(q: Any) -> list[dict[str, Any]]:
        try:
            [hits] = searcher.index.search(q, k, filters=filters or None)
        except ValueError as exc:
            raise ApiProblem("invalid_filter", str(exc)) from None
        return [replace(h, score=float(h.score) * searcher.space.scale).to_dict() for h in hits]

    def text_job() -> dict[str, Any]:
        with state.metrics.model_timer("search_text"):
            try:
                q = searcher.space.text_queries([text])
            except ValueError as exc:
                raise ApiProblem("invalid_request", str(exc)) from None
        return {"query": {"text": text}, "filters": filters, "hits": hits_for(q)}

    def image_job() -> dict[str, Any]:
        from fashionlens.search.catalogue import garment_query

        tagger = state.models.tagger_for(whole_image=whole_image, detect=None if whole_image else DetectSettings(),
                                         embed=True)
        im = decode_upload(data, field="image", max_pixels=settings.max_pixels, max_bytes=settings.max_upload_bytes,
                           min_side=tagger.input_size if whole_image else DETECT_MIN_SIDE)
        with state.metrics.model_timer("search_image"):
            [result] = tagger.tag([im], [name])
        n = len(result.garments)
        if not 0 <= garment < n:
            raise ApiProblem("invalid_request", f"garment: expected 0–{n - 1} (the photo has "
                             f"{n} garment(s)); got {garment}")
        query, emb = garment_query(result, garment, name)
        if emb.shape[0] != searcher.space.image_dim:
            raise ApiProblem("invalid_request", f"the index holds {searcher.space.image_dim}-d embeddings; this "
                             f"server's classifier gives {emb.shape[0]}-d: rebuild the index with it")
        q = searcher.space.image_queries(emb[None, :])
        return {"query": query, "filters": filters, "hits": hits_for(q)}

    result = await state.queue.run(image_job if data is not None else text_job)
    if data is not None:
        store_uploads(settings.storage_dir, "search", {name: data})
    return JSONResponse(result)
