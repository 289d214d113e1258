import json

import numpy as np
import pytest
from PIL import Image

from fashionlens.models.damage import load_damage_model
from fashionlens.train.damage import (
    DamageTrainConfig,
    evaluate_damage_model,
    train_damage,
)

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment


def _fake_rise(root, n=12):
    rise = root / "rise"
    (rise / "images").mkdir(parents=True)
    rows = []
    rng = np.random.default_rng(0)
    for i in range(n):
        rgb = np.full((112, 64, 3), 245, np.uint8)
        rgb[15:100, 10:54] = rng.integers(30, 200, 3)
        Image.fromarray(rgb).save(rise / "images" / f"T{i:03d}.jpg")
        rows.append({"id": f"T{i:03d}", "type": "Sweater", "pattern": None, "cut": "[]", "material": "100% cotton",
                     "colors": "['Red']", "season": "", "gender": "women"})
    (rise / "garments.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


def test_train_resume_and_evaluate_on_a_tiny_set(tmp_path):
    root = _fake_rise(tmp_path / "data")
    config = DamageTrainConfig(data_root=str(root), out_dir=str(tmp_path / "run"), height=64, width=64, epochs=1,
                               batch_size=4, workers=0, decoder_channels=8)
    summary = train_damage(config, progress=False)
    assert set(summary) >= {"val", "test", "best_epoch", "model"}
    assert summary["test"]["damaged_photos"] >= 1 and 0 <= summary["test"]["false_damage_rate"] <= 1
    _model, meta = load_damage_model(summary["model"])
    assert meta.threshold == summary["val"]["threshold"] and meta.training["photos"]["train"] >= 6
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1
    # a second call with more epochs resumes after epoch 1 instead of starting over
    config.epochs = 2
    train_damage(config, progress=False)
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]
    again = evaluate_damage_model(summary["model"], config, save_defaults=True, progress=False)
    assert load_damage_model(summary["model"])[1].metrics["test"] == again["test"]


def test_config_rejects_sizes_that_are_not_multiples_of_32():
    with pytest.raises(ValueError, match="multiples of 32"):
        DamageTrainConfig(height=100)


def test_decoding_budget_defaults_to_the_epoch_budget_and_is_checked():
    assert DamageTrainConfig().decoding_budget == 0.05
    assert DamageTrainConfig(max_false_rate=0.05, decoding_max_false_rate=0.035).decoding_budget == 0.035
    with pytest.raises(ValueError, match="decoding_max_false_rate must be in"):
        DamageTrainConfig(decoding_max_false_rate=1.5)


def test_epochs_are_chosen_under_max_false_rate_and_the_decoding_under_its_own_budget(tmp_path, monkeypatch):
    import fashionlens.train.damage as damage_training

    seen = []
    real = damage_training.choose_threshold

    def spy(*args, max_false_rate, per_type=False, **kwargs):
        seen.append((per_type, max_false_rate))
        return real(*args, max_false_rate=max_false_rate, per_type=per_type, **kwargs)

    monkeypatch.setattr(damage_training, "choose_threshold", spy)
    root = _fake_rise(tmp_path / "data")
    config = DamageTrainConfig(data_root=str(root), out_dir=str(tmp_path / "run"), height=64, width=64, epochs=1,
                               batch_size=4, workers=0, decoder_channels=8, max_false_rate=0.05,
                               decoding_max_false_rate=0.01)
    train_damage(config, progress=False)
    assert seen == [(False, 0.05), (True, 0.01)]


def test_init_from_starts_at_saved_weights_and_rejects_other_shapes(tmp_path):
    root = _fake_rise(tmp_path / "data")
    first = DamageTrainConfig(data_root=str(root), out_dir=str(tmp_path / "a"), height=64, width=64, epochs=1,
                              batch_size=4, workers=0, decoder_channels=8)
    saved = train_damage(first, progress=False)["model"]
    start, _ = load_damage_model(saved)
    # lr 1e-12: one more epoch leaves the weights where init_from put them; another seed would have
    # drawn another random decoder, so equality shows the weights came from init_from
    more = DamageTrainConfig(data_root=str(root), out_dir=str(tmp_path / "b"), height=64, width=64, epochs=1,
                             batch_size=4, workers=0, decoder_channels=8, init_from=saved, epoch_offset=1, lr=1e-12,
                             seed=1)
    after, _ = load_damage_model(train_damage(more, progress=False)["model"])
    for (name, a), b in zip(start.named_parameters(), after.parameters()):  # (decoder BN statistics do move)
        assert np.allclose(a.detach().numpy(), b.detach().numpy(), atol=2e-3), name  # fp16 storage of the weights
    other = DamageTrainConfig(data_root=str(root), out_dir=str(tmp_path / "c"), height=64, width=64, epochs=1,
                              batch_size=4, workers=0, decoder_channels=16, init_from=saved)
    with pytest.raises(ValueError, match="expected damage weights with decoder_channels 16"):
        train_damage(other, progress=False)
    with pytest.raises(ValueError, match="epoch_offset must be >= 0"):
        DamageTrainConfig(epoch_offset=-1)


