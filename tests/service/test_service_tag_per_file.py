"""``POST /v1/tag`` answers per photo, as ``fashionlens tag`` does (issue 27, item 5): one bad photo
among good ones gets its error record and the others are tagged (200); only when every photo is
refused is the answer a problem; the request limits (body size, number of photos) stay
request-level. The API's records are compared with the CLI's for the same bytes."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from service_testing import jpeg_bytes, make_client, png_bytes

from fashionlens.pipeline import RESULT_SCHEMA


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (1500, 1000)).save(buf, format="PNG")  # 1.5 Mpx in a few KB: over a 1 Mpx limit
    return buf.getvalue()


def _noise_png(side: int = 200) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()  # ~120 KB: incompressible


#: name → bytes: good photos and every kind of refusal `fashionlens tag` records (same bytes for both)
PHOTOS: dict[str, bytes] = {
    "red.png": png_bytes(colour=(200, 30, 35)),
    "notes.png": b"just some text, named .png",                      # not_an_image
    "blue.jpg": jpeg_bytes(),
    "phone.heic": b"\x00\x00\x00\x18ftypheic" + bytes(40),            # unsupported_format
    "empty.png": b"",                                                 # empty_file
    "cut.png": png_bytes(80, 60)[:60],                                # truncated
    "two-bytes.bmp": b"BM",                                           # decode_failed (1-3 byte inputs)
    "bomb.png": _bomb(),                                              # too_many_pixels (limit 1 Mpx)
    "green.png": png_bytes(colour=(50, 130, 60)),
}
GOOD = {"red.png", "blue.jpg", "green.png"}
MAX_PIXELS = 1_000_000


def _files(names: list[str], data: dict[str, bytes] = PHOTOS) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("images", (n, data[n], "image/png")) for n in names]


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A record without what may differ between two runs of the same photo: timing and its path."""
    out = dict(record)
    out.pop("timing_ms", None)
    out["image"] = {k: v for k, v in record["image"].items() if k != "path"}
    return out


def test_one_bad_photo_among_good_ones_gets_its_error_record(service_data: dict[str, Any]) -> None:
    names = list(PHOTOS)
    with make_client(service_data, max_pixels=MAX_PIXELS, max_files=len(PHOTOS)) as c:
        r = c.post("/v1/tag", params={"whole_image": "true"}, files=_files(names))
        metrics = c.get("/metrics").text
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [rec["image"]["path"] for rec in results] == names
    assert all(rec["schema"] == RESULT_SCHEMA for rec in results)
    by_name = {rec["image"]["path"]: rec for rec in results}
    for name in GOOD:
        rec = by_name[name]
        assert rec["error"] is None and rec["mode"] == "whole_image" and len(rec["garments"]) == 1, rec
    errors = {name: by_name[name]["error"]["type"] for name in PHOTOS if name not in GOOD}
    assert errors == {"notes.png": "not_an_image", "phone.heic": "unsupported_format", "empty.png": "empty_file",
                      "cut.png": "truncated", "two-bytes.bmp": "decode_failed", "bomb.png": "too_many_pixels"}
    for name in errors:
        rec = by_name[name]
        assert rec["garments"] == [] and rec["mode"] is None and rec["image"]["width"] is None
        assert rec["error"]["message"].startswith("expected"), rec["error"]  # says what was expected
    assert 'fashionlens_photo_errors_total{route="/v1/tag",type="truncated"} 1.0' in metrics
    assert 'fashionlens_requests_total{method="POST",route="/v1/tag",status="200"} 1.0' in metrics
    assert "fashionlens_errors_total{" not in metrics  # the request succeeded: no error answer


def test_a_photo_over_the_size_limit_is_a_record_too(service_data: dict[str, Any]) -> None:
    big = _noise_png()
    with make_client(service_data, max_upload_bytes=20_000, max_request_bytes=1_000_000) as c:
        r = c.post("/v1/tag", params={"whole_image": "true"},
                   files=[("images", ("big.png", big, "image/png")), ("images", ("ok.png", png_bytes(), "image/png"))])
    assert r.status_code == 200, r.text
    big_rec, ok_rec = r.json()["results"]
    assert big_rec["error"] == {"type": "too_large_file",
                                "message": f"expected at most 20,000 bytes; got {len(big):,} bytes"}
    assert ok_rec["error"] is None and ok_rec["garments"]


