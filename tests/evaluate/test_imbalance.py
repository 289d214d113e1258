"""Label-imbalance measures on tiny hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fashionlens.evaluate.imbalance import (
    image_size_summary,
    imbalance_ratio_per_label,
    label_matrix,
    mean_imbalance_ratio,
    scumble,
)

# Labels A, B, C: counts 4, 1, 1 -> IRLbl 1, 4, 4; MeanIR 3.
# SCUMBLE per sample: {A,B}: 1 - sqrt(1*4) / ((1+4)/2) = 1 - 2/2.5 = 0.2; {A}: 0; {A}: 0;
# {A,C}: 0.2 -> mean 0.4 / 4 = 0.1.
ASYM = np.array([[1, 1, 0], [1, 0, 0], [1, 0, 0], [1, 0, 1]], dtype=bool)
ASYM_LISTS = [["a", "b"], ["a"], ["a"], ["c", "a"]]


def test_balanced_single_label() -> None:
    y = np.eye(3, dtype=bool)
    np.testing.assert_allclose(imbalance_ratio_per_label(y), [1.0, 1.0, 1.0])
    assert mean_imbalance_ratio(y) == 1.0
    assert scumble(y) == 0.0


def test_balanced_multi_label() -> None:
    y = np.ones((4, 3), dtype=bool)
    assert mean_imbalance_ratio(y) == 1.0
    assert scumble(y) == pytest.approx(0.0, abs=1e-12)


def test_single_label_data_has_zero_scumble_even_when_imbalanced() -> None:
    y = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=bool)
    np.testing.assert_allclose(imbalance_ratio_per_label(y), [1.0, 3.0])
    assert mean_imbalance_ratio(y) == pytest.approx(2.0)
    assert scumble(y) == pytest.approx(0.0, abs=1e-12)


def test_asymmetric_example_by_hand() -> None:
    np.testing.assert_allclose(imbalance_ratio_per_label(ASYM), [1.0, 4.0, 4.0])
    assert mean_imbalance_ratio(ASYM) == pytest.approx(3.0)
    assert scumble(ASYM) == pytest.approx(0.1)


def test_three_labels_in_one_sample_by_hand() -> None:
    # counts A=4, B=2, C=1 -> IRLbl 1, 2, 4. Sample {A,B,C}: 1 - 8**(1/3) / (7/3) = 1 - 6/7.
    y = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 0, 0]], dtype=bool)
    np.testing.assert_allclose(imbalance_ratio_per_label(y), [1.0, 2.0, 4.0])
    assert mean_imbalance_ratio(y) == pytest.approx(7 / 3)
    # {A,B}: 1 - sqrt(2) / 1.5; the two single-label samples: 0.
    expected = ((1 - 6 / 7) + (1 - math.sqrt(2) / 1.5)) / 4
    assert scumble(y) == pytest.approx(expected)


def test_label_lists_equal_the_matrix() -> None:
    np.testing.assert_allclose(imbalance_ratio_per_label(ASYM_LISTS), [1.0, 4.0, 4.0])
    assert mean_imbalance_ratio(ASYM_LISTS) == pytest.approx(3.0)
    assert scumble(ASYM_LISTS) == pytest.approx(0.1)


def test_zero_count_labels_are_excluded() -> None:
    y = np.hstack([ASYM, np.zeros((4, 1), dtype=bool)])
    ir = imbalance_ratio_per_label(y)
    np.testing.assert_allclose(ir[:3], [1.0, 4.0, 4.0])
    assert np.isnan(ir[3])
    assert mean_imbalance_ratio(y) == pytest.approx(3.0)
    assert scumble(y) == pytest.approx(0.1)


def test_samples_without_labels_are_left_out_of_scumble() -> None:
    y = np.vstack([ASYM, np.zeros((3, 3), dtype=bool)])
    assert scumble(y) == pytest.approx(0.1)
    assert mean_imbalance_ratio(y) == pytest.approx(3.0)


def test_integer_matrix_is_accepted() -> None:
    assert scumble(ASYM.astype(np.int64)) == pytest.approx(0.1)


def test_label_matrix_order_and_repeats() -> None:
    y, labels = label_matrix([["b", "a", "a"], ["c"]])
    assert labels == ["a", "b", "c"]
    np.testing.assert_array_equal(y, [[True, True, False], [False, False, True]])
    y2, labels2 = label_matrix([["b"], []], labels=["c", "b", "a"])
    assert labels2 == ["c", "b", "a"]
    np.testing.assert_array_equal(y2, [[False, True, False], [False, False, False]])


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((0, 3), dtype=bool), "at least one sample"),
        (np.zeros((3, 0), dtype=bool), "at least one sample"),
        ([], "at least one sample"),
        ([[], []], "at least one sample"),
        (np.zeros((3, 2), dtype=bool), "no sample has any label"),
        (np.array([1, 0, 1]), "2-D"),
        (np.array([[2, 0], [1, 1]]), "binary"),
        (["a", "b"], "expected a list of labels"),
        ([["a"], [1]], "mixed types"),
    ],
)
@pytest.mark.parametrize("fn", [imbalance_ratio_per_label, mean_imbalance_ratio, scumble])
def test_bad_input_raises(fn, bad, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        fn(bad)


def test_label_matrix_rejects_unknown_and_repeated_labels() -> None:
    with pytest.raises(ValueError, match="not in labels"):
        label_matrix([["a", "z"]], labels=["a", "b"])
    with pytest.raises(ValueError, match="repeat"):
        label_matrix([["a"]], labels=["a", "a"])


# --- image sizes --------------------------------------------------------------------------


def test_image_size_summary_by_hand() -> None:
    s = image_size_summary([(100, 200), (300, 400), (200, 100)])
    assert s["n_images"] == 3
    assert s["width"] == {"min": 100, "median": 200.0, "max": 300}
    assert s["height"] == {"min": 100, "median": 200.0, "max": 400}
    mp = s["megapixels"]  # 0.02, 0.12, 0.02
    assert mp["min"] == pytest.approx(0.02)
    assert mp["median"] == pytest.approx(0.02)
    assert mp["max"] == pytest.approx(0.12)
    assert mp["p75"] == pytest.approx(0.07)  # halfway between 0.02 and 0.12
    assert list(mp) == ["min", "p05", "p25", "median", "p75", "p95", "max"]


def test_image_size_summary_single_image() -> None:
    s = image_size_summary([(4000, 3000)])
    assert all(v == pytest.approx(12.0) for v in s["megapixels"].values())


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([], "at least one"),
        ([(0, 10)], "positive integer"),
        ([(10, -1)], "positive integer"),
        ([(1.5, 2)], "positive integer"),
        ([(True, 2)], "positive integer"),
        ([(10,)], "pair"),
        ([10], "pair"),
    ],
)
def test_image_size_summary_rejects_bad_sizes(bad, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        image_size_summary(bad)
