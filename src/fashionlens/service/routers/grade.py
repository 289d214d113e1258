"""``POST /v1/grade``: an item's photos (multipart ``front``, ``back``, ``label``) → ``fashionlens/item/v2``.

The operating point is the server's (``fashionlens serve --precision P|off --keep-uncertain``, default 0.9)
unless the request names one: ``?precision=0.8`` or ``?precision=off``, ``?keep_uncertain=true``. A field
below its operating point is unsure (``{"id": null, "score", "uncertain": true, "candidates"}``;
``docs/grading.md``).

The photos are checked with the service's limits (decoded in memory), then written to a temporary
folder for :class:`fashionlens.grading.grade.ItemGrader` (which reads paths) and deleted after
grading — unless storage is enabled, when they are kept under ``storage/grade/``. ``views[].path``
in the record is the uploaded file's name, never a server path.

An upload the limits refuse fails the request (413/415/422 naming the field). A view whose tagging
or damage search fails is that view's ``views[].error`` and the item is graded from the others, as
in ``fashionlens grade``; with no usable front or back view the answer is the error record
(``error.type`` ``no_usable_view``), still 200.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, UploadFile
from fastapi.responses import JSONResponse

from fashionlens.service.deps import ServiceState, get_state
from fashionlens.service.limits import decode_upload, read_upload
from fashionlens.service.problems import ApiProblem
from fashionlens.service.routers.tag import IMAGE_RESPONSES
from fashionlens.service.uploads import display_name, store_uploads

router = APIRouter(prefix="/v1", tags=["grade"])

_EXT = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif", "GIF": ".gif"}


@router.post("/grade", summary="grade a second-hand item from its front, back and label photos",
             responses={**IMAGE_RESPONSES, 200: {"description": "the item record (fashionlens/item/v2)"}})
async def grade(
    state: Annotated[ServiceState, Depends(get_state)],
    front: Annotated[UploadFile | None, File(description="the garment's front")] = None,
    back: Annotated[UploadFile | None, File(description="the garment's back")] = None,
    label: Annotated[UploadFile | None, File(description="the brand/care label (read as text)")] = None,
    item_id: Annotated[str | None, Query(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$",
                                         description="the item's id (default: a new random id)")] = None,
    precision: Annotated[str | None, Query(max_length=10, description="operating point: a target precision in "
                                           "(0, 1], or 'off' (every field as sure); default: the server's")] = None,
    keep_uncertain: Annotated[bool | None, Query(description="unsure fields keep their best guess (still marked "
                                                 "uncertain); default: the server's")] = None,
) -> Any:
    state.require_ready()
    settings = state.settings
    target = settings.precision if precision is None else _precision(precision)
    keep = settings.keep_uncertain if keep_uncertain is None else keep_uncertain
    uploads = {role: up for role, up in (("front", front), ("back", back), ("label", label)) if up is not None}
    if "front" not in uploads and "back" not in uploads:
        raise ApiProblem("invalid_request", f"expected a front or back photo; got {sorted(uploads) or 'no photo'}",
                         extra={"errors": [{"field": "body.front", "message": "a front or back photo is required",
                                            "type": "missing"}]})
    data = {role: await read_upload(up, field=role, max_bytes=settings.max_upload_bytes) for role, up in uploads.items()}
    names = {role: display_name(up.filename, role) for role, up in uploads.items()}
    grader = state.models.grader
    iid = item_id or uuid.uuid4().hex[:12]

    def job() -> dict[str, Any]:
        from fashionlens.grading.grade import ItemInput

        side = getattr(grader, "decode_side", None)
        formats = {role: decode_upload(b, field=role, max_pixels=settings.max_pixels,
                                       max_bytes=settings.max_upload_bytes, min_side=side).format
                   for role, b in data.items()}
        folder = Path(tempfile.mkdtemp(prefix="fashionlens-grade-"))
        try:
            views = {}
            for role, b in data.items():
                views[role] = folder / f"{role}{_EXT.get(formats[role], '.img')}"
                views[role].write_bytes(b)
            with state.metrics.model_timer("grade"):
                record, _ = grader.grade(ItemInput(iid, views), precision=target, keep_uncertain=keep)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        for view in record.get("views") or []:
            if view.get("role") in names:
                view["path"] = names[view["role"]]
        return record

    record = await state.queue.run(job)
    store_uploads(settings.storage_dir, "grade", {f"{iid}-{role}-{names[role]}": b for role, b in data.items()})
    return JSONResponse(record)


def _precision(text: str) -> float | None:
    """``?precision=``: a number in (0, 1] or ``off``; else a 422 problem naming the parameter."""
    from fashionlens.service.settings import SettingsError, parse_precision

    try:
        return parse_precision(text, "precision")
    except SettingsError as exc:
        raise ApiProblem("invalid_request", str(exc), extra={"errors": [
            {"field": "query.precision", "message": str(exc), "type": "value_error"}]}) from None
