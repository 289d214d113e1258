from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fashionlens.evaluate.damage import (
    choose_threshold,
    decode_damage,
    evaluate_damage_predictions,
)
from fashionlens.grading.item import DAMAGE_TYPES
from fashionlens.models.damage import (
    DAMAGE_CLASS_NAMES,
    DamageMeta,
    DamageSegmenter,
    damage_probabilities,
    load_damage_model,
    save_damage_model,
)

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment

K = len(DAMAGE_TYPES) + 1


def _probs(dmap: np.ndarray, confidence: float = 0.9) -> np.ndarray:
    p = np.full((K, *dmap.shape), (1 - confidence) / (K - 1), np.float32)
    for k in range(K):
        p[k][dmap == k] = confidence
    return p


def test_segmenter_shapes_frozen_blocks_and_probabilities():
    torch.manual_seed(0)
    model = DamageSegmenter(pretrained=False, decoder_channels=16)
    x = torch.randn(1, 3, 64, 96)
    assert model(x).shape == (1, K, 16, 24)
    p = damage_probabilities(model.eval(), x)
    assert p.shape == (1, K, 64, 96)
    assert torch.allclose(p.sum(1), torch.ones(1, 64, 96), atol=1e-5)
    assert not any(p.requires_grad for p in model.body.conv_stem.parameters())
    assert any(p.requires_grad for p in model.body.blocks[3].parameters())
    with pytest.raises(ValueError, match="num_classes"):
        DamageSegmenter(pretrained=False, num_classes=1)


def test_save_load_round_trip_in_fp16(tmp_path):
    torch.manual_seed(0)
    model = DamageSegmenter(pretrained=False, decoder_channels=16).eval()
    meta = DamageMeta(name="t", version="0", threshold=0.7, builder_kwargs={"decoder_channels": 16})
    save_damage_model(model, meta, tmp_path / "d.pt")
    loaded, meta2 = load_damage_model(tmp_path / "d.pt")
    assert meta2.threshold == 0.7 and meta2.class_names == DAMAGE_CLASS_NAMES
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x), atol=5e-2)
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(ValueError, match="damage-segmenter"):
        load_damage_model(tmp_path / "bad.pt")


def test_decode_applies_threshold_garment_and_min_region():
    dmap = np.zeros((40, 40), np.uint8)
    dmap[5:15, 5:15] = 2  # a 100-px hole
    dmap[30, 30] = 1  # a 1-px stain
    p = _probs(dmap)
    assert (decode_damage(p, threshold=0.5) == dmap).all()
    assert not decode_damage(p, threshold=0.99).any()  # damage probability is 0.975
    garment = np.ones((40, 40), bool)
    out = decode_damage(p, threshold=0.5, garment=garment, min_region_share=0.01)  # 16 px minimum
    assert out[30, 30] == 0 and (out[5:15, 5:15] == 2).all()
    outside = np.zeros((40, 40), bool)
    assert not decode_damage(p, threshold=0.5, garment=outside).any()
    with pytest.raises(ValueError, match="probabilities"):
        decode_damage(np.zeros((2, 4, 4)), threshold=0.5)


def _region(kind: str, box: tuple[int, int, int, int]):
    return SimpleNamespace(type=kind, bbox_xyxy=box)


def test_metrics_perfect_partial_and_false_damage():
    t = np.zeros((40, 40), np.uint8)
    t[0:10, 0:10] = 1  # stain
    t[20:30, 20:30] = 2  # hole
    regions = [[_region("stain", (0, 0, 10, 10)), _region("hole", (20, 20, 30, 30))]]
    clean = [_probs(np.zeros((40, 40), np.uint8)), _probs(t)]  # the second "clean" photo is flagged
    ev = evaluate_damage_predictions([_probs(t)], [t], regions, clean, None, threshold=0.5, min_region_share=0)
    assert ev.iou["stain"] == 1.0 and ev.iou["hole"] == 1.0 and ev.iou["pilling"] == 0.0
    assert ev.region_recall["stain"] == 1.0 and ev.region_recall["hole"] == 1.0
    assert ev.false_damage_rate == 0.5
    half = t.copy()
    half[20:30, 20:30] = 0
    half[20:22, 20:30] = 2  # 20 % of the hole found: below the 30 % hit rule
    ev2 = evaluate_damage_predictions([_probs(half)], [t], regions, [], None, threshold=0.5, min_region_share=0)
    assert ev2.region_recall["hole"] == 0.0 and ev2.iou["hole"] == pytest.approx(0.2)
    wrong_type = np.where(t == 1, 3, t).astype(np.uint8)
    ev3 = evaluate_damage_predictions([_probs(wrong_type)], [t], regions, [], None, threshold=0.5, min_region_share=0)
    assert ev3.region_recall["stain"] == 0.0


