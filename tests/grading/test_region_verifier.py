import numpy as np
import pytest
import torch

from fashionlens.evaluate.damage import evaluate_damage_maps
from fashionlens.grading.item import DAMAGE_TYPES
from fashionlens.grading.region_verifier import (
    FEATURES,
    RegionVerifier,
    candidate_regions,
)
from fashionlens.train.region_verifier import fit_region_verifier
from fashionlens.grading.synthetic_damage import DamageRegion
from fashionlens.models.damage import DamageMeta, DamageSegmenter, save_damage_model

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment

K = len(DAMAGE_TYPES) + 1
STAIN, HOLE = 1, 2


def _probs(shape, blobs):
    """``blobs``: (slice_y, slice_x, damage class, damage probability)."""
    p = np.zeros((K, *shape), np.float32)
    p[0] = 1.0
    for sy, sx, k, prob in blobs:
        p[:, sy, sx] = 0.0
        p[0, sy, sx] = 1 - prob
        p[k, sy, sx] = prob
    return p


def test_candidates_per_type_with_labels_features_and_maps():
    rgb = np.full((40, 60, 3), 120, np.uint8)
    rgb[5:10, 5:10] = (200, 40, 40)
    p = _probs((40, 60), [(slice(5, 10), slice(5, 10), STAIN, 0.8), (slice(20, 30), slice(30, 45), HOLE, 0.4),
                          (slice(2, 4), slice(55, 58), HOLE, 0.2)])  # under the candidate threshold
    garment = np.zeros((40, 60), bool)
    garment[:, :50] = True  # the third blob is outside the garment anyway
    cand = candidate_regions(p, rgb, garment, threshold=0.3)
    assert len(cand) == 2 and cand.features.shape == (2, len(FEATURES))
    assert sorted(cand.types.tolist()) == [STAIN, HOLE]
    f = dict(zip(FEATURES, cand.features[list(cand.types).index(STAIN)]))
    assert f["type_stain"] == 1 and f["type_hole"] == 0
    assert f["area_share"] == pytest.approx(25 / garment.sum())
    assert f["damage_prob_mean"] == pytest.approx(0.8) and f["delta_E"] > 50  # red on grey
    hole = dict(zip(FEATURES, cand.features[list(cand.types).index(HOLE)]))
    assert hole["delta_E"] == pytest.approx(0.0, abs=1e-3) and hole["fill"] == pytest.approx(1.0)
    both = cand.damage_map(np.array([True, True]))
    assert (both[5:10, 5:10] == STAIN).all() and (both[20:30, 30:45] == HOLE).all() and both.sum() == 25 * 1 + 150 * 2
    keep_stain = cand.damage_map(cand.types == STAIN)
    assert (keep_stain > 0).sum() == 25
    none = candidate_regions(_probs((40, 60), []), rgb, None, threshold=0.3)
    assert len(none) == 0 and not none.damage_map(np.zeros(0, bool)).any()
    with pytest.raises(ValueError, match="uint8 photo matching"):
        candidate_regions(p, rgb[:10], garment, threshold=0.3)
    with pytest.raises(ValueError, match="garment mask"):
        candidate_regions(p, rgb, garment[:5], threshold=0.3)


def _photo_set(n, seed):
    """Grey cloth; damaged copies carry one dark stain the head sees at 0.6; every photo (damaged or clean)
    also has a 'print' the head mistakes for a stain at 0.7, with no colour change."""
    rng = np.random.default_rng(seed)
    damaged, targets, regions, dprobs, clean, cprobs, garments = [], [], [], [], [], [], []
    for _ in range(n):
        rgb = np.full((48, 48, 3), rng.integers(100, 160), np.uint8)
        y, x = rng.integers(4, 30, 2)
        fy, fx = (y + 14) % 34 + 4, (x + 20) % 30 + 4
        fake = (slice(fy, fy + 5), slice(fx, fx + 5), STAIN, 0.7)
        img = rgb.copy()
        img[y:y + 6, x:x + 6] //= 3
        target = np.zeros((48, 48), np.uint8)
        target[y:y + 6, x:x + 6] = STAIN
        target[fy:fy + 5, fx:fx + 5] = 0
        damaged.append(img)
        targets.append(target)
        regions.append([DamageRegion("stain", 36 / 48 ** 2, (int(x), int(y), int(x) + 6, int(y) + 6))])
        dprobs.append(_probs((48, 48), [(slice(y, y + 6), slice(x, x + 6), STAIN, 0.6), fake]))
        clean.append(rgb)
        cprobs.append(_probs((48, 48), [fake]))
        garments.append(np.ones((48, 48), bool))
    return dprobs, damaged, targets, regions, cprobs, clean, garments


