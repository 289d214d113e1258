"""``fashionlens tag --precision/--keep-uncertain`` on a generated photo with the shipped calibration, and the
``evaluate calibration`` command's registration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionlens.cli import main
from fashionlens.models.calibration import calibration_path
from fashionlens.models.registry import default_weights_path

pytestmark = pytest.mark.skipif(not calibration_path(default_weights_path()).is_file(),
                                reason="no calibration shipped with the classifier")


def _photo(d: Path) -> Path:
    rng = np.random.default_rng(3)
    arr = np.full((120, 90, 3), 238, np.uint8)
    arr[20:100, 18:72] = (25, 70, 190)
    arr[40:80, 30:60] = rng.integers(0, 256, (40, 30, 3))  # a busy print: the model should not be sure of it
    path = d / "shirt.png"
    Image.fromarray(arr).save(path)
    return path


def _tag(tmp_path: Path, *flags: str) -> dict:
    out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}.jsonl"
    assert main(["tag", "--whole-image", "-q", str(_photo(tmp_path)), "-o", str(out), *flags]) == 0
    [line] = out.read_text("utf-8").splitlines()
    return json.loads(line)


def _fields(garment: dict) -> dict[str, dict]:
    single = {k: v for k, v in garment["attributes"].items() if isinstance(v, dict)}
    return {"category": garment["category"], **single}


def test_tag_precision_and_keep_uncertain(tmp_path: Path) -> None:
    strict = _tag(tmp_path, "--precision", "0.999")
    assert strict["schema"] == "fashionlens/result/v2"
    assert strict["model"]["calibration"].endswith(".calibration.json")
    assert strict["model"]["operating_point"] == "precision 0.999"
    g = strict["garments"][0]
    unsure = {k: v for k, v in _fields(g).items() if v.get("uncertain")}
    assert unsure, "at precision 0.999 some field must be unsure on a synthetic photo"
    for v in unsure.values():
        assert v["id"] is None and 1 <= len(v["candidates"]) <= 3
        assert v["candidates"][0]["score"] >= v["candidates"][-1]["score"]
    colours = g["attributes"]["colours"]
    assert colours or g["attributes"]["colours_uncertain"] is True
    assert all("uncertain" not in c for c in colours)

    kept = _tag(tmp_path, "--precision", "0.999", "--keep-uncertain")
    kg = kept["garments"][0]
    for name in unsure:
        v = _fields(kg)[name]
        assert v["uncertain"] is True and v["id"] == v["candidates"][0]["id"] or name == "category"
    if g["attributes"].get("colours_uncertain"):
        assert kg["attributes"]["colours"] and all(c["uncertain"] for c in kg["attributes"]["colours"])

    off = _tag(tmp_path, "--precision", "off")
    assert "operating_point" not in off["model"]
    assert not any(v.get("uncertain") for v in _fields(off["garments"][0]).values())
    assert "colours_uncertain" not in off["garments"][0]["attributes"]


def test_tag_refuses_a_precision_out_of_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["tag", "--whole-image", str(_photo(tmp_path)), "--precision", "1.5"])
    assert exc.value.code == 2
    assert "--precision: expected a target precision in (0, 1] or 'off'" in capsys.readouterr().err


def test_evaluate_calibration_is_registered(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "calibration", "--help"])
    assert exc.value.code == 0
    assert "--save" in capsys.readouterr().out


def test_tag_refuses_detection_precision_without_detection(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["tag", "--whole-image", str(_photo(tmp_path)), "--detection-precision", "0.9"])
    assert exc.value.code == 2
    assert "--detection-precision needs detection" in capsys.readouterr().err
