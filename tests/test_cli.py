"""Tests for ``fashionlens tag`` and ``fashionlens --version`` through ``fashionlens.cli.main``.
Fixtures are generated in tmp_path with Pillow/numpy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionlens import __version__
from fashionlens.cli import main
from fashionlens.pipeline import RESULT_SCHEMA
from fashionlens.taxonomy import load_taxonomy

TAX = load_taxonomy()


def _photos(d: Path) -> list[Path]:
    """Three small photos of different formats, in the order a folder input lists them."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for name, fmt in (("a.jpg", "JPEG"), ("b.png", "PNG"), ("c.gif", "GIF")):
        arr = np.full((96, 72, 3), 235, np.uint8)
        arr[20:76, 15:57] = rng.integers(0, 256, 3)
        Image.fromarray(arr).save(d / name, fmt)
        paths.append(d / name)
    return paths


def _check_lines(text: str, paths: list[Path], backend: str) -> list[dict]:
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["image"]["path"] for r in records] == [str(p) for p in paths]
    for rec in records:
        assert rec["schema"] == RESULT_SCHEMA
        assert rec["model"]["backend"] == backend
        if rec["error"] is None:
            # a block on a plain background: the shipped detector may box it (it has seen product
            # photos) or find nothing and fall back to the whole image (one garment, the whole photo)
            w, h = float(rec["image"]["width"]), float(rec["image"]["height"])
            assert rec["garments"] and rec["mode"] in ("detect", "whole_image_fallback")
            if rec["mode"] == "whole_image_fallback":
                assert [g["bbox"] for g in rec["garments"]] == [[0.0, 0.0, w, h]]
            for g in rec["garments"]:
                # an unsure category (below the 0.90 operating point) has id null and its candidates
                assert (g["category"]["id"] in TAX.categories_of(g["object_type"])
                        or (g["category"]["id"] is None and g["category"]["uncertain"] and g["category"]["candidates"]))
                x, y, bw, bh = g["bbox"]
                assert 0 <= x and 0 <= y and bw > 0 and bh > 0 and x + bw <= w + 0.01 and y + bh <= h + 0.01
    return records


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"fashionlens {__version__}"


@pytest.mark.parametrize("backend, extra", [("onnx", ["--threads", "1"]),
                                            pytest.param("torch", [], marks=pytest.mark.train)])
def test_tag_folder_to_file(backend: str, extra: list[str], tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    paths = _photos(tmp_path / "in")
    out = tmp_path / "res" / "results.jsonl"

    code = main(["tag", str(tmp_path / "in"), "-o", str(out), "--backend", backend, "--batch-size", "2", "-q",
                 *extra])

    assert code == 0
    records = _check_lines(out.read_text(encoding="utf-8"), paths, backend)
    assert all(r["error"] is None for r in records)
    err = capsys.readouterr().err
    assert "tagged 3/3 images (0 failed)" in err and f"backend {backend}" in err


def test_tag_to_stdout_with_a_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = _photos(tmp_path)
    missing = tmp_path / "missing.jpg"
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    inputs = [paths[0], missing, str(tmp_path / "*.gif"), empty]

    code = main(["tag", *map(str, inputs), "--backend", "onnx", "-q"])

    assert code == 1
    captured = capsys.readouterr()
    records = _check_lines(captured.out, [paths[0], missing, paths[2], empty], "onnx")
    assert [r["error"]["type"] if r["error"] else None for r in records] == [None, "not_found", None, "empty_file"]
    assert "tagged 2/4 images (2 failed)" in captured.err


def test_a_glob_without_matches_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "nothing"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    target = str(tmp_path / "nothing" / "*.jpg")

    code = main(["tag", target, "-o", str(tmp_path / "results.jsonl"), "-q"])

    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("fashionlens: error: ")
    assert target in err and "image files" in err


def test_a_folder_without_images_gets_an_error_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 23: a folder among the inputs is accounted for like any unusable input, never a batch abort."""
    folder = tmp_path / "nothing"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "results.jsonl"

    code = main(["tag", str(folder), "-o", str(out), "-q", "--whole-image"])

    assert code == 1
    [record] = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["error"]["type"] == "not_an_image" and "folder with no image files" in record["error"]["message"]
    assert "tagged 0/1 images (1 failed)" in capsys.readouterr().err


def test_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["tag", "x.jpg", "--backend", "tensorrt"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["tag"])
    assert exc.value.code == 2


def test_type_fusion_is_on_or_off(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "detector", "--type-fusion", "0.8"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.train  # runs `evaluate detector`
def test_save_defaults_needs_the_detectors_own_types(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "detector", "--save-defaults"])
    assert exc.value.code == 2
    assert "add --type-fusion off" in capsys.readouterr().err


def test_pixel_colours_is_on_or_off(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["tag", "x.jpg", "--pixel-colours", "maybe"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