def test_region_verifier_is_fitted_measured_and_stored(tmp_path, monkeypatch, caplog):
    import fashionlens.train.damage as damage_training
    from fashionlens.evaluate.damage import DamageEvaluation
    from fashionlens.grading.region_verifier import FEATURES, RegionVerifier
    from fashionlens.train.region_verifier import VerifierFit

    root = _fake_rise(tmp_path / "data")
    config = DamageTrainConfig(data_root=str(root), out_dir=str(tmp_path / "run"), height=64, width=64, epochs=1,
                               batch_size=4, workers=0, decoder_channels=8, region_verifier=True, version="1.1")
    # an untrained head on this tiny set gives no usable candidates: training still finishes, without a verifier
    with caplog.at_level("WARNING"):
        summary = train_damage(config, progress=False)
    assert "verifier" not in summary and "no region verifier" in caplog.text
    assert load_damage_model(summary["model"])[1].verifier is None
    n = len(FEATURES)
    verifier = RegionVerifier(candidate_threshold=0.2, accept_threshold=0.5, mean=(0.0,) * n, scale=(1.0,) * n,
                              coef=(0.0,) * n, intercept=-5.0)
    cross = DamageEvaluation(threshold=0.2, min_region_share=0.0, iou={}, miou=0.0, region_recall={"stain": 0.0},
                             regions={}, false_damage_rate=0.0, clean_photos=2, damaged_photos=2, verifier_threshold=0.5)
    calls = []

    def fake_fit(*args, **kwargs):
        calls.append(kwargs)
        return VerifierFit(verifier, cross, candidates=5, real=2)

    monkeypatch.setattr(damage_training, "fit_region_verifier", fake_fit)
    again = evaluate_damage_model(summary["model"], config, save_defaults=True, progress=False)
    assert calls and calls[0]["candidate_threshold"] == 0.3 and calls[0]["max_false_rate"] == 0.05
    assert again["verifier"]["val"]["verifier_threshold"] == 0.5 and again["verifier"]["candidates"] == 5
    assert again["verifier"]["test"]["false_damage_rate"] == 0.0  # it accepts nothing
    meta = load_damage_model(summary["model"])[1]
    assert RegionVerifier.from_dict(meta.verifier) == verifier and meta.version == "1.1"
    # re-measuring stored weights without fitting reports the stored verifier (in-sample on validation)
    stored = evaluate_damage_model(summary["model"], config, fit_verifier=False, progress=False)
    assert stored["verifier"]["val_note"].startswith("in-sample") and len(calls) == 1


def test_train_type_weights_change_only_the_training_damage(tmp_path):
    """``train_type_weights`` paints the training photos with the given mix (here stains only)."""
    from fashionlens.grading.synthetic_damage import plain_background_mask
    from fashionlens.train.damage import GarmentPhoto, _TrainSet

    with pytest.raises(ValueError, match="type_weights"):
        DamageTrainConfig(train_type_weights=[1.0, 0.0])
    rgb = np.full((128, 96, 3), 245, np.uint8)
    rgb[16:112, 16:80] = (90, 120, 160)
    photo = GarmentPhoto("x.jpg", rgb, plain_background_mask(rgb))
    config = DamageTrainConfig(train_type_weights=[1.0, 0.0, 0.0, 0.0], clean_fraction=0.0)
    seen = set()
    for i in range(12):
        _x, y = _TrainSet([photo] * 12, config, epoch=0)[i]
        seen |= set(np.unique(y.numpy()).tolist())
    assert seen == {0, 1}  # none and stain
    default = DamageTrainConfig(clean_fraction=0.0)
    seen = set()
    for i in range(12):
        seen |= set(np.unique(_TrainSet([photo] * 12, default, epoch=0)[i][1].numpy()).tolist())
    assert len(seen - {0, 1}) >= 2  # the default mix paints other types too
