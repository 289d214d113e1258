"""``fashionlens tag`` with a detector: detect → crop → classify per photo, ``--render`` pictures,
the whole-image fallback, ``--whole-image`` as before, and argument errors. Photos are generated
JPEGs; the detectors are the tiny ones of tests/conftest.py (never the shipped default): the committed
ONNX export, and the PyTorch weights where torch is installed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pytest
from PIL import Image

from fashionlens.cli import main
from fashionlens.io.records import decode_mask
from fashionlens.pipeline import RESULT_SCHEMA
from fashionlens.taxonomy import load_taxonomy

if TYPE_CHECKING:
    from make_tiny_models import TinyDetector  # tests/fixtures

TAX = load_taxonomy()

pytestmark = pytest.mark.usefixtures("one_thread")


def _photos(d: Path, sizes: tuple[tuple[int, int], ...] = ((160, 120), (120, 160))) -> list[Path]:
    """JPEGs (w × h) of a red block on a light, noisy background."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, (w, h) in enumerate(sizes):
        arr = np.full((h, w, 3), 230, np.uint8)
        arr[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = (200, 30, 35)
        arr = np.clip(arr.astype(int) + rng.integers(-8, 9, arr.shape), 0, 255).astype(np.uint8)
        path = d / f"photo{i}.jpg"
        Image.fromarray(arr).save(path, quality=90)
        paths.append(path)
    return paths


def _tag(*args: str) -> int:
    return main(["tag", *args, "-q", "--backend", "onnx", "--threads", "1"])


def _detector(tiny: TinyDetector) -> list[str]:
    """The ``tag`` options that pick the tiny detector and its backend."""
    return ["--detector", str(tiny.path), "--detector-backend", tiny.backend]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _check(rec: dict[str, Any], path: Path) -> None:
    assert rec["schema"] == RESULT_SCHEMA and rec["error"] is None and rec["image"]["path"] == str(path)
    assert rec["mode"] in {"detect", "whole_image_fallback"}
    assert rec["model"]["detector"] == "tiny-detector"
    w, h = rec["image"]["width"], rec["image"]["height"]
    assert rec["garments"]
    for g in rec["garments"]:
        # an unsure category (below the 0.90 operating point) has id null and its candidates
        assert (g["category"]["id"] in TAX.categories_of(g["object_type"])
                or (g["category"]["id"] is None and g["category"]["uncertain"] and g["category"]["candidates"]))
        x, y, bw, bh = g["bbox"]
        assert x >= 0 and y >= 0 and x + bw <= w + 0.01 and y + bh <= h + 0.01
        if rec["mode"] == "detect":
            # the tiny detector says upper-body; a confident classifier may override it (TypeFusion)
            assert g["object_type"] in TAX.object_types and g["mask"]["size"] == [h, w]
        else:
            assert g["bbox"] == [0.0, 0.0, float(w), float(h)] and g["mask"] is None


def test_tag_with_detector_and_render(upper_body_detector: TinyDetector, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    paths = _photos(tmp_path / "in")
    out, render = tmp_path / "res.jsonl", tmp_path / "render"

    code = _tag(str(tmp_path / "in"), *_detector(upper_body_detector), "--render", str(render),
                "-o", str(out))

    assert code == 0
    records = _lines(out)
    assert len(records) == 2
    for rec, path in zip(records, paths):
        _check(rec, path)
        assert rec["mode"] == "detect"
    assert sorted(p.name for p in render.iterdir()) == ["photo0.jpg", "photo1.jpg"]
    for path in paths:
        drawn = cv2.imread(str(render / path.name))
        original = cv2.imread(str(path))
        assert drawn is not None and drawn.shape == original.shape
        assert np.abs(drawn.astype(int) - original.astype(int)).mean() > 1  # masks and boxes were drawn
    assert "tagged 2/2 images (0 failed)" in capsys.readouterr().err


def test_parallel_streams_give_the_same_lines_in_order(upper_body_detector: TinyDetector, tmp_path: Path) -> None:
    """--streams 2 (two batches through the shared detector and classifier at once) = --streams 1."""
    sizes = ((160, 120), (120, 160), (150, 150), (140, 100), (100, 140))
    paths = _photos(tmp_path / "in", sizes)
    outs = {}
    for streams in ("1", "2"):
        outs[streams] = tmp_path / f"res{streams}.jsonl"
        assert _tag(str(tmp_path / "in"), *_detector(upper_body_detector), "--batch-size", "2",
                    "--streams", streams, "-o", str(outs[streams])) == 0
    one, two = _lines(outs["1"]), _lines(outs["2"])
    assert [r["image"]["path"] for r in two] == [str(p) for p in paths]
    for a, b in zip(one, two):
        _check(b, Path(b["image"]["path"]))
        for key in ("timing_ms",):
            a.pop(key, None), b.pop(key, None)
        assert a == b


def test_nothing_detected_falls_back_per_photo(upper_body_detector: TinyDetector, tmp_path: Path) -> None:
    paths = _photos(tmp_path / "in")
    out, render = tmp_path / "res.jsonl", tmp_path / "render"
    code = _tag(*map(str, paths), *_detector(upper_body_detector), "--score-thresh", "1.0",
                "--render", str(render), "-o", str(out))
    assert code == 0
    records = _lines(out)
    assert [r["mode"] for r in records] == ["whole_image_fallback"] * 2
    for rec, path in zip(records, paths):
        _check(rec, path)
        assert len(rec["garments"]) == 1
    assert len(list(render.iterdir())) == 2


def test_large_jpeg_is_decoded_reduced_but_reported_in_full_resolution(upper_body_detector: TinyDetector,
                                                                       tmp_path: Path) -> None:
    [path] = _photos(tmp_path / "in", ((1200, 1100),))  # decoded at 1/2 for detection (shorter side ≥ 512)
    out, render = tmp_path / "res.jsonl", tmp_path / "render"
    assert _tag(str(path), *_detector(upper_body_detector), "--render", str(render),
                "-o", str(out)) == 0
    [rec] = _lines(out)
    _check(rec, path)
    assert (rec["image"]["width"], rec["image"]["height"]) == (1200, 1100)
    assert max(g["bbox"][0] + g["bbox"][2] for g in rec["garments"]) > 600  # full-resolution pixels
    assert all(decode_mask(g["mask"]).shape == (1100, 1200) for g in rec["garments"])
    assert cv2.imread(str(render / "photo0.jpg")).shape == (550, 600, 3)  # drawn on the reduced decode


def test_rules_option(upper_body_detector: TinyDetector, tmp_path: Path) -> None:
    paths = _photos(tmp_path / "in")
    out = tmp_path / "res.jsonl"
    assert _tag(*map(str, paths), *_detector(upper_body_detector), "--rules",
                "duplicates,sparse_mask", "--nms-thresh", "0.3", "-o", str(out)) == 0
    assert [r["mode"] for r in _lines(out)] == ["detect", "detect"]


def test_whole_image_keeps_the_old_behaviour(tmp_path: Path) -> None:
    paths = _photos(tmp_path / "in")
    out = tmp_path / "res.jsonl"
    # the detector is not loaded at all: a missing file does not matter
    assert _tag(str(tmp_path / "in"), "--whole-image", "--detector", str(tmp_path / "missing.pt"), "-o", str(out)) == 0
    records = _lines(out)
    assert len(records) == 2
    for rec, path in zip(records, paths):
        assert rec["mode"] == "whole_image" and rec["error"] is None and rec["image"]["path"] == str(path)
        assert "detector" not in rec["model"]
        [g] = rec["garments"]
        assert g["bbox"] == [0.0, 0.0, float(rec["image"]["width"]), float(rec["image"]["height"])]
        assert g["mask"] is None


@pytest.mark.parametrize("args, message", [
    (["--score-thresh", "2"], "score_thresh"),
    (["--nms-thresh", "-1"], "nms_thresh"),
    (["--rules", "duplicates,nope"], "nope"),
])
def test_bad_detection_options(args: list[str], message: str, upper_body_detector: TinyDetector, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    [path] = _photos(tmp_path, ((32, 32),))
    assert _tag(str(path), *_detector(upper_body_detector), *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("fashionlens: error: ") and message in err


@pytest.mark.parametrize("args, message", [
    (["--streams", "0"], "--streams: expected a positive number"),
    (["--streams", "2", "--engine", "ray"], "use --ray-actors"),
])
def test_bad_streams_option(args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [path] = _photos(tmp_path, ((32, 32),))
    with pytest.raises(SystemExit) as exit_info:
        _tag(str(path), *args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_missing_or_wrong_detector_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [path] = _photos(tmp_path, ((32, 32),))
    missing = tmp_path / "missing.pt"
    assert _tag(str(path), "--detector", str(missing)) == 2
    assert str(missing) in capsys.readouterr().err
    pytest.importorskip("torch")  # reading a .pt file's header needs the train extra
    not_weights = tmp_path / "notes.pt"
    not_weights.write_text("hello")
    assert _tag(str(path), "--detector", str(not_weights)) == 2
    assert "detector-weights" in capsys.readouterr().err


def test_type_fusion_off_keeps_the_detectors_types(upper_body_detector: TinyDetector, tmp_path: Path) -> None:
    """The tiny detector only knows upper-body; with fusion off every garment keeps that type, and the
    records say how object types were decided (a resumed job cannot mix the two)."""
    _photos(tmp_path / "in")
    runs = {}
    for fusion in ("off", "on"):
        out = tmp_path / f"{fusion}.jsonl"
        assert _tag(str(tmp_path / "in"), *_detector(upper_body_detector), "--type-fusion", fusion,
                    "-o", str(out)) == 0
        runs[fusion] = _lines(out)
    for rec in runs["off"]:
        assert rec["mode"] == "detect" and "object_types" not in rec["model"]
        assert {g["object_type"] for g in rec["garments"]} == {"upper-body"}
    for rec in runs["on"]:
        assert rec["model"]["object_types"].startswith("detector+classifier (TypeFusion(")
    # the same boxes either way: fusion changes types only
    assert [[g["bbox"] for g in r["garments"]] for r in runs["off"]] == \
        [[g["bbox"] for g in r["garments"]] for r in runs["on"]]
