"""Tests for fashionlens.jobs.local: one valid ``fashionlens/result/v1`` line per input, in input order,
whatever the input. Every fixture is generated in tmp_path with Pillow/numpy; the shipped classifier
is loaded once per module."""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from fashionlens.imageio import ERROR_CODES
from fashionlens.pipeline import RESULT_SCHEMA, Tagger, TaggerConfig
from fashionlens.jobs.local import run_tag_job, tag_paths
from fashionlens.taxonomy import load_taxonomy

TAX = load_taxonomy()
#: attribute heads reported only for these object types (the pipeline's documented rule)
ATTRIBUTE_OBJECT_TYPES = {"sleeve": {"upper-body", "full-body"}, "neckline": {"upper-body", "full-body"},
                          "fit": {"upper-body", "lower-body", "full-body"}}


# ------------------------------------------------------------------------------ schema check


def check_garment(g: dict[str, Any], width: int, height: int) -> None:
    assert set(g) == {"object_type", "score", "bbox", "mask", "category", "category_top", "attributes"}
    assert g["object_type"] in TAX.object_types
    assert 0.0 <= g["score"] <= 1.0
    assert g["bbox"] == [0.0, 0.0, float(width), float(height)]
    assert g["mask"] is None
    assert set(g["category"]) == {"id", "score"}
    assert g["category"]["id"] in TAX.categories_of(g["object_type"])
    assert 0.0 <= g["category"]["score"] <= 1.0
    top = g["category_top"]
    assert top and all(set(c) == {"id", "score"} and c["id"] in TAX.categories for c in top)
    scores = [c["score"] for c in top]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    assert g["category"]["score"] <= top[0]["score"]
    attrs = g["attributes"]
    assert {"pattern", "colours", "material"} <= set(attrs)
    for name, types in ATTRIBUTE_OBJECT_TYPES.items():
        assert (name in attrs) == (g["object_type"] in types), (name, g["object_type"])
    for name in ("pattern", "material", "sleeve", "neckline", "fit"):
        if name in attrs:
            assert set(attrs[name]) == {"id", "score"}
            assert attrs[name]["id"] in TAX.attribute(name).values
            assert 0.0 <= attrs[name]["score"] <= 1.0
    group = TAX.attribute("colours")
    colours = attrs["colours"]
    assert colours, "at least one colour is always reported"
    for c in colours:
        assert set(c) == {"id", "share", "score"}
        assert c["id"] in group.values
        assert 0.0 <= c["score"] <= 1.0
        if c["id"] in group.rgb:
            assert 0.0 <= c["share"] <= 1.0
        else:  # multicolour: predicted, never measured
            assert c["share"] is None
    assert sum(c["share"] or 0.0 for c in colours) <= 1.0 + 1e-3


def check_record(rec: dict[str, Any], path: Path | str) -> None:
    """Assert ``rec`` is a valid ``fashionlens/result/v2`` record for ``path``."""
    rec = json.loads(json.dumps(rec))  # JSON-serialisable, and checked as a reader sees it
    assert set(rec) == {"schema", "image", "model", "garments", "error", "timing_ms", "mode"}
    assert rec["schema"] == RESULT_SCHEMA
    assert set(rec["image"]) == {"path", "width", "height"}
    assert rec["image"]["path"] == str(path)
    # the shipped classifier, and how colour names were decided (the pixel colour model joins the head)
    # and its calibration (plus the operating point when one is set)
    assert {"name", "version", "backend", "colours", "calibration"} <= set(rec["model"]) <= {
        "name", "version", "backend", "colours", "calibration", "operating_point"}
    assert all(isinstance(v, str) and v for v in rec["model"].values())
    assert isinstance(rec["timing_ms"], dict)
    if rec["error"] is None:
        w, h = rec["image"]["width"], rec["image"]["height"]
        assert isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0
        assert len(rec["garments"]) == 1
        check_garment(rec["garments"][0], w, h)
        assert {"decode", "infer", "post"} <= set(rec["timing_ms"])
        assert all(v >= 0 for v in rec["timing_ms"].values())
    else:
        assert set(rec["error"]) == {"type", "message"}
        assert rec["error"]["type"] in ERROR_CODES | {"inference_failed"}
        assert isinstance(rec["error"]["message"], str) and rec["error"]["message"]
        assert rec["garments"] == []
        assert rec["image"]["width"] is None and rec["image"]["height"] is None


