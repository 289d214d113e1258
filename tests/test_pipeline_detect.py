"""The Tagger with a detector: detect → crop → classify (``mode: detect``), the whole-image fallback
when nothing is detected, and ``crop_garment``. The shipped classifier is loaded once per module;
detectors are the tiny ones of tests/conftest.py (the ONNX export, and PyTorch weights where torch
is installed), or a stub ``detect`` with known garments."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from fashionlens.detection.detector import DetectSettings, GarmentDetector
from fashionlens.result import Garments
from fashionlens.imageio import DecodedImage
from fashionlens.io.records import decode_mask
from fashionlens.pipeline import Tagger, box_share, crop_garment
from fashionlens.taxonomy import load_taxonomy
from fashionlens.detection.type_fusion import TypeFusion

if TYPE_CHECKING:
    from make_tiny_models import TinyDetector  # tests/fixtures

TAX = load_taxonomy()

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    """Uncalibrated, without street priors: these tests check the mechanics on the raw head outputs they set
    (calibration and abstention have their own tests, tests/test_calibration*.py)."""
    return Tagger(backend="onnx", threads=1, calibration=None, street_priors=None)


def _decoded(rgb: np.ndarray, width: int | None = None, height: int | None = None) -> DecodedImage:
    width, height = width or rgb.shape[1], height or rgb.shape[0]
    return DecodedImage(rgb=rgb, width=width, height=height, scale=rgb.shape[1] / width, format="JPEG", mode="RGB")


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _probs(tagger: Tagger, n: int, **values: dict[str, float]) -> dict[str, np.ndarray]:
    """Head probabilities for ``n`` crops: the given values (rest shared), else uniform / 0.05."""
    out = {}
    for h in tagger.meta.heads:
        given = values.get(h.name, {})
        if h.kind == "single":
            rest = (1.0 - sum(given.values())) / max(1, h.num_outputs - len(given))
            row = np.array([given.get(v, rest) for v in h.values], np.float32)
        else:
            row = np.array([given.get(v, 0.05) for v in h.values], np.float32)
        out[h.name] = np.tile(row, (n, 1))
    return out


def _check_detected(rec: dict[str, Any], width: int, height: int, backend: str, tol: float = 1.0) -> None:
    """``backend``: the detector's; ``tol``: how far (px) a mask may reach past its box: one reduced-decode pixel."""
    assert rec["mode"] == "detect" and rec["error"] is None
    assert rec["image"]["width"] == width and rec["image"]["height"] == height
    assert rec["model"]["detector"] == "tiny-detector" and rec["model"]["detector_version"] == "test"
    assert rec["model"]["detector_backend"] == backend
    assert {"detect", "classify"} <= set(rec["timing_ms"])
    assert rec["garments"]
    for g in rec["garments"]:
        assert g["object_type"] == "upper-body" and g["score"] >= 0.99
        assert g["category"]["id"] in TAX.categories_of("upper-body")
        x, y, w, h = g["bbox"]
        assert 0 <= x and 0 <= y and x + w <= width + 0.01 and y + h <= height + 0.01 and w > 0 and h > 0
        assert g["mask"]["size"] == [height, width]
        m = decode_mask(g["mask"])
        ys, xs = np.nonzero(m)
        assert len(xs) and xs.min() >= x - tol and xs.max() < x + w + tol
        assert ys.min() >= y - tol and ys.max() < y + h + tol
        assert "sleeve" in g["attributes"] and g["attributes"]["colours"]


# ------------------------------------------------------------------------------ detect → crop → classify


def test_detect_mode(tagger: Tagger, upper_body_detector: TinyDetector, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tagger, "detector", GarmentDetector(upper_body_detector.path,
                                                            settings=DetectSettings(max_detections=3)))
    [rec] = tagger.tag_batch([_decoded(_noise(64, 96))], ["a.jpg"], decode_ms=[1.5])
    _check_detected(rec, 96, 64, upper_body_detector.backend)
    assert 1 <= len(rec["garments"]) <= 3 and rec["timing_ms"]["decode"] == 1.5


