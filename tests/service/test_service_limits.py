"""Limits, errors and auth: 413/415/422 on uploads, 401/403 with keys, 503 + Retry-After when the
queue is full, 504 on timeout, 500 without a stack trace, settings validation."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from typing import Any, ClassVar

import numpy as np
import pytest
from PIL import Image
from service_testing import make_client, png_bytes

from fashionlens.result import Garments, TagResult
from fashionlens.service.limits import WorkQueue
from fashionlens.service.problems import ApiProblem
from fashionlens.service.settings import ServiceSettings, SettingsError, parse_trends


def _tag(c: Any, data: bytes, name: str = "x.png", **params: Any) -> Any:
    return c.post("/v1/tag", params={"whole_image": "true", **params}, files=[("images", (name, data, "image/png"))])


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (5000, 5000)).save(buf, format="PNG")  # 25 Mpx that compress to a few KB
    return buf.getvalue()


@pytest.mark.parametrize(("data", "settings", "status", "code"), [
    (b"GIF89a-but-not-really" * 3, {}, 422, "image_unreadable"),             # GIF magic, broken header
    (b"\x00\x00\x00\x18ftypheic" + bytes(40), {}, 415, "unsupported_media_type"),  # HEIC
    (b"just some text, named .png", {}, 415, "unsupported_media_type"),
    (b"", {}, 422, "image_unreadable"),
    (png_bytes()[:60], {}, 422, "image_unreadable"),                         # truncated
    (png_bytes(), {"max_upload_bytes": 100, "max_request_bytes": 10_000}, 413, "upload_too_large"),
    (_bomb(), {"max_pixels": 1_000_000}, 413, "too_many_pixels"),
    (png_bytes(), {"max_upload_bytes": 100, "max_request_bytes": 200}, 413, "request_too_large"),
])
def test_upload_limits_and_content_checks(service_data: dict, data: bytes, settings: dict, status: int,
                                          code: str) -> None:
    with make_client(service_data, **settings) as c:
        r = _tag(c, data)
    body = r.json()
    assert r.status_code == status and body["code"] == code, body
    assert r.headers["content-type"].startswith("application/problem+json")
    assert body["status"] == status and body["type"].endswith(code) and body["detail"]
    assert "Traceback" not in r.text


def test_too_many_files(service_data: dict) -> None:
    with make_client(service_data, max_files=2) as c:
        r = c.post("/v1/tag", params={"whole_image": "true"},
                   files=[("images", (f"{i}.png", png_bytes(), "image/png")) for i in range(3)])
    assert r.status_code == 413 and r.json()["code"] == "too_many_files"


@pytest.mark.parametrize(("params", "field"), [
    ({"score_thresh": 1.5}, "score_thresh"), ({"nms_thresh": -0.1}, "nms_thresh"),
    ({"rules": "duplicates,nope"}, "rules"), ({"whole_image": "maybe"}, "whole_image"),
])
def test_bad_options_are_422_naming_the_field(client: Any, params: dict, field: str) -> None:
    r = client.post("/v1/tag", params=params, files=[("images", ("a.png", png_bytes(), "image/png"))])
    assert r.status_code == 422 and r.json()["code"] == "invalid_request" and field in r.json()["detail"]


def test_tag_without_images_is_422(client: Any) -> None:
    r = client.post("/v1/tag")
    assert r.status_code == 422 and r.json()["errors"][0]["field"].endswith("images")


def test_streamed_body_over_limit_is_413(service_data: dict) -> None:
    def chunks():
        for _ in range(50):
            yield b"x" * 1000

    with make_client(service_data, max_upload_bytes=1000, max_request_bytes=5000) as c:
        r = c.post("/v1/tag", content=chunks(), headers={"content-type": "multipart/form-data; boundary=abc"})
    assert r.status_code == 413 and r.json()["code"] == "request_too_large"


KEYS = ("key-one-12345", "key-two-67890")


@pytest.mark.parametrize(("headers", "status", "code"), [
    ({}, 401, "unauthorized"),
    ({"X-API-Key": "wrong-key-000"}, 403, "forbidden"),
    ({"Authorization": "Bearer wrong-key-000"}, 403, "forbidden"),
    ({"X-API-Key": KEYS[1]}, 200, None),
    ({"Authorization": f"Bearer {KEYS[0]}"}, 200, None),
])
def test_auth_on_protects_every_route_but_health(service_data: dict, headers: dict, status: int,
                                                 code: str | None) -> None:
    with make_client(service_data, api_keys=KEYS) as c:
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
        answers = [c.post(
                       "/v1/tag", params={"whole_image": "true"}, headers=headers,
                       files=[("images", ("a.png", png_bytes(), "image/png"))]),
                   c.get("/v1/trends", headers=headers), c.get("/metrics", headers=headers),
                   c.post("/v1/search", data={"text": "red"}, headers=headers)]
    for r in answers:
        assert r.status_code == status, (r.request.url, r.text)
        if code:
            assert r.json()["code"] == code
    if status == 401:
        assert answers[0].headers["www-authenticate"] == "Bearer"


def test_auth_off_by_default(client: Any) -> None:
    assert client.get("/v1/trends").status_code == 200


class _BlockingTagger:
    """Whole-image 'tagger' whose calls wait for an event (fills the work queue on purpose)."""

    detector = None
    embed = False
    input_size = 32
    model_info: ClassVar[dict[str, str]] = {"name": "blocking"}

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def variant(self, **_: Any) -> _BlockingTagger:  # ServiceModels.tagger_for: the same blocking tagger
        return self

    def tag(self, images: list, paths: list, decode_ms: Any = None) -> list[TagResult]:
        self.calls += 1
        self.release.wait(10)
        return [TagResult(path=p, width=1, height=1, model=self.model_info, mode="whole_image",
                          garments=Garments.empty()) for p in paths]


def _blocking_client(service_data: dict, **settings: Any) -> tuple[Any, _BlockingTagger]:
    blocker = _BlockingTagger()
    saved = service_data["tagger"]
    service_data["tagger"] = blocker
    try:
        client = make_client(service_data, **settings)
    finally:
        service_data["tagger"] = saved
    return client, blocker


def test_queue_full_answers_503_with_retry_after_and_loses_nothing(service_data: dict) -> None:
    client, blocker = _blocking_client(service_data, concurrency=1, queue_size=1, retry_after_s=2)
    results: list[Any] = []
    with client as c:
        threads = [threading.Thread(target=lambda: results.append(_tag(c, png_bytes()))) for _ in range(2)]
        for t in threads:
            t.start()
        deadline = time.time() + 5
        while c.app.state.service.queue.in_flight < 2 and time.time() < deadline:
            time.sleep(0.01)
        shed = _tag(c, png_bytes())
        blocker.release.set()
        for t in threads:
            t.join(10)
        assert shed.status_code == 503 and shed.json()["code"] == "overloaded"
        assert shed.headers["retry-after"] == "2"
        assert sorted(r.status_code for r in results) == [200, 200] and blocker.calls == 2
        assert c.app.state.service.queue.in_flight == 0
        assert 'fashionlens_errors_total{code="overloaded",route="/v1/tag"} 1.0' in c.get("/metrics").text


def test_timeout_answers_504_and_keeps_the_slot(service_data: dict) -> None:
    client, blocker = _blocking_client(service_data, concurrency=1, queue_size=0, request_timeout_s=0.3)
    with client as c:
        r = _tag(c, png_bytes())
        assert r.status_code == 504 and r.json()["code"] == "timeout"
        assert c.app.state.service.queue.in_flight == 1  # still running: its slot is not given away
        assert _tag(c, png_bytes()).status_code == 503
        blocker.release.set()
        deadline = time.time() + 5
        while c.app.state.service.queue.in_flight and time.time() < deadline:
            time.sleep(0.01)
        assert c.app.state.service.queue.in_flight == 0


def test_unexpected_error_is_500_problem_without_trace(service_data: dict) -> None:
    class Broken(_BlockingTagger):
        def tag(self, *a: Any, **k: Any) -> list[TagResult]:
            raise RuntimeError("secret internal detail /etc/passwd")

    saved = service_data["tagger"]
    service_data["tagger"] = Broken()
    try:
        with make_client(service_data, raise_server_exceptions=False) as c:
            r = _tag(c, png_bytes())
    finally:
        service_data["tagger"] = saved
    assert r.status_code == 500 and r.json()["code"] == "internal_error"
    assert "secret" not in r.text and "Traceback" not in r.text


def test_not_ready_until_models_load(service_data: dict) -> None:
    from fastapi.testclient import TestClient

    from fashionlens.service import create_app
    from fashionlens.service.models import ServiceModels

    settings = ServiceSettings(preload=False)
    with TestClient(create_app(settings, models=ServiceModels(settings))) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["code"] == "not_ready" and "retry-after" in r.headers
        r = _tag(c, png_bytes())
        assert r.status_code == 503 and r.json()["code"] == "not_ready"
        assert c.get("/healthz").status_code == 200


def test_storage_off_keeps_nothing_and_on_keeps_uploads(service_data: dict, tmp_path: Any) -> None:
    with make_client(service_data) as c:
        assert _tag(c, png_bytes(), "a.png").status_code == 200
    store = tmp_path / "store"
    with make_client(service_data, storage_dir=store) as c:
        assert _tag(c, png_bytes(), "kept.png").status_code == 200
    kept = list(store.rglob("*.png"))
    assert len(kept) == 1 and kept[0].name == "0-kept.png" and kept[0].parts[-4] == "tag"


def test_cors_off_by_default_and_on_when_configured(service_data: dict) -> None:
    pre = {"Origin": "http://shop.example", "Access-Control-Request-Method": "POST"}
    with make_client(service_data) as c:
        assert "access-control-allow-origin" not in c.options("/v1/tag", headers=pre).headers
    with make_client(service_data, cors_origins=("http://shop.example",)) as c:
        r = c.options("/v1/tag", headers=pre)
        assert r.headers["access-control-allow-origin"] == "http://shop.example"


def test_work_queue_counts_and_rejects() -> None:
    async def main() -> None:
        q = WorkQueue(concurrency=1, queue_size=0, timeout_s=5)
        ev = threading.Event()
        first = asyncio.ensure_future(q.run(ev.wait, 5))
        await asyncio.sleep(0.05)
        with pytest.raises(ApiProblem) as err:
            await q.run(lambda: 1)
        assert err.value.code == "overloaded" and err.value.headers["Retry-After"] == "1"
        ev.set()
        assert await first is True
        await asyncio.sleep(0.01)
        assert q.in_flight == 0 and q.rejected == 1 and await q.run(lambda: 7) == 7
        q.shutdown()

    asyncio.run(main())


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"max_pixels": 0}, "max_pixels"), ({"queue_size": -1}, "queue_size"),
    ({"request_timeout_s": 0}, "request_timeout_s"), ({"api_keys": ("short",)}, "api_keys"),
    ({"max_upload_bytes": 10, "max_request_bytes": 5}, "max_request_bytes"),
    ({"trends": {"bad name": ("a.csv",)}}, "trends"),
])
def test_settings_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        ServiceSettings(**kwargs)


def test_settings_from_env_and_back(tmp_path: Any) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("# comment\nfile-key-123456\n\n")
    env = {"FASHIONLENS_API_KEYS": "env-key-123456, other-key-1234", "FASHIONLENS_API_KEYS_FILE": str(keys),
           "FASHIONLENS_MAX_PIXELS": "1000000", "FASHIONLENS_TIMEOUT": "2.5",
           "FASHIONLENS_TRENDS": "a=x.csv,y.csv;b=z.jsonl", "FASHIONLENS_INDEX": str(tmp_path)}
    s = ServiceSettings.from_env(env)
    assert s.api_keys == ("env-key-123456", "other-key-1234", "file-key-123456") and s.auth_enabled
    assert s.max_pixels == 1_000_000 and s.request_timeout_s == 2.5 and s.index_dir == tmp_path
    assert {k: [p.name for p in v] for k, v in s.trends.items()} == {"a": ["x.csv", "y.csv"], "b": ["z.jsonl"]}
    assert ServiceSettings.from_env(s.to_env()) == s
    assert "env-key" not in repr(s)
    assert ServiceSettings.from_env({}) == ServiceSettings() and not ServiceSettings().auth_enabled
    with pytest.raises(SettingsError, match="FASHIONLENS_MAX_PIXELS"):
        ServiceSettings.from_env({"FASHIONLENS_MAX_PIXELS": "lots"})
    with pytest.raises(SettingsError, match="NAME=PATH"):
        parse_trends("noequals")
    with pytest.raises(SettingsError, match="unknown setting"):
        ServiceSettings.from_env({}, max_pixel=3)


def test_decoding_decides_the_type_not_the_name(client: Any) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(buf, format="BMP")
    r = _tag(client, buf.getvalue(), name="photo.jpg")  # a BMP named .jpg, sent as image/png: fine
    assert r.status_code == 200 and r.json()["results"][0]["image"]["width"] == 30


@pytest.mark.parametrize("data", [b"x", b"BM", b"\x00\x01\x02"])
def test_tiny_inputs_are_422_not_500(client: Any, data: bytes) -> None:
    # found by the fuzz run: 1–3 byte uploads reach Pillow's format probes, which raise struct.error
    r = _tag(client, data)
    assert r.status_code in (415, 422) and r.json()["code"] in ("image_unreadable", "unsupported_media_type")
