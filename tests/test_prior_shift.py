"""Prior-shift correction (fashionlens.models.prior_shift): EM, adjustment, sidecar."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fashionlens.models.heads import HeadSpec
from fashionlens.models.prior_shift import (
    HeadPriors,
    PriorShift,
    adjust_priors,
    em_priors,
    smoothed_frequencies,
    street_priors_path,
)


def _bayes_posteriors(rng: np.random.Generator, prior: np.ndarray, n: int, means: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from ``prior``, 1-D Gaussian features (unit variance, class means ``means``), and the exact
    posteriors of a classifier that assumes a *uniform* prior (the source domain)."""
    y = rng.choice(len(prior), size=n, p=prior)
    x = rng.normal(means[y], 1.0)
    loglik = -0.5 * (x[:, None] - means[None, :]) ** 2
    p = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True), y


def test_em_recovers_a_known_shifted_prior() -> None:
    rng = np.random.default_rng(0)
    source = np.full(3, 1 / 3)
    target = np.array([0.8, 0.15, 0.05])
    probs, _ = _bayes_posteriors(rng, target, 20_000, np.array([0.0, 2.0, 4.0]))
    naive = probs.mean(axis=0)  # the posteriors' mean is pulled toward the source prior
    result = em_priors(probs, source)
    assert result.converged
    assert np.abs(result.prior - target).max() < 0.02
    assert np.abs(result.prior - target).max() < np.abs(naive - target).max() / 3


def test_em_stays_put_without_shift() -> None:
    rng = np.random.default_rng(1)
    source = np.full(4, 0.25)
    probs, _ = _bayes_posteriors(rng, source, 20_000, np.array([0.0, 1.5, 3.0, 4.5]))
    assert np.abs(em_priors(probs, source).prior - source).max() < 0.03


def test_adjusting_to_the_true_prior_improves_accuracy_and_keeps_rows_normalised() -> None:
    rng = np.random.default_rng(2)
    target = np.array([0.85, 0.1, 0.05])
    probs, y = _bayes_posteriors(rng, target, 5_000, np.array([0.0, 1.0, 2.0]))
    moved = adjust_priors(probs, np.full(3, 1 / 3), target)
    np.testing.assert_allclose(moved.sum(axis=1), 1.0, atol=1e-12)
    assert (moved >= 0).all()
    assert (moved.argmax(1) == y).mean() > (probs.argmax(1) == y).mean() + 0.1


def test_adjust_is_identity_for_equal_priors_and_handles_batches() -> None:
    p = np.array([[[0.2, 0.5, 0.3]], [[0.9, 0.05, 0.05]]])
    prior = np.array([0.5, 0.3, 0.2])
    np.testing.assert_allclose(adjust_priors(p, prior, prior), p, atol=1e-12)
    zero = adjust_priors(np.zeros((1, 3)), prior, np.array([0.2, 0.3, 0.5]))
    np.testing.assert_allclose(zero, np.full((1, 3), 1 / 3))  # an all-zero row becomes uniform, not NaN


def test_bad_priors_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="positive"):
        adjust_priors(np.full((1, 3), 1 / 3), np.array([0.5, 0.5, 0.0]), np.full(3, 1 / 3))
    with pytest.raises(ValueError, match="expected 3 class priors"):
        adjust_priors(np.full((1, 3), 1 / 3), np.full(2, 0.5), np.full(3, 1 / 3))


def test_smoothed_frequencies() -> None:
    f = smoothed_frequencies([0, 0, 0, 1], 3, alpha=1.0)
    np.testing.assert_allclose(f, [4 / 7, 2 / 7, 1 / 7])
    with pytest.raises(ValueError, match="class indices"):
        smoothed_frequencies([3], 3)


def _shift() -> PriorShift:
    return PriorShift(heads={"pattern": HeadPriors("pattern", ("plain", "striped", "graphic"), (0.3, 0.4, 0.3),
                                                   (0.8, 0.1, 0.1))},
                      domain="street crops", provenance={"split": "train", "n": 3, "seed": 0})


def test_apply_moves_only_the_corrected_heads_and_keeps_rows_normalised() -> None:
    shift = _shift()
    probs = {"pattern": np.array([[0.2, 0.6, 0.2], [0.1, 0.1, 0.8]], np.float32),
             "sleeve": np.array([[0.5, 0.5]], np.float32)}
    out = shift.apply(probs)
    np.testing.assert_allclose(out["pattern"].sum(axis=1), 1.0, atol=1e-12)
    assert out["pattern"][0].argmax() == 0  # 0.2·(0.8/0.3) beats 0.6·(0.1/0.4)
    assert out["sleeve"] is probs["sleeve"]
    with pytest.raises(ValueError, match="expected probabilities over 3 values"):
        shift.apply({"pattern": np.ones((1, 4)) / 4})


