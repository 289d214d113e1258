"""Calibration and abstention: the sidecar round-trips, temperature fits recover a known temperature, operating
curves resolve a precision to a threshold, a head with known probabilities abstains exactly where its operating
point says, and ONNX and PyTorch outputs are calibrated identically."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from fashionlens.evaluate.calibration import fit_head, fit_temperature
from fashionlens.imageio import load_image
from fashionlens.models.calibration import (
    CALIBRATION_FORMAT,
    Calibration,
    HeadCalibration,
    OperatingCurve,
    calibration_path,
    expected_calibration_error,
    temperature_single,
)
from fashionlens.models.heads import HeadSpec
from fashionlens.models.registry import default_weights_path
from fashionlens.pipeline import Tagger
from fashionlens.result import LabelList


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_temperature_fit_recovers_the_temperature_that_made_the_data() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 5))
    truth = np.array([rng.choice(5, p=p) for p in _softmax(logits)])  # calibrated at T = 1 on these logits
    overconfident = _softmax(logits * 2.0)  # a model twice as sure as it should be
    t = fit_temperature(overconfident, truth, "single")
    assert abs(t - 2.0) < 0.15
    before = expected_calibration_error(overconfident.max(1), overconfident.argmax(1) == truth)
    fixed = temperature_single(overconfident, t)
    after = expected_calibration_error(fixed.max(1), fixed.argmax(1) == truth)
    assert after < before / 2


def test_operating_curve_resolves_a_precision_to_the_lowest_threshold_reaching_it() -> None:
    scores = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    correct = np.array([1, 1, 1, 1, 1, 0, 1, 0, 0, 0], bool)
    curve = OperatingCurve.from_scores(scores, correct)
    t = curve.threshold_for(1.0)
    assert t == pytest.approx(0.7)  # the five best are all right; adding 0.6 breaks precision 1.0
    assert curve.at(t) == (1.0, 0.5)
    assert curve.threshold_for(0.0) == 0.0
    assert math.isinf(OperatingCurve.from_scores(scores, np.zeros(10, bool)).threshold_for(0.5))


def test_calibration_saves_loads_and_applies_identically(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    single = HeadSpec("pattern", "single", ("plain", "striped", "checked"))
    multi = HeadSpec("colours", "multi", ("black", "white", "red", "blue"))
    p_single = _softmax(rng.normal(0, 2, (300, 3)))
    y_single = rng.integers(0, 3, 300)
    p_multi = rng.uniform(0, 1, (300, 4))
    y_multi = rng.uniform(0, 1, (300, 4)) < p_multi ** 2
    cal = Calibration(heads={"pattern": fit_head(p_single, y_single, single),
                             "colours": fit_head(p_multi, y_multi, multi, "isotonic")},
                      operating={"pattern": OperatingCurve.from_scores(p_single.max(1), p_single.argmax(1) == y_single)},
                      provenance={"split": "val", "n": 300, "seed": 0, "command": "test"})
    path = cal.save(tmp_path / "m.calibration.json")
    again = Calibration.load(path)
    assert again.to_dict() == cal.to_dict() and again.to_dict()["format"] == CALIBRATION_FORMAT
    probs = {"pattern": p_single, "colours": p_multi, "embedding": np.ones((300, 8))}
    a, b = cal.apply(probs), again.apply(probs)
    for k in probs:
        np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_allclose(a["pattern"].sum(1), 1.0, atol=1e-5)
    assert not np.allclose(a["colours"], p_multi)  # isotonic moved them
    np.testing.assert_array_equal(a["embedding"], probs["embedding"])
    assert again.thresholds(0.5)["pattern"] == cal.thresholds(0.5)["pattern"]


def test_a_broken_sidecar_says_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "x.calibration.json"
    bad.write_text('{"format": "something/else"}', "utf-8")
    with pytest.raises(ValueError, match="fashionlens/calibration/v1"):
        Calibration.load(bad)
    assert calibration_path("w/model.pt") == calibration_path("w/model.onnx") == Path("w/model.calibration.json")
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        HeadCalibration("fit", "single", ("a", "b"), temperature=0.0)


# ------------------------------------------------------------------- abstention on known probabilities


class _KnownBackend:
    """A backend returning fixed probabilities (the shipped classifier's heads)."""

    name = "known"

    def __init__(self, meta, probs: dict[str, np.ndarray]) -> None:
        self.meta = meta
        self.probs = probs

    def run(self, batch: np.ndarray, *, embed: bool = False) -> dict[str, np.ndarray]:
        return {k: np.repeat(v[None], len(batch), 0) for k, v in self.probs.items()}


def _known_tagger(thresholds: dict[str, float], *, keep: bool = False) -> tuple[Tagger, dict[str, np.ndarray]]:
    tagger = Tagger(calibration=None, colour_model=None)
    meta = tagger.meta
    probs = {}
    for h in meta.heads:
        p = np.full(len(h.values), 0.01 if h.kind == "multi" else 0.0, np.float32)
        if h.kind == "single":
            p[:3] = (0.5, 0.3, 0.2)
        probs[h.name] = p
    probs["category"] = np.zeros(len(meta.head("category").values), np.float32)
    cats = list(meta.head("category").values)
    probs["category"][[cats.index("t-shirts"), cats.index("shirts"), cats.index("sweaters")]] = (0.6, 0.3, 0.1)
    colours = list(meta.head("colours").values)
    probs["colours"][colours.index("blue")] = 0.7
    probs["colours"][colours.index("white")] = 0.4
    curves = {name: OperatingCurve((0.0, t), (0.5, 0.9), (1.0, 0.5), 100) for name, t in thresholds.items()}
    identity = {h.name: HeadCalibration(h.name, h.kind, tuple(h.values), method="identity") for h in meta.heads}
    tagger.calibration = Calibration(heads=identity, operating=curves)
    tagger.backend = _KnownBackend(meta, probs)
    tagger.keep_uncertain = keep
    tagger.precision = 0.9
    return tagger, probs


def _photo(tmp_path: Path) -> Path:
    from PIL import Image

    arr = np.full((96, 72, 3), 235, np.uint8)
    arr[20:76, 15:57] = (30, 60, 200)
    path = tmp_path / "blue.png"
    Image.fromarray(arr).save(path)
    return path


def test_fields_below_their_operating_point_are_unsure(tmp_path: Path) -> None:
    tagger, _ = _known_tagger({"category": 0.7, "pattern": 0.45, "material": 0.6, "colours": 0.5})
    path = _photo(tmp_path)
    [record] = tagger.tag_batch([load_image(path)], [str(path)])
    g = record["garments"][0]
    assert record["schema"] == "fashionlens/result/v2" and record["model"]["operating_point"] == "precision 0.9"
    # category 0.6 < 0.7: unsure, id null, top three candidates
    assert g["category"] == {"id": None, "score": 0.6, "uncertain": True,
                             "candidates": [{"id": "t-shirts", "score": 0.6}, {"id": "shirts", "score": 0.3},
                                            {"id": "sweaters", "score": 0.1}]}
    pattern_values = tagger.meta.head("pattern").values
    assert g["attributes"]["pattern"] == {"id": pattern_values[0], "score": 0.5}  # 0.5 ≥ 0.45: sure
    assert g["attributes"]["material"]["id"] is None and g["attributes"]["material"]["uncertain"]
    assert "uncertain" not in g["attributes"]["fit"]  # no operating point for fit: emitted as before
    # blue 0.7 ≥ 0.5 listed; white 0.4 passes the head's threshold but is not sure: left out
    assert [c["id"] for c in g["attributes"]["colours"]] == ["blue"] and "colours_uncertain" not in g["attributes"]


def test_all_colours_unsure_gives_an_empty_list_and_keep_uncertain_keeps_best_guesses(tmp_path: Path) -> None:
    path = _photo(tmp_path)
    tagger, _ = _known_tagger({"category": 0.7, "colours": 0.9})
    [result] = tagger.tag([load_image(path)], [str(path)])
    colours = result.garments.attributes[0]["colours"]
    assert colours == [] and isinstance(colours, LabelList) and colours.uncertain
    assert result.to_json()["garments"][0]["attributes"]["colours_uncertain"] is True

    keep, _ = _known_tagger({"category": 0.7, "colours": 0.9}, keep=True)
    [record] = keep.tag_batch([load_image(path)], [str(path)])
    g = record["garments"][0]
    assert g["category"]["id"] == "t-shirts" and g["category"]["uncertain"] is True
    assert [(c["id"], c.get("uncertain")) for c in g["attributes"]["colours"]] == [("blue", True), ("white", True)]
    assert g["attributes"]["colours_uncertain"] is True
    assert record["model"]["operating_point"] == "precision 0.9, unsure values kept"

    off = keep.variant(precision=None)
    [plain] = off.tag_batch([load_image(path)], [str(path)])
    assert "uncertain" not in plain["garments"][0]["category"] and "operating_point" not in plain["model"]


# ------------------------------------------------------------------- the shipped sidecar, ONNX and torch


SHIPPED = default_weights_path()


@pytest.mark.skipif(not calibration_path(SHIPPED).is_file(), reason="no calibration shipped with the classifier")
def test_shipped_calibration_is_applied_identically_by_onnx_and_torch(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    if not SHIPPED.with_suffix(".onnx").is_file():
        pytest.skip("no ONNX export of the shipped classifier")
    photo = load_image(_photo(tmp_path))
    raw = Tagger(backend="onnx", calibration=None).predict([photo.rgb])
    onnx = Tagger(backend="onnx").predict([photo.rgb])
    torch = Tagger(backend="torch").predict([photo.rgb])
    cal = Calibration.load(calibration_path(SHIPPED))
    expected = {**cal.apply(raw), "category_uncalibrated": raw["category"]}  # what type fusion reads
    for k in onnx:
        np.testing.assert_allclose(onnx[k], expected[k], atol=1e-6)
        np.testing.assert_allclose(torch[k], onnx[k], atol=2e-3)  # the runtimes differ by float noise only
    moved = [k for k, h in cal.heads.items() if h.method != "identity"]
    assert moved and any(not np.allclose(onnx[k], raw[k], atol=1e-4) for k in moved)
    prov = cal.provenance
    assert prov["split"] == "val" and prov["n"] > 0 and "seed" in prov and prov["command"].startswith("fashionlens")


# ------------------------------------------------------------------- detector scores


class _KnownDetector:
    """A detector with a calibration sidecar that finds three boxes with known scores."""

    backend = "known"

    def __init__(self, path: Path) -> None:
        from types import SimpleNamespace

        self.path = path
        self.meta = SimpleNamespace(name="known-detector", version="1")

    def detect(self, image, settings=None):
        from fashionlens.result import Garments

        return Garments(xyxy=[[0, 0, 30, 40], [10, 10, 60, 90], [5, 50, 70, 95]],
                        object_type=["upper-body", "lower-body", "footwear"], confidence=[0.9, 0.6, 0.3])


def test_detections_get_calibrated_scores_and_the_detection_operating_point_drops_the_weak(tmp_path: Path) -> None:
    knots = (((0.0, 0.5, 1.0), (0.0, 0.2, 0.95)),)
    garment = HeadCalibration("garment", "multi", ("garment",), method="isotonic", knots=knots)
    curve = OperatingCurve((0.0, 0.3, 0.8), (0.4, 0.7, 0.92), (0.9, 0.6, 0.2), 50)
    weights = tmp_path / "det.pt"
    Calibration(heads={"garment": garment}, operating={"detection": curve}).save(calibration_path(weights))
    tagger = Tagger(calibration=None, colour_model=None, detector=_KnownDetector(weights))
    assert tagger.detector_calibration() is None  # calibration=None: nothing calibrated

    tagger = Tagger(colour_model=None, detector=_KnownDetector(weights))
    path = _photo(tmp_path)
    [record] = tagger.tag_batch([load_image(path)], [str(path)])
    assert record["model"]["detector_calibration"] == "det.calibration.json"
    assert [g["score"] for g in record["garments"]] == pytest.approx([0.2 + 0.75 * 0.8, 0.2 + 0.75 * 0.2, 0.12])

    strict = Tagger(colour_model=None, detector=_KnownDetector(weights), detection_precision=0.9)
    [record] = strict.tag_batch([load_image(path)], [str(path)])
    assert record["model"]["detection_operating_point"] == "precision 0.9"
    assert [g["object_type"] for g in record["garments"]] == ["upper-body"]  # 0.8 ≥ 0.8 kept, 0.35 and 0.12 dropped
