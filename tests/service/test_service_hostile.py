"""Issue 23 (hostile input) on the HTTP API: malformed bodies answer the documented 400, unknown
search filter values a 422 naming the parameter, and ``/v1/grade`` keeps a view's failure to that
view. The documented status table, the problem codes and the OpenAPI document agree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from service_testing import jpeg_bytes, png_bytes

from fashionlens.service.problems import PROBLEM_CODES

DOCS = Path(__file__).resolve().parents[2] / "docs"
BODY_ROUTES = ("/v1/tag", "/v1/grade", "/v1/search", "/v1/corrections")


def _documented_codes() -> set[tuple[int, str]]:
    """(status, code) pairs of the status table under "Errors" in docs/service.md."""
    text = (DOCS / "service.md").read_text("utf-8")
    section = text.split("## Errors", 1)[1].split("\n## ", 1)[0]
    pairs = set()
    for status, codes in re.findall(r"^\| (\d{3}) \| (.+) \|$", section, flags=re.M):
        pairs |= {(int(status), code) for code in re.findall(r"`([a-z_]+)`", codes)}
    return pairs


def test_the_status_table_documents_every_problem_code() -> None:
    assert _documented_codes() == {(status, code) for code, (status, _) in PROBLEM_CODES.items()}


def test_openapi_lists_400_on_every_route_with_a_body() -> None:
    from fashionlens.service.openapi import openapi_schema

    paths = openapi_schema()["paths"]
    for route in BODY_ROUTES:
        responses = paths[route]["post"]["responses"]
        assert "400" in responses and "application/problem+json" in responses["400"]["content"], route


_MALFORMED = {
    "no boundary": (b"--x\r\n", "multipart/form-data"),
    "unnamed part": (b"--b\r\nContent-Disposition: form-data\r\n\r\nxx\r\n--b--\r\n",
                     "multipart/form-data; boundary=b"),
    "not multipart": (b"\x00\x01garbage", "multipart/form-data; boundary=zz"),
}


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize("case", list(_MALFORMED))
def test_a_malformed_multipart_body_is_400_bad_request(client: Any, route: str, case: str) -> None:
    body, content_type = _MALFORMED[case]
    r = client.post(route, content=body, headers={"content-type": content_type})
    problem = r.json()
    assert r.status_code == 400 and problem["code"] == "bad_request", problem
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["detail"].startswith("expected a well-formed request body") and problem["instance"] == route


@pytest.mark.parametrize(("params", "bad"), [
    ({"category": "notacategory"}, [("category", "notacategory")]),
    ({"category": "sweaters,Sweaters"}, [("category", "Sweaters")]),               # ids are exact
    ({"colour": ["red", "reddish"]}, [("colour", "reddish")]),
    ({"pattern": "no-such-pattern", "material": "kevlar"}, [("pattern", "no-such-pattern"), ("material", "kevlar")]),
    ({"object_type": "upper_body"}, [("object_type", "upper_body")]),
])
def test_unknown_search_filter_values_are_422_naming_them(client: Any, params: dict, bad: list) -> None:
    from fashionlens.service.routers.search import allowed_filter_values

    r = client.post("/v1/search", params=params, data={"text": "red sweater"})
    problem = r.json()
    assert r.status_code == 422 and problem["code"] == "invalid_filter", problem
    assert [(e["field"], e["value"]) for e in problem["errors"]] == [(f"query.{p}", v) for p, v in bad]
    for (param, value), e in zip(bad, problem["errors"]):
        assert e["allowed"] == list(allowed_filter_values()[param]) and e["allowed"]
        assert f"unknown {param} {value!r}" in problem["detail"]
    if params.get("object_type") == "upper_body":
        assert "did you mean 'upper-body'" in problem["detail"]


def test_known_search_filter_values_still_search(client: Any) -> None:
    r = client.post("/v1/search", params={"category": "sweaters,t-shirts", "colour": "red"}, data={"text": "red"})
    assert r.status_code == 200 and r.json()["filters"] == {"category": ["sweaters", "t-shirts"], "colours": "red"}


class _FailOn:
    """Wraps a tagger; raises for the photos whose path contains one of ``names``."""

    def __init__(self, tagger: Any, *names: str) -> None:
        self.tagger, self.names = tagger, names

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tagger, name)

    def variant(self, **kwargs: Any) -> _FailOn:
        """The tagger at another operating point (what ``ItemGrader`` runs the views with) fails alike."""
        return _FailOn(self.tagger.variant(**kwargs), *self.names)

    def tag(self, images: list[Any], paths: list[str], *args: Any, **kwargs: Any) -> list[Any]:
        if any(n in Path(p).name for p in paths for n in self.names):
            raise ValueError("detection failed on this photo")
        return self.tagger.tag(images, paths, *args, **kwargs)


def _grade(client: Any) -> Any:
    return client.post("/v1/grade", params={"item_id": "item-9"},
                       files={"front": ("f.png", png_bytes(96, 128), "image/png"),
                              "back": ("b.jpg", jpeg_bytes(96, 128), "image/jpeg")})


def test_grade_isolates_a_view_whose_tagging_fails(client: Any, service_data: dict[str, Any],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    grader = service_data["grader"]
    monkeypatch.setattr(grader, "tagger", _FailOn(grader.tagger, "front"))
    r = _grade(client)
    assert r.status_code == 200, r.text
    rec = r.json()
    views = {v["role"]: v for v in rec["views"]}
    assert rec["error"] is None and rec["category"] is not None and rec["route"] is not None
    assert views["front"]["path"] == "f.png" and views["front"]["error"]["type"] == "inference_failed"
    assert "detection failed" in views["front"]["error"]["message"] and views["back"]["error"] is None
    assert rec["category"]["views"] == 1 and rec["warnings"] == []


def test_grade_with_no_usable_view_is_an_error_record(client: Any, service_data: dict[str, Any],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    grader = service_data["grader"]
    monkeypatch.setattr(grader, "tagger", _FailOn(grader.tagger, "front", "back"))
    r = _grade(client)
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["error"]["type"] == "no_usable_view" and rec["route"] is None
    assert [v["error"]["type"] for v in rec["views"]] == ["inference_failed", "inference_failed"]