@pytest.mark.parametrize(("names", "status", "code"), [
    (["notes.png", "cut.png"], 415, "unsupported_media_type"),   # the first photo's problem
    (["cut.png", "notes.png"], 422, "image_unreadable"),
    (["empty.png"], 422, "image_unreadable"),
    (["bomb.png", "empty.png", "phone.heic"], 413, "too_many_pixels"),
])
def test_every_photo_refused_is_the_first_photos_problem(service_data: dict[str, Any], names: list[str], status: int,
                                                          code: str) -> None:
    with make_client(service_data, max_pixels=MAX_PIXELS, max_files=len(PHOTOS)) as c:
        r = c.post("/v1/tag", params={"whole_image": "true"}, files=_files(names))
        metrics = c.get("/metrics").text
    body = r.json()
    assert r.status_code == status and body["code"] == code, body
    assert r.headers["content-type"].startswith("application/problem+json")
    assert body["field"] == "images[0]"
    assert [e["field"] for e in body["errors"]] == [f"images[{i}]" for i in range(len(names))]
    assert all(e["type"] and e["message"].startswith("expected") for e in body["errors"])
    if len(names) > 1:
        assert f"all {len(names)} were refused" in body["detail"]
    assert f'fashionlens_errors_total{{code="{code}",route="/v1/tag"}} 1.0' in metrics


def test_every_photo_too_large_is_413_upload_too_large(service_data: dict[str, Any]) -> None:
    with make_client(service_data, max_upload_bytes=20_000, max_request_bytes=1_000_000) as c:
        r = c.post("/v1/tag", params={"whole_image": "true"}, files=[("images", ("big.png", _noise_png(), "image/png"))])
    body = r.json()
    assert r.status_code == 413 and body["code"] == "upload_too_large" and body["limit_bytes"] == 20_000
    assert body["errors"][0]["type"] == "too_large_file"


def test_request_limits_stay_request_level_with_good_photos(service_data: dict[str, Any]) -> None:
    good = _files(["red.png", "blue.jpg", "green.png"])
    with make_client(service_data, max_files=2) as c:
        r = c.post("/v1/tag", params={"whole_image": "true"}, files=good)
    assert r.status_code == 413 and r.json()["code"] == "too_many_files"
    with make_client(service_data, max_upload_bytes=1000, max_request_bytes=1500) as c:
        r = c.post("/v1/tag", params={"whole_image": "true"}, files=good + _files(["bomb.png"]))
    assert r.status_code == 413 and r.json()["code"] == "request_too_large"


@pytest.mark.parametrize("mode", ["whole_image", "detect"])
def test_api_and_cli_records_agree_on_good_and_bad_photos(service_data: dict[str, Any], tmp_path: Path,
                                                          mode: str) -> None:
    """The same photos through ``fashionlens tag`` and ``POST /v1/tag``: no contradiction, record by
    record (timing and the path/name aside)."""
    from fashionlens.cli.main import main

    folder = tmp_path / "photos"
    folder.mkdir()
    paths = []
    for name, data in PHOTOS.items():
        (folder / name).write_bytes(data)
        paths.append(str(folder / name))
    out = tmp_path / "cli.jsonl"
    # the service emits calibrated scores without an operating point (no unsure fields): the CLI's `--precision off`
    argv = ["tag", *paths, "-o", str(out), "--max-pixels", str(MAX_PIXELS), "--threads", "1", "-q", "--precision", "off"]
    argv += ["--whole-image"] if mode == "whole_image" else ["--detector", str(service_data["detector_weights"])]
    assert main(argv) == 1  # some inputs failed: the CLI's exit code says so, and it wrote every record
    cli = [json.loads(line) for line in out.read_text().splitlines()]
    params = {"whole_image": "true"} if mode == "whole_image" else {}
    with make_client(service_data, max_pixels=MAX_PIXELS, max_files=len(PHOTOS)) as c:
        r = c.post("/v1/tag", params=params, files=_files(list(PHOTOS)))
    assert r.status_code == 200, r.text
    api = r.json()["results"]
    assert [Path(rec["image"]["path"]).name for rec in cli] == list(PHOTOS)
    assert [rec["image"]["path"] for rec in api] == list(PHOTOS)
    contradictions = [(name, a, b) for name, a, b in zip(PHOTOS, map(_comparable, cli), map(_comparable, api))
                      if a != b]
    assert contradictions == [], contradictions[:2]
    assert sum(rec["error"] is None for rec in api) == len(GOOD)
