"""``POST /v1/search``: garments like a photo's (multipart ``image``) or matching words (``text``),
with taxonomy filters, against the index configured in the settings (``FASHIONLENS_INDEX``).

The answer has the shape of ``fashionlens search --json``: ``query``, ``filters``, ``hits`` (each
with a readable ``caption``, :func:`fashionlens.search.captions.describe`). A photo query is tagged
with the worker's loaded models (no model is loaded per request); ``garment=auto`` (the default)
searches the photo's largest confident garment (:func:`fashionlens.search.catalogue.choose_garment`),
a number searches that one, and ``query`` says which (``garment``, ``garment_choice``, ``caption``)
and lists every garment of the photo (``garments``: index, object type, category, bbox, score, name,
caption) so that a client can offer the others. Filter values must be the taxonomy's ids
(``GET /v1/taxonomy``): an unknown one is a 422 ``invalid_filter`` naming the parameter, the value and
the allowed values — never a silent empty answer.
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
    understood: dict[str, Any] | None = None  # text queries: category/colours/pattern/material read from the words
    strict: bool | None = None  # text queries: were the understood fields filters?
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
    garment: Annotated[str, Query(pattern=r"^(auto|[0-9]{1,3})$", description=(
        "which garment of the query photo to search: `auto` (default) = the largest confident one "
        "(box area × detector score, garments scoring under 0.5 passed over), or its number 0…n-1 as "
        "listed in the answer's `query.garments`; a number the photo does not have is a 422 naming the "
        "valid range"))] = "auto",
    whole_image: Annotated[bool, Query(description="the query photo is one garment: no detection")] = False,
    category: Annotated[list[str] | None, _filter_query("only these categories")] = None,
    colour: Annotated[list[str] | None, _filter_query("only garments with these colours")] = None,
    pattern: Annotated[list[str] | None, _filter_query("only these patterns")] = None,
    material: Annotated[list[str] | None, _filter_query("only these materials")] = None,
    object_type: Annotated[list[str] | None, _filter_query("only these object types")] = None,
    understand: Annotated[bool, Query(description=(
        "text queries: read category, colours, pattern and material from the words and rank garments whose "
        "stored labels agree higher (the answer's `understood` says what was read); false = rank by the "
        "text embedding alone"))] = True,
    strict: Annotated[bool, Query(description=(
        "text queries: return only garments whose stored labels agree with everything understood (all the "
        "colours named; an explicit filter on the same field wins); needs understand=true"))] = False,
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

    if data is not None:
        result = await state.queue.run(lambda: _image_answer(state, searcher, data, name, k=k, garment=garment,
                                                             whole_image=whole_image, filters=filters))
    else:
        result = await state.queue.run(lambda: _text_answer(state, searcher, text, k=k, filters=filters,
                                                            understand=understand, strict=strict))
    if data is not None:
        store_uploads(settings.storage_dir, "search", {name: data})
    return JSONResponse(result)


def _hits(searcher: Any, q: Any, k: int, filters: dict[str, Any]) -> list[dict[str, Any]]:
    """The index's answer to query vectors ``q``, scores on the searcher's scale, with captions."""
    from fashionlens.search.captions import describe

    try:
        [hits] = searcher.index.search(q, k, filters=filters or None)
    except ValueError as exc:
        raise ApiProblem("invalid_filter", str(exc)) from None
    out = [replace(h, score=float(h.score) * searcher.space.scale).to_dict() for h in hits]
    for hit in out:
        hit["caption"] = describe(hit)
    return out


def _text_answer(state: ServiceState, searcher: Any, text: str | None, *, k: int, filters: dict[str, Any],
                 understand: bool, strict: bool) -> dict[str, Any]:
    """A words query: what was understood, the re-ranked hits (in a worker thread)."""
    from fashionlens.search.captions import describe

    if strict and not understand:
        raise ApiProblem("invalid_request", "strict=true needs understand=true (the understood fields are "
                         "the filters)", extra={"errors": [{"field": "query.strict", "type": "value_error",
                                                            "message": "strict needs understand=true"}]})
    with state.metrics.model_timer("search_text"):
        try:
            searcher.text_vector(text)  # the text model's part (kept by the searcher for query_text)
        except ValueError as exc:
            raise ApiProblem("invalid_request", str(exc)) from None
    try:
        found = searcher.query_text(text, k=k, filters=filters, understand=understand, strict=strict)
    except ValueError as exc:
        raise ApiProblem("invalid_filter", str(exc)) from None
    rows = [h.to_dict() for h in found.hits]
    for hit in rows:
        hit["caption"] = describe(hit)
    return {"query": {"text": text}, "understood": found.understood(), "strict": found.strict,
            "filters": filters, "hits": rows}


def _chosen_garment(result: Any, garment: str, garments: list[dict[str, Any]]) -> int:
    """``auto`` → the largest confident garment; a number → that garment, else a 422 naming the range."""
    from fashionlens.search.catalogue import choose_garment

    if garment == "auto":
        return choose_garment(result)
    n, chosen = len(result.garments), int(garment)
    if not 0 <= chosen < n:
        message = (f"garment: expected auto or a garment number 0–{n - 1} (the photo has {n} garment(s), "
                   f"listed under `garments`); got {chosen}")
        raise ApiProblem("invalid_request", message, extra={
            "errors": [{"field": "query.garment", "type": "range", "value": chosen, "min": 0, "max": n - 1,
                        "message": message}], "garments": garments})
    return chosen


def _image_answer(state: ServiceState, searcher: Any, data: bytes, name: str | None, *, k: int, garment: str,
                  whole_image: bool, filters: dict[str, Any]) -> dict[str, Any]:
    """A photo query: its garments, the one searched, the hits (in a worker thread)."""
    from fashionlens.search.captions import describe_garments
    from fashionlens.search.catalogue import garment_query

    settings = state.settings
    tagger = state.models.tagger_for(whole_image=whole_image, detect=None if whole_image else DetectSettings(),
                                     embed=True)
    im = decode_upload(data, field="image", max_pixels=settings.max_pixels, max_bytes=settings.max_upload_bytes,
                       min_side=tagger.input_size if whole_image else DETECT_MIN_SIDE)
    with state.metrics.model_timer("search_image"):
        [result] = tagger.tag([im], [name])
    garments = describe_garments(result)
    chosen = _chosen_garment(result, garment, garments)
    query, emb = garment_query(result, chosen, name)
    query.update({"garment_choice": "auto" if garment == "auto" else "given",
                  "caption": garments[chosen]["caption"], "garments": garments})
    if emb.shape[0] != searcher.space.image_dim:
        raise ApiProblem("invalid_request", f"the index holds {searcher.space.image_dim}-d embeddings; this "
                         f"server's classifier gives {emb.shape[0]}-d: rebuild the index with it")
    return {"query": query, "filters": filters, "hits": _hits(searcher, searcher.space.image_queries(emb[None, :]),
                                                              k, filters)}
