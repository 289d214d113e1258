"""Prometheus metrics of one service process (its own registry, so apps never share counters).

``fashionlens_requests_total{method,route,status}``, ``fashionlens_request_seconds{route}``
(histogram), ``fashionlens_model_seconds{task}`` (histogram of time inside the models),
``fashionlens_errors_total{code}`` (problem codes answered), ``fashionlens_queue_in_flight``
(gauge). ``route`` is the route's path template (``/v1/trends/{dataset}/series``), or
``unmatched`` — never the raw path, so the label set stays bounded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
        self.errors = Counter("fashionlens_errors", "Problem responses by code", ["code"], registry=self.registry)
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


class MetricsMiddleware:
    """Count and time every HTTP request; count problem codes (set on ``scope['state']``)."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(method=scope.get("method", ""), route=template, status=str(status)).inc()
            self.metrics.latency.labels(route=template).observe(time.perf_counter() - t0)
            code = (scope.get("state") or {}).get("problem_code")
            if status >= 400:
                self.metrics.errors.labels(code=code or str(status)).inc()
