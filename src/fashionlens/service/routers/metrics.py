"""``GET /metrics``: Prometheus text format (this worker's counters)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from fashionlens.service.deps import PROBLEM_RESPONSES, ServiceState, get_state
from fashionlens.service.metrics import CONTENT_TYPE_LATEST

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics: requests, latencies, model time, errors",
            response_class=Response, responses={**PROBLEM_RESPONSES,
                                                200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                                                      "description": "Prometheus text exposition format"}})
async def metrics(state: Annotated[ServiceState, Depends(get_state)]) -> Response:
    state.metrics.in_flight.set(state.queue.in_flight)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