# ------------------------------------------------------------------------------ input makers


def _pattern(w: int, h: int, seed: int = 0) -> Image.Image:
    """A red garment-ish block on a light background with some noise (JPEG-friendly)."""
    rng = np.random.default_rng(seed)
    arr = np.full((h, w, 3), 235, np.uint8)
    arr[h // 5: h - h // 5, w // 4: w - w // 4] = (200, 30, 35)
    arr = np.clip(arr.astype(int) + rng.integers(-8, 9, arr.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def _pattern_jpegs(d: Path, n: int) -> list[Path]:
    """``n`` distinct small JPEGs img0.jpg … in ``d``."""
    paths = [d / f"img{i}.jpg" for i in range(n)]
    for i, path in enumerate(paths):
        _pattern(48, 40, i).save(path, "JPEG")
    return paths


def mk_jpeg(d: Path) -> Path:
    _pattern(64, 48).save(d / "photo.jpg", "JPEG", quality=90)
    return d / "photo.jpg"


def mk_png(d: Path) -> Path:
    _pattern(64, 48, 1).save(d / "photo.png", "PNG")
    return d / "photo.png"


def mk_exif_rotated(d: Path) -> Path:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view: stored 64×48 → shown 48×64
    _pattern(64, 48, 2).save(d / "rotated.jpg", "JPEG", quality=90, exif=exif.tobytes())
    return d / "rotated.jpg"


def mk_grey(d: Path) -> Path:
    _pattern(50, 40, 3).convert("L").save(d / "grey.jpg", "JPEG", quality=90)
    return d / "grey.jpg"


def mk_cmyk(d: Path) -> Path:
    _pattern(40, 30, 4).convert("CMYK").save(d / "cmyk.jpg", "JPEG", quality=90)
    return d / "cmyk.jpg"


def mk_rgba(d: Path) -> Path:
    arr = np.zeros((30, 40, 4), np.uint8)
    arr[:, 10:30] = (200, 30, 35, 255)
    Image.fromarray(arr).save(d / "rgba.png", "PNG")
    return d / "rgba.png"


def mk_png16(d: Path) -> Path:
    arr = (np.arange(30 * 40, dtype=np.uint32).reshape(30, 40) * 50).astype(np.uint16)
    img = Image.fromarray(arr)
    assert img.mode.startswith("I;16")
    img.save(d / "deep.png", "PNG")
    return d / "deep.png"


def mk_bilevel(d: Path) -> Path:
    img = Image.new("1", (40, 30), 0)
    img.paste(1, (20, 0, 40, 30))
    img.save(d / "bw.png", "PNG")
    return d / "bw.png"


def mk_gif(d: Path) -> Path:
    img = _pattern(40, 30, 5).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    img.save(d / "palette.gif", "GIF")
    return d / "palette.gif"


def mk_huge(d: Path) -> Path:
    img = Image.new("RGB", (4000, 3000), (235, 235, 235))
    img.paste((200, 30, 35), (1000, 600, 3000, 2400))
    img.save(d / "huge.jpg", "JPEG", quality=85)
    return d / "huge.jpg"


def mk_truncated(d: Path) -> Path:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(6).integers(0, 256, (120, 160, 3), np.uint8)).save(buf, "JPEG")
    (d / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return d / "truncated.jpg"


def mk_empty(d: Path) -> Path:
    (d / "empty.jpg").write_bytes(b"")
    return d / "empty.jpg"


def mk_text(d: Path) -> Path:
    (d / "notes.jpg").write_text("not pixels, just words\n" * 20)
    return d / "notes.jpg"


def mk_missing(d: Path) -> Path:
    return d / "does-not-exist.jpg"


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


@pytest.fixture(scope="session")
def bomb_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PNG whose header claims 30000×30000 (900 Mpx); a few hundred bytes, written by hand once."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)  # 8-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
                     + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 30001)) + _png_chunk(b"IEND", b""))
    assert path.stat().st_size < 1000
    return path


