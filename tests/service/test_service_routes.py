"""Every route of the HTTP API with loaded models: tag (whole image with the shipped classifier,
detection with a tiny generated detector), grade, search (photo and text), trends, health, metrics."""

from __future__ import annotations

from typing import Any

import pytest
from service_testing import jpeg_bytes, png_bytes

from fashionlens.grading.item import ITEM_SCHEMA
from fashionlens.pipeline import RESULT_SCHEMA


def test_healthz_and_readyz(client: Any) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    r = client.get("/readyz")
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ready"
    assert body["models"]["search_index"] and body["models"]["trends"] == ["synthetic"]


def test_tag_whole_image_two_photos_in_order(client: Any) -> None:
    files = [("images", ("red.png", png_bytes(colour=(200, 30, 35)), "image/png")),
             ("images", ("../secret/dir/blue.jpg", jpeg_bytes(), "application/octet-stream"))]
    r = client.post("/v1/tag", params={"whole_image": "true"}, files=files)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [rec["schema"] for rec in results] == [RESULT_SCHEMA] * 2
    assert [rec["image"]["path"] for rec in results] == ["red.png", "blue.jpg"]  # names only, no folders
    assert results[0]["image"]["width"] == 64 and results[0]["mode"] == "whole_image"
    g = results[0]["garments"][0]
    assert {"object_type", "category", "attributes", "bbox"} <= set(g) and "embedding" not in g
    assert results[0]["error"] is None and "decode" in results[0]["timing_ms"]


def test_tag_embed_and_detection_options(client: Any) -> None:
    files = [("images", ("a.png", png_bytes(128, 128), "image/png"))]
    r = client.post("/v1/tag", params={"whole_image": "true", "embed": "true"}, files=files)
    assert r.status_code == 200 and "embedding" in r.json()["results"][0]["garments"][0]
    r = client.post("/v1/tag", files=files)
    rec = r.json()["results"][0]
    assert r.status_code == 200 and rec["mode"] == "detect" and rec["model"]["detector"] == "tiny-detector"
    assert rec["garments"] and all(g["object_type"] == "upper-body" for g in rec["garments"])
    # a threshold above every score: nothing detected → whole-image fallback (a second detector variant)
    r = client.post("/v1/tag", params={"score_thresh": 1.0, "rules": "duplicates"}, files=files)
    assert r.status_code == 200 and r.json()["results"][0]["mode"] == "whole_image_fallback"


def test_grade_item_record(client: Any) -> None:
    r = client.post("/v1/grade", params={"item_id": "item-1"},
                    files={"front": ("front.png", png_bytes(96, 128), "image/png"),
                           "back": ("back.jpg", jpeg_bytes(96, 128), "image/jpeg")})
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["schema"] == ITEM_SCHEMA and rec["item_id"] == "item-1" and rec["error"] is None
    assert [(v["role"], v["path"]) for v in rec["views"]] == [("front", "front.png"), ("back", "back.jpg")]
    assert rec["category"] is not None and rec["route"]["decision"] in {"reuse", "repair", "export", "recycle"}


def test_grade_without_garment_photo_is_422(client: Any) -> None:
    r = client.post("/v1/grade", files={"label": ("l.png", png_bytes(), "image/png")})
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"


