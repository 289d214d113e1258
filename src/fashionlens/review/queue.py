"""``review build``: read a results or items JSONL file, queue its garments/items that need review
into a :class:`~fashionlens.review.store.ReviewStore`, and order the whole pending queue
(:mod:`fashionlens.review.ranking`). Building twice from one file adds nothing the second time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fashionlens.review.fields import needs_review, read_entries
from fashionlens.review.ranking import (
    Aggregate,
    Measure,
    RankItem,
    entry_uncertainty,
    field_uncertainty,
    rank,
)
from fashionlens.review.store import ReviewStore

__all__ = ["BuildSummary", "build_queue", "rerank"]


@dataclass(frozen=True)
class BuildSummary:
    """What one build did: entries read, queued now, already queued, left out (nothing to review), pending."""

    source: str
    read: int
    added: int
    existing: int
    sure: int
    pending: int

    def to_json(self) -> dict[str, object]:
        return {"source": self.source, "read": self.read, "added": self.added, "already_queued": self.existing,
                "not_queued_all_sure": self.sure, "pending": self.pending}


def rerank(store: ReviewStore, *, diversity: float = 0.5) -> int:
    """Re-order every pending task (uncertainty stored at build time, :func:`~fashionlens.review.ranking.rank`);
    returns how many are pending."""
    inputs = store.ranking_inputs()
    items = [RankItem(uncertainty=u, group=group, kind_key=(otype, category), embedding=emb)
             for _, u, group, otype, category, emb in inputs]
    order = rank(items, diversity=diversity)
    store.set_priorities([inputs[i][0] for i in order])
    return len(inputs)


def build_queue(results: str | Path, store: ReviewStore, *, measure: Measure = "least_confidence",
                aggregate: Aggregate = "mean", diversity: float = 0.5, min_score: float = 0.5,
                include_sure: bool = False) -> BuildSummary:
    """Queue the garments/items of ``results`` that have a field needing review (every one with
    ``include_sure``), then re-rank the pending queue."""
    entries = read_entries(results, min_score=min_score)
    chosen = [e for e in entries if include_sure or needs_review(e.fields)]
    uncertainties = [entry_uncertainty(e.fields, measure, aggregate) for e in chosen]
    per_field = [[field_uncertainty(f, measure) for f in e.fields] for e in chosen]
    source = str(Path(results).resolve())
    added, existing = store.add_entries(chosen, uncertainties, per_field, source=source)
    pending = rerank(store, diversity=diversity)
    return BuildSummary(source=source, read=len(entries), added=added, existing=existing,
                        sure=len(entries) - len(chosen), pending=pending)