#: name → (maker, expected error type or None, expected (width, height) of a good result)
CASES: dict[str, tuple[Callable[[Path], Path] | None, str | None, tuple[int, int] | None]] = {
    "jpeg": (mk_jpeg, None, (64, 48)),
    "png": (mk_png, None, (64, 48)),
    "exif_rotated_jpeg": (mk_exif_rotated, None, (48, 64)),
    "greyscale_jpeg": (mk_grey, None, (50, 40)),
    "cmyk_jpeg": (mk_cmyk, None, (40, 30)),
    "rgba_png": (mk_rgba, None, (40, 30)),
    "png_16bit": (mk_png16, None, (40, 30)),
    "bilevel_png": (mk_bilevel, None, (40, 30)),
    "palette_gif": (mk_gif, None, (40, 30)),
    "huge_allowed_jpeg": (mk_huge, None, (4000, 3000)),
    "decompression_bomb": (None, "too_many_pixels", None),  # made by the bomb_png fixture
    "truncated_jpeg": (mk_truncated, "truncated", None),
    "empty_file": (mk_empty, "empty_file", None),
    "text_named_jpg": (mk_text, "not_an_image", None),
    "missing_path": (mk_missing, "not_found", None),
}


def _make(name: str, d: Path, bomb: Path) -> Path:
    maker = CASES[name][0]
    return bomb if maker is None else maker(d)


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger(backend="onnx")


@pytest.fixture
def shared_tagger(tagger: Tagger, monkeypatch: pytest.MonkeyPatch) -> Tagger:
    """``run_tag_job`` reuses the module's Tagger instead of loading the model again."""
    monkeypatch.setattr(TaggerConfig, "build", lambda self: tagger)
    return tagger


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


# ------------------------------------------------------------------------------ the bad-input table


@pytest.mark.parametrize("name", list(CASES))
def test_each_input_gets_exactly_one_valid_line(name: str, tmp_path: Path, bomb_png: Path,
                                                shared_tagger: Tagger) -> None:
    path = _make(name, tmp_path, bomb_png)
    out = tmp_path / "out" / "results.jsonl"
    _, error, size = CASES[name]

    code = run_tag_job([str(path)], output=out, progress=False)

    records = _read_jsonl(out)
    assert len(records) == 1
    rec = records[0]
    check_record(rec, path)
    if error is None:
        assert code == 0
        assert rec["error"] is None
        assert (rec["image"]["width"], rec["image"]["height"]) == size
        assert rec["model"]["backend"] == "onnx"
    else:
        assert code == 1
        assert rec["error"]["type"] == error


def test_all_inputs_in_one_job_keep_input_order(tmp_path: Path, bomb_png: Path, shared_tagger: Tagger) -> None:
    paths = [_make(name, tmp_path, bomb_png) for name in CASES]
    out = tmp_path / "all.jsonl"
    summaries: list[str] = []

    code = run_tag_job([str(p) for p in paths], output=out, batch_size=4, progress=False,
                       on_summary=summaries.append)

    assert code == 1
    records = _read_jsonl(out)
    assert [r["image"]["path"] for r in records] == [str(p) for p in paths]
    for rec, path, (name, (_, error, size)) in zip(records, paths, CASES.items()):
        check_record(rec, path)
        got = rec["error"]["type"] if rec["error"] else None
        assert got == error, name
        if size is not None:
            assert (rec["image"]["width"], rec["image"]["height"]) == size, name
    n_bad = sum(1 for _, e, _ in CASES.values() if e)
    assert len(summaries) == 1
    assert f"tagged {len(paths) - n_bad}/{len(paths)} images ({n_bad} failed)" in summaries[0]


