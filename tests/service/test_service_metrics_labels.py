"""``/metrics`` labels (issue 27, item 5): every error answer is counted under the route it was sent
to — a 413 of the body limit too, answered before routing — and under its stable problem code
(never an HTTP status number): 413, 415, 422, 503, plus 404/405/500."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from service_testing import make_client, png_bytes

from fashionlens.service.problems import PROBLEM_CODES

_ERROR_LINE = re.compile(r'^fashionlens_errors_total\{code="([^"]*)",route="([^"]*)"\} (\S+)$', re.MULTILINE)


def _errors(metrics: str) -> dict[tuple[str, str], float]:
    """``(route, code) → count`` of ``fashionlens_errors_total``; every label set has exactly these two."""
    lines = [line for line in metrics.splitlines() if line.startswith("fashionlens_errors_total{")]
    found = {(route, code): float(n) for code, route, n in _ERROR_LINE.findall(metrics)}
    assert len(found) == len(lines), lines
    return found


def _tag(c: Any, data: bytes, **params: Any) -> Any:
    return c.post("/v1/tag", params={"whole_image": "true", **params}, files=[("images", ("x.png", data, "image/png"))])


def test_errors_are_counted_by_route_and_problem_code(service_data: dict[str, Any]) -> None:
    with make_client(service_data, max_upload_bytes=1000, max_request_bytes=5000) as c:
        # 413 from the body limit, before routing: Content-Length over the limit, and a streamed body
        r = c.post("/v1/tag", content=b"x" * 6000, headers={"content-type": "multipart/form-data; boundary=abc"})
        assert r.status_code == 413 and r.json()["code"] == "request_too_large"
        r = c.post("/v1/tag", content=(b"x" * 1000 for _ in range(10)),
                   headers={"content-type": "multipart/form-data; boundary=abc"})
        assert r.status_code == 413 and r.json()["code"] == "request_too_large"
        r = c.post("/v1/grade", content=b"x" * 6000, headers={"content-type": "multipart/form-data; boundary=abc"})
        assert r.status_code == 413
        assert _tag(c, b"just text").status_code == 415                                   # 415
        assert _tag(c, png_bytes()[:60]).status_code == 422                               # 422 image_unreadable
        assert _tag(c, png_bytes(), score_thresh=2).status_code == 422                    # 422 invalid_request
        r = c.get("/v1/trends/synthetic/series", params={"period": "year"})               # 422 on a templated route
        assert r.status_code == 422
        assert c.get("/v1/trends/nope/series").status_code == 404                         # 404 of a route
        assert c.get("/no/such/path").status_code == 404                                  # 404 unmatched
        assert c.put("/v1/tag").status_code == 405                                        # 405
        metrics = c.get("/metrics").text
    errors = _errors(metrics)
    assert errors == {
        ("/v1/tag", "request_too_large"): 2.0,
        ("/v1/grade", "request_too_large"): 1.0,
        ("/v1/tag", "unsupported_media_type"): 1.0,
        ("/v1/tag", "image_unreadable"): 1.0,
        ("/v1/tag", "invalid_request"): 1.0,
        ("/v1/trends/{dataset}/series", "invalid_request"): 1.0,
        ("/v1/trends/{dataset}/series", "not_found"): 1.0,
        ("unmatched", "not_found"): 1.0,
        ("/v1/tag", "method_not_allowed"): 1.0,
    }, errors
    assert 'fashionlens_requests_total{method="POST",route="/v1/tag",status="413"} 2.0' in metrics
    assert "route=\"unmatched\",status=\"413\"" not in metrics


def test_503_is_counted_by_its_code_on_every_route(service_data: dict[str, Any]) -> None:
    """``/readyz`` answers its 503 itself (no exception handler): still ``not_ready``, not ``503``."""
    from fastapi.testclient import TestClient

    from fashionlens.service import ServiceSettings, create_app
    from fashionlens.service.models import ServiceModels

    settings = ServiceSettings(preload=False)
    with TestClient(create_app(settings, models=ServiceModels(settings))) as c:
        assert c.get("/readyz").status_code == 503
        assert _tag(c, png_bytes()).status_code == 503
        assert c.post("/v1/search", data={"text": "red"}).status_code == 503
        metrics = c.get("/metrics").text
    assert _errors(metrics) == {("/readyz", "not_ready"): 1.0, ("/v1/tag", "not_ready"): 1.0,
                                ("/v1/search", "not_ready"): 1.0}


def test_500_is_internal_error_under_its_route(service_data: dict[str, Any]) -> None:
    class Broken:
        detector = None
        embed = False
        input_size = 32
        model_info: ClassVar[dict[str, str]] = {"name": "broken"}

        def variant(self, **_: Any) -> Any:
            return self

        def tag(self, *a: Any, **k: Any) -> list[Any]:
            raise RuntimeError("boom")

    saved = service_data["tagger"]
    service_data["tagger"] = Broken()
    try:
        with make_client(service_data, raise_server_exceptions=False) as c:
            assert _tag(c, png_bytes()).status_code == 500
            metrics = c.get("/metrics").text
    finally:
        service_data["tagger"] = saved
    assert _errors(metrics) == {("/v1/tag", "internal_error"): 1.0}


def test_every_error_label_is_a_problem_code(service_data: dict[str, Any]) -> None:
    with make_client(service_data) as c:
        for path in ("/nope", "/v1/trends/x/report", "/static/missing.css"):
            c.get(path)
        c.post("/v1/tag")
        c.delete("/metrics")
        metrics = c.get("/metrics").text
    errors = _errors(metrics)
    assert errors and all(code in PROBLEM_CODES and not code.isdigit() for _, code in errors), errors
    assert ("/static", "not_found") in errors  # a mount is a route too
