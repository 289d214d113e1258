"""Request limits: body size (before parsing), photo size and pixels (before decoding), a bounded
work queue that answers 503 + ``Retry-After`` when full, and a per-request timeout.

* :class:`BodyLimitMiddleware` refuses a body larger than ``max_request_bytes`` — from its
  ``Content-Length`` before reading, or while streaming when there is none — with 413.
* :func:`read_upload` reads at most ``max_upload_bytes + 1`` bytes of one uploaded photo.
* :func:`decode_upload` decodes bytes with :func:`fashionlens.imageio.load_image`, whose header
  checks (format from the bytes, never the name; ``max_pixels`` before any pixel is decoded) turn
  refusals into problems: 413 ``upload_too_large``/``too_many_pixels``, 415
  ``unsupported_media_type``, 422 ``image_unreadable``.
* :func:`read_photo` and :func:`decode_photo` do the same for one photo among several
  (``POST /v1/tag``) without failing the request: a refused photo comes back as the exception
  ``fashionlens tag`` would record for the same bytes (:func:`upload_problem` makes it a problem
  when every photo is refused).
* :class:`WorkQueue` runs model work in ``concurrency`` threads with at most ``queue_size`` more
  requests waiting; beyond that it raises 503 ``overloaded`` at once. A request waiting + running
  longer than the timeout gets 504 ``timeout``; work that has not started is cancelled, work that
  has keeps its slot until it ends (so the limit stays true).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from fastapi import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fashionlens.imageio import DecodedImage, ImageDecodeError, load_image
from fashionlens.service.problems import (
    PROBLEM_MEDIA_TYPE,
    ApiProblem,
    decode_problem,
    problem_body,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["BodyLimitMiddleware", "WorkQueue", "decode_photo", "decode_upload", "read_photo", "read_upload",
           "upload_problem"]


async def read_upload(upload: UploadFile, *, field: str, max_bytes: int) -> bytes:
    """The bytes of an uploaded photo; 413 ``upload_too_large`` past ``max_bytes``, 422 when empty."""
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ApiProblem("upload_too_large", f"{field}: expected at most {max_bytes:,} bytes; got more",
                         extra={"field": field, "limit_bytes": max_bytes})
    if not data:
        raise ApiProblem("image_unreadable", f"{field}: expected an image file; got an empty upload",
                         extra={"field": field, "image_error": "empty_file"})
    return data


def decode_upload(data: bytes, *, field: str, max_pixels: int, max_bytes: int,
                  min_side: int | None = None) -> DecodedImage:
    """Decode uploaded bytes (content type decided by decoding), refusals as :class:`ApiProblem`."""
    try:
        return load_image(data, max_pixels=max_pixels, max_bytes=max_bytes, min_side=min_side)
    except ImageDecodeError as exc:
        raise decode_problem(exc, field) from None
    except (ValueError, OSError, struct.error, EOFError, IndexError) as exc:
        # load_image should raise ImageDecodeError for every bad input; a few tiny inputs (e.g. 1-3
        # bytes) still reach Pillow's format probes, which raise struct.error: answer 422, not 500
        log.warning("%s: decoder failed outside ImageDecodeError: %s: %s", field, type(exc).__name__, exc)
        raise ApiProblem("image_unreadable", f"{field}: expected an image file; got {len(data):,} bytes that "
                         "could not be decoded", extra={"field": field, "image_error": "decode_failed"}) from None


async def read_photo(upload: UploadFile, *, max_bytes: int) -> bytes | ImageDecodeError:
    """The bytes of one photo among several, or ``too_large_file`` past ``max_bytes`` (at most
    ``max_bytes + 1`` bytes are read). An empty upload is returned as ``b""``: decoding refuses it
    (``empty_file``) as it refuses an empty file."""
    data = await upload.read(max_bytes + 1)
    if len(data) <= max_bytes:
        return data
    size = upload.size if upload.size is not None and upload.size > max_bytes else None
    got = f"{size:,} bytes" if size is not None else f"more than {max_bytes:,} bytes"
    return ImageDecodeError("too_large_file", f"expected at most {max_bytes:,} bytes; got {got}", "<upload>")


def decode_photo(data: bytes, *, max_pixels: int, max_bytes: int,
                 min_side: int | None = None) -> DecodedImage | Exception:
    """Decode one photo among several; a refusal is returned, not raised: the exception that
    ``fashionlens tag`` records for the same bytes (``ImageDecodeError``, or the ``ValueError`` /
    ``OSError`` a decoder raised), so the error record is the CLI's."""
    try:
        return load_image(data, max_pixels=max_pixels, max_bytes=max_bytes, min_side=min_side)
    except (ValueError, OSError) as exc:  # what jobs.local's decoding catches (ImageDecodeError is a ValueError)
        return exc
    except (struct.error, EOFError, IndexError) as exc:
        log.warning("decoder failed outside ImageDecodeError: %s: %s", type(exc).__name__, exc)
        return ImageDecodeError("decode_failed", f"expected an image file; got {len(data):,} bytes that could not "
                                "be decoded", "<upload>")