def test_good_inputs_only_exit_zero(tmp_path: Path, shared_tagger: Tagger) -> None:
    paths = [mk(tmp_path) for mk in (mk_jpeg, mk_png, mk_gif)]
    buf = io.StringIO()
    assert run_tag_job([str(tmp_path)], output=buf, progress=False) == 0  # a folder input
    records = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert sorted(r["image"]["path"] for r in records) == sorted(str(p) for p in paths)
    assert all(r["error"] is None for r in records)


def test_huge_image_gives_a_correct_result(tmp_path: Path, tagger: Tagger) -> None:
    """A 12 Mpx photo is tagged (decoded at reduced JPEG scale) and reported at full size."""
    path = mk_huge(tmp_path)
    [rec] = tag_paths(tagger, [path], progress=False)
    check_record(rec, path)
    assert (rec["image"]["width"], rec["image"]["height"]) == (4000, 3000)
    shares = {c["id"]: c["share"] for c in rec["garments"][0]["attributes"]["colours"]}
    if "red" in shares:  # the centre of the photo is red: when red is predicted, it has the largest share
        assert shares["red"] == max(s for s in shares.values() if s is not None)


def test_results_do_not_depend_on_batch_size(tmp_path: Path, tagger: Tagger) -> None:
    paths = [mk(tmp_path) for mk in (mk_jpeg, mk_png, mk_exif_rotated, mk_grey, mk_empty)]
    runs = {(bs, st): list(tag_paths(tagger, paths, batch_size=bs, decode_threads=dt, progress=False, streams=st))
            for bs, dt, st in ((1, 1, 1), (2, 2, 1), (16, 4, 1), (1, 2, 2), (2, 1, 3))}
    for recs in runs.values():
        assert [r["image"]["path"] for r in recs] == [str(p) for p in paths]
    base = runs[1, 1]
    for recs in runs.values():
        for a, b in zip(base, recs):
            assert (a["error"] is None) == (b["error"] is None)
            if a["error"] is None:
                ga, gb = a["garments"][0], b["garments"][0]
                assert ga["category"]["id"] == gb["category"]["id"]
                assert ga["category"]["score"] == pytest.approx(gb["category"]["score"], abs=2e-4)


def test_bad_arguments(tmp_path: Path, tagger: Tagger) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        list(tag_paths(tagger, [mk_jpeg(tmp_path)], batch_size=0, progress=False))
    with pytest.raises(ValueError, match="streams"):
        list(tag_paths(tagger, [mk_jpeg(tmp_path)], streams=0, progress=False))
    from fashionlens.detection.detector import DetectSettings

    with pytest.raises(ValueError, match="unknown post-processing rule"):
        run_tag_job([str(tmp_path)], detect_settings=DetectSettings(rules=("no-such-rule",)), progress=False)


# ------------------------------------------------------------------------------ model failures


