"""``POST /v1/search`` text parameters of issue 27: ``understood`` in the answer, ``strict``,
``understand=false`` (the index of generated photos from ``conftest.py``)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from fashionlens.search.query import DEFAULT_WEIGHTS


def _colours(hit: dict[str, Any]) -> list[str]:
    return list(hit["attributes"].get("colours") or [])


def test_text_answer_says_what_was_understood(client: Any) -> None:
    r = client.post("/v1/search", params={"k": 5}, data={"text": "red striped wool sweater"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"] == {"text": "red striped wool sweater"} and body["strict"] is False
    assert body["understood"] == {"category": "sweaters", "colours": ["red"], "pattern": "striped",
                                  "material": "wool"}
    hits = body["hits"]
    assert len(hits) == 5 and [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    assert all(set(h["match"]) == {"category", "colours", "pattern", "material"} for h in hits)
    assert all(h["score"] >= h["similarity"] - 1e-6 for h in hits)
    assert all(a["score"] >= b["score"] for a, b in itertools.pairwise(hits))
    w = DEFAULT_WEIGHTS.to_dict()
    for h in hits:  # score = cosine + the weighted agreement of the stored labels
        assert h["score"] == pytest.approx(h["similarity"] + sum(w[f] * v for f, v in h["match"].items()), abs=1e-5)
        assert h["match"]["colours"] == float("red" in _colours(h))


def test_understand_false_is_the_embedding_alone(client: Any) -> None:
    r = client.post("/v1/search", params={"k": 5, "understand": "false"}, data={"text": "red striped wool sweater"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["understood"] is None and body["strict"] is False
    assert all("match" not in h for h in body["hits"])
    assert all(a["score"] >= b["score"] for a, b in itertools.pairwise(body["hits"]))


def test_strict_keeps_only_agreeing_garments(client: Any, service_data: dict[str, Any]) -> None:
    index = service_data["searcher"].index
    stored = index.get(index.select({}).tolist())
    colour = min(c for m in stored.values() for c in m.attributes.get("colours", []))
    r = client.post("/v1/search", params={"k": 10, "strict": "true"}, data={"text": f"{colour} garment"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["strict"] is True and body["understood"] == {"colours": [colour]}
    want = sum(colour in m.attributes.get("colours", []) for m in stored.values())
    assert len(body["hits"]) == want >= 1
    assert all(colour in _colours(h) for h in body["hits"])
    # explicit filters still apply, and win over an understood field of the same name
    r = client.post("/v1/search", params={"strict": "true", "colour": "purple"}, data={"text": f"{colour} garment"})
    assert r.status_code == 200 and all("purple" in _colours(h) for h in r.json()["hits"])


def test_strict_without_understanding_is_422(client: Any) -> None:
    r = client.post("/v1/search", params={"strict": "true", "understand": "false"}, data={"text": "red dress"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
    assert r.json()["errors"][0]["field"] == "query.strict"


def test_openapi_documents_the_text_parameters(client: Any) -> None:
    op = client.get("/openapi.json").json()["paths"]["/v1/search"]["post"]
    params = {p["name"]: p for p in op["parameters"]}
    assert params["understand"]["schema"]["default"] is True and params["strict"]["schema"]["default"] is False
