"""Tests for fashionlens.pipeline: preprocessing, error records and how the Tagger turns head
probabilities into ``fashionlens/result/v2`` garments. The shipped model is loaded once per module, without
its calibration: the result-building tests feed it hand-made probabilities so that their outcome is known
(calibration and abstention are tested in ``tests/test_calibration.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from fashionlens.imageio import DecodedImage, ImageDecodeError, load_image
from fashionlens.pipeline import RESULT_SCHEMA, Tagger, error_record, preprocess
from fashionlens.taxonomy import load_taxonomy

TAX = load_taxonomy()


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger(backend="onnx", calibration=None)


def _decoded(rgb: np.ndarray) -> DecodedImage:
    return DecodedImage(rgb=rgb, width=rgb.shape[1], height=rgb.shape[0], scale=1.0, format="PNG", mode="RGB")


def _solid(w: int, h: int, colour: tuple[int, int, int]) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(np.array(colour, np.uint8), (h, w, 3)))


def _probs(tagger: Tagger, n: int, **rows: np.ndarray) -> dict[str, np.ndarray]:
    """Head probabilities for ``n`` images: the given rows, else uniform / 0.05 for multi-label heads."""
    out = {}
    for h in tagger.meta.heads:
        if h.name in rows:
            out[h.name] = np.tile(np.asarray(rows[h.name], np.float32), (n, 1))
        elif h.kind == "single":
            out[h.name] = np.full((n, h.num_outputs), 1.0 / h.num_outputs, np.float32)
        else:
            out[h.name] = np.full((n, h.num_outputs), 0.05, np.float32)
    return out


def _head_row(tagger: Tagger, head: str, values: dict[str, float]) -> np.ndarray:
    spec = tagger.meta.head(head)
    row = np.zeros(spec.num_outputs, np.float32)
    rest = 1.0 - sum(values.values()) if spec.kind == "single" else 0.0
    others = [v for v in spec.values if v not in values]
    for i, v in enumerate(spec.values):
        row[i] = values[v] if v in values else rest / max(1, len(others))
    return row


def _fake_run(tagger: Tagger, monkeypatch: pytest.MonkeyPatch, **rows: np.ndarray) -> None:
    monkeypatch.setattr(tagger.backend, "run", lambda batch: _probs(tagger, len(batch), **rows))


# ------------------------------------------------------------------------------ preprocess


def test_preprocess_normalises_and_squashes(tagger: Tagger) -> None:
    meta = tagger.meta
    s = meta.input_size
    x = preprocess(_solid(300, 120, (255, 0, 128)), meta)
    assert x.shape == (3, s, s) and x.dtype == np.float32
    for c, v in enumerate((255, 0, 128)):
        expected = (v / 255.0 - meta.mean[c]) / meta.std[c]
        np.testing.assert_allclose(x[c], expected, atol=1e-5)


def test_preprocess_keeps_an_input_of_the_right_size(tagger: Tagger) -> None:
    s = tagger.input_size
    rgb = np.random.default_rng(0).integers(0, 256, (s, s, 3), dtype=np.uint8)
    x = preprocess(rgb, tagger.meta)
    mean = np.asarray(tagger.meta.mean, np.float32)[:, None, None]
    std = np.asarray(tagger.meta.std, np.float32)[:, None, None]
    np.testing.assert_allclose(x * std + mean, rgb.transpose(2, 0, 1) / 255.0, atol=1e-5)


# ------------------------------------------------------------------------------ error records


def test_error_record_uses_the_decode_error_code(tagger: Tagger) -> None:
    rec = error_record("a.jpg", ImageDecodeError("truncated", "cut short"), model=tagger.model_info)
    assert rec["schema"] == RESULT_SCHEMA
    assert rec["error"] == {"type": "truncated", "message": "cut short"}
    assert rec["image"] == {"path": "a.jpg", "width": None, "height": None}
    assert rec["garments"] == [] and rec["timing_ms"] == {}
    assert rec["model"] == tagger.model_info
    other = error_record("b.jpg", RuntimeError("boom"), model=tagger.model_info)
    assert other["error"] == {"type": "RuntimeError", "message": "boom"}
    json.dumps(other)


# ------------------------------------------------------------------------------ predict


def test_model_info(tagger: Tagger) -> None:
    info = tagger.model_info
    assert info["backend"] == "onnx"
    assert info["name"] == tagger.meta.name and info["version"] == tagger.meta.version
    assert tagger.input_size == tagger.meta.input_size


def test_predict_shapes_and_probabilities(tagger: Tagger) -> None:
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((50, 80), (224, 224), (400, 300))]
    probs = tagger.predict(images)
    assert set(probs) == {h.name for h in tagger.meta.heads}
    for h in tagger.meta.heads:
        p = probs[h.name]
        assert p.shape == (3, h.num_outputs)
        assert np.all((p >= 0) & (p <= 1))
        if h.kind == "single":
            np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-4)


def test_predict_nothing(tagger: Tagger) -> None:
    probs = tagger.predict([])
    for h in tagger.meta.heads:
        assert probs[h.name].shape == (0, h.num_outputs)


# ------------------------------------------------------------------------------ tag_batch


def test_tag_batch_on_real_decodes(tagger: Tagger, tmp_path: Path) -> None:
    Image.fromarray(_solid(120, 90, (40, 80, 180))).save(tmp_path / "a.png")
    Image.fromarray(_solid(60, 100, (240, 220, 50))).save(tmp_path / "b.jpg", quality=95)
    images = [load_image(tmp_path / "a.png"), load_image(tmp_path / "b.jpg")]
    recs = tagger.tag_batch(images, ["a.png", "b.jpg"], [1.5, 2.5])
    assert [r["image"] for r in recs] == [{"path": "a.png", "width": 120, "height": 90},
                                         {"path": "b.jpg", "width": 60, "height": 100}]
    for rec, ms in zip(recs, (1.5, 2.5)):
        assert rec["schema"] == RESULT_SCHEMA and rec["error"] is None and rec["model"] == tagger.model_info
        assert rec["timing_ms"]["decode"] == ms and rec["timing_ms"]["infer"] >= 0 and rec["timing_ms"]["post"] >= 0
        [g] = rec["garments"]
        assert g["object_type"] in TAX.object_types
        assert g["category"]["id"] in TAX.categories_of(g["object_type"])
        json.dumps(rec)
    assert "decode" not in tagger.tag_batch(images[:1], ["a.png"])[0]["timing_ms"]


def test_tag_batch_needs_one_path_per_image(tagger: Tagger) -> None:
    with pytest.raises(ValueError, match="one path per image"):
        tagger.tag_batch([_decoded(_solid(10, 10, (0, 0, 0)))], ["a.jpg", "b.jpg"])
    assert tagger.tag_batch([], []) == []


def test_object_type_is_the_summed_category_probability(tagger: Tagger, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three footwear categories at 0.2 each beat one upper-body category at 0.4: the object type is
    footwear, the category is the best footwear one, and ``category_top`` still lists the top 3."""
    upper = TAX.categories_of("upper-body")[0]
    shoes = TAX.categories_of("footwear")[:3]
    cat = _head_row(tagger, "category", {upper: 0.4, shoes[0]: 0.2, shoes[1]: 0.21, shoes[2]: 0.19})
    _fake_run(tagger, monkeypatch, category=cat)

    [rec] = tagger.tag_batch([_decoded(_solid(80, 60, (20, 20, 20)))], ["x.jpg"])
    g = rec["garments"][0]
    assert g["object_type"] == "footwear"
    assert g["score"] == pytest.approx(0.6 + cat[[TAX.categories.index(c) for c in TAX.categories_of("footwear")
                                                  if c not in shoes]].sum(), abs=1e-4)
    assert g["category"] == {"id": shoes[1], "score": 0.21}
    assert [c["id"] for c in g["category_top"]] == [upper, shoes[1], shoes[0]]
    assert g["bbox"] == [0.0, 0.0, 80.0, 60.0] and g["mask"] is None
    # sleeve / neckline / fit are not reported for footwear
    assert set(g["attributes"]) == {"pattern", "colours", "material"}


