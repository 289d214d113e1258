"""The shipped damage head with its region verifier on real RISE validation photos with the project's fixed
synthetic damage (skipped when ``../shared/datasets`` is absent). The model card's figures come from the full
split (``fashionlens evaluate damage --config configs/damage_lite0.yaml``); this checks, on the first
12 validation photos, that the shipped decoding is the verifier and that it still finds damage: hole recall
≥ 0.6 [measured with v4.1: 0.83 on these photos, 6 holes], stain recall ≥ 0.2 [0.4 of 5 stains],
mIoU ≥ 0.45 [0.68], at most 2 of 12 clean photos flagged [0; v4: 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from fashionlens.evaluate.damage import evaluate_damage_maps
from fashionlens.grading.damage import DamageFinder
from fashionlens.grading.item import DAMAGE_TYPES

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".." / "shared" / "datasets"

pytestmark = [pytest.mark.train, pytest.mark.data, pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not (DATA / "rise" / "images").is_dir(), reason="../shared/datasets/rise not present")]


def _damage_map(finder: DamageFinder, rgb: np.ndarray, garment: np.ndarray) -> np.ndarray:
    out = np.zeros(rgb.shape[:2], np.uint8)
    for d in finder.find(rgb, garment):
        out[d.mask] = DAMAGE_TYPES.index(d.type) + 1
    return out


def test_shipped_verifier_finds_holes_without_flagging_clean_photos():
    from fashionlens.train.damage import (
        DamageTrainConfig,
        _rise_photos,
        fixed_damage_set,
        load_garment_photos,
    )

    config = DamageTrainConfig(**{**yaml.safe_load((ROOT / "configs" / "damage_lite0.yaml").read_text()),
                                  "data_root": str(DATA)})
    photos = load_garment_photos(_rise_photos(config)["val"][:12], height=config.height, width=config.width,
                                 progress=False)
    damaged = fixed_damage_set(photos, seed=10_000 + config.seed)
    finder = DamageFinder(threads=1)
    assert finder.info["damage_decoding"] == "region-verifier"
    ev = evaluate_damage_maps([_damage_map(finder, img, p.garment) for (img, _t, _r), p in zip(damaged, photos)],
                              [t for _i, t, _r in damaged], [r for _i, _t, r in damaged],
                              [_damage_map(finder, p.rgb, p.garment) for p in photos], threshold=0.3)
    assert ev.regions["hole"] >= 3
    assert ev.region_recall["hole"] >= 0.6, ev.to_dict()
    assert ev.regions["stain"] >= 3 and ev.region_recall["stain"] >= 0.2, ev.to_dict()
    assert ev.miou >= 0.45, ev.to_dict()
    assert ev.false_damage_rate <= 2 / 12, ev.to_dict()
