"""The queue: which garments/items are queued, their order (uncertainty, margin, diversity) and
idempotent builds; v1 and v2 results and grade items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from review_testing import (
    garment,
    item_line,
    result_line,
    sure,
    unsure,
    write_jsonl,
    write_photo,
)

from fashionlens.review.fields import read_entries
from fashionlens.review.queue import build_queue
from fashionlens.review.ranking import RankItem, rank
from fashionlens.review.store import ReviewStore


def _pattern(p1: float, p2: float) -> dict:
    return {"pattern": unsure([("striped", p1), ("plain", p2), ("checked", 0.05)])}


def _order(store: ReviewStore) -> list[tuple[int, int]]:
    return [(t.line, t.index) for t in store.tasks(statuses=("pending",))]


def test_least_confidence_and_margin_give_their_own_order(tmp_path: Path) -> None:
    photo = write_photo(tmp_path / "a.jpg")
    # garment 0: p1 .45 p2 .44 (tiny margin); 1: p1 .40 p2 .10 (least confident); 2: p1 .60 p2 .35
    lines = [result_line(photo, [garment(attributes=_pattern(0.45, 0.44)), garment(attributes=_pattern(0.40, 0.10)),
                                 garment(attributes=_pattern(0.60, 0.35))])]
    results = write_jsonl(tmp_path / "r.jsonl", lines)
    lc = ReviewStore(tmp_path / "lc.sqlite")
    build_queue(results, lc, measure="least_confidence", diversity=0.0)
    assert _order(lc) == [(1, 1), (1, 0), (1, 2)]
    margin = ReviewStore(tmp_path / "m.sqlite")
    build_queue(results, margin, measure="margin", diversity=0.0)
    assert _order(margin) == [(1, 0), (1, 2), (1, 1)]


def test_garments_with_only_sure_fields_are_not_queued(tmp_path: Path) -> None:
    photo = write_photo(tmp_path / "a.jpg")
    lines = [result_line(photo, [garment(attributes={"pattern": sure("plain", 0.97)}),
                                 garment(attributes={"pattern": unsure([("plain", 0.5), ("striped", 0.3)])})])]
    store = ReviewStore(tmp_path / "r.sqlite")
    summary = build_queue(write_jsonl(tmp_path / "r.jsonl", lines), store)
    assert (summary.read, summary.added, summary.sure) == (2, 1, 1)
    everything = ReviewStore(tmp_path / "all.sqlite")
    assert build_queue(tmp_path / "r.jsonl", everything, include_sure=True).added == 2


def test_diversity_keeps_one_senders_near_duplicates_from_filling_the_queue(tmp_path: Path) -> None:
    """30 near-identical, very unsure photos of one sender and 10 less unsure ones of 10 senders: with the
    diversity term the first 11 places hold one of the sender's photos; without it, the sender's fill them."""
    lines = []
    for i in range(30):
        photo = write_photo(tmp_path / "sender-a" / f"{i}.jpg")
        lines.append(result_line(photo, [garment(attributes=_pattern(0.30, 0.25))]))
    for i in range(10):
        photo = write_photo(tmp_path / f"sender-{i}" / "x.jpg")
        category = ["shirts", "hoodies", "sweaters", "coats-jackets", "blouses"][i % 5]
        lines.append(result_line(photo, [garment(category=sure(category, 0.9), attributes=_pattern(0.55, 0.2))]))
    results = write_jsonl(tmp_path / "r.jsonl", lines)
    diverse = ReviewStore(tmp_path / "d.sqlite")
    build_queue(results, diverse, diversity=0.5)
    top = [t.group for t in diverse.tasks(statuses=("pending",))][:11]
    assert sum("sender-a" in (g or "") for g in top) == 1
    plain = ReviewStore(tmp_path / "p.sqlite")
    build_queue(results, plain, diversity=0.0)
    assert all("sender-a" in (t.group or "") for t in list(plain.tasks(statuses=("pending",)))[:30])


def test_embeddings_find_near_duplicates_across_folders() -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal(16)
    dup = [base + 0.01 * rng.standard_normal(16) for _ in range(5)]
    other = [rng.standard_normal(16) for _ in range(3)]
    vecs = [v / np.linalg.norm(v) for v in dup + other]
    items = [RankItem(0.9 if i < 5 else 0.6, f"folder-{i}", (None, None), vecs[i].astype(np.float32))
             for i in range(8)]
    order = rank(items, diversity=0.5)
    assert order[0] == 0 and set(order[1:4]) == {5, 6, 7}  # one duplicate, the distinct ones, the other duplicates
    assert rank(items, diversity=0.0)[:5] == [0, 1, 2, 3, 4]


def test_rebuilding_from_the_same_file_adds_nothing_and_keeps_answers(tmp_path: Path) -> None:
    photo = write_photo(tmp_path / "a.jpg")
    results = write_jsonl(tmp_path / "r.jsonl", [result_line(photo, [garment(attributes=_pattern(0.4, 0.3))] * 3)])
    store = ReviewStore(tmp_path / "r.sqlite")
    first = build_queue(results, store)
    tid = store.next_task().id  # type: ignore[union-attr]
    store.answer(tid, "pattern", "plain")
    second = build_queue(results, store)
    assert (first.added, first.existing, second.added, second.existing) == (3, 0, 0, 3)
    assert store.stats()["total"] == 3 and store.task(tid).answers == {"pattern": "plain"}


def test_v1_results_are_read_with_category_top_and_min_score(tmp_path: Path) -> None:
    photo = write_photo(tmp_path / "a.jpg")
    g = garment(category=sure("t-shirts", 0.42), attributes={"pattern": sure("striped", 0.31),
                                                             "sleeve": sure("short", 0.99),
                                                             "colours": [{"id": "red", "share": 0.6, "score": 0.4}]})
    results = write_jsonl(tmp_path / "r.jsonl", [result_line(photo, [g], schema="fashionlens/result/v1")])
    (entry,) = read_entries(results)
    fields = {f.name: f for f in entry.fields}
    assert fields["category"].needs_review and not fields["category"].uncertain
    assert [c.id for c in fields["category"].candidates] == ["t-shirts", "shirts"]
    assert fields["pattern"].needs_review and fields["pattern"].value == "striped"
    assert not fields["sleeve"].needs_review
    assert fields["colours"].needs_review and fields["colours"].value == ["red"]


def test_v2_colours_all_unsure(tmp_path: Path) -> None:
    photo = write_photo(tmp_path / "a.jpg")
    g = garment(attributes={"colours": [], "colours_uncertain": True})
    (entry,) = read_entries(write_jsonl(tmp_path / "r.jsonl", [result_line(photo, [g])]))
    colours = next(f for f in entry.fields if f.name == "colours")
    assert colours.multi and colours.uncertain and colours.needs_review and colours.value is None


def test_grade_items_are_queued_with_their_grading_heads(tmp_path: Path) -> None:
    front = write_photo(tmp_path / "items" / "IT1" / "front.jpg")
    line = item_line("IT1", front, category=sure("sweaters", 0.93), attributes={"pattern": sure("plain", 0.9)},
                     grades={"condition": unsure([("3", 0.4), ("4", 0.35)]), "usage": sure("reuse", 0.88)})
    failed = {"schema": "fashionlens/item/v1", "item_id": "IT2", "error": {"type": "no_usable_view", "message": "x"}}
    store = ReviewStore(tmp_path / "r.sqlite")
    summary = build_queue(write_jsonl(tmp_path / "items.jsonl", [line, failed]), store)
    assert summary.added == 1
    task = store.next_task()
    assert task is not None and task.kind == "item" and task.item_id == "IT1" and task.photo == str(front)
    assert task.field("grades.condition").needs_review and task.field("grades.usage").value == "reuse"


def test_an_unknown_record_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"schema": "something/else"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"x.jsonl:1: expected a fashionlens/result"):
        read_entries(path)


def test_aggregates_and_score_less_unsure_colours() -> None:
    from fashionlens.review.fields import Candidate, FieldState
    from fashionlens.review.ranking import entry_uncertainty

    def single(p1: float, p2: float) -> FieldState:
        return FieldState("pattern", None, p1, True, (Candidate("a", p1), Candidate("b", p2)), False, True)

    colours = FieldState("colours", None, None, True, (), True, True)  # "colours": [] + colours_uncertain
    fields = [single(0.4, 0.3), single(0.8, 0.1), colours]
    assert entry_uncertainty(fields, "least_confidence", "mean") == pytest.approx((0.6 + 0.2) / 2)
    assert entry_uncertainty(fields, "least_confidence", "max") == pytest.approx(0.6)
    assert entry_uncertainty(fields, "margin", "max") == pytest.approx(0.9)
    assert entry_uncertainty([colours]) == 1.0 and entry_uncertainty([]) == 0.0
