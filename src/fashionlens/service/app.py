"""The fashionlens HTTP API: :func:`create_app` builds a FastAPI app from :class:`ServiceSettings`.

Layout ("bigger applications"): one router per capability in :mod:`fashionlens.service.routers`,
models loaded once per worker (:class:`~fashionlens.service.models.ServiceModels`, started by the
lifespan handler in a background thread so ``/healthz`` answers at once and ``/readyz`` says when
they are loaded), every error a problem document (:mod:`~fashionlens.service.problems`), limits in
:mod:`~fashionlens.service.limits`. No page loads anything from a CDN: the interactive docs pages
are off; ``/openapi.json`` is served. Web pages, when added, are static files mounted at ``/app``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from fashionlens import __version__
from fashionlens.service.deps import ServiceState, require_api_key
from fashionlens.service.limits import BodyLimitMiddleware, WorkQueue
from fashionlens.service.metrics import MetricsMiddleware, ServiceMetrics
from fashionlens.service.models import ServiceModels
from fashionlens.service.problems import install_problem_handlers
from fashionlens.service.routers import (
    corrections,
    crops,
    features,
    grade,
    health,
    metrics,
    pages,
    review,
    search,
    tag,
    taxonomy,
    trends,
)
from fashionlens.service.settings import ServiceSettings

log = logging.getLogger(__name__)

__all__ = ["create_app", "create_app_from_env"]

DESCRIPTION = """Tag photos of clothes, grade second-hand items, search a garment catalogue and read
attribute trends. Errors are RFC 9457 problem documents (`application/problem+json`) with a stable
`code`. With API keys configured, every route except `/healthz` and `/readyz` needs one
(`X-API-Key: <key>` or `Authorization: Bearer <key>`)."""


def create_app(settings: ServiceSettings | None = None, *, models: ServiceModels | None = None,
               review_db: str | os.PathLike[str] | None = None) -> FastAPI:
    """The service app. ``models``: already built (tests inject small ones); default: built from
    ``settings`` and loaded at start-up (when ``settings.preload``). ``review_db``: the review store
    behind ``/review`` and ``/v1/review`` (off when None)."""
    settings = settings if settings is not None else ServiceSettings()
    if review_db is not None:
        settings = dataclasses.replace(settings, review_db=Path(review_db))
    owns_models = models is None  # injected models belong to the caller: not closed at shutdown
    models = models if models is not None else ServiceModels(settings)
    state = ServiceState(settings=settings, models=models, metrics=ServiceMetrics(),
                         queue=WorkQueue(concurrency=settings.concurrency, queue_size=settings.queue_size,
                                         timeout_s=settings.request_timeout_s, retry_after_s=settings.retry_after_s))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.preload and not models.ready:
            threading.Thread(target=_load_quietly, args=(models,), name="fashionlens-load", daemon=True).start()
        try:
            yield
        finally:
            state.queue.shutdown()
            if owns_models:
                models.close()

    app = FastAPI(title="fashionlens", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.state.service = state
    app.state.review_db = settings.review_db
    install_problem_handlers(app)
    protected = [Depends(require_api_key)]
    app.include_router(health.router)
    app.include_router(metrics.router, dependencies=protected)
    for module in (tag, grade, search, trends):
        app.include_router(module.router, dependencies=protected)
    for module in (crops, corrections, taxonomy, features):  # the web app's API (issue 7, part 3)
        app.include_router(module.router, dependencies=protected)
    app.include_router(review.router, dependencies=protected)  # the review queue (issue 25)
    app.include_router(review.page_router)
    app.include_router(pages.router)  # HTML pages: no key needed to load them; their API calls send it
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    if settings.static_dir is not None:
        app.mount("/app", StaticFiles(directory=settings.static_dir, html=True), name="app")
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)  # outermost: counts every answer
    return app


def _load_quietly(models: ServiceModels) -> None:
    try:
        models.load()
    except Exception as exc:  # noqa: BLE001 - load() logged the traceback; /readyz reports it
        log.error("the service is not ready: %s", exc)


def create_app_from_env() -> FastAPI:
    """The app with :meth:`ServiceSettings.from_env` (uvicorn's factory for every worker)."""
    return create_app(ServiceSettings.from_env())
