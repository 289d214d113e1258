"""The model registry: one spec per shipped model, format headers matching the loaders, load_model by
name or path, errors that name the shipped models, and the one ``.pt`` layout of weights_io."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fashionlens.models.pixel_colours import PIXEL_COLOUR_FORMAT, PixelColourModel
from fashionlens.models.pixel_filter import PIXEL_FILTER_FORMAT, GarmentPixelFilter
from fashionlens.models.classifier import GarmentClassifier, load_classifier
from fashionlens.models.damage import DAMAGE_WEIGHTS_FORMAT
from fashionlens.models.detector_weights import DETECTOR_WEIGHTS_FORMAT
from fashionlens.models.grader import GRADER_FORMAT, GraderModel
from fashionlens.models.meta import WEIGHTS_FORMAT
from fashionlens.models.loading import FORMATS, load_model
from fashionlens.models.registry import (
    FORMAT_KINDS,
    MODELS,
    default_weights_path,
    list_models,
    model_spec,
)
from fashionlens.models.weights_io import stored_format
from fashionlens.models.alignment import ALIGNMENT_FORMAT, AlignmentHeads

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "src" / "fashionlens" / "weights"


def test_format_headers_are_the_loaders_constants() -> None:
    assert set(FORMATS) == {WEIGHTS_FORMAT, DETECTOR_WEIGHTS_FORMAT, DAMAGE_WEIGHTS_FORMAT, ALIGNMENT_FORMAT,
                            GRADER_FORMAT, PIXEL_COLOUR_FORMAT, PIXEL_FILTER_FORMAT}
    assert {h: f.kind for h, f in FORMATS.items()} == FORMAT_KINDS


def test_every_shipped_weights_file_has_a_spec_and_its_stored_header() -> None:
    shipped = {p.name for p in WEIGHTS_DIR.iterdir() if p.suffix in (".pt", ".npz")}
    assert shipped == {s.filename for s in MODELS.values()}
    assert list_models() == sorted(MODELS)
    for name in list_models():
        spec = model_spec(name)
        assert spec.name == name and spec.description
        assert stored_format(default_weights_path(name)) == spec.header, name
        assert spec.format in ("classifier-pt", "detector-pt", "damage-pt", "npz-heads")
        assert spec.format.endswith("-pt") == spec.filename.endswith(".pt")


def test_load_model_by_path_picks_the_loader_from_the_header(tmp_path: Path) -> None:
    # a copy under a neutral name: the loader comes from the stored header, not the file name
    for name, expected in (("garment-text-align-lite0", AlignmentHeads), ("rise-grader-lite0", GraderModel),
                           ("garment-colours-pixels", PixelColourModel), ("garment-pixel-filter", GarmentPixelFilter), ("garment-classifier-lite0", GarmentClassifier)):
        src = default_weights_path(name)
        copy = tmp_path / f"model{src.suffix}"
        shutil.copy(src, copy)
        assert isinstance(load_model(copy), expected), name
        assert isinstance(load_model(str(copy)), expected), name


def test_load_model_errors_name_the_shipped_models(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown model 'garment-clasifier'.*garment-classifier-lite0"):
        load_model("garment-clasifier")
    with pytest.raises(FileNotFoundError, match="weights not found.*garment-classifier-lite0"):
        load_model(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="unknown model"):
        model_spec("nope")
    with pytest.raises(ValueError, match="ONNX export"):
        load_model(default_weights_path().with_suffix(".onnx"))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not weights")
    with pytest.raises(ValueError, match="not a fashionlens weights file"):
        load_model(garbage)
    plain = tmp_path / "state.pt"
    torch.save({"w": torch.zeros(2)}, plain)
    with pytest.raises(ValueError, match="no format header"):
        load_model(plain)
    other = tmp_path / "other.pt"
    torch.save({"format": "someone/else/v1", "meta": {}, "state_dict": {}}, other)
    with pytest.raises(ValueError, match="unknown weights format 'someone/else/v1'"):
        load_model(other)
    npz = tmp_path / "plain.npz"
    np.savez(npz, a=np.zeros(2))
    with pytest.raises(ValueError, match="not a fashionlens weights file"):
        load_model(npz)


def test_classifier_uses_the_one_pt_layout(tmp_path: Path) -> None:
    """save_classifier goes through weights_io: {format, meta, state_dict}, fp16, loadable by both."""
    from fashionlens.models.classifier import new_classifier_meta, save_classifier
    from fashionlens.models.weights_io import load_torch_weights

    torch.manual_seed(0)
    model = GarmentClassifier(new_classifier_meta(), pretrained_backbone=False).eval()
    path = tmp_path / "sub" / "model.pt"  # weights_io creates the folder
    save_classifier(model, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]
    meta, state = load_torch_weights(path, fmt=WEIGHTS_FORMAT)
    assert meta == model.meta.to_dict() and state["heads.category.weight"].dtype == torch.float16
    assert stored_format(path) == WEIGHTS_FORMAT
    loaded = load_classifier(path)
    assert torch.equal(loaded.heads["category"].weight, model.heads["category"].weight.half().float())
