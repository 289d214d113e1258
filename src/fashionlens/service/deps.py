"""Shared request dependencies: the worker's service state and API-key auth."""

from __future__ import annotations

import hmac
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict

from fashionlens.service.limits import WorkQueue
from fashionlens.service.metrics import ServiceMetrics
from fashionlens.service.models import ServiceModels
from fashionlens.service.problems import PROBLEM_MEDIA_TYPE, ApiProblem
from fashionlens.service.settings import ServiceSettings

__all__ = ["BODY_RESPONSES", "PROBLEM_RESPONSES", "Problem", "ServiceState", "get_state", "require_api_key"]


@dataclass
class ServiceState:
    settings: ServiceSettings
    models: ServiceModels
    queue: WorkQueue
    metrics: ServiceMetrics
    cache: OrderedDict[tuple[Any, ...], Any] = field(default_factory=OrderedDict)  # computed answers (trends)
    cache_lock: threading.Lock = field(default_factory=threading.Lock)

    def require_ready(self) -> None:
        if not self.models.ready:
            raise ApiProblem("not_ready", "expected the models to be loaded; this worker is still loading them"
                             + (f" (last error: {self.models.error})" if self.models.error else ""),
                             headers={"Retry-After": str(self.settings.retry_after_s)})

    def require_searcher(self) -> Any:
        """The garment searcher, once the models are loaded; a ``not_configured`` problem without an index."""
        self.require_ready()
        if self.models.searcher is None:
            raise ApiProblem("not_configured", "expected a garment index configured on the server (FASHIONLENS_INDEX "
                             "or `fashionlens serve --index DIR`); none is")
        return self.models.searcher


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}}


#: OpenAPI entries for the problem responses every protected route can give
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _problem("API key missing (auth on)"), 403: _problem("API key not accepted"),
    422: _problem("invalid option or field"), 503: _problem("queue full (Retry-After) or models not loaded"),
}

#: OpenAPI entries for the routes that take a multipart body: it may not parse (``bad_request``)
BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem("the body could not be parsed: malformed multipart/form-data (no boundary, a broken part) "
                  "or a form field over 1 MiB"),
}


def get_state(request: Request) -> ServiceState:
    return request.app.state.service  # type: ignore[no-any-return]


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key (when auth is on)")
_bearer = HTTPBearer(auto_error=False, description="an API key as a bearer token (when auth is on)")


def _matches(given: str, keys: tuple[str, ...]) -> bool:
    """Constant-time comparison against every key (no early exit that would leak which one matched)."""
    found = False
    encoded = given.encode("utf-8")
    for key in keys:
        found |= hmac.compare_digest(encoded, key.encode("utf-8"))
    return found


async def require_api_key(state: Annotated[ServiceState, Depends(get_state)],
                          api_key: Annotated[str | None, Depends(_api_key_header)],
                          bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """401 without a key, 403 with a wrong one; nothing when auth is off (no keys configured)."""
    keys = state.settings.api_keys
    if not keys:
        return
    given = api_key or (bearer.credentials if bearer is not None else None)
    if not given:
        raise ApiProblem("unauthorized", "expected an API key in the X-API-Key header or as "
                         "'Authorization: Bearer <key>'; got none", headers={"WWW-Authenticate": "Bearer"})
    if not _matches(given, keys):
        raise ApiProblem("forbidden", "expected a valid API key; the one given is not accepted")
