"""``tag --whole-image`` and ``grade`` never import torch: a fresh interpreter tags one photo and grades
one generated 3-photo item (front, back, care label) with the shipped models and the default
backend, then checks that no module only the ``[train]`` extra installs was imported — even where
it is installed (the full environment), which is what makes the light install work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

#: modules only the [train] extra installs; none may be imported by inference
TRAIN_ONLY = ("torch", "torchvision", "timm", "onnx", "transformers", "sentence_transformers", "albumentations")


@pytest.fixture(scope="module")
def item_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ITEM-1/front.jpg``, ``back.jpg`` and ``label.png`` as in ``test_grade_cli.py``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("grade_cli_tests", Path(__file__).with_name("test_grade_cli.py"))
    assert spec is not None and spec.loader is not None
    grade_cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grade_cli)
    from PIL import Image

    d = tmp_path_factory.mktemp("light") / "ITEM-1"
    d.mkdir()
    grade_cli._garment(d / "front.jpg", 0)
    grade_cli._garment(d / "back.jpg", 1)
    labels = grade_cli._care_label_module()
    Image.fromarray(labels.render_label(labels.ZARA)).save(d / "label.png")
    return d


def test_whole_image_tagging_and_grading_import_no_torch(item_dir: Path, tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import importlib.abc, json, sys, traceback

        TRAIN_ONLY, item, out = set(sys.argv[1].split(",")), sys.argv[2], sys.argv[3]
        first = {}

        class Watch(importlib.abc.MetaPathFinder):  # records who imports a train-only module first
            def find_spec(self, name, path=None, target=None):
                top = name.partition(".")[0]
                if top in TRAIN_ONLY and top not in first:
                    first[top] = [f"{f.filename}:{f.lineno}" for f in traceback.extract_stack()
                                  if "fashionlens" in f.filename]
                return None

        sys.meta_path.insert(0, Watch())
        from fashionlens.cli import main

        rc_tag = main(["tag", "--whole-image", f"{item}/front.jpg", "-o", f"{out}/tags.jsonl", "--threads", "1"])
        rc_grade = main(["grade", item, "-o", f"{out}/items.jsonl", "--threads", "1", "-q"])
        print(json.dumps({"rc": [rc_tag, rc_grade], "first": first,
                          "loaded": sorted(m for m in TRAIN_ONLY if m in sys.modules)}))
    """)
    proc = subprocess.run([sys.executable, "-c", code, ",".join(TRAIN_ONLY), str(item_dir), str(tmp_path)],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rc"] == [0, 0], proc.stderr[-3000:]
    assert result["loaded"] == [], "imported by: " + json.dumps(result["first"], indent=1)

    [tagged] = [json.loads(line) for line in (tmp_path / "tags.jsonl").read_text().splitlines()]
    assert tagged["error"] is None and tagged["model"]["backend"] == "onnx" and tagged["garments"]
    [item] = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    cat = item["category"]  # default operating point 0.90: a sure id, or unsure with its candidates (item v2)
    assert item["error"] is None and (cat["id"] or cat["candidates"]) and item["brand"].lower() == "zara"
    assert item["model"]["damage_backend"] == "onnx" and set(item["grades"]) == {"type", "material", "season"}
