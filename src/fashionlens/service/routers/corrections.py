"""``POST /v1/corrections`` (a sorter's corrections of a graded item, with its photos and the model's
record) and ``GET /v1/corrections`` (the stored ones, newest last), kept in the
:class:`~fashionlens.grading.corrections.CorrectionStore` at ``settings.corrections_db``
(``FASHIONLENS_CORRECTIONS_DB``). Without a database configured both answer 404 ``not_configured``.

The body is multipart: ``item`` (the ``fashionlens/item/v2`` record — v1 also accepted — as JSON text, as ``POST /v1/grade``
answered it), ``corrections`` (JSON object: label field → corrected value; fields from
:data:`~fashionlens.grading.corrections.LABEL_FIELDS`), optional ``sorter`` and the photos ``front``,
``back``, ``label`` (checked with the service's limits, stored as they came). Its answer carries
``station``: the item as the sorting station shows it with the corrections applied
(:func:`fashionlens.grading.presentation.present_item`, their fields' ``source`` ``"person"``).

``POST /v1/station/present`` (JSON ``{"item": record, "corrections": {...}}``, corrections optional)
answers the same ``fashionlens/station/v1`` view without saving anything: one value per field with
its source (label / model / person), unsure fields marked, the route's own reasons. The station page
calls it right after ``POST /v1/grade``. It needs no database.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse

from fashionlens.review.errors import ReviewStoreError
from fashionlens.service.deps import (
    BODY_RESPONSES,
    PROBLEM_RESPONSES,
    Problem,
    ServiceState,
    get_state,
)
from fashionlens.service.limits import decode_upload, read_upload
from fashionlens.service.problems import PROBLEM_MEDIA_TYPE, ApiProblem
from fashionlens.service.routers.review import record_station_correction

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["corrections"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    404: {"description": "no corrections database configured", "model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}},
    413: {"description": "photo too large or too many pixels", "model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}},
    415: {"description": "a photo is not a supported image", "model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}},
}

#: stores by database path, opened once per worker (opening creates the schema)
_STORES: dict[str, Any] = {}


def _store(state: ServiceState) -> Any:
    from fashionlens.grading.corrections import CorrectionStore

    path = state.settings.corrections_db
    if path is None:
        raise ApiProblem("not_configured", "expected a corrections database configured on the server "
                         "(FASHIONLENS_CORRECTIONS_DB); none is, so corrections cannot be saved")
    key = str(path)
    with state.cache_lock:
        store = _STORES.get(key)
        if store is None:
            try:
                store = _STORES[key] = CorrectionStore(path)
            except (OSError, ValueError) as exc:
                raise ApiProblem("not_configured", f"expected a usable corrections database at the configured "
                                 f"path; opening it failed: {exc}") from None
    return store


def _json_field(text: str, field: str, kind: type) -> Any:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ApiProblem("invalid_request", f"{field}: expected JSON text; got {text[:60]!r} ({exc})",
                         extra={"errors": [{"field": f"body.{field}", "message": "not JSON", "type": "value_error"}]}
                         ) from None
    if not isinstance(value, kind):
        raise ApiProblem("invalid_request", f"{field}: expected a JSON {kind.__name__.replace('dict', 'object')}; "
                         f"got {type(value).__name__}",
                         extra={"errors": [{"field": f"body.{field}", "message": "wrong JSON type",
                                            "type": "value_error"}]})
    return value


@router.post("/corrections", summary="save a sorter's corrections of a graded item (with its photos)",
             responses={**BODY_RESPONSES, **_RESPONSES, 200: {"description": "the stored correction's id"}})
async def add_correction(
    request: Request,
    state: Annotated[ServiceState, Depends(get_state)],
    item: Annotated[str, Form(max_length=2_000_000, description="the item record (fashionlens/item/v2; v1 accepted) as JSON")],
    corrections: Annotated[str, Form(max_length=100_000,
                                     description='JSON object field → corrected value, e.g. {"usage": "repair"}')],
    sorter: Annotated[str | None, Form(max_length=100, description="who corrected it")] = None,
    front: Annotated[UploadFile | None, File(description="the garment's front photo")] = None,
    back: Annotated[UploadFile | None, File(description="the garment's back photo")] = None,
    label: Annotated[UploadFile | None, File(description="the label photo")] = None,
) -> Any:
    store = _store(state)
    record = _json_field(item, "item", dict)
    fields = _json_field(corrections, "corrections", dict)
    settings = state.settings
    images: dict[str, bytes] = {}
    for role, up in (("front", front), ("back", back), ("label", label)):
        if up is not None:
            data = await read_upload(up, field=role, max_bytes=settings.max_upload_bytes)
            decode_upload(data, field=role, max_pixels=settings.max_pixels, max_bytes=settings.max_upload_bytes,
                          min_side=64)
            images[role] = data

    def job() -> tuple[int, dict[str, Any]]:
        who = (sorter or "").strip() or None
        station = _present(record, fields)  # before saving: a record the station cannot show is refused unsaved
        try:
            cid = int(store.add(record, images, fields, sorter=who))
        except (TypeError, ValueError) as exc:
            raise ApiProblem("invalid_request", str(exc)) from None
        # the same labels go to the review store (when one is configured), so they reach `review export`;
        # the correction is saved either way: a review store that is locked or broken costs only its copy
        try:
            record_station_correction(request.app, record, fields, reference=cid, sorter=who, images=images)
        except ReviewStoreError as exc:
            log.warning("correction %s saved, but not copied to the review store: %s", cid, exc)
        return cid, station

    cid, station = await state.queue.run(job)
    return JSONResponse({"id": cid, "item_id": record.get("item_id"), "fields": sorted(fields),
                         "roles": sorted(images), "station": station})


def _present(record: dict[str, Any], fields: dict[str, Any] | None) -> dict[str, Any]:
    """The station view of an item record; a record whose fields have the wrong shapes is a 422 problem."""
    from fashionlens.grading.presentation import present_item

    try:
        return present_item(record, fields)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise ApiProblem("invalid_request", f"expected an item record as POST /v1/grade answers it "
                                            f"(fashionlens/item/v1 or v2); this one cannot be shown: {exc}") from None


@router.post("/station/present", tags=["station"],
             summary="an item record as the sorting station shows it: one value per field, with its source",
             responses={**BODY_RESPONSES, **PROBLEM_RESPONSES,
                        200: {"description": "the station view (fashionlens/station/v1)"}})
async def present(
    state: Annotated[ServiceState, Depends(get_state)],
    item: Annotated[dict[str, Any], Body(description="the item record, as POST /v1/grade answered it")],
    corrections: Annotated[dict[str, Any] | None, Body(description="field → value a sorter chose")] = None,
) -> Any:
    return JSONResponse(await state.queue.run(lambda: _present(item, corrections)))


@router.get("/corrections", summary="the stored corrections (without photos), oldest first", responses=_RESPONSES)
async def list_corrections(
    state: Annotated[ServiceState, Depends(get_state)],
    item_id: Annotated[str | None, Query(min_length=1, max_length=200, description="only this item")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many (the newest)")] = 50,
) -> Any:
    store = _store(state)
    rows = await state.queue.run(lambda: store.list(item_id=item_id))
    return JSONResponse({"total": len(rows), "corrections": rows[-limit:]})
