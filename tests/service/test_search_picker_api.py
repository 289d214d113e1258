"""``POST /v1/search`` with a photo of several garments (issue 27): ``garment=auto`` searches the largest
confident one, a number searches that one, a number the photo does not have is a 422 naming the valid
range; the answer lists every garment of the photo and gives each hit a readable caption."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from picker_testing import JACKET, OUTFIT, TROUSERS, OutfitDetector, outfit_png


@pytest.fixture(scope="module")
def outfit_client(service_data: dict[str, Any]) -> Iterator[Any]:
    from service_testing import make_client

    with make_client({**service_data, "detector": OutfitDetector()}) as c:
        yield c


def _search(client: Any, **params: Any) -> Any:
    return client.post("/v1/search", params={"k": 5, **params},
                       files={"image": ("outfit.png", outfit_png(), "image/png")})


def test_auto_searches_the_largest_garment_and_lists_them_all(outfit_client: Any) -> None:
    r = _search(outfit_client)  # garment left out: auto
    assert r.status_code == 200, r.text
    q = r.json()["query"]
    assert q["garment"] == JACKET and q["garment_choice"] == "auto" and q["mode"] == "detect"
    assert [g["index"] for g in q["garments"]] == [0, 1, 2]
    assert [g["score"] for g in q["garments"]] == [s for _, s, *_ in OUTFIT]
    for g in q["garments"]:
        assert set(g) >= {"index", "object_type", "category", "bbox", "score", "name", "caption"}
        assert len(g["bbox"]) == 4 and g["name"] and g["caption"]
    assert q["caption"] == q["garments"][JACKET]["caption"]
    assert q["bbox"] == q["garments"][JACKET]["bbox"]
    # the keys the answer had before stay first, unchanged
    assert list(q)[:6] == ["path", "garment", "object_type", "category", "bbox", "mode"]


def test_a_number_searches_that_garment(outfit_client: Any) -> None:
    auto = _search(outfit_client, garment="auto").json()
    chosen = _search(outfit_client, garment=str(TROUSERS)).json()
    assert chosen["query"]["garment"] == TROUSERS and chosen["query"]["garment_choice"] == "given"
    assert chosen["query"]["bbox"] == chosen["query"]["garments"][TROUSERS]["bbox"]
    assert [(h["id"], h["score"]) for h in chosen["hits"]] != [(h["id"], h["score"]) for h in auto["hits"]]


def test_hits_carry_readable_captions(outfit_client: Any) -> None:
    hits = _search(outfit_client).json()["hits"]
    assert hits
    for h in hits:
        words = h["caption"].replace(",", " ").split()
        assert words and len(words) == len(set(words)), h["caption"]  # no word twice
        assert not re.search(r"\d", h["caption"]), h["caption"]  # no bare score or garment number


@pytest.mark.parametrize("garment", ["3", "99"])
def test_a_garment_the_photo_does_not_have_is_422_with_the_range(outfit_client: Any, garment: str) -> None:
    r = _search(outfit_client, garment=garment)
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "invalid_request" and "0–2" in body["detail"] and f"got {garment}" in body["detail"]
    [error] = body["errors"]
    assert (error["field"], error["min"], error["max"]) == ("query.garment", 0, 2)
    assert len(body["garments"]) == 3  # so that a client can offer the valid ones


@pytest.mark.parametrize("garment", ["-1", "first", "1.5"])
def test_a_garment_that_is_not_auto_or_a_number_is_422(outfit_client: Any, garment: str) -> None:
    r = _search(outfit_client, garment=garment)
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
    assert "garment" in r.json()["detail"]


def test_text_hits_carry_captions_too(outfit_client: Any) -> None:
    r = outfit_client.post("/v1/search", data={"text": "red sweater"}, params={"k": 3})
    assert r.status_code == 200 and all(h["caption"] for h in r.json()["hits"])
