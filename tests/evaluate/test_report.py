"""`fashionlens evaluate classifier`: metrics JSON and confusion-matrix pictures on a prepared cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionlens.evaluate.report import evaluate_classifier_on_cache, plot_confusion

pytestmark = pytest.mark.train  # needs the train extra (torch): not run in the light environment


def _cache(tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    (cache / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = [
        ("clothing", ["t-shirts"], "T-Shirt", {"sleeve": "short"}),
        ("clothing", ["jeans", "trousers"], "Pants", {}),
        ("clothing", ["dresses"], "Dress", {}),
        ("rise", ["sweaters"], "Sweater", {"colours": ["red"], "material": "wool"}),
        ("rise", ["coats-jackets"], "Jacket", {"colours": ["black", "white"]}),
        ("ccp", ["bags"], "bag", {}),
    ]
    with (cache / "samples.jsonl").open("w") as fh:
        for i, (src, cats, label, attrs) in enumerate(rows):
            name = f"images/{src}_{i}.jpg"
            Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)).save(cache / name)
            fh.write(json.dumps({"file": name, "source": src, "group": f"{src}/{i}", "split": "test",
                                 "categories": cats, "object_type": None, "attributes": attrs,
                                 "source_label": label}) + "\n")
    return cache


def test_evaluate_writes_metrics_and_pictures(tmp_path: Path) -> None:
    summary = evaluate_classifier_on_cache(None, _cache(tmp_path), split="test", out_dir=tmp_path / "eval")
    assert summary["n"] == 6
    assert 0.0 <= summary["category_accuracy"] <= 1.0
    assert summary["colours"] is not None
    for path in summary["outputs"]:
        assert Path(path).is_file() and Path(path).stat().st_size > 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["clothing10"]["n"] == 3
    assert metrics["rise_type"]["n"] == 2


def test_plot_confusion(tmp_path: Path) -> None:
    path = plot_confusion(np.array([[3, 1], [0, 2]]), ["a", "b"], tmp_path / "cm.png", title="t")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 100