def test_choose_threshold_respects_the_false_damage_budget():
    t = np.zeros((20, 20), np.uint8)
    t[2:8, 2:8] = 1
    regions = [[_region("stain", (2, 2, 8, 8))]]
    weak = _probs(t, confidence=0.65)  # damage probability 1 - p(none) = 0.65 inside, 0.35 outside... per class
    clean_noise = _probs(np.zeros((20, 20), np.uint8), confidence=0.55)  # p(none)=0.55 → damage prob 0.45
    thr, _ = choose_threshold([weak], [t], regions, [clean_noise], None, max_false_rate=0.0)
    assert thr > 0.45  # the clean photo must not be flagged
    ev = evaluate_damage_predictions([weak], [t], regions, [clean_noise], None, threshold=thr, min_region_share=0)
    assert ev.false_damage_rate == 0.0 and ev.region_recall["stain"] == 1.0


def test_onnx_export_matches_torch_and_finder_reports_regions(tmp_path):
    from fashionlens.grading.damage import DamageFinder
    from fashionlens.runtime.damage_onnx import export_damage_onnx

    torch.manual_seed(0)
    model = DamageSegmenter(pretrained=False, decoder_channels=16).eval()
    meta = DamageMeta(name="t", version="0", input_side=128, threshold=0.5, min_region_share=0.0,
                      builder_kwargs={"decoder_channels": 16})
    save_damage_model(model, meta, tmp_path / "d.pt")
    export_damage_onnx(tmp_path / "d.pt")
    assert (tmp_path / "d.onnx").is_file()
    rgb = (np.random.default_rng(0).random((150, 90, 3)) * 255).astype(np.uint8)
    onnx, eager = DamageFinder(tmp_path / "d.pt", threads=1), DamageFinder(tmp_path / "d.pt", backend="torch")
    assert onnx.backend == "onnx" and eager.backend == "torch"
    p1, p2 = onnx.probabilities(rgb), eager.probabilities(rgb)
    assert p1.shape == (K, 150, 90) and np.abs(p1 - p2).max() < 1e-3
    garment = np.zeros((150, 90), bool)
    garment[10:140, 10:80] = True
    found = onnx.find(rgb, garment)
    for d in found:
        assert not d.mask[~garment].any() and d.type in DAMAGE_TYPES
        region = d.to_dict("front")
        assert region["view"] == "front" and set(region["mask"]) == {"size", "counts"}
    assert sum(d.area_share for d in found) <= 1.0 + 1e-6
    with pytest.raises(ValueError, match="garment mask"):
        onnx.find(rgb, garment[:10])
    with pytest.raises(FileNotFoundError, match="onnx"):
        (tmp_path / "d.onnx").unlink()
        DamageFinder(tmp_path / "d.pt", backend="onnx")


def test_per_type_minimum_regions_keep_small_holes_and_drop_small_fades():
    dmap = np.zeros((40, 40), np.uint8)
    dmap[2:6, 2:6] = 2  # a 16-px hole
    dmap[20:24, 20:24] = 4  # a 16-px fade
    p = _probs(dmap)
    out = decode_damage(p, threshold=0.5, min_region_share=[0.0, 0.005, 0.0, 0.05])  # of 1600 px: hole 8, fade 80
    assert (out[2:6, 2:6] == 2).all() and not (out == 4).any()
    with pytest.raises(ValueError, match="one per damage type"):
        decode_damage(p, threshold=0.5, min_region_share=[0.1, 0.2])


def test_choose_threshold_per_type_can_beat_one_shared_minimum():
    t = np.zeros((40, 40), np.uint8)
    t[2:6, 2:6] = 2  # a 16-px hole
    regions = [[_region("hole", (2, 2, 6, 6))]]
    clean = np.zeros((40, 40), np.uint8)
    clean[30:33, 30:33] = 4  # a 9-px false fade on the clean photo: the shared minimums (≤ 6.4 px) keep it
    args = ([_probs(t)], [t], regions, [_probs(clean)], None)
    shared = choose_threshold(*args, max_false_rate=0.0)
    per_type = choose_threshold(*args, max_false_rate=0.0, per_type=True)
    ev_shared = evaluate_damage_predictions(*args, threshold=shared[0], min_region_share=shared[1])
    ev_type = evaluate_damage_predictions(*args, threshold=per_type[0], min_region_share=per_type[1])
    assert ev_type.false_damage_rate == 0.0 and ev_type.region_recall["hole"] == 1.0
    assert ev_type.score > ev_shared.score