def test_fitted_verifier_keeps_visible_stains_and_drops_look_alikes():
    dprobs, damaged, targets, regions, cprobs, clean, garments = _photo_set(24, 0)
    fit = fit_region_verifier(dprobs, damaged, targets, regions, cprobs, clean, garments, candidate_threshold=0.3,
                              max_false_rate=0.05)
    assert fit.candidates == 3 * 24 and fit.real == 24
    ev = fit.validation  # cross-fitted
    assert ev.region_recall["stain"] == 1.0 and ev.false_damage_rate == 0.0 and ev.verifier_threshold is not None
    # a plain threshold cannot separate them: the look-alike is *more* probable than the real stain
    v = fit.verifier
    again = RegionVerifier.from_dict(v.to_dict())
    assert again == v
    d2, im2, t2, r2, c2, cl2, g2 = _photo_set(10, 1)  # fresh photos
    maps = [again.decode(p, im, g) for p, im, g in zip(d2, im2, g2)]
    ev2 = evaluate_damage_maps(maps, t2, r2, [again.decode(p, im, g) for p, im, g in zip(c2, cl2, g2)],
                               threshold=v.candidate_threshold)
    assert ev2.region_recall["stain"] == 1.0 and ev2.false_damage_rate == 0.0 and ev2.iou["stain"] > 0.9


def test_fit_and_restore_refuse_what_they_cannot_use():
    dprobs, damaged, targets, regions, cprobs, clean, garments = _photo_set(4, 0)
    with pytest.raises(ValueError, match="same photos"):
        fit_region_verifier(dprobs, damaged, targets, regions, cprobs[:2], clean, garments)
    no_false = [_probs((48, 48), []) for _ in cprobs]
    only_real = [_probs((48, 48), [(slice(*r[0].bbox_xyxy[1::2]), slice(*r[0].bbox_xyxy[::2]), STAIN, 0.9)])
                 for r in regions]
    with pytest.raises(ValueError, match="both real damage and false alarms"):
        fit_region_verifier(only_real, damaged, targets, regions, no_false, clean, garments)
    d = fit_region_verifier(*_photo_set(8, 0)).verifier.to_dict()
    with pytest.raises(ValueError, match="expected keys"):
        RegionVerifier.from_dict({**d, "extra": 1})
    with pytest.raises(ValueError, match="expected features"):
        RegionVerifier.from_dict({**d, "features": d["features"][:-1]})
    with pytest.raises(ValueError, match="expected 1 predicted maps|expected 2 predicted maps"):
        evaluate_damage_maps([np.zeros((4, 4), np.uint8)], [np.zeros((4, 4), np.uint8)] * 2, [[], []], [],
                             threshold=0.5)


def test_finder_uses_the_stored_verifier_unless_a_threshold_is_given(tmp_path):
    from fashionlens.grading.damage import DamageFinder

    torch.manual_seed(0)
    model = DamageSegmenter(pretrained=False, decoder_channels=16).eval()
    n = len(FEATURES)
    # accept nothing: a verifier that rejects every candidate (large negative intercept)
    verifier = RegionVerifier(candidate_threshold=0.01, accept_threshold=0.5, mean=(0.0,) * n, scale=(1.0,) * n,
                              coef=(0.0,) * n, intercept=-20.0)
    meta = DamageMeta(name="t", version="0", input_side=128, threshold=0.01, min_region_share=0.0,
                      builder_kwargs={"decoder_channels": 16}, verifier=verifier.to_dict())
    save_damage_model(model, meta, tmp_path / "d.pt")
    rgb = (np.random.default_rng(0).random((150, 90, 3)) * 255).astype(np.uint8)
    with_verifier = DamageFinder(tmp_path / "d.pt", backend="torch")
    assert with_verifier.info["damage_decoding"] == "region-verifier"
    assert with_verifier.find(rgb) == []
    plain = DamageFinder(tmp_path / "d.pt", backend="torch", threshold=0.01)
    assert plain.verifier is None and plain.info["damage_decoding"] == "threshold"
    assert len(plain.find(rgb)) >= 1  # an untrained head is unsure everywhere: threshold 0.01 flags damage
    off = DamageFinder(tmp_path / "d.pt", backend="torch", verify=False)
    assert off.verifier is None