@pytest.mark.parametrize("object_type, expected", [
    ("upper-body", {"sleeve", "neckline", "fit"}),
    ("full-body", {"sleeve", "neckline", "fit"}),
    ("lower-body", {"fit"}),
    ("bag", set()),
    ("headwear", set()),
])
def test_garment_attributes_depend_on_object_type(tagger: Tagger, monkeypatch: pytest.MonkeyPatch,
                                                  object_type: str, expected: set[str]) -> None:
    cat = _head_row(tagger, "category", {TAX.categories_of(object_type)[0]: 0.9})
    _fake_run(tagger, monkeypatch, category=cat)
    [rec] = tagger.tag_batch([_decoded(_solid(40, 40, (128, 128, 128)))], ["x.jpg"])
    g = rec["garments"][0]
    assert g["object_type"] == object_type
    # (a grey photo shows none of the head's colours: "colours": [] with "colours_uncertain", issue 25)
    assert set(g["attributes"]) - {"colours_uncertain"} == {"pattern", "colours", "material"} | expected


def test_top_k(tagger: Tagger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tagger, "top_k", 5)
    [rec] = tagger.tag_batch([_decoded(_solid(40, 40, (128, 128, 128)))], ["x.jpg"])
    top = rec["garments"][0]["category_top"]
    assert len(top) == 5
    assert [c["score"] for c in top] == sorted((c["score"] for c in top), reverse=True)


