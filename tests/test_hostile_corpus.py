"""Issue 23: a hostile-file corpus, generated here (never committed), through every command that
takes photos — ``tag``, ``tag --job-dir``, ``index build`` and ``grade`` — beside good photos.

Every input is accounted for (a record, or a line naming it), good photos are never harmed by
their neighbours, exit codes are the documented ones, and nothing prints a traceback.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashionlens.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width × height`` (a decompression bomb's header) and no pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def _jpeg(w: int, h: int, seed: int) -> bytes:
    buf = io.BytesIO()
    rgb = np.full((h, w, 3), 225, np.uint8)
    rgb[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = np.random.default_rng(seed).integers(0, 255, 3)
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


#: name → (bytes or None for a folder, expected error type or None for a good photo)
CORPUS: dict[str, tuple[bytes | None, str | None]] = {
    "good1.jpg": (_jpeg(160, 200, 1), None),
    "truncated.jpg": (_jpeg(160, 200, 2)[:300], "truncated"),
    "text.png": (b"just some text, not a picture\n" * 10, "not_an_image"),
    "empty.jpg": (b"", "empty_file"),
    "bomb.png": (_png_header_only(60_000, 60_000), "too_many_pixels"),
    "strip.png": (None, None),  # filled below: a valid 1×3000 strip
    "random.webp": (bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)), "not_an_image"),
    "folder.jpg": (None, "not_an_image"),
    "good2.jpg": (_jpeg(200, 160, 3), None),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], dict[str, str | None]]:
    d = tmp_path_factory.mktemp("corpus")
    paths, expected = [], {}
    for name, (data, error) in CORPUS.items():
        path = d / name
        if name == "folder.jpg":
            path.mkdir()
        elif name == "strip.png":
            Image.new("RGB", (1, 3000), (30, 60, 200)).save(path)
        else:
            path.write_bytes(data or b"")
        paths.append(path)
        expected[str(path)] = error
    return d, paths, expected


def _error_types(records: list[dict]) -> dict[str, str | None]:
    return {r["image"]["path"]: (r["error"] or {}).get("type") for r in records}


def _assert_expected(got: dict[str, str | None], expected: dict[str, str | None]) -> None:
    assert set(got) == set(expected)
    for path, want in expected.items():
        if want is None:
            assert got[path] is None, f"{path}: a good photo failed with {got[path]}"
        else:
            assert got[path] is not None, f"{path}: expected an error record, got a result"


def test_tag_and_job_account_for_every_file(corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, paths, expected = corpus
    out = tmp_path / "tag.jsonl"
    assert main(["tag", *map(str, paths), "-o", str(out), "-q", "--threads", "1"]) == 1
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["image"]["path"] for r in records] == [str(p) for p in paths]
    _assert_expected(_error_types(records), expected)
    assert {t for t in _error_types(records).values() if t} <= {"truncated", "not_an_image", "empty_file",
                                                                 "too_many_pixels", "decode_failed"}

    job, merged = tmp_path / "job", tmp_path / "merged.jsonl"
    assert main(["tag", *map(str, paths), "--job-dir", str(job), "-o", str(merged), "-q", "--threads", "1",
                 "--chunk-size", "2"]) == 1
    job_records = [json.loads(line) for line in merged.read_text().splitlines()]
    assert _error_types(job_records) == _error_types(records)
    assert "Traceback" not in capsys.readouterr().err


def test_index_build_adds_the_good_photos_and_names_the_rest(corpus, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    _, paths, expected = corpus
    code = main(["index", "build", *map(str, paths), "--index", str(tmp_path / "index"), "--whole-image",
                 "--no-text", "-q", "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    for path, want in expected.items():
        assert (path in err) == (want is not None), f"{path}: named on stderr only when it failed"


def test_grade_grades_from_the_usable_views(corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d, _, _ = corpus
    items = tmp_path / "items"
    cases = {"truncated_front": ("truncated.jpg", "good1.jpg"), "bomb_back": ("good2.jpg", "bomb.png"),
             "strip_front": ("strip.png", "good1.jpg"), "both_bad": ("text.png", "empty.jpg")}
    for item, (front, back) in cases.items():
        (items / item).mkdir(parents=True)
        (items / item / f"front{Path(front).suffix}").write_bytes((d / front).read_bytes())
        (items / item / f"back{Path(back).suffix}").write_bytes((d / back).read_bytes())
    out = tmp_path / "graded.jsonl"
    code = main(["grade", str(items), "-o", str(out), "-q", "--no-ocr"])
    assert code == 1 and "Traceback" not in capsys.readouterr().err
    records = {r["item_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(records) == set(cases)
    for item in ("truncated_front", "bomb_back", "strip_front"):
        assert records[item]["error"] is None and records[item]["category"] is not None, item
    assert records["both_bad"]["error"] is not None
