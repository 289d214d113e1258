"""Classifier evaluation: source-label probabilities, metrics on hand-made predictions, thresholds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fashionlens.evaluate.classification import (
    CLOTHING_COMMON10,
    best_threshold,
    classifier_metrics,
    multi_label_predictions,
    multi_label_truth,
    object_type_probs,
    predict_probs,
    source_label_probs,
)
from fashionlens.models.heads import default_heads
from fashionlens.taxonomy import load_taxonomy
from fashionlens.train.samples import Sample

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment

TAX = load_taxonomy()
HEADS = default_heads()
SLEEVE = TAX.attribute("sleeve").values  # sleeveless, short, long
COLOURS = TAX.attribute("colours").values


def _cat_probs(rows: list[dict[str, float]]) -> np.ndarray:
    """Category probabilities: the given masses, the rest spread evenly over the other categories."""
    out = np.zeros((len(rows), len(TAX.categories)))
    for i, row in enumerate(rows):
        rest = (1.0 - sum(row.values())) / (len(TAX.categories) - len(row))
        out[i] = rest
        for c, p in row.items():
            out[i, TAX.category_index(c)] = p
    return out


def _sleeve(rows: list[tuple[float, float, float]]) -> np.ndarray:
    return np.array(rows, dtype=float)


# --- source_label_probs --------------------------------------------------------------------


def test_clothing_common10_probs() -> None:
    cat = _cat_probs([
        {"t-shirts": 0.6, "jeans": 0.1, "trousers": 0.2, "trainers": 0.02, "boots": 0.03},
        {"boots": 0.3, "heels": 0.2, "sandals": 0.1, "flats": 0.1, "trainers": 0.2},
    ])
    probs = {"category": cat, "sleeve": _sleeve([(0.05, 0.25, 0.7), (0.2, 0.3, 0.5)])}
    lp = source_label_probs(probs, "clothing", CLOTHING_COMMON10)
    assert lp.shape == (2, 10)
    col = {label: lp[:, i] for i, label in enumerate(CLOTHING_COMMON10)}
    # T-Shirt and Longsleeve share t-shirts; the sleeve head splits them
    assert col["T-Shirt"][0] == pytest.approx(0.6 * 0.25)
    assert col["Longsleeve"][0] == pytest.approx(0.6 * 0.7)
    # coarse labels sum their categories
    assert col["Pants"][0] == pytest.approx(0.3)
    footwear = [TAX.category_index(c) for c in ("trainers", "boots", "flats", "sandals", "heels")]
    assert np.allclose(col["Shoes"], cat[:, footwear].sum(1))
    assert col["Shoes"][1] == pytest.approx(0.9)
    for label, c in (("Dress", "dresses"), ("Hat", "hats"), ("Outwear", "coats-jackets"), ("Shirt", "shirts"),
                     ("Shorts", "shorts"), ("Skirt", "skirts")):
        assert np.allclose(col[label], cat[:, TAX.category_index(c)]), label
    assert lp[0].argmax() == CLOTHING_COMMON10.index("Longsleeve")
    assert lp[1].argmax() == CLOTHING_COMMON10.index("Shoes")


def test_without_a_sleeve_head_tshirt_and_longsleeve_tie() -> None:
    probs = {"category": _cat_probs([{"t-shirts": 0.5}])}
    lp = source_label_probs(probs, "clothing", ["T-Shirt", "Longsleeve"])
    assert lp[0, 0] == pytest.approx(0.5) and lp[0, 1] == pytest.approx(0.5)


def test_object_type_only_label_sums_its_type() -> None:
    probs = {"category": _cat_probs([{"shirts": 0.2, "t-shirts": 0.3, "jeans": 0.4}])}
    lp = source_label_probs(probs, "clothing", ["Top", "Pants"])
    upper = sum(probs["category"][0, TAX.category_index(c)] for c in TAX.categories_of("upper-body"))
    assert lp[0, 0] == pytest.approx(upper)
    assert lp[0, 1] == pytest.approx(0.4 + probs["category"][0, TAX.category_index("trousers")])


def test_distinguishing_attribute_counts_once() -> None:
    probs = {"category": _cat_probs([{"t-shirts": 0.6}]), "sleeve": _sleeve([(0.0, 0.5, 0.5)])}
    lp = source_label_probs(probs, "clothing", ["T-Shirt", "Longsleeve", "Polo"])
    assert lp[0, 1] == pytest.approx(0.6 * 0.5)


# --- classifier_metrics ------------------------------------------------------------------------


def _s(source: str, categories: list[str], object_type: str | None = None, label: str | None = None,
       **attributes) -> Sample:
    ot = object_type or (TAX.object_type_of(categories[0]) if categories else None)
    return Sample(file="x.jpg", source=source, group="g", split="val", categories=categories, object_type=ot,
                  attributes=attributes, source_label=label)


SAMPLES = [
    _s("rise", ["sweaters"], colours=["red"]),                                 # predicted sweaters: right
    _s("rise", ["hoodies"], colours=["black", "white"]),                      # predicted sweaters: wrong
    _s("ccp", ["jeans"]),                                                     # predicted jeans: right
    _s("ccp", ["boots"]),                                                     # predicted trousers: wrong type
    _s("clothing", ["jeans", "trousers"], label="Pants"),                     # coarse; predicted trousers
    _s("ccp", [], object_type="footwear"),                                    # type only; predicted sandals
    _s("clothing", ["t-shirts"], label="T-Shirt", sleeve="short"),            # predicted t-shirts, short
]
PREDICTED = ["sweaters", "sweaters", "jeans", "trousers", "trousers", "sandals", "t-shirts"]


def _probs() -> dict[str, np.ndarray]:
    n = len(SAMPLES)
    colours = np.full((n, len(COLOURS)), 0.1)
    colours[0, COLOURS.index("red")] = 0.9
    colours[1, COLOURS.index("black")] = 0.8
    colours[1, COLOURS.index("white")] = 0.3
    probs = {"category": _cat_probs([{c: 0.9} for c in PREDICTED]),
             "sleeve": np.tile([0.1, 0.8, 0.1], (n, 1)), "colours": colours}
    for h in HEADS:
        if h.name not in probs:
            probs[h.name] = np.full((n, h.num_outputs), 1.0 / h.num_outputs)
    return probs


def test_classifier_metrics_on_a_hand_made_set() -> None:
    m = classifier_metrics(_probs(), SAMPLES, HEADS)
    assert m["n_samples"] == 7
    cat = m["category"]
    # exact labels: sweaters ✓, hoodies ✗, jeans ✓, boots ✗, t-shirts ✓
    assert cat["n"] == 5
    assert cat["accuracy"] == pytest.approx(3 / 5)
    # per class F1: sweaters 2/3, hoodies 0, jeans 1, boots 0, t-shirts 1
    assert cat["macro_f1"] == pytest.approx((2 / 3 + 0 + 1 + 0 + 1) / 5)
    assert cat["per_class"]["sweaters"]["precision"] == pytest.approx(0.5)
    assert cat["per_class"]["hoodies"]["recall"] == 0.0
    assert set(cat["per_class"]) == {"sweaters", "hoodies", "jeans", "boots", "t-shirts"}
    # set accuracy: every sample has an allowed set; only hoodies and boots miss it
    assert cat["n_set"] == 7
    assert cat["set_accuracy"] == pytest.approx(5 / 7)
    assert m["score"] == cat["set_accuracy"]
    ot = m["object_type"]
    assert ot["n"] == 7
    assert ot["accuracy"] == pytest.approx(6 / 7)
    assert ot["accuracy_rise"] == 1.0
    assert ot["accuracy_clothing"] == 1.0
    assert ot["accuracy_ccp"] == pytest.approx(2 / 3)
    assert m["rise_type"] == {"n": 2, "accuracy": 0.5}
    c10 = m["clothing10"]
    assert c10["n"] == 2 and c10["accuracy"] == 1.0 and c10["accuracy_open"] == 1.0
    assert np.array(c10["confusion"]).sum() == 2
    assert m["sleeve"]["n"] == 1 and m["sleeve"]["accuracy"] == 1.0
    for head in ("pattern", "material", "neckline", "fit"):
        assert head not in m  # no labels, no metrics
    col = m["colours"]
    assert col["threshold"] == 0.5
    assert col["n"] == 2
    assert col["exact_match"] == pytest.approx(0.5)  # white (0.3) missed
    assert col["hamming_accuracy"] == pytest.approx(27 / 28)
    assert col["macro_f1"] == pytest.approx(2 / 3)  # red 1, black 1, white 0


def test_classifier_metrics_threshold_from_argument() -> None:
    m = classifier_metrics(_probs(), SAMPLES, HEADS, thresholds={"colours": 0.25})
    assert m["colours"]["threshold"] == 0.25
    assert m["colours"]["exact_match"] == 1.0
    assert m["colours"]["macro_f1"] == 1.0


def test_open_set_clothing10_needs_the_top_category_inside_the_label() -> None:
    # Pants: jeans + trousers (0.6) beat Shirt (0.35) among the 10 labels, but the arg-max over all
    # categories is "shirts": right in the closed set, wrong in the open set
    samples = [_s("clothing", ["jeans", "trousers"], label="Pants"),
               _s("clothing", ["t-shirts"], label="T-Shirt", sleeve="short")]
    probs = {"category": _cat_probs([{"jeans": 0.3, "trousers": 0.3, "shirts": 0.35},
                                     {"shirts": 0.35, "t-shirts": 0.34}]),
             "sleeve": np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])}
    m = classifier_metrics(probs, samples, HEADS)
    c10 = m["clothing10"]
    assert c10["accuracy"] == 0.5  # Pants right; the T-shirt is taken for a Shirt (0.35 > 0.34)
    assert c10["accuracy_open"] == 0.0
    conf = np.array(c10["confusion"])
    assert conf[CLOTHING_COMMON10.index("T-Shirt"), CLOTHING_COMMON10.index("Shirt")] == 1


def test_classifier_metrics_without_exact_labels() -> None:
    samples = [_s("clothing", ["jeans", "trousers"], label="Pants"), _s("ccp", [], object_type="footwear")]
    probs = {"category": _cat_probs([{"jeans": 0.9}, {"boots": 0.9}])}
    m = classifier_metrics(probs, samples, HEADS)
    assert m["category"]["n"] == 0
    assert m["category"]["set_accuracy"] == 1.0


def test_object_type_probs_sum_categories() -> None:
    cp = _cat_probs([{"jeans": 0.5, "trousers": 0.2, "hats": 0.1}])
    ot = object_type_probs(cp)
    assert ot.shape == (1, len(TAX.object_types))
    assert ot.sum() == pytest.approx(1.0)
    lower = sum(cp[0, TAX.category_index(c)] for c in TAX.categories_of("lower-body"))
    assert ot[0, TAX.object_type_index("lower-body")] == pytest.approx(lower)


# --- thresholds ----------------------------------------------------------------------------------


def test_best_threshold_separates_positives_from_negatives() -> None:
    rng = np.random.default_rng(0)
    y = rng.random((200, 4)) < 0.3
    probs = np.where(y, rng.uniform(0.42, 0.6, y.shape), rng.uniform(0.0, 0.28, y.shape))
    t = best_threshold(probs, y)
    assert 0.28 < t <= 0.42 + 1e-9
    high = np.where(y, rng.uniform(0.8, 1.0, y.shape), rng.uniform(0.5, 0.62, y.shape))
    assert 0.62 < best_threshold(high, y) <= 0.8


def test_best_threshold_ignores_absent_labels() -> None:
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=bool)
    probs = np.array([[0.7, 0.1, 0.9], [0.2, 0.6, 0.9], [0.65, 0.55, 0.9]])
    t = best_threshold(probs, y)
    assert 0.2 < t <= 0.55 + 1e-9


def test_multi_label_predictions_always_include_the_top_label() -> None:
    p = np.array([[0.1, 0.2, 0.05], [0.9, 0.8, 0.1], [0.3, 0.3, 0.31]])
    pred = multi_label_predictions(p, 0.5)
    assert pred.dtype == bool
    assert pred.tolist() == [[False, True, False], [True, True, False], [False, False, True]]
    assert pred.any(axis=1).all()
    assert multi_label_predictions(p, 0.0).all()


def test_multi_label_truth() -> None:
    head = next(h for h in HEADS if h.name == "colours")
    idx, yt = multi_label_truth(SAMPLES, head)
    assert idx == [0, 1]
    assert yt.shape == (2, len(COLOURS))
    assert yt[1, COLOURS.index("black")] and yt[1, COLOURS.index("white")] and yt[1].sum() == 2


def test_predict_probs_softmax_and_sigmoid() -> None:
    class Fixed(torch.nn.Module):
        def forward(self, x):
            n = x.shape[0]
            return tuple(torch.arange(h.num_outputs, dtype=torch.float32).repeat(n, 1) for h in HEADS)

    data = [(torch.zeros(3, 8, 8), {"i": torch.tensor(i)}) for i in range(5)]
    probs = predict_probs(Fixed(), data, HEADS, batch_size=2)
    assert set(probs) == {h.name for h in HEADS}
    assert probs["category"].shape == (5, 25)
    assert np.allclose(probs["category"].sum(1), 1.0)
    assert probs["colours"].shape == (5, len(COLOURS))
    assert probs["colours"][0, 0] == pytest.approx(0.5)  # sigmoid(0)
