"""``fashionlens search --text`` options of issue 27: ``understood`` in the JSON, ``--strict``,
``--no-query-parsing`` (on the tiny fake index of :mod:`fake_text_index`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_text_index import build_fake_index, fake_text_queries, names

from fashionlens.cli import main
from fashionlens.search import catalogue


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(catalogue.EmbeddingSpace, "text_queries", fake_text_queries)
    index_dir, heads = build_fake_index(tmp_path)
    return ["--index", str(index_dir), "--alignment", str(heads)]


def _search(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["search", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_understood_and_reranked_by_default(index: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    out = _search(capsys, *index, "--text", "red dress", "-k", "3")
    assert out["query"] == {"text": "red dress"}
    assert out["understood"] == {"category": "dresses", "colours": ["red"]} and out["strict"] is False
    assert out["filters"] == {}
    assert names(out["hits"])[0] == "red-dress"
    top = out["hits"][0]
    assert top["match"] == {"category": 1.0, "colours": 1.0} and top["similarity"] == pytest.approx(0.44, abs=1e-4)
    assert top["score"] > top["similarity"]


def test_no_query_parsing_is_the_old_ranking(index: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    out = _search(capsys, *index, "--text", "red dress", "-k", "5", "--no-query-parsing")
    assert out["understood"] is None and out["strict"] is False
    assert names(out["hits"]) == ["green-dress", "black-dress", "blue-dress", "white-dress", "red-dress"]
    assert "similarity" not in out["hits"][0] and "match" not in out["hits"][0]


def test_strict(index: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "hits.json"
    assert main(["search", *index, "--text", "black and white sweater", "--strict", "--json", str(out_file)]) == 0
    out = json.loads(out_file.read_text())
    assert out["strict"] is True and out["understood"]["colours"] == ["black", "white"]
    assert names(out["hits"]) == ["black-white-striped-sweater"]
    # an explicit filter wins over the understood field of the same name
    out = _search(capsys, *index, "--text", "red dress", "--strict", "--category", "sweaters")
    assert out["filters"] == {"category": "sweaters"} and names(out["hits"]) == ["red-sweater"]


def test_text_options_need_a_text_query(index: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", *index, "--image", "x.jpg", "--strict"]) == 2
    assert "--strict and --no-query-parsing apply to --text queries" in capsys.readouterr().err
    assert main(["search", *index, "--text", "red dress", "--strict", "--no-query-parsing"]) == 2
    assert "strict: needs query understanding" in capsys.readouterr().err
