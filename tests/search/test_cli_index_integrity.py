"""``fashionlens index add/build/verify`` and ``search`` on hostile input (issue 23): failed inputs are
named and set the exit code, a damaged index is one line on stderr, ``index verify`` says OK or lists
the problems. Indexes are built from generated ``tag --embed`` results (no model), except one test
that tags photos with the shipped classifier."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionlens.cli import main
from fashionlens.pipeline import RESULT_SCHEMA
from fashionlens.result import encode_embedding

EMBED_DIM = 1280
MODEL = {"name": "garment-classifier-test", "version": "1", "backend": "onnx"}


def result(path: str, seed: int) -> dict:
    """A tagged whole-image record with one garment and its embedding."""
    e = np.random.default_rng(seed).standard_normal(EMBED_DIM).astype(np.float32)
    garment = {"object_type": "upper-body", "score": 0.9, "bbox": [0.0, 0.0, 8.0, 6.0],
               "category": {"id": "t-shirts", "score": 0.7}, "attributes": {"pattern": {"id": "plain", "score": 0.5}},
               "embedding": encode_embedding(e / np.linalg.norm(e))}
    return {"schema": RESULT_SCHEMA, "image": {"path": path, "width": 8, "height": 6}, "model": MODEL,
            "mode": "whole_image", "garments": [garment], "error": None, "timing_ms": {}}


def failed(path: str) -> dict:
    return {"schema": RESULT_SCHEMA, "image": {"path": path, "width": None, "height": None}, "model": MODEL,
            "mode": None, "garments": [], "error": {"type": "not_an_image", "message": "cannot identify image file"},
            "timing_ms": {}}


def jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def summary(out: str) -> dict:
    return json.loads(out[out.index("{"):])


@pytest.fixture
def index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """An index of 4 garments (p0 … p3), without text alignment."""
    built = jsonl(tmp_path / "built.jsonl", [result(f"p{i}.jpg", i) for i in range(4)])
    assert main(["index", "build", str(built), "--index", str(tmp_path / "index"), "--no-text", "-q"]) == 0
    capsys.readouterr()
    return tmp_path / "index"


def _vectors_file(index: Path) -> Path:
    return index / json.loads((index / "manifest.json").read_text())["files"]["vectors"]


# ------------------------------------------------------------------------------------ failed inputs


def test_index_add_names_failed_inputs_adds_the_rest_and_exits_1(index: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    mixed = jsonl(tmp_path / "mixed.jsonl", [result("new.jpg", 10), failed("broken.jpg")])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(result("half.jpg", 11)) + "\nnot json\n")
    missing = tmp_path / "missing.jsonl"
    assert main(["index", "add", str(mixed), str(bad), str(missing), "--index", str(index), "-q"]) == 1
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert f"fashionlens: failed: {bad}: not_tag_results: {bad}:2: expected a JSON tag result; " in err
    assert f"fashionlens: failed: {missing}: unreadable_file: FileNotFoundError: No such file or directory" in err
    assert "fashionlens: failed: broken.jpg: not_an_image: cannot identify image file" in lines
    assert len([line for line in lines if line.startswith("fashionlens: failed: ")]) == 3
    done = summary(out)
    assert (done["added"], done["vectors"], done["errors"]) == (1, 5, 3)  # new.jpg added, half.jpg not


def test_index_add_with_every_input_failed_exits_1_and_changes_nothing(index: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    manifest = (index / "manifest.json").read_bytes()
    only_errors = jsonl(tmp_path / "errors.jsonl", [failed("a.jpg"), failed("b.jpg")])
    assert main(["index", "add", str(only_errors), str(tmp_path / "nope.jsonl"), "--index", str(index), "-q"]) == 1
    out, err = capsys.readouterr()
    assert "failed: a.jpg: not_an_image" in err and "failed: b.jpg: not_an_image" in err and "nope.jsonl" in err
    assert (summary(out)["added"], summary(out)["errors"]) == (0, 3)
    assert (index / "manifest.json").read_bytes() == manifest


def test_index_build_names_failed_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = jsonl(tmp_path / "r.jsonl", [result("a.jpg", 1), failed("b.jpg")])
    assert main(["index", "build", str(records), "--index", str(tmp_path / "i"), "--no-text", "-q"]) == 1
    out, err = capsys.readouterr()
    assert "fashionlens: failed: b.jpg: not_an_image" in err and summary(out)["vectors"] == 1
    only = jsonl(tmp_path / "only.jsonl", [failed("c.jpg")])
    assert main(["index", "build", str(only), "--index", str(tmp_path / "j"), "--no-text", "-q"]) == 2
    err = capsys.readouterr().err
    assert "fashionlens: failed: c.jpg: not_an_image" in err and "no garments to index" in err


def test_index_add_of_photos_names_the_ones_that_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Photos go through the shipped classifier: a missing file and a non-image fail, the photo is added."""
    photos = []
    for i, rgb in enumerate([(200, 30, 35), (40, 80, 180)]):
        photos.append(tmp_path / f"ok{i}.png")
        Image.fromarray(np.full((64, 48, 3), rgb, np.uint8)).save(photos[-1])
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    missing = tmp_path / "missing.jpg"
    common = ["--index", str(tmp_path / "index"), "-q", "--whole-image", "--threads", "1", "--batch-size", "2"]
    assert main(["index", "build", str(photos[0]), "--no-text", *common]) == 0
    capsys.readouterr()
    assert main(["index", "add", str(text), str(photos[1]), str(missing), *common]) == 1
    out, err = capsys.readouterr()
    named = [line for line in err.splitlines() if line.startswith("fashionlens: failed: ")]
    assert len(named) == 2 and named[0].startswith(f"fashionlens: failed: {text}: not_an_image: ")
    assert named[1].startswith(f"fashionlens: failed: {missing}: not_found: ")
    assert (summary(out)["added"], summary(out)["vectors"], summary(out)["errors"]) == (1, 2, 2)


# ------------------------------------------------------------------------------------ damaged index


def test_damaged_index_is_one_line_on_stderr_and_verify_lists_it(index: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", "verify", "--index", str(index)]) == 0
    assert capsys.readouterr().out.startswith(f"OK {index}: ")
    path = _vectors_file(index)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))

    assert main(["index", "verify", "--index", str(index)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{index}: 1 problem(s)" and "vectors file" in out[1] and "sha256" in out[1]

    more = jsonl(tmp_path / "more.jsonl", [result("x.jpg", 20)])
    for argv in (["search", "--index", str(index), "--image", str(tmp_path / "q.jpg"), "-k", "50"],
                 ["index", "add", str(more), "--index", str(index), "-q"],
                 ["index", "info", "--index", str(index)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith("fashionlens: error: index vectors file ") and "the file was changed or damaged" in err


def test_verify_of_a_missing_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", "verify", "--index", str(tmp_path / "nothing")]) == 1
    assert "not a directory" in capsys.readouterr().out
