"""Golden outputs (issue 24): what ``tag`` (detect and whole-image), ``grade`` and ``search --json``
write for a fixed set of generated photos, recorded before the library refactor. A refactor must
leave them unchanged: same keys in the same order, same strings, numbers within ``ATOL`` (ONNX
Runtime's float noise differs a little between CPUs; within one machine they are identical).

``FASHIONLENS_UPDATE_GOLDEN=1 pytest tests/test_golden_outputs.py`` rewrites the files in
``tests/golden/`` — only for an intended change of output, said so in the commit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fashionlens.cli import main

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("FASHIONLENS_UPDATE_GOLDEN") == "1"
ATOL = 2e-3

pytestmark = pytest.mark.usefixtures("one_thread")


def _photo(w: int, h: int, *, background: tuple[int, int, int], garment: tuple[int, int, int], seed: int,
           stripes: bool = False) -> Image.Image:
    """A garment-like shape (torso and sleeves) on a plain or noisy background."""
    rng = np.random.default_rng(seed)
    arr = np.zeros((h, w, 3), np.int32) + np.asarray(background)
    arr += rng.integers(-6, 7, arr.shape)
    im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    draw.rectangle((w * 0.3, h * 0.2, w * 0.7, h * 0.85), fill=garment)
    draw.polygon([(w * 0.3, h * 0.2), (w * 0.1, h * 0.45), (w * 0.18, h * 0.5), (w * 0.3, h * 0.35)], fill=garment)
    draw.polygon([(w * 0.7, h * 0.2), (w * 0.9, h * 0.45), (w * 0.82, h * 0.5), (w * 0.7, h * 0.35)], fill=garment)
    if stripes:
        for y in range(int(h * 0.2), int(h * 0.85), 12):
            draw.rectangle((w * 0.3, y, w * 0.7, y + 5), fill=(245, 245, 245))
    return im


def _label(w: int = 320, h: int = 160) -> Image.Image:
    im = Image.new("RGB", (w, h), (250, 250, 250))
    draw = ImageDraw.Draw(im)
    draw.text((20, 30), "100% COTTON", fill=(10, 10, 10))
    draw.text((20, 80), "MADE IN PORTUGAL", fill=(10, 10, 10))
    return im


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("golden")
    d = root / "photos"
    d.mkdir()
    _photo(300, 400, background=(235, 235, 235), garment=(200, 30, 35), seed=0).save(d / "a_red.png")
    _photo(400, 300, background=(240, 240, 238), garment=(30, 60, 170), seed=1, stripes=True).save(d / "b_blue.png")
    _photo(360, 480, background=(120, 140, 90), garment=(20, 20, 20), seed=2).save(d / "c_black.jpg", quality=92)
    _photo(256, 256, background=(250, 250, 250), garment=(230, 200, 40), seed=3).save(d / "d_yellow.png")
    items = root / "items"
    for name, (front, back) in {"item1": ("a_red.png", "b_blue.png"), "item2": ("c_black.jpg", "d_yellow.png")}.items():
        (items / name).mkdir(parents=True)
        Image.open(d / front).save(items / name / "front.png")
        Image.open(d / back).save(items / name / "back.png")
    _label().save(items / "item1" / "label.png")
    return root


def _normalise(value: Any, root: str) -> Any:
    if isinstance(value, dict):
        return {k: _normalise(v, root) for k, v in value.items() if k != "timing_ms"}
    if isinstance(value, list):
        return [_normalise(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(root, "<root>")
    return value


def _compare(got: Any, want: Any, where: str = "$") -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{where}: expected an object, got {got!r}"
        assert list(got) == list(want), f"{where}: keys {list(got)} != golden {list(want)}"
        for k in want:
            _compare(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got!r} != golden {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            _compare(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool) and isinstance(got, (int, float)):
        assert abs(got - want) <= ATOL, f"{where}: {got} != golden {want} (±{ATOL})"
    else:
        assert got == want and type(got) is type(want), f"{where}: {got!r} != golden {want!r}"


def _check(name: str, records: Any, root: Path) -> None:
    got = _normalise(records, str(root))
    path = GOLDEN / f"{name}.json"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if not path.is_file():
        pytest.fail(f"no golden file {path}; make it with FASHIONLENS_UPDATE_GOLDEN=1")
    _compare(got, json.loads(path.read_text(encoding="utf-8")))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


TAG_RUNS: dict[str, Callable[[Path | None], list[str]]] = {
    "tag_detect_default": lambda w: [],
    "tag_detect_tiny": lambda w: ["--detector", str(w), "--detector-backend", "torch"],
    "tag_whole_image": lambda w: ["--whole-image", "--embed"],
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.train) if n == "tag_detect_tiny" else n
                                  for n in TAG_RUNS])  # tag_detect_tiny: the PyTorch tiny detector (train extra)
def test_tag_output_is_unchanged(name: str, photos: Path, request: pytest.FixtureRequest) -> None:
    out = photos / f"{name}.jsonl"
    weights = request.getfixturevalue("upper_body_detector_weights") if name == "tag_detect_tiny" else None
    main(["tag", str(photos / "photos"), "-o", str(out), "-q", "--threads", "1", *TAG_RUNS[name](weights)])
    _check(name, _jsonl(out), photos)


def test_grade_output_is_unchanged(photos: Path) -> None:
    out = photos / "graded.jsonl"
    assert main(["grade", str(photos / "items"), "-o", str(out), "-q"]) == 0
    _check("grade", _jsonl(out), photos)


def test_search_output_is_unchanged(photos: Path) -> None:
    index = photos / "index"
    assert main(["index", "build", str(photos / "photos"), "--index", str(index), "--whole-image", "--no-text",
                 "-q", "--threads", "1"]) == 0
    out = photos / "search.json"
    assert main(["search", "--index", str(index), "--image", str(photos / "photos" / "a_red.png"),
                 "--whole-image", "-k", "4", "--json", str(out), "--threads", "1"]) == 0
    _check("search", json.loads(out.read_text(encoding="utf-8")), photos)


CCP_PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "ccp" / "photos"
CCP_IDS = ("0255", "0003", "0120", "0777")


@pytest.mark.data
@pytest.mark.skipif(not CCP_PHOTOS.is_dir(), reason="../shared/datasets/ccp not present")
def test_tag_output_on_street_photos_is_unchanged(tmp_path: Path) -> None:
    """The shipped detector on four CCP street photos (several garments, masks, type fusion)."""
    out = tmp_path / "ccp.jsonl"
    main(["tag", *(str(CCP_PHOTOS / f"{i}.jpg") for i in CCP_IDS), "-o", str(out), "-q", "--threads", "1"])
    _check("tag_detect_ccp", _jsonl(out), CCP_PHOTOS.parent)