def test_sidecar_round_trip(tmp_path) -> None:
    shift = _shift()
    weights = tmp_path / "model.onnx"
    path = shift.save(street_priors_path(weights))
    assert path.name == "model.street-priors.json"
    loaded = PriorShift.for_weights(tmp_path / "model.pt")
    assert loaded == shift
    p = np.array([[0.2, 0.6, 0.2]])
    np.testing.assert_array_equal(loaded.apply({"pattern": p})["pattern"], shift.apply({"pattern": p})["pattern"])
    assert PriorShift.for_weights(tmp_path / "other.pt") is None


def test_sidecar_errors_and_head_check(tmp_path) -> None:
    bad = tmp_path / "x.street-priors.json"
    bad.write_text(json.dumps({"format": "something/else"}))
    with pytest.raises(ValueError, match="fashionlens/prior-shift/v1"):
        PriorShift.load(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        PriorShift.load(bad)
    shift = _shift()
    shift.check_heads([HeadSpec("pattern", "single", ("plain", "striped", "graphic"))])
    with pytest.raises(ValueError, match="does not fit"):
        shift.check_heads([HeadSpec("pattern", "single", ("plain", "graphic", "striped"))])


def test_shipped_street_priors_fit_the_shipped_classifier() -> None:
    from fashionlens.models.registry import default_weights_path

    weights = default_weights_path()
    shift = PriorShift.for_weights(weights)
    if shift is None:
        pytest.skip("no street-prior sidecar next to the shipped classifier")
    from fashionlens.taxonomy import load_taxonomy

    tax = load_taxonomy()  # the classifier's attribute heads are the taxonomy's attribute groups, in order
    shift.check_heads([HeadSpec(name, "single", tuple(tax.attribute(name).values)) for name in shift.heads])
    assert shift.provenance.get("command")
    # fitted on the street set's train photos only: its validation photos stay held out
    assert shift.provenance["target_prior"]["split"] == "train"


def test_em_keeps_fixed_classes_at_their_source_prior() -> None:
    rng = np.random.default_rng(3)
    source = np.array([0.3, 0.3, 0.3, 0.1])
    probs, _ = _bayes_posteriors(rng, np.array([0.7, 0.2, 0.1, 0.0]) + 1e-9, 5_000, np.array([0.0, 2.0, 4.0, 6.0]))
    free = np.array([True, True, True, False])
    result = em_priors(probs, source, free=free)
    assert result.prior[3] == pytest.approx(0.1)
    assert result.prior.sum() == pytest.approx(1.0)
    assert result.prior[0] > result.prior[1] > result.prior[2]
    with pytest.raises(ValueError, match="at least one True"):
        em_priors(probs, source, free=np.zeros(4, bool))


def test_ml_priors_from_labelled_rows_recover_the_shift() -> None:
    from fashionlens.models.prior_shift import fit_priors_ml

    rng = np.random.default_rng(4)
    source = np.full(3, 1 / 3)
    target = np.array([0.8, 0.15, 0.05])
    probs, y = _bayes_posteriors(rng, target, 4_000, np.array([0.0, 2.0, 4.0]))
    fitted = fit_priors_ml(probs, y, source, source, l2=1.0)
    assert fitted.sum() == pytest.approx(1.0)
    assert np.abs(fitted - target).max() < 0.03
    # a strong pull keeps the prior near the initial guess
    near = fit_priors_ml(probs, y, source, source, l2=1e6)
    assert np.abs(near - source).max() < 0.02


def test_the_tagger_moves_only_detected_crops_to_street_priors() -> None:
    """Detected (street) crops get the shipped street priors on the pattern head; whole-photo rows do not,
    other heads never; ``street_priors=None`` turns it off."""
    from fashionlens.pipeline import Tagger

    tagger = Tagger(calibration=None)
    assert tagger.street_priors is not None and set(tagger.street_priors.heads) == {"pattern"}
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(3, 3, tagger.input_size, tagger.input_size)).astype(np.float32)
    street = np.array([True, False, True])
    moved = tagger._run(batch, street=street)
    raw = Tagger(calibration=None, street_priors=None)._run(batch, street=street)
    assert not np.allclose(moved["pattern"][street], raw["pattern"][street])
    np.testing.assert_allclose(moved["pattern"][~street], raw["pattern"][~street], atol=1e-6)
    np.testing.assert_allclose(moved["pattern"].sum(-1), 1.0, atol=1e-5)
    for head in set(raw) - {"pattern"}:
        np.testing.assert_allclose(moved[head], raw[head], atol=1e-6)
