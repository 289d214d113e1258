"""Issue 23: any image the decoder accepts gets a result, and one photo's failure stays its own.

Property tests generate sizes from 1×1 up at any aspect ratio and run them through the Tagger
(tiny detector of tests/conftest.py, whose masks fill its boxes) and the whole-image path; the
probe's sizes (1×10000, 10×4000, 1×700, 3000×3) also go through the shipped detector and the
``tag`` command, mixed with good photos, a folder named ``x.jpg`` and a FIFO.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import fashionlens.detection.detector as detect_module
from fashionlens.cli import main
from fashionlens.detection.detector import GarmentDetector
from fashionlens.imageio import DecodedImage, load_image
from fashionlens.pipeline import Tagger
from fashionlens.jobs.local import tag_paths

pytestmark = pytest.mark.usefixtures("one_thread")

PROBE_SIZES = [(1, 10000), (10, 4000), (1, 700), (3000, 3), (1, 1), (2, 2)]  # (width, height)


def _image(w: int, h: int, seed: int = 0) -> DecodedImage:
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return DecodedImage(rgb=rgb, width=w, height=h, format="PNG", mode="RGB", scale=1.0)


@pytest.fixture(scope="module")
def tiny_tagger(upper_body_detector) -> Tagger:
    """The Tagger with the tiny upper-body detector, on each backend (tests/conftest.py)."""
    detector = GarmentDetector(upper_body_detector.path, backend=upper_body_detector.backend, threads=1)
    return Tagger(backend="onnx", threads=1, detector=detector)


@pytest.fixture(scope="module")
def whole_image_tagger() -> Tagger:
    return Tagger(backend="onnx", threads=1)


def _check_record(rec: dict[str, Any], w: int, h: int) -> None:
    assert rec["error"] is None, rec["error"]
    assert (rec["image"]["width"], rec["image"]["height"]) == (w, h)
    assert rec["garments"]
    for g in rec["garments"]:
        x, y, bw, bh = g["bbox"]
        assert 0 <= x and 0 <= y and x + bw <= w + 0.01 and y + bh <= h + 0.01
        if g["mask"] is not None:
            assert g["mask"]["size"] == [h, w]


sizes = st.tuples(st.integers(1, 3000), st.integers(1, 3000)).filter(lambda s: s[0] * s[1] <= 1_500_000)
elongated = st.tuples(st.integers(1, 12), st.integers(100, 20000)).map(
    lambda s: s if s[1] % 2 else (s[1], s[0]))  # a strip, lying or standing


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.one_of(sizes, elongated), seed=st.integers(0, 3))
def test_any_size_is_tagged_with_a_detector(tiny_tagger: Tagger, size: tuple[int, int], seed: int) -> None:
    w, h = size
    [rec] = tiny_tagger.tag_batch([_image(w, h, seed)], ["x.png"])
    _check_record(rec, w, h)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.one_of(sizes, elongated))
def test_any_size_is_tagged_whole_image(whole_image_tagger: Tagger, size: tuple[int, int]) -> None:
    w, h = size
    [rec] = whole_image_tagger.tag_batch([_image(w, h)], ["x.png"])
    _check_record(rec, w, h)


def test_letterboxing_keeps_boxes_and_masks_in_the_photo(tiny_tagger: Tagger) -> None:
    """The tiny detector finds garments everywhere, also in the padding: those must go."""
    assert tiny_tagger.detector is not None
    garments = tiny_tagger.detector.detect(_image(20, 2000))
    assert len(garments)
    assert (garments.xyxy[:, 2] <= 20).all() and (garments.xyxy[:, 3] <= 2000).all()
    assert garments.mask is not None and garments.mask.shape[1:] == (2000, 20) and garments.mask.any()


def test_without_letterboxing_the_probe_sizes_crash(tiny_tagger: Tagger, monkeypatch: pytest.MonkeyPatch) -> None:
    """The defect this guards against: the network's own resize rounds a 1 px side to nothing."""
    monkeypatch.setattr(detect_module, "MAX_ASPECT", 10**9)
    assert tiny_tagger.detector is not None
    with pytest.raises(Exception):
        tiny_tagger.detector.detect(_image(1, 10000))


