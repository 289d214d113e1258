"""``GET /v1/features``: which optional capabilities this server has configured and loaded — so the
web pages can say plainly what is not available instead of showing made-up results."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from fashionlens.service.deps import PROBLEM_RESPONSES, ServiceState, get_state

router = APIRouter(prefix="/v1", tags=["health"])


def features_of(state: ServiceState) -> dict[str, Any]:
    models = state.models
    return {"ready": models.ready, "error": models.error,
            "grade": {"available": models.grader is not None, "missing_parts": list(models.grader_missing)},
            "search": {"available": models.searcher is not None},
            "trends": {"available": bool(models.trends or state.settings.trends),
                       "datasets": sorted(models.trends or state.settings.trends)},
            "corrections": {"available": state.settings.corrections_db is not None},
            "review": {"available": state.settings.review_db is not None},
            "auth": state.settings.auth_enabled}


@router.get("/features", summary="which optional capabilities (grading, search index, trends datasets, "
            "corrections store, review queue) this server has", responses=PROBLEM_RESPONSES)
async def features(state: Annotated[ServiceState, Depends(get_state)]) -> Any:
    return JSONResponse(features_of(state))
