"""``fashionlens train colours`` / ``evaluate colours`` end to end on a generated RISE-layout set,
and the evaluation helpers; a data test on the shared RISE photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionlens.cli import main
from fashionlens.models.pixel_colours import PixelColourModel
from fashionlens.evaluate.colours import (
    colour_macro_f1,
    colour_scores,
    colour_targets,
    labelled_colour_records,
)
from fashionlens.train.colours import ColourTrainConfig, train_colours

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
COLOURS = {"Red": (190, 25, 30), "Blue": (40, 80, 170), "Black": (28, 28, 30), "Yellow": (225, 190, 40)}


def _fake_rise(root: Path, n: int = 60) -> Path:
    """Garments of one or two colours hanging on a white backdrop, with RISE's ``colors`` labels."""
    rise = root / "rise"
    (rise / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = list(COLOURS)
    rows = []
    for i in range(n):
        picked = [str(c) for c in rng.choice(names, size=1 + int(i % 4 == 0), replace=False)]
        rgb = np.full((256, 144, 3), 244, np.uint8)
        rgb[30:230, 30:114] = COLOURS[picked[0]]
        if len(picked) > 1:
            rgb[130:230, 30:114] = COLOURS[picked[1]]
        rgb = np.clip(rgb + rng.normal(0, 3, rgb.shape), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(rise / "images" / f"T{i:03d}.jpg", quality=92)
        rows.append({"id": f"T{i:03d}", "type": "Sweater", "pattern": None, "cut": "[]", "material": "100% cotton",
                     "colors": str(picked), "season": "", "gender": "women"})
    rows.append({"id": "T999", "type": "Sweater", "pattern": None, "cut": "[]", "material": "", "colors": "",
                 "season": "", "gender": "women"})  # no colour label: split with the others, then left out
    Image.fromarray(np.full((256, 144, 3), 244, np.uint8)).save(rise / "images" / "T999.jpg")
    (rise / "garments.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


def test_train_and_evaluate_colours_on_a_tiny_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _fake_rise(tmp_path / "data")
    config = ColourTrainConfig(data_root=str(root), out_dir=str(tmp_path / "run"), c_grid=[1.0], folds=3)
    result = train_colours(config, progress=False)
    model = PixelColourModel.load(result["model"])
    assert result["selection"]["photos"] >= 35 and result["selection"]["photos_without_backdrop"] == 0
    for split in ("val", "test"):
        m = result[split]
        assert m["plain_backdrop"] == m["photos"] == m["head+pixels"]["n"]
        # the colours are plain in the pixels; the shipped head has never seen these photos
        assert m["head+pixels"]["macro_f1"] > 0.8
        assert m["head+pixels"]["macro_f1"] >= m["head"]["macro_f1"]
    assert model.metrics["val"] == result["val"]
    assert (tmp_path / "run" / "selection.json").is_file()

    out = tmp_path / "eval"
    assert main(["evaluate", "colours", "--weights", result["model"], "--data", str(root), "--split", "test",
                 "--out", str(out), "-q"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["head+pixels"]["macro_f1"] == pytest.approx(result["test"]["head+pixels"]["macro_f1"])
    assert (out / "colour_f1_test.png").stat().st_size > 1000
    assert "per_colour" in json.loads((out / "metrics.json").read_text())["head"]
    # tag's default detect mode: the top garment's colours through the shipped detector
    assert main(["evaluate", "colours", "--weights", result["model"], "--data", str(root), "--split", "test",
                 "--detect", "--out", str(tmp_path / "eval-detect"), "-q"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["mode"] == "detect" and printed["head+pixels"]["n"] == result["test"]["photos"]


def test_labelled_records_split_all_photos_first(tmp_path: Path) -> None:
    """The split is made on every RISE photo (as the classifier's is), then unlabelled ones are dropped."""
    from fashionlens.io.datasets import read_dataset
    from fashionlens.io.splits import group_split

    root = _fake_rise(tmp_path / "data")
    got = labelled_colour_records(root)
    full = group_split(read_dataset("rise", root), seed=0)
    for split in ("train", "val", "test"):
        assert [r.path for r in got[split]] == [r.path for r in full[split] if r.path.name != "T999.jpg"]


def test_scores_and_targets() -> None:
    values = ("red", "blue", "black")
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]], bool)
    pred = np.array([[1, 0, 0], [0, 0, 1], [1, 1, 0]], bool)
    s = colour_scores(y, pred, values)
    assert s["macro_f1"] == pytest.approx(np.mean([1.0, 2 / 3]))  # black is absent from the labels: not averaged
    assert s["exact_match"] == pytest.approx(2 / 3) and s["per_colour"]["black"]["support"] == 0
    with pytest.raises(ValueError, match="no colour occurs"):
        colour_macro_f1(np.zeros((2, 3), bool), pred[:2])
    with pytest.raises(ValueError, match="shape"):
        colour_scores(y, pred[:, :2], values)


@pytest.mark.skipif(not (SHARED / "rise" / "garments.jsonl").is_file(), reason="../shared/datasets/rise not present")
def test_shared_rise_split_matches_the_classifier_and_the_shipped_model_helps() -> None:
    """The colour evaluation's validation photos are the classifier's (no training photo leaks in), and
    the shipped pixel model's stored validation gain is real on them."""
    from fashionlens.io.datasets import read_dataset
    from fashionlens.io.splits import group_split
    from fashionlens.models.registry import DEFAULT_PIXEL_COLOURS, default_weights_path
    from fashionlens.runtime.backends import create_backend

    splits = labelled_colour_records(SHARED)
    train_paths = {r.path for r in group_split(read_dataset("rise", SHARED), seed=0)["train"]}
    assert not train_paths & {r.path for r in splits["val"] + splits["test"]}
    model = PixelColourModel.load(default_weights_path(DEFAULT_PIXEL_COLOURS))
    val = model.metrics["val"]
    assert val["photos"] == len(splits["val"])
    assert val["head+pixels"]["macro_f1"] > val["head"]["macro_f1"] + 0.05
    y = colour_targets(splits["val"], create_backend(None).meta.head("colours").values)
    assert y.any(1).all()
