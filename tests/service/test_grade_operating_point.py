"""``POST /v1/grade`` operating point (issue 25): the server's setting, overridden per request with
``?precision=`` and ``?keep_uncertain=``; a bad value is a 422 naming the parameter."""

from __future__ import annotations

from typing import Any

from service_testing import jpeg_bytes, png_bytes

from fashionlens.grading.item import ITEM_SCHEMA


def _grade(client: Any, *, back: bool = True, **params: str) -> Any:
    files = {"front": ("front.png", png_bytes(96, 128), "image/png")}
    if back:
        files["back"] = ("back.jpg", jpeg_bytes(96, 128), "image/jpeg")
    return client.post("/v1/grade", params={"item_id": "item-op", **params}, files=files)


def _unsure(rec: dict[str, Any]) -> list[str]:
    fields = {"category": rec["category"], **rec["attributes"], **{f"grades.{k}": v for k, v in rec["grades"].items()}}
    return sorted(k for k, v in fields.items() if isinstance(v, dict) and v.get("uncertain"))


def test_precision_per_request(client: Any) -> None:
    r = _grade(client, precision="off")
    assert r.status_code == 200, r.text
    off = r.json()
    assert off["schema"] == ITEM_SCHEMA and _unsure(off) == [] and "operating_point" not in off["model"]
    strict = _grade(client, precision="1").json()  # no field reaches precision 1 on validation: all unsure
    assert strict["model"]["operating_point"] == "precision 1"
    assert "category" in _unsure(strict) and strict["category"]["id"] is None
    assert {"id", "score", "uncertain", "candidates"} <= set(strict["category"])
    # one view: the best guess kept under an operating point is the one --precision off emits
    off_front = _grade(client, back=False, precision="off").json()
    kept = _grade(client, back=False, precision="1", keep_uncertain="true").json()
    assert kept["category"]["uncertain"] is True and kept["category"]["id"] == off_front["category"]["id"]


def test_a_bad_precision_is_422(client: Any) -> None:
    for bad in ("0", "1.5", "high"):
        r = _grade(client, precision=bad)
        assert r.status_code == 422 and r.json()["code"] == "invalid_request", bad
        assert "precision" in r.json()["detail"]
