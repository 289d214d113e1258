"""``POST /v1/tag``: photos (multipart ``images``, repeatable) → ``fashionlens/result/v1`` records.

Options mirror ``fashionlens tag``: ``whole_image``, ``score_thresh``, ``nms_thresh``, ``rules``,
``embed``. Each record is what the CLI writes for that photo; ``image.path`` is the uploaded file's
name. A photo that is refused (too large, not an image, too many pixels) fails the request with its
problem code, naming the field.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from fashionlens.detection.detector import DetectSettings
from fashionlens.detection.rules import RULES
from fashionlens.service.deps import BODY_RESPONSES, PROBLEM_RESPONSES, Problem, ServiceState, get_state
from fashionlens.service.limits import decode_upload, read_upload
from fashionlens.service.problems import PROBLEM_MEDIA_TYPE, ApiProblem
from fashionlens.service.uploads import display_name, store_uploads
from fashionlens.jobs.local import DETECT_MIN_SIDE

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


class TagResponse(BaseModel):
    """``results``: one ``fashionlens/result/v1`` record per photo, in upload order."""

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


@router.post("/tag", summary="tag photos: garments, categories, attributes, colours",
             response_model=TagResponse, responses=IMAGE_RESPONSES)
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
    files = [(display_name(up.filename, f"image-{i}"),
              await read_upload(up, field=f"images[{i}]", max_bytes=settings.max_upload_bytes))
             for i, up in enumerate(images)]

    def job() -> list[dict[str, Any]]:
        tagger = state.models.tagger_for(whole_image=whole_image, detect=detect, embed=embed)
        min_side = tagger.input_size if whole_image else DETECT_MIN_SIDE
        decoded, decode_ms = [], []
        for i, (_, data) in enumerate(files):
            t0 = time.perf_counter()
            decoded.append(decode_upload(data, field=f"images[{i}]", max_pixels=settings.max_pixels,
                                         max_bytes=settings.max_upload_bytes, min_side=min_side))
            decode_ms.append((time.perf_counter() - t0) * 1000)
        with state.metrics.model_timer("tag"):
            results = tagger.tag(decoded, [name for name, _ in files], decode_ms)
        return [r.to_json() for r in results]  # the response body, built in the worker (masks → RLE)

    records = await state.queue.run(job)
    store_uploads(settings.storage_dir, "tag", {f"{i}-{name}": data for i, (name, data) in enumerate(files)})
    return JSONResponse({"results": records})
