"""Prometheus metrics of one service process (its own registry, so apps never share counters).

``fashionlens_requests_total{method,route,status}``, ``fashionlens_request_seconds{route}``
(histogram), ``fashionlens_model_seconds{task}`` (histogram of time inside the models),
``fashionlens_errors_total{route,code}`` (error answers by route and problem code),
``fashionlens_photo_errors_total{route,type}`` (photos answered with an error record inside a 200,
e.g. one unreadable photo among several on ``/v1/tag``), ``fashionlens_queue_in_flight`` (gauge).

``route`` is the route's path template (``/v1/trends/{dataset}/series``) — also for answers given
before routing (a body over the size limit is counted under the route it was sent to) — or
``unmatched`` when no route has the path; never the raw path, so the label set stays bounded.
``code`` is always the problem's stable code (the ``<code>`` of ``urn:fashionlens:problem:<code>``),
never an HTTP status number: the code a handler recorded, else the ``code`` of the problem
document answered, else the code of the status (:func:`~fashionlens.service.problems.code_for_status`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from re import Pattern
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fashionlens.service.problems import (
    PROBLEM_CODES,
    PROBLEM_MEDIA_TYPE,
    code_for_status,
)

__all__ = ["CONTENT_TYPE_LATEST", "MetricsMiddleware", "ServiceMetrics"]

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 2.0, 5.0, 10.0, 30.0)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("fashionlens_requests", "HTTP requests answered", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("fashionlens_request_seconds", "Time to answer a request", ["route"],
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.model_time = Histogram("fashionlens_model_seconds", "Time spent in model inference", ["task"],
                                    buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.errors = Counter("fashionlens_errors", "Error answers by route and problem code", ["route", "code"],
                              registry=self.registry)
        self.photo_errors = Counter("fashionlens_photo_errors", "Photos answered with an error record (the request "
                                    "itself succeeded), by route and error type", ["route", "type"],
                                    registry=self.registry)
        self.in_flight = Gauge("fashionlens_queue_in_flight", "Model jobs running or waiting", registry=self.registry)

    @contextmanager
    def model_timer(self, task: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.model_time.labels(task=task).observe(time.perf_counter() - t0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


#: the most bytes of an error body read to find its problem code (problem documents are small)
_MAX_PROBLEM_BODY = 64 * 1024


def route_table(routes: Sequence[Any]) -> list[tuple[Pattern[str], frozenset[str] | None, str]]:
    """``(path regex, methods or None, template)`` of every route and mount, nested routers included
    (in routing order)."""
    table: list[tuple[Pattern[str], frozenset[str] | None, str]] = []
    for route in routes:
        regex, path = getattr(route, "path_regex", None), getattr(route, "path", None)
        if regex is not None and isinstance(path, str):
            methods = getattr(route, "methods", None)
            table.append((regex, frozenset(methods) if methods else None, path or "/"))
        elif (nested := getattr(route, "original_router", None) or getattr(route, "router", None)) is not None:
            table += route_table(getattr(nested, "routes", ()))  # an included router
        elif isinstance(getattr(route, "routes", None), list):
            table += route_table(route.routes)
    return table


def match_template(table: Sequence[tuple[Pattern[str], frozenset[str] | None, str]], method: str,
                   path: str) -> str | None:
    """The template of the route that takes ``method path``; one with the path but another method
    (its 405) when none does; ``None`` when no route has the path."""
    partial = None
    for regex, methods, template in table:
        if regex.match(path):
            if methods is None or method in methods or (method == "HEAD" and "GET" in methods):
                return template
            partial = partial or template
    return partial


class MetricsMiddleware:
    """Count and time every HTTP request; count error answers by route and problem code."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._table: list[tuple[Pattern[str], frozenset[str] | None, str]] | None = None

    def route_template(self, scope: Scope, root_path: str = "") -> str:
        """The path template of the route that answered, else the one whose path and method match
        (an answer given before routing, e.g. the body limit's 413, or a mount), else ``unmatched``."""
        route = scope.get("route")
        if getattr(route, "path", None):
            return str(route.path)
        if self._table is None:
            self._table = route_table(getattr(scope.get("app"), "routes", ()))
        path = scope.get("path", "")
        if root_path and path.startswith(root_path):  # the server's root path (a mount changes scope's)
            path = path[len(root_path):] or "/"
        return match_template(self._table, scope.get("method", ""), path) or "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        root_path = scope.get("root_path", "")
        status = 500
        problem_body: list[bytes] | None = None  # the body of a problem answer, to read its code

        async def send_wrapper(message: Message) -> None:
            nonlocal status, problem_body
            if message["type"] == "http.response.start":
                status = int(message["status"])
                content_type = dict(message.get("headers") or []).get(b"content-type", b"")
                if status >= 400 and content_type.startswith(PROBLEM_MEDIA_TYPE.encode()):
                    problem_body = []
            elif (message["type"] == "http.response.body" and problem_body is not None
                  and sum(map(len, problem_body)) < _MAX_PROBLEM_BODY):
                problem_body.append(bytes(message.get("body", b"")))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            template = self.route_template(scope, root_path)
            self.metrics.requests.labels(method=scope.get("method", ""), route=template, status=str(status)).inc()
            self.metrics.latency.labels(route=template).observe(time.perf_counter() - t0)
            if status >= 400:
                code = (scope.get("state") or {}).get("problem_code") or _body_code(problem_body)
                self.metrics.errors.labels(route=template, code=code or code_for_status(status)).inc()


def _body_code(chunks: list[bytes] | None) -> str | None:
    """The ``code`` of a problem document answered (only codes of :data:`PROBLEM_CODES`: bounded labels)."""
    if not chunks:
        return None
    try:
        code = json.loads(b"".join(chunks)).get("code")
    except (ValueError, AttributeError):
        return None
    return code if code in PROBLEM_CODES else None