def test_colours_above_threshold_with_shares(tagger: Tagger, monkeypatch: pytest.MonkeyPatch) -> None:
    """Colours at or above the head's threshold are listed by score; each measured colour gets its
    pixel share; ``multicolour`` gets no share. (The head alone: the pixel colour model is off.)"""
    monkeypatch.setattr(tagger, "colour_model", None)
    thr = tagger.meta.thresholds.get("colours", 0.5)
    colours = _head_row(tagger, "colours", {"red": 0.9, "white": min(1.0, thr + 0.1), "multicolour": 0.7,
                                            "blue": thr / 2})
    _fake_run(tagger, monkeypatch, colours=colours)
    rgb = _solid(100, 100, (240, 240, 240))
    rgb[30:70, 30:70] = (200, 30, 35)  # a red square in the centre of a white photo

    [rec] = tagger.tag_batch([_decoded(rgb)], ["x.jpg"])
    got = rec["garments"][0]["attributes"]["colours"]
    assert [c["id"] for c in got] == ["red", "multicolour", "white"]
    by_id = {c["id"]: c for c in got}
    assert by_id["multicolour"]["share"] is None
    # without the pixel colour model there is no backdrop search: the centre 60×60 crop holds 40×40 red
    # and 2000 white pixels
    assert by_id["red"]["share"] == pytest.approx(1600 / 3600, abs=0.01)
    assert by_id["white"]["share"] == pytest.approx(2000 / 3600, abs=0.01)
    assert by_id["red"]["score"] == pytest.approx(0.9, abs=1e-4)


def test_no_colour_above_threshold_reports_the_best_one(tagger: Tagger, monkeypatch: pytest.MonkeyPatch) -> None:
    thr = tagger.meta.thresholds.get("colours", 0.5)
    _fake_run(tagger, monkeypatch, colours=_head_row(tagger, "colours", {"green": thr * 0.9}))
    [rec] = tagger.tag_batch([_decoded(_solid(40, 40, (50, 130, 60)))], ["x.jpg"])
    assert rec["garments"][0]["attributes"]["colours"] == [
        {"id": "green", "share": 1.0, "score": pytest.approx(thr * 0.9, abs=1e-4)}]


