"""`fashionlens data stats` on a generated RISE-layout data set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionlens.cli import main
from fashionlens.evaluate.data_stats import dataset_stats, format_stats

ROWS = [
    {"id": "A1", "type": "Sweater", "pattern": "Striped", "cut": "['Regular']", "material": "100% cotton",
     "colors": "['Red', 'White']", "season": "", "gender": "women"},
    {"id": "A2", "type": "Sweater", "pattern": None, "cut": "[]", "material": "80% wool 20% polyamide",
     "colors": "['Red']", "season": "", "gender": "men"},
    {"id": "A3", "type": "Blazer", "pattern": "Plain", "cut": "[]", "material": "?", "colors": "['Black']",
     "season": "", "gender": "women"},
    {"id": "A4", "type": "Vest", "pattern": None, "cut": "[]", "material": "", "colors": "['Red']",
     "season": "", "gender": "women"},
]


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    rise = tmp_path / "rise"
    (rise / "images").mkdir(parents=True)
    with (rise / "garments.jsonl").open("w") as fh:
        for i, row in enumerate(ROWS):
            fh.write(json.dumps(row) + "\n")
            Image.fromarray(np.full((40 + i, 30, 3), 128, np.uint8)).save(rise / "images" / f"{row['id']}.jpg")
    return tmp_path


def test_counts_and_imbalance(root: Path) -> None:
    stats = dataset_stats("rise", root)
    assert stats["images"] == 4 and stats["groups"] == 4
    assert stats["categories"]["counts"] == {"sweaters": 2, "formal-jackets": 1}  # Vest has no category
    assert stats["categories"]["imbalance_ratio"] == {"sweaters": 1.0, "formal-jackets": 2.0}
    assert stats["categories"]["mean_ir"] == pytest.approx(1.5)
    assert stats["object_types"]["counts"] == {"upper-body": 4}
    colours = stats["colours"]
    assert colours["counts"] == {"red": 3, "black": 1, "white": 1}
    assert colours["mean_ir"] == pytest.approx((1 + 3 + 3) / 3, abs=1e-3)
    assert colours["scumble"] > 0  # red (frequent) and white (rare) occur together in A1
    assert stats["material"]["counts"] == {"cotton": 1, "wool": 1}
    sizes = stats["image_sizes"]
    assert sizes["n_images"] == 4 and sizes["width"]["min"] == 30 and sizes["height"]["max"] == 43
    text = format_stats(stats)
    assert "MeanIR" in text and "sweaters" in text


def test_cli_json(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "stats", "rise", "--root", str(root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dataset"] == "rise" and out["images"] == 4


def test_missing_data_set_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "stats", "rise", "--root", str(tmp_path)]) == 2
    assert "garments.jsonl" in capsys.readouterr().err