def upload_problem(exc: Exception, field: str, *, max_bytes: int) -> ApiProblem:
    """The problem for a photo that :func:`read_photo` / :func:`decode_photo` refused."""
    if isinstance(exc, ImageDecodeError):
        problem = decode_problem(exc, field)
        if problem.code == "upload_too_large":
            problem.extra["limit_bytes"] = max_bytes
        return problem
    return ApiProblem("image_unreadable", f"{field}: expected an image file; got one that could not be decoded "
                      f"({type(exc).__name__}: {exc})"[:500], extra={"field": field, "image_error": "decode_failed"})


class WorkQueue:
    """At most ``concurrency`` jobs running and ``queue_size`` waiting; more → 503 ``overloaded``."""

    def __init__(self, *, concurrency: int, queue_size: int, timeout_s: float, retry_after_s: int = 1) -> None:
        if concurrency < 1 or queue_size < 0 or timeout_s <= 0:
            raise ValueError(f"expected concurrency >= 1, queue_size >= 0, timeout_s > 0; got {concurrency}, "
                             f"{queue_size}, {timeout_s}")
        self.concurrency, self.queue_size = concurrency, queue_size
        self.timeout_s, self.retry_after_s = timeout_s, retry_after_s
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="fashionlens-work")
        self._lock = threading.Lock()
        self._admitted = 0
        self.rejected = 0
        self.timed_out = 0

    @property
    def capacity(self) -> int:
        return self.concurrency + self.queue_size

    @property
    def in_flight(self) -> int:
        """Jobs admitted and not finished (running + waiting)."""
        return self._admitted

    def _release(self, _: Future[Any]) -> None:
        with self._lock:
            self._admitted -= 1

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a worker thread and return its result (its exception propagates)."""
        with self._lock:
            if self._admitted >= self.capacity:
                self.rejected += 1
                full = True
            else:
                self._admitted += 1
                full = False
        if full:
            raise ApiProblem("overloaded", f"expected at most {self.capacity} requests in progress "
                             f"({self.concurrency} running + {self.queue_size} waiting); the queue is full, "
                             f"retry after {self.retry_after_s} s", headers={"Retry-After": str(self.retry_after_s)})
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            with self._lock:
                self._admitted -= 1
            raise
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self.timeout_s)
        except asyncio.TimeoutError:
            future.cancel()  # only succeeds when it has not started; a running job keeps its slot
            self.timed_out += 1
            raise ApiProblem("timeout", f"expected an answer within {self.timeout_s:g} s; the request took longer "
                             "(waiting for a free model slot included)") from None

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class BodyLimitMiddleware:
    """Refuse request bodies larger than ``max_bytes`` with 413 ``request_too_large``."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _detail(self, got: str) -> str:
        return f"expected a request body of at most {self.max_bytes:,} bytes; got {got}"

    async def _send_413(self, scope: Scope, send: Send, detail: str) -> None:
        import json

        body = json.dumps(problem_body("request_too_large", detail, instance=scope.get("path"))).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                n = -1
            if n > self.max_bytes:
                scope.setdefault("state", {})["problem_code"] = "request_too_large"
                await self._send_413(scope, send, self._detail(f"Content-Length {n:,}"))
                return
        seen = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    return {"type": "http.disconnect"}  # the app stops reading; we answer 413 below
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's answer to a cut-off body is replaced by the 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            scope.setdefault("state", {})["problem_code"] = "request_too_large"
            await self._send_413(scope, send, self._detail(f"more than {self.max_bytes:,} bytes (streamed)"))
