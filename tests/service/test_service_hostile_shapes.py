"""Issue 23: a valid photo of an extreme shape gets an answer on every route, and a bad photo
among good ones never turns into a 5xx."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image
from service_testing import png_bytes

STRIPS = [(1, 10000), (10, 4000), (1, 700), (3000, 3), (1, 1)]


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (40, 60, 200)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("whole_image", ["true", "false"])
def test_tag_answers_every_strip_beside_a_good_photo(client: Any, whole_image: str) -> None:
    files = [("images", ("good.png", png_bytes(96, 128), "image/png"))]
    files += [("images", (f"s{w}x{h}.png", _png(w, h), "image/png")) for w, h in STRIPS]
    r = client.post("/v1/tag", params={"whole_image": whole_image}, files=files)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [rec["error"] for rec in results] == [None] * len(files)
    assert [(rec["image"]["width"], rec["image"]["height"]) for rec in results[1:]] == STRIPS


def test_search_and_grade_with_a_strip(client: Any) -> None:
    r = client.post("/v1/search", params={"k": 3}, files={"image": ("s.png", _png(1, 10000), "image/png")})
    assert r.status_code < 500, r.text
    r = client.post("/v1/grade", files={"front": ("front.png", _png(3000, 3), "image/png"),
                                        "back": ("back.png", png_bytes(96, 128), "image/png")})
    assert r.status_code == 200, r.text
    assert r.json()["error"] is None
