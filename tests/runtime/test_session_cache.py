"""The cache of optimised ONNX graphs: sessions made from it compute exactly what sessions made from the
model file compute, entries are written once, replaced when the model changes, and a cache that cannot be
used never stops a session from being made."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from fashionlens.runtime.session_cache import (
    CACHE_ENV,
    cache_dir,
    cached_session,
    optimised_model_path,
)


def _ocr_model(part: str) -> Path:
    """One of RapidOCR's shipped models (small convolutional networks: ``Det``, ``Cls``, ``Rec``)."""
    from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH
    from rapidocr_onnxruntime.utils import read_yaml, update_model_path

    return Path(update_model_path(read_yaml(DEFAULT_CFG_PATH))[part]["model_path"])


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    """A private copy of the OCR text detector (so that its modification time can be changed)."""
    path = tmp_path / "models" / "text-det.onnx"
    path.parent.mkdir()
    shutil.copyfile(_ocr_model("Det"), path)
    return path


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


def _run(session: Any, seed: int = 0) -> list[np.ndarray]:
    x = np.random.default_rng(seed).normal(size=(1, 3, 96, 128)).astype(np.float32)
    return session.run(None, {session.get_inputs()[0].name: x})


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.onnx")) if folder.is_dir() else []


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, "off")
    assert cache_dir() is None
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "fashionlens" / "onnx"


@pytest.mark.parametrize("threads", [1, 2])
def test_sessions_from_the_cache_compute_bit_identical_outputs(model: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                                               threads: int) -> None:
    first = cached_session(model, threads=threads)  # optimises the graph and writes the entry
    [entry] = _entries(cache)
    second = cached_session(model, threads=threads)  # loads the entry, optimisation off
    monkeypatch.setenv(CACHE_ENV, "off")
    plain = cached_session(model, threads=threads)
    for seed in (0, 1):
        expected = _run(plain, seed)
        for got in (_run(first, seed), _run(second, seed)):
            assert all(np.array_equal(a, b) for a, b in zip(expected, got))
    assert _entries(cache) == [entry]


def test_an_entry_is_written_once_and_replaced_when_the_model_changes(model: Path, cache: Path) -> None:
    cached_session(model, threads=1)
    [entry] = _entries(cache)
    written = entry.stat().st_ino
    cached_session(model, threads=1)
    assert _entries(cache) == [entry] and entry.stat().st_ino == written  # read, not written again
    stat = model.stat()
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a new version of the model
    cached_session(model, threads=1)
    [newer] = _entries(cache)
    assert newer != entry  # the old entry of the same model path is gone
    assert not list(cache.glob(".*.tmp"))  # no temporary file left behind


def test_the_least_recently_used_entries_go_when_the_cache_is_full(model: Path, cache: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from fashionlens.runtime import session_cache

    other = model.with_name("other.onnx")
    shutil.copyfile(model, other)
    cached_session(model, threads=1)
    [first] = _entries(cache)
    monkeypatch.setattr(session_cache, "MAX_CACHE_BYTES", int(first.stat().st_size * 1.5))  # room for one entry
    os.utime(first, ns=(0, 10**18))  # used long ago
    cached_session(other, threads=1)
    [kept] = _entries(cache)
    assert kept != first and kept.name.startswith("other-")
    cached_session(model, threads=1)  # written again: the other entry, now the least recently used, goes
    assert [p.name.startswith("text-det-") for p in _entries(cache)] == [True]


def test_trimming_touches_only_cache_entries(model: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FASHIONLENS_ONNX_CACHE may point at a folder that holds other files: they are never removed."""
    from fashionlens.runtime import session_cache

    cache.mkdir()
    mine = cache / "my_model.onnx"
    shutil.copyfile(model, mine)
    os.utime(mine, ns=(0, 10**18))  # older than any entry
    stale = cache / ".x.onnx.1.abcd.tmp"
    stale.write_bytes(b"left by a killed writer")
    os.utime(stale, ns=(0, 10**18))
    monkeypatch.setattr(session_cache, "MAX_CACHE_BYTES", 1)  # everything over the limit
    cached_session(model, threads=1)
    assert mine.is_file() and not stale.exists()


def test_a_replaced_model_of_the_same_size_and_time_gets_a_new_entry(tmp_path: Path) -> None:
    from fashionlens.runtime.session_cache import _entry

    a, b = tmp_path / "a" / "m[1].onnx", tmp_path / "b" / "m[1].onnx"
    for path, byte in ((a, b"\x00"), (b, b"\x01")):
        path.parent.mkdir()
        path.write_bytes(b"x" * 3_000_000 + byte)
        os.utime(path, ns=(10**18, 10**18))
    entry_a, _ = _entry(tmp_path / "cache", a, "ORT_ENABLE_ALL")
    b.replace(a)  # same path, size and time stamp; other content
    os.utime(a, ns=(10**18, 10**18))
    entry_b, prefix = _entry(tmp_path / "cache", a, "ORT_ENABLE_ALL")
    assert entry_a != entry_b and entry_a.name.startswith(prefix) and entry_b.name.startswith(prefix)


def test_no_cache_or_an_unusable_one_still_gives_a_session(model: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, "off")
    expected = _run(cached_session(model, threads=1))
    assert optimised_model_path(model) == model
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv(CACHE_ENV, str(blocked / "cache"))  # cannot be created
    got = _run(cached_session(model, threads=1))
    assert all(np.array_equal(a, b) for a, b in zip(expected, got))
    assert optimised_model_path(model) == model


def test_a_damaged_entry_is_optimised_again(model: Path, cache: Path) -> None:
    expected = _run(cached_session(model, threads=1))
    [entry] = _entries(cache)
    entry.write_bytes(b"truncated")
    got = _run(cached_session(model, threads=1))
    assert all(np.array_equal(a, b) for a, b in zip(expected, got))
    assert _entries(cache) == [entry] and entry.stat().st_size > 1000


def test_optimised_model_path_gives_the_entry(model: Path, cache: Path) -> None:
    path = optimised_model_path(model)
    assert path.parent == cache and path.is_file()
    assert optimised_model_path(model) == path


def _label() -> np.ndarray:
    im = Image.new("RGB", (420, 300), (246, 244, 238))
    draw = ImageDraw.Draw(im)
    for i, text in enumerate(["ZARA", "80% WOOL", "20% POLYAMIDE"]):
        draw.text((60, 30 + 80 * i), text, font=ImageFont.load_default(size=40), fill=(25, 25, 30))
    return np.asarray(im)


def test_label_reader_reads_the_same_with_and_without_the_cache(cache: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from fashionlens.grading.care_label import LabelReader

    label = _label()
    cached = LabelReader().read(label)
    assert len(_entries(cache)) == 3  # RapidOCR's detector, angle classifier and recogniser
    monkeypatch.setenv(CACHE_ENV, "off")
    plain = LabelReader().read(label)
    assert plain.texts and plain.lines == cached.lines
    assert (plain.composition, plain.brand) == (cached.composition, cached.brand)
