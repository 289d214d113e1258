"""The committed OpenAPI document is the app's, and a bounded schemathesis fuzz run answers no 5xx."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings

from fashionlens.service.openapi import openapi_schema, openapi_text

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_committed_openapi_is_current() -> None:
    assert COMMITTED.is_file(), f"{COMMITTED} is missing: fashionlens serve --write-openapi docs/openapi.json"
    committed = json.loads(COMMITTED.read_text("utf-8"))
    assert committed == openapi_schema(), ("docs/openapi.json is stale; regenerate it with "
                                           "`fashionlens serve --write-openapi docs/openapi.json`")
    assert COMMITTED.read_text("utf-8") == openapi_text()


def test_schema_lists_versioned_routes_and_problem_responses() -> None:
    paths = openapi_schema()["paths"]
    assert {"/v1/tag", "/v1/grade", "/v1/search", "/v1/corrections", "/v1/search/crops/{garment_id}", "/v1/taxonomy",
            "/v1/features", "/v1/trends", "/v1/trends/{dataset}/series",
            "/v1/trends/{dataset}/report", "/v1/trends/{dataset}/outlook", "/healthz", "/readyz", "/metrics",
            "/v1/review/next", "/v1/review/stats", "/v1/review/tasks/{task_id}", "/v1/review/tasks/{task_id}/accept",
            "/v1/review/tasks/{task_id}/answers", "/v1/review/tasks/{task_id}/audit",
            "/v1/review/tasks/{task_id}/photo", "/v1/review/tasks/{task_id}/skip", "/v1/station/present"} == set(paths)
    tag = paths["/v1/tag"]["post"]
    assert {"401", "403", "413", "415", "422", "503"} <= set(tag["responses"])
    assert "application/problem+json" in tag["responses"]["415"]["content"]


#: examples per operation: 24 operations × 8 stays well under a minute on a 2-core machine
FUZZ_EXAMPLES = 8


def test_fuzz_no_server_errors(service_data: dict[str, Any]) -> None:
    """Bounded property-based run over every operation: no 5xx (503 only for a full queue), every
    error a problem document without a traceback."""
    from service_testing import make_client

    client = make_client(service_data, raise_server_exceptions=False, request_timeout_s=20.0)
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    seen: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            response = case.call()
            key = f"{case.method} {case.path}"
            seen[key] = seen.get(key, 0) + 1
            assert response.status_code < 500, (key, response.status_code, response.text[:300])
            if response.status_code >= 400:
                ct = response.headers.get("content-type") or response.headers.get("Content-Type")
                ct = ct[0] if isinstance(ct, list) else ct
                assert str(ct).startswith("application/problem+json"), (key, ct)
                assert "Traceback" not in response.text

        check()
    assert len(seen) == 24 and all(n >= 1 for n in seen.values()), seen
