"""Errors as RFC 9457 problem details (``application/problem+json``) with stable machine ``code``\\ s.

Every error the service answers has ``type`` (``urn:fashionlens:problem:<code>``), ``title``,
``status``, ``detail`` (what was expected and what came), ``code`` and ``instance`` (the request
path); validation errors add ``errors``. A failure the service did not foresee is logged with its
traceback on the server and answered as ``internal_error`` — never with a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fashionlens.imageio import ImageDecodeError

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:fashionlens:problem:"

#: code → (HTTP status, title). Codes are stable: clients may branch on them.
PROBLEM_CODES: dict[str, tuple[int, str]] = {
    "bad_request": (400, "Request body could not be parsed"),
    "unauthorized": (401, "API key required"),
    "forbidden": (403, "API key not accepted"),
    "not_found": (404, "Not found"),
    "not_configured": (404, "Feature not configured on this server"),
    "method_not_allowed": (405, "Method not allowed"),
    "request_too_large": (413, "Request body too large"),
    "upload_too_large": (413, "Photo too large"),
    "too_many_pixels": (413, "Photo has too many pixels"),
    "too_many_files": (413, "Too many photos"),
    "unsupported_media_type": (415, "Not a supported image"),
    "image_unreadable": (422, "Image could not be decoded"),
    "invalid_request": (422, "Invalid request"),
    "invalid_filter": (422, "Invalid search filter"),
    "overloaded": (503, "Server busy"),
    "not_ready": (503, "Models not loaded yet"),
    "timeout": (504, "Request timed out"),
    "internal_error": (500, "Internal error"),
}

#: image decoding codes (fashionlens.imageio) → problem codes
DECODE_PROBLEMS: dict[str, str] = {
    "too_large_file": "upload_too_large",
    "too_many_pixels": "too_many_pixels",
    "not_an_image": "unsupported_media_type",
    "unsupported_format": "unsupported_media_type",
    "empty_file": "image_unreadable",
    "truncated": "image_unreadable",
    "decode_failed": "image_unreadable",
    "not_found": "image_unreadable",
}

_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 413: "request_too_large", 415: "unsupported_media_type",
                 422: "invalid_request", 503: "overloaded", 504: "timeout"}


def code_for_status(status: int) -> str:
    """The problem code of an error answered without one (a bare HTTP status): its generic code,
    never a number (``fashionlens_errors_total`` labels stay codes of :data:`PROBLEM_CODES`)."""
    return _STATUS_CODES.get(status, "bad_request" if status < 500 else "internal_error")


class ApiProblem(Exception):
    """Raise to answer with a problem document; ``code`` is a key of :data:`PROBLEM_CODES`."""

    def __init__(self, code: str, detail: str, *, headers: Mapping[str, str] | None = None,
                 extra: Mapping[str, Any] | None = None) -> None:
        if code not in PROBLEM_CODES:
            raise ValueError(f"expected a problem code in {sorted(PROBLEM_CODES)}; got {code!r}")
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = PROBLEM_CODES[code][0]
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def decode_problem(exc: ImageDecodeError, field: str) -> ApiProblem:
    """The problem for an upload that :func:`fashionlens.imageio.load_image` refused."""
    return ApiProblem(DECODE_PROBLEMS.get(exc.code, "image_unreadable"), f"{field}: {exc.message}",
                      extra={"image_error": exc.code, "field": field})


def problem_body(code: str, detail: str, *, instance: str | None = None, status: int | None = None,
                 extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    default_status, title = PROBLEM_CODES[code]
    body: dict[str, Any] = {"type": TYPE_PREFIX + code, "title": title, "status": status or default_status,
                            "detail": detail, "code": code}
    if instance is not None:
        body["instance"] = instance
    body.update(extra or {})
    return body


def problem_response(code: str, detail: str, *, instance: str | None = None,
                     headers: Mapping[str, str] | None = None, extra: Mapping[str, Any] | None = None,
                     status: int | None = None) -> JSONResponse:
    body = problem_body(code, detail, instance=instance, extra=extra, status=status)
    return JSONResponse(body, status_code=body["status"], headers=dict(headers or {}), media_type=PROBLEM_MEDIA_TYPE)


def _validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ())]
        out.append({"field": ".".join(loc), "message": str(e.get("msg", "")), "type": str(e.get("type", ""))})
    return out


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as a problem document."""

    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        request.state.problem_code = exc.code
        return problem_response(exc.code, exc.detail, instance=request.url.path, headers=exc.headers, extra=exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc.errors())
        fields = ", ".join(e["field"] for e in errors[:5]) or "the request"
        request.state.problem_code = "invalid_request"
        return problem_response("invalid_request", f"expected valid values for {fields}; "
                                + "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]),
                                instance=request.url.path, extra={"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = code_for_status(exc.status_code)
        detail = exc.detail if isinstance(exc.detail, str) else PROBLEM_CODES[code][1]
        if exc.status_code == 400:
            detail = ("expected a well-formed request body (multipart/form-data with a boundary, each part "
                      f"named, form fields up to 1 MiB); got one that could not be parsed: {detail}")
        elif exc.status_code == 404:
            detail = f"expected one of the documented paths (see /openapi.json); got {request.url.path}"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        request.state.problem_code = code
        return problem_response(code, detail, instance=request.url.path, headers=getattr(exc, "headers", None),
                                status=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        request.state.problem_code = "internal_error"
        return problem_response("internal_error", "the server failed to answer this request; the failure is logged",
                                instance=request.url.path)