def test_single_label_attribute_is_the_argmax(tagger: Tagger, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_run(tagger, monkeypatch, pattern=_head_row(tagger, "pattern", {"striped": 0.55}),
              material=_head_row(tagger, "material", {"wool": 0.35}))
    [rec] = tagger.tag_batch([_decoded(_solid(40, 40, (128, 128, 128)))], ["x.jpg"])
    attrs: dict[str, Any] = rec["garments"][0]["attributes"]
    assert attrs["pattern"] == {"id": "striped", "score": 0.55}
    assert attrs["material"] == {"id": "wool", "score": 0.35}


# ------------------------------------------------------------------------------ pixel colour model in tag


def _noisy_backdrop(h: int = 120, w: int = 100, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_pixel_colour_model_names_a_plain_backdrop_garment(tagger: Tagger, monkeypatch: pytest.MonkeyPatch) -> None:
    """The head is unsure (blue, below its threshold); the garment's own pixels are plainly red:
    the shipped pixel colour model tips the decision to red, and the score is the combined one."""
    assert tagger.colour_model is not None
    thr = tagger.meta.thresholds.get("colours", 0.5)
    _fake_run(tagger, monkeypatch, colours=_head_row(tagger, "colours", {"blue": thr * 0.9}))
    rgb = _solid(100, 120, (245, 245, 245))
    rgb[20:100, 25:75] = (190, 25, 30)  # a red garment hanging on white
    [rec] = tagger.tag_batch([_decoded(rgb)], ["x.jpg"])
    got = rec["garments"][0]["attributes"]["colours"]
    assert got[0]["id"] == "red" and got[0]["share"] > 0.9
    assert "blue" not in [c["id"] for c in got]
    monkeypatch.setattr(tagger, "colour_model", None)
    [rec] = tagger.tag_batch([_decoded(rgb)], ["x.jpg"])
    # the head alone says blue, but the garment's pixels show no blue: not listed (no share-0 colours, issue 25)
    attrs = rec["garments"][0]["attributes"]
    assert attrs["colours"] == [] and attrs["colours_uncertain"] is True


def test_pixel_colour_model_stays_out_without_a_plain_backdrop(tagger: Tagger, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a busy backdrop the garment's pixels are unknown: colours are the head's, shares the centre's."""
    thr = tagger.meta.thresholds.get("colours", 0.5)
    _fake_run(tagger, monkeypatch, colours=_head_row(tagger, "colours", {"blue": thr * 0.9}))
    rgb = _noisy_backdrop()
    rgb[20:100, 25:75] = (190, 25, 30)
    [with_model] = tagger.tag_batch([_decoded(rgb)], ["x.jpg"])
    monkeypatch.setattr(tagger, "colour_model", None)
    [head_only] = tagger.tag_batch([_decoded(rgb)], ["x.jpg"])
    assert with_model["garments"][0]["attributes"]["colours"] == head_only["garments"][0]["attributes"]["colours"]
    assert [c["id"] for c in head_only["garments"][0]["attributes"]["colours"]] == ["blue"]


def test_tagger_colour_model_options(tmp_path: Path) -> None:
    from fashionlens.models.pixel_colours import N_FEATURES, PixelColourModel

    assert Tagger(backend="onnx", colour_model=None).colour_model is None
    head = Tagger(backend="onnx").meta.head("colours").values
    other = PixelColourModel(values=("red", "blue"), coef=np.zeros((2, N_FEATURES)), intercept=np.zeros(2),
                             threshold=0.5)
    with pytest.raises(ValueError, match="expects the colour head's values"):
        Tagger(backend="onnx", colour_model=other)
    mine = PixelColourModel(values=head, coef=np.zeros((len(head), N_FEATURES)), intercept=np.zeros(len(head)),
                            threshold=0.5, head_weight=0.3)
    mine.save(tmp_path / "c.npz")
    loaded = Tagger(backend="onnx", colour_model=str(tmp_path / "c.npz")).colour_model
    assert loaded is not None and loaded.head_weight == pytest.approx(0.3)
    with pytest.raises(TypeError, match="colour_model"):
        Tagger(backend="onnx", colour_model=3)  # type: ignore[arg-type]


def test_the_default_tagger_names_its_calibration_and_an_uncalibrated_one_says_so(tagger: Tagger) -> None:
    from fashionlens.models.calibration import calibration_path
    from fashionlens.models.registry import default_weights_path

    assert tagger.calibration is None and tagger.model_info["calibration"] == "none (uncalibrated)"
    sidecar = calibration_path(default_weights_path())
    if sidecar.is_file():
        calibrated = Tagger(backend="onnx")
        assert calibrated.model_info["calibration"] == sidecar.name and calibrated.calibration is not None
        assert calibrated.thresholds is None  # no operating point unless asked for
        assert set(calibrated.variant(precision=0.9).thresholds) >= {"category", "colours"}


def test_precision_is_checked() -> None:
    from fashionlens.pipeline import TaggerConfig

    with pytest.raises(ValueError, match=r"precision: expected a number in \(0, 1\]"):
        TaggerConfig(precision=1.5)
    assert TaggerConfig(precision=0.9).job_settings(max_pixels=10)["precision"] == 0.9
    assert "precision" not in TaggerConfig().job_settings(max_pixels=10)