def test_mid_batch_model_crash_is_retried_photo_by_photo(tmp_path: Path, tagger: Tagger,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch whose model call fails is tagged again one photo at a time (issue 23): a passing
    failure loses nothing, and a photo that fails on its own is the only one lost."""
    paths = _pattern_jpegs(tmp_path, 7)
    paths[3] = mk_empty(tmp_path)  # a decode error inside the crashing batch keeps its own type
    real_run = tagger.backend.run
    calls = []

    def flaky_run(batch: np.ndarray) -> dict[str, np.ndarray]:
        calls.append(len(batch))
        if len(calls) == 2:
            raise RuntimeError("simulated ONNX Runtime failure")
        return real_run(batch)

    monkeypatch.setattr(tagger.backend, "run", flaky_run)
    recs = list(tag_paths(tagger, paths, batch_size=3, progress=False))

    assert sorted(calls) == [1, 1, 1, 2, 3]  # batches [0,1,2] [3(empty),4,5] [6]; [4,5] again one by one
    assert [r["image"]["path"] for r in recs] == [str(p) for p in paths]
    for rec, path in zip(recs, paths):
        check_record(rec, path)
    types = [r["error"]["type"] if r["error"] else None for r in recs]
    assert types == [None, None, None, "empty_file", None, None, None]


def test_model_crash_with_parallel_streams_loses_only_that_photo(tmp_path: Path, tagger: Tagger,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches run in 2 threads: the photo whose model call always fails becomes an error, its batch
    neighbour and the rest keep their results and order."""
    paths = _pattern_jpegs(tmp_path, 8)
    real_run = tagger.backend.run

    def flaky_run(batch: np.ndarray) -> dict[str, np.ndarray]:
        if float(batch[0].mean()) == pytest.approx(crash_mean):
            raise RuntimeError("simulated failure in one stream")
        return real_run(batch)

    first = list(tag_paths(tagger, paths, batch_size=2, progress=False))
    from fashionlens.jobs.local import _decode

    crash_mean = float(_decode(paths[4], max_pixels=10**7, meta=tagger.meta)[1][0].mean())  # batch [4, 5]
    monkeypatch.setattr(tagger.backend, "run", flaky_run)
    recs = list(tag_paths(tagger, paths, batch_size=2, progress=False, streams=2))
    assert [r["image"]["path"] for r in recs] == [str(p) for p in paths]
    types = [r["error"]["type"] if r["error"] else None for r in recs]
    assert types == [None] * 4 + ["inference_failed"] + [None] * 3
    assert "simulated failure in one stream" in recs[4]["error"]["message"]
    for a, b in zip(first, recs):
        if b["error"] is None:
            assert a["garments"][0]["category"] == b["garments"][0]["category"]


def test_run_tag_job_survives_a_model_crash(tmp_path: Path, shared_tagger: Tagger,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [mk(tmp_path) for mk in (mk_jpeg, mk_png, mk_gif, mk_grey)]

    def broken(batch: np.ndarray) -> dict[str, np.ndarray]:
        raise MemoryError("simulated out of memory")

    monkeypatch.setattr(shared_tagger.backend, "run", broken)
    out = tmp_path / "out.jsonl"
    assert run_tag_job([str(p) for p in paths], output=out, batch_size=2, progress=False) == 1
    records = _read_jsonl(out)
    assert [r["image"]["path"] for r in records] == [str(p) for p in paths]
    assert all(r["error"]["type"] == "inference_failed" for r in records)


def test_decoding_runs_a_bounded_distance_ahead() -> None:
    """A huge folder must not be decoded into memory all at once."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from fashionlens.jobs.local import _bounded_map

    started: list[int] = []
    consumed: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            started.append(i)
        return i

    with ThreadPoolExecutor(max_workers=2) as pool:
        for value in _bounded_map(pool, work, list(range(100)), ahead=5):
            consumed.append(value)
            with lock:
                assert len(started) - len(consumed) <= 5
    assert consumed == list(range(100))


def test_pixel_colours_switch_and_a_job_refuses_to_mix_them(tmp_path: Path) -> None:
    """``pixel_colours=False`` gives the colour head's names (and says so in the model info); a job started
    one way refuses to resume the other way, so its results never mix two colour decodings."""
    from fashionlens.jobs.store import JobError

    rgb = np.full((240, 160, 3), 244, np.uint8)
    rgb[30:210, 40:120] = (170, 40, 140)  # one garment on a plain backdrop
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=92)
    outs = {}
    for flag in (True, False):
        buf = io.StringIO()
        assert run_tag_job([str(tmp_path / "a.jpg")], output=buf, whole_image=True, progress=False,
                           pixel_colours=flag) == 0
        outs[flag] = json.loads(buf.getvalue())
    assert outs[True]["model"]["colours"] == "head+pixels (w=0.5)" and "colours" not in outs[False]["model"]
    from fashionlens.jobs.store import TagJob

    with TagJob.open(tmp_path / "job", inputs=[str(tmp_path / "a.jpg")], settings={"whole_image": True}) as job:
        job.bind_model(Tagger(backend="onnx").model_info)
        with pytest.raises(JobError, match="another model"):
            job.bind_model(Tagger(backend="onnx", colour_model=None).model_info)
