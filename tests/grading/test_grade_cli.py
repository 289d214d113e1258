"""``fashionlens grade`` end to end with the shipped models on generated photos (offline)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionlens.cli import main
from fashionlens.grading.item import DAMAGE_TYPES, ITEM_SCHEMA, ROUTES


def _care_label_module():
    spec = importlib.util.spec_from_file_location("care_label_tests", Path(__file__).with_name("test_care_label.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _garment(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rgb = np.full((480, 320, 3), 238, np.uint8)
    body = np.zeros((480, 320), bool)
    body[90:420, 80:240] = True  # torso
    body[100:330, 30:80] = True  # sleeves
    body[100:330, 240:290] = True
    cloth = np.array([150, 30, 40]) + rng.integers(-12, 12, (480, 320, 3))
    rgb[body] = np.clip(cloth[body], 0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(path, quality=92)


@pytest.fixture(scope="module")
def item_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("items") / "ITEM-1"
    d.mkdir()
    _garment(d / "front.jpg", 0)
    _garment(d / "back.jpg", 1)
    mod = _care_label_module()
    Image.fromarray(mod.render_label(mod.ZARA)).save(d / "label.png")
    return d


def test_grade_cli_with_the_shipped_models(item_dir, tmp_path, capsys):
    out = tmp_path / "graded.jsonl"
    rc = main(["grade", str(item_dir), "-o", str(out), "--render", str(tmp_path / "pics"), "--threads", "1", "-q"])
    assert rc == 0
    rec = json.loads(out.read_text().splitlines()[0])
    assert rec["schema"] == ITEM_SCHEMA and rec["item_id"] == "ITEM-1" and rec["error"] is None
    assert [v["role"] for v in rec["views"]] == ["front", "back", "label"]
    cat = rec["category"]  # at the default operating point (0.90): a sure id, or unsure with candidates (item v2)
    assert rec["object_type"] is not None and (cat["id"] or (cat["uncertain"] and cat["candidates"][0]["id"]))
    assert rec["composition"]["main_fibre"] == "wool" and rec["brand"].lower() == "zara"  # canonical spelling from the brand list
    assert rec["attributes"]["material"]["source"] == "label"
    assert set(rec["damage"]["area_share"]) == set(DAMAGE_TYPES)
    for region in rec["damage"]["regions"]:
        assert region["view"] in ("front", "back") and 0 < region["area_share"] <= 1
    assert set(rec["grades"]) == {"type", "material", "season"}  # only the heads with a trained model
    assert rec["route"]["decision"] in ROUTES and rec["route"]["reasons"]
    assert (tmp_path / "pics" / "ITEM-1.png").is_file()
    assert "train grader" in capsys.readouterr().err  # says which heads are untrained


def test_grade_cli_reports_a_bad_input(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "nope")]) == 2
    assert "expected an item folder" in capsys.readouterr().err
