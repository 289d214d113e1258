"""The ``/v1/review`` API and the ``/review`` page through FastAPI's TestClient (no models loaded: the review
routes need none)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from review_testing import (
    box_mask,
    garment,
    result_line,
    three_unsure_fields,
    write_jsonl,
    write_photo,
)

from fashionlens.review.queue import build_queue
from fashionlens.review.store import ReviewStore

pytest.importorskip("fastapi")
pytest.importorskip("httpx")


def make_client(review_db: Path | None, **settings: Any) -> Any:
    from fastapi.testclient import TestClient

    from fashionlens.service import ServiceSettings, create_app
    from fashionlens.service.models import ServiceModels

    s = ServiceSettings(preload=False, **settings)
    return TestClient(create_app(s, models=ServiceModels(s), review_db=review_db))


@pytest.fixture
def queued(tmp_path: Path) -> Path:
    photo = write_photo(tmp_path / "a.jpg")
    lines = [result_line(photo, [garment(mask=box_mask(96, 128, (24, 32, 48, 64)), attributes=three_unsure_fields()),
                                 garment(attributes={"fit": three_unsure_fields()["fit"]})])]
    db = tmp_path / "review.sqlite"
    build_queue(write_jsonl(tmp_path / "r.jsonl", lines), ReviewStore(db), diversity=0.0)
    return db


@pytest.fixture
def client(queued: Path) -> Iterator[Any]:
    with make_client(queued) as c:
        yield c


def test_next_task_answer_accept_and_audit(client: Any, queued: Path) -> None:
    body = client.get("/v1/review/next").json()
    assert body["stats"]["pending"] == 2
    task = body["task"]
    fields = {f["name"]: f for f in task["fields"]}
    assert fields["pattern"]["needs_review"] and fields["pattern"]["choices"][:3] == ["striped", "plain", "checked"]
    assert len(fields["pattern"]["choices"]) > 3  # then the rest of the pattern vocabulary
    assert task["mask"]["size"] == [128, 96] and task["bbox"] == [24.0, 32.0, 48.0, 64.0]

    r = client.post(f"/v1/review/tasks/{task['id']}/answers", json={"field": "pattern", "value": "plain",
                                                                    "reviewer": "anna"})
    assert r.status_code == 200 and r.json()["value"] == "plain"
    assert ReviewStore(queued).task(task["id"]).answers == {"pattern": "plain"}  # saved at once
    again = client.get(f"/v1/review/tasks/{task['id']}").json()
    assert {f["name"]: f["answer"] for f in again["fields"] if f["answered"]} == {"pattern": "plain"}

    r = client.post(f"/v1/review/tasks/{task['id']}/accept", json={"reviewer": "anna"})
    assert r.json() == {"task_id": task["id"], "status": "corrected"}
    audit = client.get(f"/v1/review/tasks/{task['id']}/audit").json()["entries"]
    assert [(e["action"], e["field"], e["old"], e["new"], e["reviewer"]) for e in audit[1:]] == [
        ("answer", "pattern", None, "plain", "anna"), ("accept", "status", "pending", "corrected", "anna")]
    following = client.get("/v1/review/next").json()
    assert following["task"]["id"] != task["id"] and following["stats"]["corrected"] == 1


def test_skip_and_next_after(client: Any) -> None:
    first = client.get("/v1/review/next").json()["task"]["id"]
    second = client.get("/v1/review/next", params={"after": first}).json()["task"]["id"]
    assert second != first
    assert client.post(f"/v1/review/tasks/{first}/skip").json()["status"] == "skipped"
    assert client.get("/v1/review/next").json()["task"]["id"] == second
    assert client.post(f"/v1/review/tasks/{second}/skip").status_code == 200
    assert client.get("/v1/review/next").json()["task"] is None


def test_photo_is_served(client: Any) -> None:
    task = client.get("/v1/review/next").json()["task"]
    r = client.get(task["photo_url"])
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"


def test_bad_answers_are_problem_documents(client: Any) -> None:
    tid = client.get("/v1/review/next").json()["task"]["id"]
    r = client.post(f"/v1/review/tasks/{tid}/answers", json={"field": "pattern", "value": "sparkly"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_request" and "sparkly" in r.json()["detail"]
    r = client.post(f"/v1/review/tasks/{tid}/answers", json={"field": "collar", "value": "x"})
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = client.post("/v1/review/tasks/999/answers", json={"field": "pattern", "value": "plain"})
    assert r.status_code == 404
    r = client.post(f"/v1/review/tasks/{tid}/answers", json={"value": "plain"})
    assert r.status_code == 422


def test_locked_store_answers_503_with_retry_after(client: Any, queued: Path) -> None:
    tid = client.get("/v1/review/next").json()["task"]["id"]
    client.app.state.review_store = ReviewStore(queued, busy_timeout_s=0.2)
    holder = sqlite3.connect(queued, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        r = client.post(f"/v1/review/tasks/{tid}/answers", json={"field": "pattern", "value": "plain"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and r.json()["code"] == "overloaded"
    r = client.post(f"/v1/review/tasks/{tid}/answers", json={"field": "pattern", "value": "plain"})
    assert r.status_code == 200  # the page's retry goes through once the lock is gone


def test_without_a_store_the_routes_say_not_configured(tmp_path: Path) -> None:
    with make_client(None) as c:
        r = c.get("/v1/review/next")
        assert r.status_code == 404 and r.json()["code"] == "not_configured"
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database" * 50)
    with make_client(bad) as c:
        r = c.get("/v1/review/next")
        assert r.status_code == 404 and "not one" in r.json()["detail"]


def test_page_and_api_key(queued: Path) -> None:
    with make_client(queued, api_keys=("secret-key-1",)) as c:
        page = c.get("/review")
        assert page.status_code == 200 and 'name="viewport"' in page.text and "review.js" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert c.get("/v1/review/next").status_code == 401
        assert c.get("/v1/review/next", headers={"X-API-Key": "secret-key-1"}).status_code == 200
        assert c.get("/static/review.js").status_code == 200


def test_routes_are_in_the_openapi_schema(client: Any) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/review/next", "/v1/review/tasks/{task_id}/answers", "/v1/review/tasks/{task_id}/accept"} <= set(paths)


def test_fuzz_review_routes_answer_no_server_errors(client: Any) -> None:
    """A bounded schemathesis run over the /v1/review operations with a store configured: no 5xx, every
    error a problem document."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    seen: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith("/v1/review"):
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, derandomize=True, database=None,
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

        check()
    assert len(seen) == 8, seen
