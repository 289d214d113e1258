"""The review page (``GET /review``) and its API under ``/v1/review`` (issue 25, part 4).

The store is the :class:`~fashionlens.review.store.ReviewStore` at ``app.state.review_db`` (``create_app(...,
review_db=...)``; ``FASHIONLENS_REVIEW_DB`` for ``fashionlens serve``), opened on first use; without one every
route answers 404 ``not_configured``. Each answer is saved in its own transaction when its request arrives
(the page retries answers it could not send). A store locked by another writer answers 503 ``overloaded``
with ``Retry-After`` (the page retries); one that cannot be used (damaged, not a review store, newer schema)
answers 404 ``not_configured`` with the reason, and nothing is written to it.

Routes: ``GET next`` (the task to review now + queue counts), ``GET stats``, ``GET tasks/{id}``,
``GET tasks/{id}/photo``, ``POST tasks/{id}/answers`` (one field), ``POST tasks/{id}/accept``,
``POST tasks/{id}/skip``, ``GET tasks/{id}/audit``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, Response
from PIL import Image
from pydantic import BaseModel, Field

from fashionlens.review.errors import (
    ReviewStoreError,
    StoreLockedError,
    UnknownTaskError,
)
from fashionlens.review.fields import field_vocabulary
from fashionlens.review.store import ReviewStore, Task
from fashionlens.service.deps import PROBLEM_RESPONSES, Problem, ServiceState, get_state
from fashionlens.service.problems import PROBLEM_MEDIA_TYPE, ApiProblem
from fashionlens.service.routers.pages import PAGE_HEADERS, STATIC_DIR

router = APIRouter(prefix="/v1/review", tags=["review"])
page_router = APIRouter(include_in_schema=False)

T = TypeVar("T")
FieldValue = str | list[str] | None

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    404: {"description": "no review store configured / usable, or no such task", "model": Problem,
          "content": {PROBLEM_MEDIA_TYPE: {}}},
}


# ------------------------------------------------------------------------------------------------ models


class ReviewCandidate(BaseModel):
    id: str
    score: float | None = None


class ReviewField(BaseModel):
    """One field of the garment/item: the model's value and candidates, and the answer given so far."""

    name: str
    value: FieldValue = Field(description="the model's sure value; null when it is unsure")
    score: float | None
    uncertain: bool
    multi: bool = Field(description="several values may be chosen (colours)")
    needs_review: bool
    candidates: list[ReviewCandidate] = Field(description="the model's best values, best first")
    choices: list[str] = Field(description="what the reviewer may pick: the candidates first, then the vocabulary")
    answered: bool
    answer: FieldValue = None


class ReviewTask(BaseModel):
    id: int
    kind: str = Field(description="'garment' (of a tag result) or 'item' (of a grade record)")
    status: str
    photo_url: str | None
    width: int | None
    height: int | None
    bbox: list[float] | None = Field(description="[x, y, w, h] in photo pixels")
    mask: dict[str, Any] | None = Field(description="COCO RLE of the garment's mask")
    object_type: str | None
    item_id: str | None
    uncertainty: float
    source: str
    line: int
    index: int
    fields: list[ReviewField]


class ReviewStats(BaseModel):
    pending: int
    accepted: int
    corrected: int
    skipped: int
    total: int
    answers: int


class ReviewNext(BaseModel):
    task: ReviewTask | None = Field(description="the garment/item to review now; null when the queue is empty")
    stats: ReviewStats


class ReviewAnswerIn(BaseModel):
    field: str = Field(min_length=1, max_length=100)
    value: FieldValue = Field(description="a value name, a list of them (multi-valued fields), or null: "
                              "none of these / cannot tell")
    reviewer: str | None = Field(default=None, max_length=100)


class ReviewAnswer(BaseModel):
    task_id: int
    field: str
    value: FieldValue
    saved_at: str


class ReviewFinishIn(BaseModel):
    reviewer: str | None = Field(default=None, max_length=100)


class ReviewFinish(BaseModel):
    task_id: int
    status: str


class ReviewAuditEntry(BaseModel):
    id: int
    task_id: int
    action: str
    field: str | None
    old: Any
    new: Any
    reviewer: str | None
    at: str


class ReviewAudit(BaseModel):
    entries: list[ReviewAuditEntry]


# ------------------------------------------------------------------------------------------------ store


def _store(request: Request, state: Annotated[ServiceState, Depends(get_state)]) -> ReviewStore:
    path = getattr(request.app.state, "review_db", None)
    if path is None:
        raise ApiProblem("not_configured", "expected a review store configured on the server "
                         "(`fashionlens serve --review-db FILE` or FASHIONLENS_REVIEW_DB); none is")
    with state.cache_lock:
        store = getattr(request.app.state, "review_store", None)
        if store is None:
            store = _call(lambda: ReviewStore(path, create=True))
            request.app.state.review_store = store
    return store


def _call(fn: Callable[[], T]) -> T:
    """Run a store call; its errors become problem documents."""
    try:
        return fn()
    except UnknownTaskError as exc:
        raise ApiProblem("not_found", str(exc)) from None
    except StoreLockedError as exc:
        raise ApiProblem("overloaded", str(exc), headers={"Retry-After": "1"}) from None
    except ReviewStoreError as exc:
        raise ApiProblem("not_configured", f"expected a usable review store; {exc}") from None
    except ValueError as exc:
        raise ApiProblem("invalid_request", str(exc)) from None


Store = Annotated[ReviewStore, Depends(_store)]
TaskId = Annotated[int, PathParam(ge=1, le=2**62, description="the task's id")]


