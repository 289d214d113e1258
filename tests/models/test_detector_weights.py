"""Detector weights: metadata round trip, fp16 save → float32 load, overrides, wrong-format errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from fashionlens.models.detector import detector_class_names
from fashionlens.models.detector_weights import (
    DETECTOR_WEIGHTS_FORMAT,
    DetectorMeta,
    load_detector,
    save_detector,
    set_detector_defaults,
)
from fashionlens.models.fcos_seg import FCOSSeg

pytestmark = [pytest.mark.train, pytest.mark.usefixtures("one_thread")]  # train: needs torch

TINY = {"min_size": 128, "max_size": 128, "fpn_channels": 64, "seg_channels": 16, "topk_candidates": 50,
        "detections_per_img": 10}


def _meta(**changes: Any) -> DetectorMeta:
    fields: dict[str, Any] = {"name": "tiny", "version": "1", "arch": "fcos-seg-lite0-fpn",
                              "class_names": tuple(detector_class_names()), "builder_kwargs": dict(TINY),
                              "metrics": {"val": {"box_ap": 0.25}}, "extra": {"note": "test"}}
    return DetectorMeta(**{**fields, **changes})


def test_meta_dict_round_trip() -> None:
    meta = _meta()
    d = meta.to_dict()
    assert d["class_names"] == tuple(detector_class_names())
    d["class_names"] = list(d["class_names"])  # as JSON / torch.load gives it back
    assert DetectorMeta.from_dict(d) == meta


def test_meta_defaults_are_empty_and_not_shared() -> None:
    a = DetectorMeta(name="a", version="0", arch="fcos-seg-lite0-fpn", class_names=("__background__", "bag"))
    b = DetectorMeta(name="b", version="0", arch="fcos-seg-lite0-fpn", class_names=("__background__", "bag"))
    a.builder_kwargs["min_size"] = 64
    assert a.metrics == a.extra == {} and b.builder_kwargs == {}


@pytest.mark.parametrize("half, exact", [(True, False), (False, True)])
def test_save_load_round_trip(half: bool, exact: bool, make_detector: Callable[..., FCOSSeg], tmp_path: Path) -> None:
    model = make_detector(**TINY)
    path = tmp_path / "sub" / "det.pt"  # parent folders are created
    save_detector(model, _meta(), path, half=half)
    assert path.is_file() and not list(path.parent.glob("*.tmp"))
    blob = torch.load(path, weights_only=True)
    assert blob["format"] == DETECTOR_WEIGHTS_FORMAT
    stored = {v.dtype for v in blob["state_dict"].values() if v.is_floating_point()}
    assert stored == ({torch.float16} if half else {torch.float32})

    loaded, meta = load_detector(path)
    assert meta == _meta()
    assert isinstance(loaded, FCOSSeg) and not loaded.training
    original, again = model.state_dict(), loaded.state_dict()
    assert set(original) == set(again)
    for k, v in original.items():
        assert again[k].dtype == v.dtype  # float32 again after an fp16 file
        expected = v if exact or not v.is_floating_point() else v.half().float()
        assert torch.equal(again[k], expected), k


def test_loaded_detector_gives_the_same_detections(make_detector: Callable[..., FCOSSeg], tmp_path: Path) -> None:
    model = make_detector("bag", **TINY)
    save_detector(model, _meta(), tmp_path / "det.pt", half=False)
    loaded, _ = load_detector(tmp_path / "det.pt")
    image = torch.rand(3, 64, 96)
    with torch.no_grad():
        [a], [b] = model([image]), loaded([image])
    torch.testing.assert_close(a["boxes"], b["boxes"])
    torch.testing.assert_close(a["masks"], b["masks"])


def test_overrides_replace_builder_kwargs(make_detector: Callable[..., FCOSSeg], tmp_path: Path) -> None:
    save_detector(make_detector(**TINY), _meta(), tmp_path / "det.pt")
    loaded, meta = load_detector(tmp_path / "det.pt", score_thresh=0.3, detections_per_img=7)
    assert loaded.score_thresh == 0.3 and loaded.detections_per_img == 7
    assert meta.builder_kwargs == TINY  # the stored metadata is unchanged


def test_set_detector_defaults(make_detector: Callable[..., FCOSSeg], tmp_path: Path) -> None:
    path = tmp_path / "det.pt"
    save_detector(make_detector(**TINY), _meta(), path)
    set_detector_defaults(path, {"score_thresh": 0.4, "rules": ["duplicates"]})
    _, meta = load_detector(path)
    assert meta.extra == {"note": "test", "defaults": {"score_thresh": 0.4, "rules": ["duplicates"]}}
    assert not list(tmp_path.glob("*.tmp"))


def _write(kind: str, path: Path) -> None:
    if kind == "other format":
        torch.save({"format": "something/else", "state_dict": {}}, path)
    elif kind == "no format":
        torch.save({"state_dict": {}}, path)
    elif kind == "a list":
        torch.save([1, 2, 3], path)
    elif kind == "classifier-like state dict":
        torch.save({"conv.weight": torch.zeros(2)}, path)
    elif kind == "not a torch file":
        path.write_bytes(b"definitely not a zip or pickle")
    elif kind == "empty file":
        path.write_bytes(b"")


@pytest.mark.parametrize("kind, message", [
    ("other format", "got 'something/else'"),
    ("no format", "got None"),
    ("a list", "got 'list'"),
    ("classifier-like state dict", "got None"),
    ("not a torch file", "could not read it"),
    ("empty file", "could not read it"),
    ("missing", "could not read it"),
])
def test_wrong_format_errors(kind: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    _write(kind, path)
    with pytest.raises(ValueError, match=DETECTOR_WEIGHTS_FORMAT) as exc:
        load_detector(path)
    assert message in str(exc.value) and str(path) in str(exc.value)


def test_set_defaults_refuses_other_files(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"format": "x"}, path)
    with pytest.raises(ValueError, match=DETECTOR_WEIGHTS_FORMAT):
        set_detector_defaults(path, {"score_thresh": 0.5})
