"""Group-aware splits: groups never straddle splits, shares are respected, seeds are deterministic."""

from __future__ import annotations

import random

import pytest

from fashionlens.io.records import ImageRecord
from fashionlens.io.splits import SPLIT_NAMES, group_split


def _records(seed: int, *, n_groups: int = 200, max_size: int = 8,
             sources: tuple[str, ...] = ("clothing", "rise", "ccp")) -> list[ImageRecord]:
    rng = random.Random(seed)
    recs = []
    for g in range(n_groups):
        source = rng.choice(sources)
        for k in range(rng.randint(1, max_size)):
            recs.append(ImageRecord(path=f"/data/{source}/{g}_{k}.jpg", source=source, group=f"{source}/{g}"))
    rng.shuffle(recs)
    return recs


def _assignment(split: dict[str, list[ImageRecord]]) -> dict[str, str]:
    return {str(r.path): name for name, recs in split.items() for r in recs}


@pytest.mark.parametrize("seed", range(8))
def test_groups_never_straddle_splits(seed: int) -> None:
    recs = _records(seed, n_groups=random.Random(seed).randint(3, 150))
    split = group_split(recs, seed=seed)
    assert set(split) == set(SPLIT_NAMES)
    # every record exactly once
    assert sorted(str(r.path) for v in split.values() for r in v) == sorted(str(r.path) for r in recs)
    where: dict[str, set[str]] = {}
    for name, rs in split.items():
        for r in rs:
            where.setdefault(r.group, set()).add(name)
    assert all(len(v) == 1 for v in where.values())


@pytest.mark.parametrize("fractions", [(0.7, 0.15, 0.15), (0.8, 0.1, 0.1), (0.5, 0.25, 0.25), (0.6, 0.4, 0.0)])
def test_fractions_roughly_respected_per_source(fractions: tuple[float, float, float]) -> None:
    recs = _records(1, n_groups=900)
    split = group_split(recs, fractions=fractions, seed=4)
    for source in ("clothing", "rise", "ccp"):
        total = sum(1 for r in recs if r.source == source)
        for name, f in zip(SPLIT_NAMES, fractions):
            share = sum(1 for r in split[name] if r.source == source) / total
            assert abs(share - f) <= 0.05, (source, name, share, f)


def test_one_huge_group_does_not_break_the_other_splits() -> None:
    recs = _records(2, n_groups=300, sources=("clothing",))
    recs += [ImageRecord(path=f"/data/big/{k}.jpg", source="clothing", group="clothing/big") for k in range(150)]
    split = group_split(recs, seed=0)
    total = len(recs)
    big_in = [name for name, rs in split.items() if any(r.group == "clothing/big" for r in rs)]
    assert big_in == ["train"]  # biggest groups go first, into the split furthest below its target
    for name, f in zip(SPLIT_NAMES, (0.7, 0.15, 0.15)):
        assert abs(len(split[name]) / total - f) <= 0.05


def test_deterministic_per_seed_and_independent_of_input_order() -> None:
    recs = _records(3)
    a = _assignment(group_split(recs, seed=11))
    shuffled = list(recs)
    random.Random(0).shuffle(shuffled)
    assert _assignment(group_split(shuffled, seed=11)) == a
    assert _assignment(group_split(recs, seed=11)) == a


def test_different_seeds_give_different_splits() -> None:
    recs = _records(4)
    assignments = [_assignment(group_split(recs, seed=s)) for s in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert assignments[i] != assignments[j]


def test_output_is_sorted_within_each_split() -> None:
    split = group_split(_records(5), seed=0)
    for rs in split.values():
        keys = [(r.source, str(r.path)) for r in rs]
        assert keys == sorted(keys)


def test_empty_input() -> None:
    assert group_split([], seed=0) == {"train": [], "val": [], "test": []}


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.7, 0.2, 0.2), (1.1, -0.05, -0.05), (0.7, 0.15, 0.1),
                                       (0.25, 0.25, 0.25, 0.25)])
def test_bad_fractions_raise(fractions) -> None:
    with pytest.raises(ValueError, match="fractions"):
        group_split(_records(6, n_groups=5), fractions=fractions)