def test_search_by_photo_and_text_with_filters(client: Any, service_data: dict[str, Any]) -> None:
    p0 = (service_data["photos"] / "p0.png").read_bytes()
    r = client.post("/v1/search", params={"k": 3, "whole_image": "true"}, files={"image": ("p0.png", p0, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    hits = body["hits"]
    assert len(hits) == 3 and hits[0]["path"].endswith("p0.png") and hits[0]["score"] == pytest.approx(1.0, abs=2e-3)
    assert body["query"]["path"] == "p0.png" and body["query"]["mode"] == "whole_image"
    cat = hits[0]["category"]
    r = client.post("/v1/search", params={"category": cat}, data={"text": "red striped sweater"})
    assert r.status_code == 200 and r.json()["filters"] == {"category": cat}
    assert all(h["category"] == cat for h in r.json()["hits"])
    r = client.post("/v1/search", params={"pattern": "no-such-pattern"}, data={"text": "boots"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_filter"  # not a silent empty answer


@pytest.mark.parametrize(("kwargs", "code"), [
    ({}, "invalid_request"),                                                             # neither
    ({"data": {"text": "red"}, "files": {"image": ("a.png", png_bytes(), "image/png")}}, "invalid_request"),  # both
    ({"data": {"text": "red"}, "params": {"colour_typo": "x", "size": "3"}}, None),     # unknown query fields ignored
])
def test_search_needs_exactly_one_query(client: Any, kwargs: dict, code: str | None) -> None:
    r = client.post("/v1/search", **kwargs)
    if code is None:
        assert r.status_code == 200
    else:
        assert r.status_code == 422 and r.json()["code"] == code


def test_search_without_index_is_not_configured(service_data: dict[str, Any]) -> None:
    from service_testing import make_client

    saved = service_data["searcher"]
    service_data["searcher"] = None
    try:
        with make_client(service_data) as c:
            r = c.post("/v1/search", data={"text": "red"})
    finally:
        service_data["searcher"] = saved
    assert r.status_code == 404 and r.json()["code"] == "not_configured"


def test_trends_datasets_series_report(client: Any) -> None:
    r = client.get("/v1/trends")
    [ds] = r.json()["datasets"]
    assert r.status_code == 200 and ds["name"] == "synthetic" and ds["posts"] == 2400
    r = client.get("/v1/trends/synthetic/series", params={"attribute": "pattern", "value": "striped"})
    assert r.status_code == 200
    [s] = r.json()["series"]
    shares = [p["share"] for p in s["points"]]
    assert s["attribute"] == "pattern" and len(shares) == 24
    assert sum(shares[-6:]) > sum(shares[:6])  # the generated data's rising 'striped'
    assert all(p["ci_low"] <= p["share"] <= p["ci_high"] for p in s["points"])
    r = client.get("/v1/trends/synthetic/report", params={"max_series": 2, "horizon": 3})
    rep = r.json()
    assert r.status_code == 200 and rep["posts"] == 2400 and len(rep["volume"]) == 24
    assert set(rep["events"]) == {"spikes", "shifts", "rising_falling"}
    assert len(rep["forecasts"]) == 2 * 3
    assert client.get("/v1/trends/synthetic/report", params={"max_series": 2, "horizon": 3}).json() == rep  # cached


@pytest.mark.parametrize(("path", "params", "status", "code"), [
    ("/v1/trends/nope/series", {}, 404, "not_found"),
    ("/v1/trends/synthetic/series", {"period": "year"}, 422, "invalid_request"),
    ("/v1/trends/synthetic/series", {"attribute": "nope"}, 422, "invalid_request"),
    ("/v1/trends/synthetic/report", {"horizon": 0}, 422, "invalid_request"),
    ("/v1/nothing-here", {}, 404, "not_found"),
])
def test_trends_and_unknown_paths_errors(client: Any, path: str, params: dict, status: int, code: str) -> None:
    r = client.get(path, params=params)
    assert r.status_code == status and r.json()["code"] == code
    assert r.headers["content-type"].startswith("application/problem+json")


def test_metrics_count_requests_errors_and_model_time(client: Any) -> None:
    client.post("/v1/tag", params={"whole_image": "true"}, files=[("images", ("a.png", png_bytes(), "image/png"))])
    client.post("/v1/tag", files=[("images", ("a.txt", b"hello, not an image", "image/png"))])
    r = client.get("/metrics")
    text = r.text
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert 'fashionlens_requests_total{method="POST",route="/v1/tag",status="200"} 1.0' in text
    assert 'fashionlens_errors_total{code="unsupported_media_type",route="/v1/tag"} 1.0' in text
    assert 'fashionlens_model_seconds_count{task="tag"} 1.0' in text
    assert 'fashionlens_request_seconds_bucket{le="0.01",route="/v1/tag"}' in text
