"""Seeded, group-aware train/val/test splits.

Groups (a sender's photos, an item's views, a street photo) never straddle splits. Groups are
shuffled with the seed and assigned greedily so each split gets close to its share of *images*
(not of groups: a few clothing senders contributed hundreds of photos).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from fashionlens.io.records import ImageRecord

SPLIT_NAMES = ("train", "val", "test")


def group_split(records: Sequence[ImageRecord], *, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                seed: int = 0) -> dict[str, list[ImageRecord]]:
    """Split ``records`` by ``record.group`` into ``train``/``val``/``test`` (per source, so each
    source is split in the same proportions). Deterministic for a given seed and record set."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    out: dict[str, list[ImageRecord]] = {name: [] for name in SPLIT_NAMES}
    by_source: dict[str, dict[str, list[ImageRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        by_source[r.source][r.group].append(r)
    for source in sorted(by_source):
        groups = by_source[source]
        keys = sorted(groups)
        random.Random(f"{seed}/{source}").shuffle(keys)
        total = sum(len(v) for v in groups.values())
        targets = [f * total for f in fractions]
        counts = [0, 0, 0]
        # biggest groups first so they cannot overshoot a small split at the end
        keys.sort(key=lambda k: -len(groups[k]))
        for k in keys:
            # the split furthest below its target (relative) takes the group
            deficits = [(targets[i] - counts[i]) / max(targets[i], 1e-9) if targets[i] > 0 else -1e9 for i in range(3)]
            i = max(range(3), key=lambda j: deficits[j])
            counts[i] += len(groups[k])
            out[SPLIT_NAMES[i]].extend(groups[k])
    for name in SPLIT_NAMES:
        out[name].sort(key=lambda r: (r.source, str(r.path)))
    return out