def test_one_failing_photo_does_not_take_its_batch_down(tiny_tagger: Tagger,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    assert tiny_tagger.detector is not None
    real_detect = tiny_tagger.detector.detect

    def detect(image: DecodedImage, settings=None):
        if image.width == 77:
            raise RuntimeError("boom")
        return real_detect(image, settings)

    monkeypatch.setattr(tiny_tagger.detector, "detect", detect)
    images = [_image(120, 90), _image(77, 90), _image(90, 120)]
    recs = tiny_tagger.tag_batch(images, ["a.png", "b.png", "c.png"])
    assert [r["image"]["path"] for r in recs] == ["a.png", "b.png", "c.png"]
    _check_record(recs[0], 120, 90)
    _check_record(recs[2], 90, 120)
    assert recs[1]["error"]["type"] == "inference_failed" and "boom" in recs[1]["error"]["message"]


def test_tag_paths_isolates_a_failing_photo(tiny_tagger: Tagger, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    paths = []
    for i, (w, h) in enumerate([(64, 48), (77, 48), (48, 64), (1, 5000)]):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(_image(w, h).rgb).save(paths[-1])
    assert tiny_tagger.detector is not None
    real_detect = tiny_tagger.detector.detect
    monkeypatch.setattr(tiny_tagger.detector, "detect",
                        lambda im, settings=None: (_ for _ in ()).throw(RuntimeError("boom")) if im.width == 77
                        else real_detect(im, settings))
    recs = list(tag_paths(tiny_tagger, paths, batch_size=4, progress=False))
    assert [r["error"] and r["error"]["type"] for r in recs] == [None, "inference_failed", None, None]


@pytest.fixture(scope="module")
def probe_photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("probe")
    out = []
    for w, h in PROBE_SIZES:
        out.append(d / f"strip_{w}x{h}.png")
        Image.new("RGB", (w, h), (40, 60, 200)).save(out[-1])
    good = d / "good.jpg"
    arr = np.full((200, 150, 3), 230, np.uint8)
    arr[50:150, 40:110] = (200, 30, 35)
    Image.fromarray(arr).save(good)
    return [good, *out]


def test_probe_sizes_through_the_shipped_detector(probe_photos: list[Path]) -> None:
    tagger = Tagger(backend="onnx", threads=1, detector=GarmentDetector(threads=1))
    images = [load_image(p) for p in probe_photos]
    recs = tagger.tag_batch(images, [str(p) for p in probe_photos])
    for rec, im in zip(recs, images):
        _check_record(rec, im.width, im.height)


def test_tag_command_accounts_for_every_input(probe_photos: list[Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "x.jpg"
    folder.mkdir()
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    out = tmp_path / "out.jsonl"
    inputs = [*map(str, probe_photos), str(folder), str(fifo)]
    code = main(["tag", *inputs, "-o", str(out), "-q", "--threads", "1", "--render", str(tmp_path / "r")])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["image"]["path"] for r in records] == inputs
    assert [r["error"] is None for r in records] == [True] * len(probe_photos) + [False, False]
    assert {r["error"]["type"] for r in records[-2:]} == {"not_an_image"}
    assert code == 1
    assert "Traceback" not in capsys.readouterr().err
    assert len(list((tmp_path / "r").iterdir())) == len(probe_photos)


def test_a_job_commits_every_valid_photo_as_tagged(probe_photos: list[Path], tmp_path: Path) -> None:
    job = tmp_path / "job"
    folder = tmp_path / "x.jpg"
    folder.mkdir()
    code = main(["tag", *map(str, probe_photos), str(folder), "--job-dir", str(job), "-q", "--threads", "1",
                 "--chunk-size", "3"])
    assert code == 1
    merged = tmp_path / "merged.jsonl"
    assert main(["job", "merge", str(job), str(merged)]) == 0
    records = [json.loads(line) for line in merged.read_text().splitlines()]
    assert [r["error"] is None for r in records] == [True] * len(probe_photos) + [False]
    assert main(["tag", "--job-dir", str(job), "--resume", "-q"]) == 1  # nothing left; the folder stays failed


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a device that is always full)")
def test_a_full_disk_ends_with_one_line_and_exit_3(probe_photos: list[Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["tag", str(probe_photos[0]), "-o", "/dev/full", "-q", "--whole-image", "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 3
    assert "No space left on device" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ truncations and random bytes

def _encoded(fmt: str, w: int, h: int) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(_image(w, h).rgb).save(buf, format=fmt)
    return buf.getvalue()


@settings(max_examples=40, deadline=None)
@given(fmt=st.sampled_from(["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"]), w=st.integers(1, 300),
       h=st.integers(1, 300), cut=st.floats(0.0, 1.0))
def test_a_truncated_file_decodes_or_fails_with_a_stable_code(fmt: str, w: int, h: int, cut: float) -> None:
    from fashionlens.imageio import ERROR_CODES, ImageDecodeError

    data = _encoded(fmt, w, h)
    data = data[: int(len(data) * cut)]
    try:
        image = load_image(data)
    except ImageDecodeError as exc:
        assert exc.code in ERROR_CODES
    else:
        assert image.rgb.shape == (image.height, image.width, 3)


@settings(max_examples=40, deadline=None)
@given(data=st.binary(min_size=0, max_size=2000), header=st.sampled_from(
    [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"II*\x00", b"RIFF\x00\x00\x00\x00WEBP"]))
def test_random_bytes_behind_a_real_header_fail_with_a_stable_code(data: bytes, header: bytes) -> None:
    from fashionlens.imageio import ERROR_CODES, ImageDecodeError

    try:
        load_image(header + data)
    except ImageDecodeError as exc:
        assert exc.code in ERROR_CODES


# ------------------------------------------------------------------ a job killed at any write

class _Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing in the job may catch it."""


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kill_at=st.integers(0, 12), partial=st.booleans())
def test_a_job_killed_at_any_write_resumes_without_loss_or_repeat(tmp_path_factory: pytest.TempPathFactory,
                                                                  kill_at: int, partial: bool) -> None:
    import fashionlens.jobs.store as batch_job

    root = tmp_path_factory.mktemp("kill")
    photos = []
    for i in range(7):
        photos.append(root / f"p{i}.png")
        Image.fromarray(_image(24 + i, 20, seed=i).rgb).save(photos[-1])
    photos.insert(3, root / "missing.png")
    job = root / "job"
    args = ["tag", *map(str, photos), "--job-dir", str(job), "--whole-image", "-q", "--threads", "1",
            "--chunk-size", "2", "--batch-size", "2"]
    real_write = batch_job._write_atomic
    calls = {"n": 0}

    def write(path: Path, data: bytes, **kwargs: Any) -> None:
        if calls["n"] == kill_at:
            if partial:  # killed while writing: a temporary file with part of the data stays behind
                path.with_name(f".{path.name}.tmp-killed").write_bytes(data[: len(data) // 2])
            raise _Killed
        calls["n"] += 1
        real_write(path, data, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(batch_job, "_write_atomic", write)
        try:
            main(args)
        except _Killed:
            pass
    if (job / "job.json").exists():
        assert main(["tag", "--job-dir", str(job), "--resume", "--whole-image", "-q", "--threads", "1"]) == 1
    else:  # killed before the job existed: start again
        assert main(args) == 1
    merged = root / "merged.jsonl"
    assert main(["job", "merge", str(job), str(merged)]) == 0
    records = [json.loads(line) for line in merged.read_text().splitlines()]
    assert [r["image"]["path"] for r in records] == [str(p) for p in photos]
    assert [r["error"] is None for r in records] == [p.name != "missing.png" for p in photos]
