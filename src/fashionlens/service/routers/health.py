"""``GET /healthz`` (the process answers) and ``GET /readyz`` (models loaded). No auth."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from fashionlens import __version__
from fashionlens.service.deps import Problem, ServiceState, get_state
from fashionlens.service.problems import PROBLEM_MEDIA_TYPE, problem_response

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="liveness: the process answers")
async def healthz() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get("/readyz", summary="readiness: every configured model and dataset is loaded",
            responses={503: {"description": "still loading, or loading failed", "model": Problem,
                             "content": {PROBLEM_MEDIA_TYPE: {}}}})
async def readyz(state: Annotated[ServiceState, Depends(get_state)]) -> Any:
    status = state.models.status()
    if not state.models.ready:
        return problem_response("not_ready", "expected every configured model to be loaded; "
                                + (f"loading failed: {state.models.error}" if state.models.error else "still loading"),
                                instance="/readyz", headers={"Retry-After": str(state.settings.retry_after_s)},
                                extra={"models": status})
    return JSONResponse({"status": "ready", "models": status})
