"""``GET /v1/search/crops/{garment_id}``: the thumbnail (JPEG) of one indexed garment — its photo as
stored in the index, cropped to the garment's box — for the catalogue search page.

The photo is read from the path the index holds (relative paths: relative to the server's working
folder). When it cannot be read from this server the answer is 404 ``not_found``, and the page shows
the path and labels instead of a picture; nothing is made up.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from fastapi.responses import Response

from fashionlens.service.deps import PROBLEM_RESPONSES, Problem, ServiceState, get_state
from fashionlens.service.problems import PROBLEM_MEDIA_TYPE, ApiProblem

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/search", tags=["search"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    200: {"description": "a JPEG thumbnail", "content": {"image/jpeg": {}}},
    404: {"description": "no index, no such garment, or its photo is not readable here", "model": Problem,
          "content": {PROBLEM_MEDIA_TYPE: {}}}}


def garment_thumbnail(path: str | Path, xyxy: Any, size: int) -> bytes:
    """JPEG bytes of the photo at ``path`` cropped to ``xyxy`` (original pixels; None = whole photo),
    fitted into ``size × size``. Raises ``ImageDecodeError``/``OSError`` when it cannot be read."""
    from PIL import Image, ImageOps

    from fashionlens.imageio import load_image

    decoded = load_image(Path(path), min_side=size if xyxy is None else None)
    image = Image.fromarray(decoded.rgb)
    if xyxy is not None:
        x0, y0, x1, y1 = (float(v) * decoded.scale for v in xyxy)
        box = (max(0, int(x0)), max(0, int(y0)), min(image.width, round(x1)), min(image.height, round(y1)))
        if box[2] - box[0] >= 1 and box[3] - box[1] >= 1:
            image = image.crop(box)
    image = ImageOps.contain(image, (size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


@router.get("/crops/{garment_id}", summary="thumbnail of one indexed garment (its photo cropped to its box)",
            response_class=Response, responses=_RESPONSES)
async def crop(
    garment_id: Annotated[int, PathParam(ge=0, le=2**62, description="the garment's id (a search hit's `id`)")],
    state: Annotated[ServiceState, Depends(get_state)],
    size: Annotated[int, Query(ge=32, le=512, description="longest side of the thumbnail in pixels")] = 256,
) -> Any:
    searcher = state.require_searcher()

    def job() -> bytes:
        from fashionlens.imageio import ImageDecodeError

        meta = searcher.index.get([garment_id]).get(garment_id)
        if meta is None:
            raise ApiProblem("not_found", f"expected the id of a garment in the index; got {garment_id}")
        try:
            return garment_thumbnail(meta.path, meta.xyxy, size)
        except (ImageDecodeError, OSError) as exc:
            log.info("crop of garment %d: %s is not readable here: %s", garment_id, meta.path, exc)
            raise ApiProblem("not_found", f"expected the indexed photo of garment {garment_id} to be readable by "
                             f"this server; {meta.path!r} is not ({getattr(exc, 'code', type(exc).__name__)})"
                             ) from None

    data = await state.queue.run(job)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})