def _task_out(task: Task) -> ReviewTask:
    fields = []
    for f in task.fields:
        candidates = [c.id for c in f.candidates]
        choices = list(dict.fromkeys(candidates + field_vocabulary(f.name, task.object_type)))
        fields.append(ReviewField(name=f.name, value=f.value, score=f.score, uncertain=f.uncertain, multi=f.multi,
                               needs_review=f.needs_review,
                               candidates=[ReviewCandidate(id=c.id, score=c.score) for c in f.candidates],
                               choices=choices, answered=f.name in task.answers, answer=task.answers.get(f.name)))
    return ReviewTask(id=task.id, kind=task.kind, status=task.status,
                   photo_url=f"/v1/review/tasks/{task.id}/photo" if task.photo or task.photo_roles else None,
                   width=task.width,
                   height=task.height, bbox=task.bbox, mask=task.mask, object_type=task.object_type,
                   item_id=task.item_id, uncertainty=task.uncertainty, source=task.source, line=task.line,
                   index=task.index, fields=fields)


# ------------------------------------------------------------------------------------------------ routes


@router.get("/next", summary="the garment/item to review now, and the queue's counts", response_model=ReviewNext,
            responses=_RESPONSES)
def next_task(store: Store, after: Annotated[int | None, Query(ge=1, le=2**62, description="the next one after this task "
                                                                 "(leave one without answering)")] = None) -> ReviewNext:
    task = _call(lambda: store.next_task(after=after))
    return ReviewNext(task=None if task is None else _task_out(task), stats=ReviewStats(**_call(store.stats)))


@router.get("/stats", summary="queued garments/items per status", response_model=ReviewStats, responses=_RESPONSES)
def stats(store: Store) -> ReviewStats:
    return ReviewStats(**_call(store.stats))


@router.get("/tasks/{task_id}", summary="one queued garment/item", response_model=ReviewTask, responses=_RESPONSES)
def get_task(store: Store, task_id: TaskId) -> ReviewTask:
    return _task_out(_call(lambda: store.task(task_id)))


@router.get("/tasks/{task_id}/photo", summary="the photo of a queued garment/item", response_class=FileResponse,
            responses=_RESPONSES)
def get_photo(store: Store, task_id: TaskId) -> Response:
    task = _call(lambda: store.task(task_id))
    if task.photo_roles:  # a sorting-station correction: its photo is kept in the store
        data, fmt = _call(lambda: store.photo(task_id)) or (b"", "")
        return Response(data, media_type=Image.MIME.get(fmt.upper(), "application/octet-stream"))
    if not task.photo or not Path(task.photo).is_file():
        raise ApiProblem("not_found", f"task {task_id}: expected its photo at {task.photo!r}; the file is not there")
    return FileResponse(task.photo)


@router.post("/tasks/{task_id}/answers", summary="save one answer (now, in its own transaction)",
             response_model=ReviewAnswer, responses=_RESPONSES)
def post_answer(store: Store, task_id: TaskId, body: ReviewAnswerIn) -> ReviewAnswer:
    saved_at = _call(lambda: store.answer(task_id, body.field, body.value, reviewer=_who(body.reviewer)))
    return ReviewAnswer(task_id=task_id, field=body.field, value=store.task(task_id).answers.get(body.field),
                     saved_at=saved_at)


@router.post("/tasks/{task_id}/accept", summary="accept the garment/item as answered (sure fields confirmed)",
             response_model=ReviewFinish, responses=_RESPONSES)
def accept(store: Store, task_id: TaskId, body: ReviewFinishIn | None = None) -> ReviewFinish:
    status = _call(lambda: store.finish(task_id, "accept", reviewer=_who(body.reviewer if body else None)))
    return ReviewFinish(task_id=task_id, status=status)


@router.post("/tasks/{task_id}/skip", summary="skip the garment/item (left out of the export)",
             response_model=ReviewFinish, responses=_RESPONSES)
def skip(store: Store, task_id: TaskId, body: ReviewFinishIn | None = None) -> ReviewFinish:
    status = _call(lambda: store.finish(task_id, "skip", reviewer=_who(body.reviewer if body else None)))
    return ReviewFinish(task_id=task_id, status=status)


@router.get("/tasks/{task_id}/audit", summary="every change to a task, oldest first", response_model=ReviewAudit,
            responses=_RESPONSES)
def audit(store: Store, task_id: TaskId) -> ReviewAudit:
    _call(lambda: store.task(task_id))
    rows = _call(lambda: store.audit(task_id))
    return ReviewAudit(entries=[ReviewAuditEntry(**r.__dict__) for r in rows])


def _who(reviewer: str | None) -> str | None:
    return (reviewer or "").strip() or None


@page_router.get("/review", response_class=HTMLResponse)
async def review_page() -> HTMLResponse:
    return HTMLResponse((STATIC_DIR / "review.html").read_text("utf-8"), headers=PAGE_HEADERS)


def record_station_correction(app: Any, item: dict[str, Any], corrections: dict[str, Any], *, reference: int,
                              sorter: str | None, images: dict[str, bytes]) -> int | None:
    """Put a sorting-station correction into the review store too (when one is configured): the same labels
    then reach ``review export`` and the retraining. ``images``: role → the uploaded bytes (already checked
    by the service's limits). Returns the review task's id, or None without a review store."""
    path = getattr(app.state, "review_db", None)
    if path is None:
        return None
    store = getattr(app.state, "review_store", None) or ReviewStore(path, create=True)
    app.state.review_store = store
    photos: dict[str, tuple[bytes, str]] = {}
    for role, data in images.items():
        with Image.open(io.BytesIO(data)) as im:
            photos[role] = (data, str(im.format or "JPEG"))
    return store.add_station_correction(item, corrections, reference=reference, sorter=sorter, photos=photos)