def test_detect_mode_at_reduced_decode_scale(tagger: Tagger, upper_body_detector: TinyDetector,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Boxes and masks of a photo decoded at 1/4 scale are in its full-resolution pixels."""
    monkeypatch.setattr(tagger, "detector", GarmentDetector(upper_body_detector.path,
                                                            settings=DetectSettings(max_detections=3)))
    [rec] = tagger.tag_batch([_decoded(_noise(40, 60), width=240, height=160)], ["a.jpg"])
    _check_detected(rec, 240, 160, upper_body_detector.backend, tol=4.0)
    # not in reduced pixels: each box is 4 × one the network finds in them (the tiny detector's scores are all
    # equal, so which boxes are kept is the backend's tie-break: compare with the same detector's)
    reduced = tagger.detector.detect_rgb(_noise(40, 60)).xyxy
    full = {tuple(np.round(np.asarray(g["bbox"]) / 4, 2)) for g in rec["garments"]}
    assert full == {tuple(np.round([x0, y0, x1 - x0, y1 - y0], 2)) for x0, y0, x1, y1 in reduced}


def test_nothing_detected_falls_back_to_the_whole_image(tagger: Tagger, upper_body_detector: TinyDetector,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tagger, "detector", GarmentDetector(upper_body_detector.path,
                                                            settings=DetectSettings(score_thresh=1.0)))
    [rec] = tagger.tag_batch([_decoded(_noise(48, 64))], ["a.jpg"])
    assert rec["mode"] == "whole_image_fallback" and rec["error"] is None
    [g] = rec["garments"]
    assert g["bbox"] == [0.0, 0.0, 64.0, 48.0] and g["mask"] is None
    assert g["category"]["id"] in TAX.categories_of(g["object_type"])
    assert rec["model"]["detector"] == "tiny-detector"


def _stub(weights: Path, *garments: Garments) -> GarmentDetector:
    """A loaded detector whose ``detect`` returns the given garments, one per call, in order."""
    detector = GarmentDetector(weights)
    queue = list(garments)
    detector.detect = lambda image, settings=None: queue.pop(0)  # type: ignore[method-assign]
    return detector


def test_batch_mixes_detected_and_fallback_photos(tagger: Tagger, upper_body_detector_onnx: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    two = Garments(xyxy=[[0, 0, 20, 30], [30, 10, 60, 40]], object_type=["lower-body", "footwear"],
                   confidence=[0.8, 0.6])
    stub = _stub(upper_body_detector_onnx, Garments.empty(), two, Garments.empty())
    monkeypatch.setattr(tagger, "detector", stub)
    batches: list[int] = []
    monkeypatch.setattr(tagger.backend, "run", lambda b: (batches.append(len(b)), _probs(tagger, len(b)))[1])
    recs = tagger.tag_batch([_decoded(_noise(40, 64, i)) for i in range(3)], ["a.jpg", "b.jpg", "c.jpg"])
    assert [r["mode"] for r in recs] == ["whole_image_fallback", "detect", "whole_image_fallback"]
    assert [len(r["garments"]) for r in recs] == [1, 2, 1]
    assert batches == [4]  # one classifier batch: 1 whole photo + 2 crops + 1 whole photo
    g0, g1 = recs[1]["garments"]
    assert (g0["object_type"], g0["score"], g0["bbox"]) == ("lower-body", 0.8, [0.0, 0.0, 20.0, 30.0])
    assert (g1["object_type"], g1["score"], g1["bbox"]) == ("footwear", 0.6, [30.0, 10.0, 30.0, 30.0])
    assert g0["mask"] is None and "sleeve" not in g0["attributes"] and "fit" in g0["attributes"]
    assert recs[0]["garments"][0]["bbox"] == [0.0, 0.0, 64.0, 40.0]


def test_category_is_the_best_one_of_the_detected_type(tagger: Tagger, upper_body_detector_onnx: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    g = Garments(xyxy=[[0, 0, 20, 20]], object_type=["upper-body"], confidence=[0.7])
    monkeypatch.setattr(tagger, "detector", _stub(upper_body_detector_onnx, g))
    monkeypatch.setattr(tagger.backend, "run",
                        lambda b: _probs(tagger, len(b), category={"jeans": 0.6, "hoodies": 0.2, "dresses": 0.1}))
    [rec] = tagger.tag_batch([_decoded(_noise(32, 32))], ["a.jpg"])
    [garment] = rec["garments"]
    assert garment["object_type"] == "upper-body" and garment["score"] == 0.7  # the detector's, not summed
    assert garment["category"] == {"id": "hoodies", "score": 0.2}
    assert garment["category_top"][0]["id"] == "jeans"


def test_colour_shares_come_from_the_mask(tagger: Tagger, upper_body_detector_onnx: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    rgb = np.full((60, 80, 3), 240, np.uint8)
    rgb[20:40, 20:60] = (200, 30, 35)  # red garment on white
    mask = np.zeros((1, 60, 80), bool)
    mask[0, 20:40, 20:60] = True
    g = Garments(xyxy=[[10, 10, 70, 50]], object_type=["upper-body"], confidence=[0.9], mask=mask)  # box: half white
    monkeypatch.setattr(tagger, "detector", _stub(upper_body_detector_onnx, g))
    monkeypatch.setattr(tagger, "colour_model", None)  # the head's colours, so both are listed
    thr = tagger.meta.thresholds.get("colours", 0.5)
    monkeypatch.setattr(tagger.backend, "run",
                        lambda b: _probs(tagger, len(b), colours={"red": 0.9, "white": min(1.0, thr + 0.1)}))
    [rec] = tagger.tag_batch([_decoded(rgb)], ["a.jpg"])
    [garment] = rec["garments"]
    shares = {c["id"]: c["share"] for c in garment["attributes"]["colours"]}
    assert shares == {"red": 1.0}  # a colour the mask's pixels do not show is not listed (issue 25)
    assert decode_mask(garment["mask"]).sum() == 800


def test_paths_must_match_images(tagger: Tagger, upper_body_detector_onnx: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tagger, "detector", GarmentDetector(upper_body_detector_onnx))
    with pytest.raises(ValueError, match="one path per image"):
        tagger.tag_batch([_decoded(_noise(8, 8))], [])
    assert tagger.tag_batch([], []) == []


# ------------------------------------------------------------------------------ crop_garment


@pytest.mark.parametrize("size, full, xyxy, margin, expected", [
    # (rgb h×w, full-resolution w×h or None, box in full pixels, margin, (y0, y1, x0, x1) of the crop in rgb)
    ((80, 100), None, (20, 10, 60, 50), 0.1, (6, 54, 16, 64)),
    ((80, 100), None, (20, 10, 60, 50), 0.0, (10, 50, 20, 60)),
    ((80, 100), None, (0, 0, 100, 80), 0.1, (0, 80, 0, 100)),  # clipped to the photo
    ((80, 100), None, (90, 70, 120, 100), 0.0, (70, 80, 90, 100)),  # partly outside
    ((80, 100), None, (200, 200, 300, 300), 0.1, (0, 80, 0, 100)),  # wholly outside: the whole photo
    ((40, 50), (100, 80), (20, 10, 60, 50), 0.1, (3, 27, 8, 32)),  # decoded at 1/2: box halved
])
def test_crop_garment_box(size: tuple[int, int], full: tuple[int, int] | None, xyxy: tuple[float, ...], margin: float,
                          expected: tuple[int, int, int, int]) -> None:
    rgb = _noise(*size)
    image = _decoded(rgb, *(full or (None, None)))
    crop, (pixels, masked) = crop_garment(image, xyxy, None, margin=margin)
    y0, y1, x0, x1 = expected
    np.testing.assert_array_equal(crop, rgb[y0:y1, x0:x1])
    assert pixels.ndim == 2 and pixels.shape[1] == 3 and len(pixels) > 0
    assert not masked  # the box centre, not the garment's own pixels


@pytest.mark.parametrize("scale", [1, 2], ids=["full", "half"])
def test_crop_garment_pixels_from_the_mask(scale: int) -> None:
    """Mask (full resolution) → colour pixels are the garment's only, at any decode scale."""
    full_w, full_h = 100, 80
    rgb = np.full((full_h // scale, full_w // scale, 3), 255, np.uint8)
    rgb[20 // scale:40 // scale, 20 // scale:60 // scale] = (0, 0, 200)
    mask = np.zeros((full_h, full_w), bool)
    mask[20:40, 20:60] = True
    image = _decoded(rgb, full_w, full_h)
    _, (pixels, masked) = crop_garment(image, (10, 10, 70, 50), mask)
    assert masked and len(pixels) > 0 and (pixels == (0, 0, 200)).all()
    _, (without, masked) = crop_garment(image, (10, 10, 70, 50), None)  # no mask: the box centre, white included
    assert not masked and (without == 255).all(axis=1).any()


def test_crop_garment_empty_mask_falls_back_to_the_box() -> None:
    rgb = _noise(40, 40)
    _, (pixels, masked) = crop_garment(_decoded(rgb), (0, 0, 40, 40), np.zeros((40, 40), bool))
    assert len(pixels) > 0 and not masked


# ------------------------------------------------------------------ object type: detector + classifier


@pytest.mark.parametrize(("jeans", "box", "fusion", "expected"), [
    (0.9, [0, 0, 10, 10], TypeFusion(), "lower-body"),   # the classifier is sure of another type: it wins
    (0.7, [0, 0, 10, 10], TypeFusion(), "upper-body"),   # small box, not sure enough: the detector's type
    (0.7, [0, 0, 30, 20], TypeFusion(), "lower-body"),   # box ≥ 40 % of the photo: 0.5 suffices
    (0.3, [0, 0, 32, 32], TypeFusion(), "upper-body"),   # but never below a majority
    (0.9, [0, 0, 10, 10], None, "upper-body"),           # fusion off
])
def test_a_confident_classifier_overrides_the_detected_type(tagger: Tagger, upper_body_detector_onnx: Path,
                                                            monkeypatch: pytest.MonkeyPatch, jeans: float,
                                                            box: list[float], fusion: TypeFusion | None,
                                                            expected: str) -> None:
    g = Garments(xyxy=[box], object_type=["upper-body"], confidence=[0.7])
    monkeypatch.setattr(tagger, "detector", _stub(upper_body_detector_onnx, g))
    monkeypatch.setattr(tagger, "type_fusion", fusion)
    monkeypatch.setattr(tagger.backend, "run", lambda b: _probs(tagger, len(b), category={"jeans": jeans}))
    [rec] = tagger.tag_batch([_decoded(_noise(32, 32))], ["a.jpg"])
    [garment] = rec["garments"]
    assert garment["object_type"] == expected and garment["score"] == 0.7  # the score stays the detector's
    assert garment["category"]["id"] in TAX.categories_of(expected)
    if expected == "lower-body":
        assert garment["category"]["id"] == "jeans" and "sleeve" not in garment["attributes"]


def test_object_type_probs_sum_categories_per_type(tagger: Tagger) -> None:
    cats = tagger.meta.head("category").values
    p = np.zeros((2, len(cats)))
    p[0, cats.index("jeans")], p[0, cats.index("shorts")], p[0, cats.index("hats")] = 0.5, 0.3, 0.2
    p[1, cats.index("dresses")] = 1.0
    types = tagger.object_type_probs(p)
    assert types.shape == (2, len(TAX.object_types))
    assert types[0, TAX.object_type_index("lower-body")] == pytest.approx(0.8)
    assert types[0, TAX.object_type_index("headwear")] == pytest.approx(0.2)
    assert types[1, TAX.object_type_index("full-body")] == pytest.approx(1.0)
    assert tagger.object_type_probs(p[0]) == pytest.approx(types[0])
    assert tagger.fuse_object_type("footwear", p[1], 0.1) == "full-body"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"threshold": 0.2}, "threshold must be in"), ({"large_threshold": 1.5}, "large_threshold must be in"),
    ({"large_share": 0.0}, "large_share must be in"),
])
def test_type_fusion_settings_are_checked(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TypeFusion(**kwargs)
    with pytest.raises(TypeError, match="expected a TypeFusion"):
        Tagger(backend="onnx", threads=1, type_fusion=0.8)  # type: ignore[arg-type]


def test_box_share() -> None:
    assert box_share([0, 0, 50, 20], 100, 40) == pytest.approx(0.25)
    assert box_share([10, 10, 5, 5], 100, 40) == 0.0


def test_object_type_probs_keeps_leading_axes(tagger: Tagger) -> None:
    p = np.random.default_rng(0).dirichlet(np.ones(len(tagger.meta.head("category").values)), size=(2, 3))
    types = tagger.object_type_probs(p)
    assert types.shape == (2, 3, len(TAX.object_types))
    for i in range(2):
        assert types[i] == pytest.approx(tagger.object_type_probs(p[i]))
    assert types.sum(-1) == pytest.approx(np.ones((2, 3)))


def test_model_info_says_how_object_types_were_decided(tagger: Tagger, upper_body_detector_onnx: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from fashionlens.jobs.ray import _model_of

    assert "object_types" not in tagger.model_info  # whole-image: the classifier decides anyway
    assert tagger.model_info["colours"] == "head+pixels (w=0.5)"
    monkeypatch.setattr(tagger, "detector", GarmentDetector(upper_body_detector_onnx))
    info = tagger.model_info
    assert info["object_types"].startswith("detector+classifier (TypeFusion(")
    assert _model_of({"model": {**info, "detector": "d"}}) == info  # the Ray engine binds jobs to the same
    monkeypatch.setattr(tagger, "type_fusion", None)
    assert "object_types" not in tagger.model_info


def test_pixel_colours_join_detections_only_on_a_plain_backdrop(tagger: Tagger, upper_body_detector_onnx: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A detected garment's mask pixels feed the pixel colour model on a plain-backdrop photo, not on a
    busy (street-like) one, where the head decides alone."""
    thr = tagger.meta.thresholds.get("colours", 0.5)
    monkeypatch.setattr(tagger.backend, "run", lambda b: _probs(tagger, len(b), colours={"blue": thr * 0.9}))
    mask = np.zeros((1, 120, 100), bool)
    mask[0, 20:100, 25:75] = True
    g = Garments(xyxy=[[25, 20, 75, 100]], object_type=["upper-body"], confidence=[0.9], mask=mask)
    names = {}
    for backdrop in ("plain", "busy"):
        rgb = np.full((120, 100, 3), 244, np.uint8) if backdrop == "plain" else _noise(120, 100)
        rgb[20:100, 25:75] = (190, 25, 30)  # a red garment
        monkeypatch.setattr(tagger, "detector", _stub(upper_body_detector_onnx, g))
        [rec] = tagger.tag_batch([_decoded(rgb)], ["a.jpg"])
        names[backdrop] = [c["id"] for c in rec["garments"][0]["attributes"]["colours"]]
    assert names["plain"][0] == "red"  # the pixels outvote the unsure head
    # the head alone on a busy backdrop: its blue is not what the garment's pixels show, so it is not listed
    assert names["busy"] == []
