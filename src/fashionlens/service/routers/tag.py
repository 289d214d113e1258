"""``POST /v1/tag``: photos (multipart ``images``, repeatable) → ``fashionlens/result/v1`` records.

Options mirror ``fashionlens tag``: ``whole_image``, ``score_thresh``, ``nms_thresh``, ``rules``,
``embed``. Each record is what the CLI writes for that photo; ``image.path`` is the uploaded file's
name. Like the CLI, the route answers per photo: a photo that is refused (not an image, truncated,
empty, too large, too many pixels) gets the error record ``fashionlens tag`` writes for the same
bytes (``error: {type, message}``, ``garments: []``) and the others are tagged. Only when every
photo is refused does the request fail, with the first photo's problem (413/415/422) and
``errors[]`` naming each photo. Limits that protect the service stay request-level: the body size
(413 ``request_too_large``) and the number of photos (413 ``too_many_files``).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from fashionlens.detection.detector import DetectSettings
from fashionlens.detection.rules import RULES
from fashionlens.imageio import DecodedImage
from fashionlens.jobs.local import DETECT_MIN_SIDE
from fashionlens.result import TagError, TagResult
from fashionlens.service.deps import (
    BODY_RESPONSES,
    PROBLEM_RESPONSES,
    Problem,
    ServiceState,
    get_state,
)
from fashionlens.service.limits import decode_photo, read_photo, upload_problem
from fashionlens.service.problems import PROBLEM_MEDIA_TYPE, ApiProblem
from fashionlens.service.uploads import display_name, store_uploads

router = APIRouter(prefix="/v1", tags=["tag"])

IMAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **BODY_RESPONSES,
    **PROBLEM_RESPONSES,
    413: {"description": "photo or request too large, too many pixels or photos", "model": Problem,
          "content": {PROBLEM_MEDIA_TYPE: {}}},
    415: {"description": "an upload is not a supported image (decided by decoding)", "model": Problem,
          "content": {PROBLEM_MEDIA_TYPE: {}}},
    504: {"description": "not answered within the request timeout", "model": Problem,
          "content": {PROBLEM_MEDIA_TYPE: {}}},
}

#: ``/v1/tag`` answers per photo: its 413/415/422 for photos only when every photo is refused
TAG_RESPONSES: dict[int | str, dict[str, Any]] = {
    **IMAGE_RESPONSES,
    413: {"description": "request body too large (`request_too_large`) or too many photos (`too_many_files`); "
                         "or every photo refused, the first for its size (`upload_too_large`, `too_many_pixels`)",
          "model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}},
    415: {"description": "every photo refused, the first as not a supported image (decided by decoding); "
                         "`errors[]` names each photo's refusal", "model": Problem,
          "content": {PROBLEM_MEDIA_TYPE: {}}},
    422: {"description": "invalid option or field; or every photo refused, the first as unreadable "
                         "(`image_unreadable`: empty, truncated, broken)", "model": Problem,
          "content": {PROBLEM_MEDIA_TYPE: {}}},
}


class TagResponse(BaseModel):
    """``results``: one ``fashionlens/result/v1`` record per photo, in upload order. A photo that was
    refused has the record ``fashionlens tag`` writes for it: ``error: {type, message}`` (``type``
    one of ``not_an_image``, ``unsupported_format``, ``empty_file``, ``truncated``,
    ``decode_failed``, ``too_many_pixels``, ``too_large_file``; ``inference_failed`` when the
    models failed on that photo alone), ``mode`` and ``image.width``/``height`` null, ``garments``
    empty."""

    results: list[dict[str, Any]]


def parse_rules(rules: str | None) -> tuple[str, ...]:
    names = tuple(r.strip() for r in (rules or "").split(",") if r.strip())
    unknown = [r for r in names if r not in RULES]
    if unknown:
        raise ApiProblem("invalid_request", f"rules: expected names from {sorted(RULES)}; got {unknown}",
                         extra={"errors": [{"field": "query.rules", "message": f"unknown rule(s) {unknown}",
                                            "type": "value_error"}]})
    return names


def check_files(n: int, state: ServiceState) -> None:
    if n > state.settings.max_files:
        raise ApiProblem("too_many_files", f"expected at most {state.settings.max_files} photos per request; "
                         f"got {n}")


TAG_DESCRIPTION = """One record per photo, in upload order, as `fashionlens tag` writes them. A photo that is
refused (not an image, truncated, empty, over the photo size or pixel limit) gets its error record
(`error: {type, message}`, the same as `fashionlens tag` writes for the same bytes) and the other
photos are still tagged: the answer is 200. Only when **every** photo is refused is the answer the
first photo's problem (413 `upload_too_large`/`too_many_pixels`, 415 `unsupported_media_type`, 422
`image_unreadable`), with `errors[]` (`field`, `type`, `message`) for each photo. The request limits
stay request-level: a body over the size limit (413 `request_too_large`), more photos than allowed
(413 `too_many_files`)."""


@router.post("/tag", summary="tag photos: garments, categories, attributes, colours", description=TAG_DESCRIPTION,
             response_model=TagResponse, responses=TAG_RESPONSES)
async def tag(
    images: Annotated[list[UploadFile], File(description="one or more photos (JPEG, PNG, WebP, BMP, TIFF, GIF)")],
    state: Annotated[ServiceState, Depends(get_state)],
    whole_image: Annotated[bool, Query(description="each photo is one garment: no detection")] = False,
    score_thresh: Annotated[float | None, Query(ge=0.0, le=1.0, description="keep detections scoring at least this")
                            ] = None,
    nms_thresh: Annotated[float | None, Query(ge=0.0, le=1.0, description="IoU for same-type suppression")] = None,
    rules: Annotated[str | None, Query(max_length=200, description="post-processing rules, comma-separated: "
                                       + ", ".join(sorted(RULES)))] = None,
    embed: Annotated[bool, Query(description="include each garment's embedding (float16, base64)")] = False,
) -> Any:
    state.require_ready()
    settings = state.settings
    detect = None if whole_image else DetectSettings(score_thresh=score_thresh, nms_thresh=nms_thresh,
                                                     rules=parse_rules(rules))
    check_files(len(images), state)
    names = [display_name(up.filename, f"image-{i}") for i, up in enumerate(images)]
    uploads = [await read_photo(up, max_bytes=settings.max_upload_bytes) for up in images]

    def job() -> list[dict[str, Any]]:
        tagger = state.models.tagger_for(whole_image=whole_image, detect=detect, embed=embed)
        min_side = tagger.input_size if whole_image else DETECT_MIN_SIDE
        decoded: list[DecodedImage | Exception] = []
        decode_ms: list[float] = []
        for data in uploads:
            t0 = time.perf_counter()
            decoded.append(data if isinstance(data, Exception) else
                           decode_photo(data, max_pixels=settings.max_pixels, max_bytes=settings.max_upload_bytes,
                                        min_side=min_side))
            decode_ms.append((time.perf_counter() - t0) * 1000)
        ok = [i for i, d in enumerate(decoded) if isinstance(d, DecodedImage)]
        if not ok:
            raise all_refused(decoded, max_bytes=settings.max_upload_bytes)
        with state.metrics.model_timer("tag"):
            tagged = dict(zip(ok, tagger.tag([decoded[i] for i in ok], [names[i] for i in ok],
                                             [decode_ms[i] for i in ok])))
        results = [tagged[i] if i in tagged else TagResult.failed(names[i], decoded[i], model=tagger.model_info)
                   for i in range(len(decoded))]
        return [r.to_json() for r in results]  # the response body, built in the worker (masks → RLE)

    records = await state.queue.run(job)
    for rec in records:
        if rec["error"] is not None:
            state.metrics.photo_errors.labels(route="/v1/tag", type=rec["error"]["type"]).inc()
    store_uploads(settings.storage_dir, "tag", {f"{i}-{name}": data for i, (name, data) in enumerate(zip(names, uploads))
                                                if isinstance(data, bytes)})
    return JSONResponse({"results": records})


def all_refused(refusals: list[Any], *, max_bytes: int) -> ApiProblem:
    """Every photo was refused: the first one's problem, with ``errors[]`` naming each photo's refusal
    (``type`` and ``message`` as in its error record)."""
    problem = upload_problem(refusals[0], "images[0]", max_bytes=max_bytes)
    errors = []
    for i, exc in enumerate(refusals):
        err = TagError.from_exception(exc)  # what the photo's error record says (TagResult.failed)
        errors.append({"field": f"images[{i}]", "type": err.type, "message": err.message})
    if len(refusals) > 1:
        problem.detail = f"expected at least one usable photo; all {len(refusals)} were refused (see errors); " \
                         + problem.detail
    problem.extra["errors"] = errors
    return problem
