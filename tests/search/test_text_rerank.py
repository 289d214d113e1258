"""Text search re-ranks by what the words name (issue 27): on a tiny fake index where the embedding
alone puts the only red dress 5th, "red dress" puts it first; ``strict`` turns the understood fields
into filters; ``understand=False`` keeps the old ranking."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_text_index import CATALOGUE, build_fake_index, fake_text_queries, names

from fashionlens.search import catalogue
from fashionlens.search.catalogue import (
    GarmentSearcher,
    TextHit,
    rerank_hits,
    text_pool_size,
)
from fashionlens.search.query import DEFAULT_WEIGHTS, MatchWeights, parse_query


@pytest.fixture
def searcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(catalogue.EmbeddingSpace, "text_queries", fake_text_queries)
    index_dir, heads = build_fake_index(tmp_path)
    with GarmentSearcher(index_dir, alignment=heads) as s:
        yield s


def test_the_embedding_alone_puts_the_red_dress_fifth(searcher: GarmentSearcher) -> None:
    found = searcher.query_text("red dress", k=6, understand=False)
    assert names(found.hits)[:5] == ["green-dress", "black-dress", "blue-dress", "white-dress", "red-dress"]
    assert found.parsed is None and found.understood() is None and not found.strict
    assert not any(isinstance(h, TextHit) for h in found.hits)  # the hits as before: cosine scores
    assert [h.score for h in found.hits] == pytest.approx([c for _, c, *_ in CATALOGUE[:6]], abs=1e-4)


def test_red_dress_first_with_understanding(searcher: GarmentSearcher) -> None:
    found = searcher.query_text("red dress", k=5)
    assert found.understood() == {"category": "dresses", "colours": ["red"]}
    assert names(found.hits)[0] == "red-dress"
    top = found.hits[0]
    assert isinstance(top, TextHit) and top.rank == 1
    assert top.similarity == pytest.approx(0.44, abs=1e-4)
    assert top.match == {"category": 1.0, "colours": 1.0}
    assert top.score == pytest.approx(top.similarity + DEFAULT_WEIGHTS.category + DEFAULT_WEIGHTS.colours)
    assert [h.rank for h in found.hits] == [1, 2, 3, 4, 5]
    assert all(a.score >= b.score for a, b in zip(found.hits, found.hits[1:]))
    row = top.to_dict()
    assert row["similarity"] == pytest.approx(0.44, abs=1e-4) and row["match"] == {"category": 1.0, "colours": 1.0}
    assert searcher.search_text("red dress", k=1)[0].path == "red-dress.jpg"  # search_text = query_text's hits


def test_black_and_white_striped_sweater(searcher: GarmentSearcher) -> None:
    found = searcher.query_text("black and white striped sweater", k=4)
    assert found.understood() == {"category": "sweaters", "colours": ["black", "white"], "pattern": "striped"}
    assert names(found.hits)[0] == "black-white-striped-sweater"
    assert names(found.hits)[1] == "black-striped-sweater"  # half the colours, the pattern
    before = names(searcher.search_text("black and white striped sweater", k=4, understand=False))
    assert "black-white-striped-sweater" not in before


def test_weights_are_a_parameter(searcher: GarmentSearcher) -> None:
    off = MatchWeights(category=0, colours=0, pattern=0, material=0)
    assert names(searcher.search_text("red dress", k=5, weights=off)) == names(
        searcher.search_text("red dress", k=5, understand=False))
    heavy = MatchWeights(category=1.0, colours=0.0, pattern=0.0, material=0.0)
    assert set(names(searcher.search_text("red sweater", k=5, weights=heavy))) == {
        "black-sweater", "black-striped-sweater", "red-sweater", "grey-sweater", "black-white-striped-sweater"}
    with pytest.raises(ValueError, match="MatchWeights.colours"):
        MatchWeights(colours=-1)


def test_strict_filters_on_every_understood_field(searcher: GarmentSearcher) -> None:
    found = searcher.query_text("red dress", k=10, strict=True)
    assert found.strict and names(found.hits) == ["red-dress", "red-white-dress"]
    assert all(h.match == {"category": 1.0, "colours": 1.0} for h in found.hits)
    # all the colours named: a black-only sweater does not pass "black and white"
    assert names(searcher.search_text("black and white sweater", k=10, strict=True)) == ["black-white-striped-sweater"]
    assert searcher.search_text("floral red dress", k=10, strict=True)[0].path == "red-white-dress.jpg"
    assert searcher.search_text("purple dress", k=10, strict=True) == []
    # nothing understood: strict changes nothing
    assert names(searcher.search_text("something nice", k=3, strict=True)) == ["green-dress", "black-dress", "blue-dress"]


def test_strict_explicit_filter_wins_and_soft_mode_keeps_filters(searcher: GarmentSearcher) -> None:
    hits = searcher.search_text("red dress", k=10, strict=True, filters={"category": "sweaters"})
    assert names(hits) == ["red-sweater"]  # category from the filter, colour from the words
    soft = searcher.search_text("red dress", k=10, filters={"category": "jeans"})
    assert names(soft) == ["blue-jeans"]


def test_strict_widens_the_pool_for_all_of_colours(searcher: GarmentSearcher, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalogue, "TEXT_POOL_MIN", 1)
    monkeypatch.setattr(catalogue, "TEXT_POOL_FACTOR", 1)
    assert text_pool_size(1) == 1
    # the nearest garment that has black or white is not black *and* white: the pool has to grow
    assert names(searcher.search_text("black and white", k=1, strict=True)) == ["black-white-striped-sweater"]


def test_strict_needs_understanding(searcher: GarmentSearcher) -> None:
    with pytest.raises(ValueError, match="strict: needs query understanding"):
        searcher.query_text("red dress", strict=True, understand=False)
    with pytest.raises(ValueError, match="expected some words"):
        searcher.query_text("  ")


def test_pool_size_is_bounded() -> None:
    assert text_pool_size(1) == 100 and text_pool_size(10) == 100 and text_pool_size(30) == 300
    assert text_pool_size(100) == 1000 and text_pool_size(5000) == 5000  # never fewer than k


def test_rerank_keeps_pool_order_on_ties() -> None:
    from fashionlens.search.index import SearchHit

    pool = [SearchHit(rank=i + 1, id=i, score=0.5, path=f"{i}.jpg", xyxy=None, category="dresses",
                      object_type="full-body", attributes={"colours": ["red"]}) for i in range(3)]
    out = rerank_hits(pool, parse_query("red dress"))
    assert [h.id for h in out] == [0, 1, 2] and [h.rank for h in out] == [1, 2, 3]
    assert rerank_hits(pool, parse_query("blue dress"), require={"colours"}) == []
