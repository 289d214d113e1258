"""Tests for fashionlens.imageio; every fixture is generated in tmp_path with Pillow/numpy."""

from __future__ import annotations

import functools
import io
import pickle
import struct
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image, ImageFile, features

from fashionlens.imageio import (
    ERROR_CODES,
    DecodedImage,
    ImageDecodeError,
    iter_image_paths,
    load_image,
)

RED, GREEN, BLUE = (220, 20, 20), (20, 200, 20), (20, 20, 220)
Maker = Callable[[Path], Path]


def _save(img: Image.Image, path: Path, fmt: str, **kw: object) -> Path:
    img.save(path, fmt, **kw)
    return path


def _close(a: np.ndarray, colour: tuple[int, int, int], tol: int = 12) -> bool:
    return bool(np.all(np.abs(a.astype(int) - np.array(colour)) <= tol))


def _marked(w: int, h: int) -> Image.Image:
    """``w×h`` blue image with a red block in the top-left quarter (survives JPEG)."""
    arr = np.full((h, w, 3), BLUE, np.uint8)
    arr[: h // 2, : w // 2] = RED
    return Image.fromarray(arr)


def _exif_jpeg(path: Path, img: Image.Image, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


# ---------------------------------------------------------------------------------- makers


def mk_jpeg(d: Path) -> Path:
    return _save(Image.new("RGB", (64, 48), RED), d / "a.jpg", "JPEG", quality=95)


def mk_png(d: Path) -> Path:
    return _save(Image.new("RGB", (64, 48), GREEN), d / "a.png", "PNG")


def mk_webp(d: Path) -> Path:
    return _save(Image.new("RGB", (64, 48), BLUE), d / "a.webp", "WEBP", lossless=True)


def mk_bmp(d: Path) -> Path:
    return _save(Image.new("RGB", (64, 48), RED), d / "a.bmp", "BMP")


def mk_tiff(d: Path) -> Path:
    return _save(Image.new("RGB", (64, 48), GREEN), d / "a.tif", "TIFF")


def mk_misnamed_png(d: Path) -> Path:
    """A PNG called .jpg: the header decides, not the name."""
    return _save(Image.new("RGB", (64, 48), GREEN), d / "really_png.jpg", "PNG")


def mk_exif6(d: Path) -> Path:
    return _exif_jpeg(d / "rot6.jpg", _marked(60, 40), 6)


def mk_exif8(d: Path) -> Path:
    return _exif_jpeg(d / "rot8.jpg", _marked(60, 40), 8)


def mk_grey(d: Path) -> Path:
    return _save(Image.new("L", (32, 16), 77), d / "grey.png", "PNG")


def mk_grey_jpeg(d: Path) -> Path:
    return _save(Image.new("L", (32, 16), 77), d / "grey.jpg", "JPEG", quality=95)


def mk_cmyk_jpeg(d: Path) -> Path:
    return _save(Image.new("RGB", (32, 16), RED).convert("CMYK"), d / "cmyk.jpg", "JPEG", quality=95)


def mk_rgba(d: Path) -> Path:
    arr = np.zeros((20, 40, 4), np.uint8)  # fully transparent *black* everywhere
    arr[:, 20:] = (*RED, 255)  # right half opaque red
    arr[0, 0] = (0, 0, 0, 128)  # half-transparent black
    return _save(Image.fromarray(arr), d / "rgba.png", "PNG")


def mk_la(d: Path) -> Path:
    arr = np.zeros((10, 10, 2), np.uint8)
    arr[:, 5:] = (30, 255)
    return _save(Image.fromarray(arr, "LA"), d / "la.png", "PNG")


def mk_palette_transparent(d: Path) -> Path:
    img = Image.new("P", (20, 10), 0)
    img.putpalette([0, 0, 0, *RED] + [0] * (256 - 2) * 3)
    img.paste(1, (10, 0, 20, 10))
    return _save(img, d / "pal.png", "PNG", transparency=0)


def mk_grey16(d: Path) -> Path:
    arr = np.array([[0, 32768, 65535, 1000]], dtype=np.uint16)
    return _save(Image.fromarray(arr), d / "grey16.png", "PNG")


def mk_float_tiff(d: Path) -> Path:
    arr = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    return _save(Image.fromarray(arr, "F"), d / "float.tif", "TIFF")


def mk_bilevel(d: Path) -> Path:
    img = Image.new("1", (16, 8), 0)
    img.paste(1, (8, 0, 16, 8))
    return _save(img, d / "bw.png", "PNG")


def mk_gif_anim(d: Path) -> Path:
    frames = [Image.new("RGB", (16, 16), c) for c in (RED, GREEN, BLUE)]
    return _save(frames[0], d / "anim.gif", "GIF", save_all=True, append_images=frames[1:], duration=50)


def mk_webp_anim(d: Path) -> Path:
    frames = [Image.new("RGB", (16, 16), c) for c in (GREEN, RED, BLUE)]
    return _save(frames[0], d / "anim.webp", "WEBP", save_all=True, append_images=frames[1:], lossless=True)


def mk_empty(d: Path) -> Path:
    (d / "empty.jpg").write_bytes(b"")
    return d / "empty.jpg"


def mk_text(d: Path) -> Path:
    (d / "notes.jpg").write_text("these are not pixels\n" * 10)
    return d / "notes.jpg"


def mk_pdf(d: Path) -> Path:
    (d / "doc.png").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" * 30)
    return d / "doc.png"


def mk_ppm(d: Path) -> Path:
    return _save(Image.new("RGB", (8, 8), RED), d / "a.ppm", "PPM")


def mk_heic_header(d: Path) -> Path:
    (d / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 100)
    return d / "phone.heic"


def mk_truncated_jpeg(d: Path) -> Path:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(buf, "JPEG")
    data = buf.getvalue()
    (d / "trunc.jpg").write_bytes(data[: len(data) // 2])
    return d / "trunc.jpg"


def mk_truncated_png(d: Path) -> Path:
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(buf, "PNG")
    data = buf.getvalue()
    (d / "trunc.png").write_bytes(data[: len(data) // 2])
    return d / "trunc.png"


@functools.lru_cache(maxsize=1)
def _bomb_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (30000, 30000), 0).save(buf, "PNG")  # ~2.5 s to encode, so done once
    return buf.getvalue()


def mk_bomb(d: Path) -> Path:
    """A 30000×30000 PNG: 900 Mpx declared, ~100 KB on disk (a solid 1-bit image compresses well)."""
    path = d / "bomb.png"
    path.write_bytes(_bomb_bytes())
    assert path.stat().st_size < 500_000
    return path


def mk_missing(d: Path) -> Path:
    return d / "does_not_exist.jpg"


def mk_directory(d: Path) -> Path:
    (d / "folder.jpg").mkdir()
    return d / "folder.jpg"


# ---------------------------------------------------------------------------------- checks


def rgb_is(colour: tuple[int, int, int], shape: tuple[int, int], tol: int = 12) -> Callable[[DecodedImage], None]:
    def check(r: DecodedImage) -> None:
        assert r.rgb.shape == (*shape, 3)
        assert _close(r.rgb, colour, tol), r.rgb[0, 0]

    return check


def check_exif6(r: DecodedImage) -> None:
    # stored 60×40 with red top-left; orientation 6 = rotate 90° clockwise → red top-right
    assert r.rgb.shape == (60, 40, 3) and (r.width, r.height) == (40, 60)
    assert _close(r.rgb[5, -5], RED, 40) and _close(r.rgb[5, 5], BLUE, 40)
    assert _close(r.rgb[-5, -5], BLUE, 40)


def check_exif8(r: DecodedImage) -> None:
    # orientation 8 = rotate 90° counter-clockwise → red bottom-left
    assert r.rgb.shape == (60, 40, 3) and (r.width, r.height) == (40, 60)
    assert _close(r.rgb[-5, 5], RED, 40) and _close(r.rgb[5, 5], BLUE, 40)


def check_grey(r: DecodedImage) -> None:
    assert r.rgb.shape == (16, 32, 3) and r.mode == "L"
    assert np.all(r.rgb[..., 0] == r.rgb[..., 1]) and np.all(r.rgb[..., 1] == r.rgb[..., 2])
    assert abs(int(r.rgb[0, 0, 0]) - 77) <= 2


def check_cmyk(r: DecodedImage) -> None:
    assert r.mode == "CMYK" and r.rgb.shape == (16, 32, 3)
    assert _close(r.rgb, RED, 15), r.rgb[0, 0]


def check_rgba(r: DecodedImage) -> None:
    assert r.mode == "RGBA"
    assert np.all(r.rgb[1:, :20] == 255), "transparent area must become white, not black"
    assert np.all(r.rgb[:, 20:] == RED)
    assert np.all(np.abs(r.rgb[0, 0].astype(int) - 127) <= 1)  # 50 % black over white


def check_la(r: DecodedImage) -> None:
    assert r.mode == "LA"
    assert np.all(r.rgb[:, :5] == 255) and np.all(r.rgb[:, 5:] == 30)


def check_palette(r: DecodedImage) -> None:
    assert r.mode == "P"
    assert np.all(r.rgb[:, :10] == 255) and np.all(r.rgb[:, 10:] == RED)


def check_grey16(r: DecodedImage) -> None:
    assert r.mode.startswith("I")
    assert r.rgb[0, :, 0].tolist() == [0, 128, 255, 4]  # scaled by 255/65535, not clipped at 255
    assert np.all(r.rgb[..., 0] == r.rgb[..., 2])


def check_float(r: DecodedImage) -> None:
    assert r.mode == "F" and r.rgb[0, :, 1].tolist() == [0, 128, 255]


def check_bilevel(r: DecodedImage) -> None:
    assert r.mode == "1"
    assert np.all(r.rgb[:, :8] == 0) and np.all(r.rgb[:, 8:] == 255)


def check_gif(r: DecodedImage) -> None:
    assert r.format == "GIF" and r.rgb.shape == (16, 16, 3)
    assert _close(r.rgb, RED, 20), r.rgb[0, 0]


def check_webp_anim(r: DecodedImage) -> None:
    assert r.format == "WEBP" and _close(r.rgb, GREEN, 5), r.rgb[0, 0]


def check_misnamed(r: DecodedImage) -> None:
    assert r.format == "PNG" and np.all(r.rgb == GREEN)


needs_webp = pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")

CASES: list[tuple[str, Maker, Callable[[DecodedImage], None] | str]] = [
    ("jpeg", mk_jpeg, rgb_is(RED, (48, 64))),
    ("png", mk_png, rgb_is(GREEN, (48, 64), tol=0)),
    ("webp", mk_webp, rgb_is(BLUE, (48, 64), tol=0)),
    ("bmp", mk_bmp, rgb_is(RED, (48, 64), tol=0)),
    ("tiff", mk_tiff, rgb_is(GREEN, (48, 64), tol=0)),
    ("png_named_jpg", mk_misnamed_png, check_misnamed),
    ("exif_orientation_6", mk_exif6, check_exif6),
    ("exif_orientation_8", mk_exif8, check_exif8),
    ("greyscale_png", mk_grey, check_grey),
    ("greyscale_jpeg", mk_grey_jpeg, check_grey),
    ("cmyk_jpeg", mk_cmyk_jpeg, check_cmyk),
    ("rgba_over_white", mk_rgba, check_rgba),
    ("la_over_white", mk_la, check_la),
    ("palette_transparent", mk_palette_transparent, check_palette),
    ("grey16_png", mk_grey16, check_grey16),
    ("float_tiff", mk_float_tiff, check_float),
    ("bilevel", mk_bilevel, check_bilevel),
    ("animated_gif", mk_gif_anim, check_gif),
    ("animated_webp", mk_webp_anim, check_webp_anim),
    ("empty", mk_empty, "empty_file"),
    ("text", mk_text, "not_an_image"),
    ("pdf", mk_pdf, "not_an_image"),
    ("ppm", mk_ppm, "unsupported_format"),
    ("heic", mk_heic_header, "unsupported_format"),
    ("truncated_jpeg", mk_truncated_jpeg, "truncated"),
    ("truncated_png", mk_truncated_png, "truncated"),
    ("bomb_30000x30000", mk_bomb, "too_many_pixels"),
    ("missing", mk_missing, "not_found"),
    ("directory", mk_directory, "not_an_image"),
]


PARAMS = [pytest.param(*case, id=case[0], marks=[needs_webp] if "webp" in case[0] else []) for case in CASES]


@pytest.mark.parametrize(("name", "make", "expect"), PARAMS)
def test_load_image_table(tmp_path: Path, name: str, make: Maker, expect: Callable[[DecodedImage], None] | str) -> None:
    path = make(tmp_path)
    if isinstance(expect, str):
        with pytest.raises(ImageDecodeError) as info:
            load_image(path)
        assert info.value.code == expect, str(info.value)
        assert info.value.source == str(path)
        return
    result = load_image(path)
    assert result.rgb.dtype == np.uint8 and result.rgb.ndim == 3 and result.rgb.shape[2] == 3
    assert result.rgb.flags.c_contiguous and result.rgb.flags.writeable
    assert (result.height, result.width) == result.rgb.shape[:2] and result.scale == 1.0
    expect(result)


# ---------------------------------------------------------------------------------- errors


def test_error_is_value_error_with_stable_code_and_pickles() -> None:
    err = ImageDecodeError("truncated", "expected a complete JPEG file; got a truncated one", "x.jpg")
    assert isinstance(err, ValueError) and err.code in ERROR_CODES
    back = pickle.loads(pickle.dumps(err))
    assert (back.code, str(back), back.source) == ("truncated", str(err), "x.jpg")
    with pytest.raises(ValueError, match="error code"):
        ImageDecodeError("nope", "x")  # type: ignore[arg-type]


def test_not_an_image_message_says_expected_and_got(tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError) as info:
        load_image(mk_pdf(tmp_path))
    msg = str(info.value)
    size = mk_pdf(tmp_path).stat().st_size
    assert msg.startswith("expected an image file (JPEG, PNG, WebP, BMP, TIFF, GIF); got ")
    assert f"{size:,} bytes starting with b'%PDF" in msg


def test_truncated_error_chains_pillow_exception(tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError) as info:
        load_image(mk_truncated_jpeg(tmp_path))
    assert info.value.code == "truncated"
    assert isinstance(info.value.__cause__, OSError)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_bomb_rejected_by_own_check_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = mk_bomb(tmp_path)
    # Pillow's own limit is not the mechanism: switch it off and turn every warning into an error.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)

    def no_decode(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels must not be decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageDecodeError) as info:
            load_image(path)
    assert info.value.code == "too_many_pixels"
    assert "30000×30000" in str(info.value)


def test_default_pillow_limit_untouched(tmp_path: Path) -> None:
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageDecodeError):
        load_image(mk_bomb(tmp_path))
    assert Image.MAX_IMAGE_PIXELS == before


def test_gif_frame_extent_bomb() -> None:
    # 10×10 logical screen, but the first frame's descriptor claims 60000×60000
    data = (
        b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0, 0, 0)
        + b"," + struct.pack("<HHHHB", 0, 0, 60000, 60000, 0) + b"\x02\x02\x4c\x01\x00;"
    )
    with pytest.raises(ImageDecodeError) as info:
        load_image(data)
    assert info.value.code == "too_many_pixels"


def test_small_max_pixels(tmp_path: Path) -> None:
    path = mk_png(tmp_path)  # 64×48 = 3072 px
    with pytest.raises(ImageDecodeError) as info:
        load_image(path, max_pixels=3071)
    assert info.value.code == "too_many_pixels"
    assert load_image(path, max_pixels=3072).rgb.shape == (48, 64, 3)


def test_too_large_file(tmp_path: Path) -> None:
    path = mk_png(tmp_path)
    size = path.stat().st_size
    with pytest.raises(ImageDecodeError) as info:
        load_image(path, max_bytes=size - 1)
    assert info.value.code == "too_large_file"
    with pytest.raises(ImageDecodeError) as info:
        load_image(io.BytesIO(path.read_bytes()), max_bytes=size - 1)
    assert info.value.code == "too_large_file"
    with pytest.raises(ImageDecodeError) as info:
        load_image(path.read_bytes(), max_bytes=size - 1)
    assert info.value.code == "too_large_file"


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="binary"):
        load_image(io.StringIO("text"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a path"):
        load_image(123)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_side"):
        load_image(b"x", min_side=0)


# ---------------------------------------------------------------------------------- inputs


def test_bytes_input(tmp_path: Path) -> None:
    data = mk_png(tmp_path).read_bytes()
    for src in (data, bytearray(data), memoryview(data)):
        r = load_image(src)
        assert r.format == "PNG" and np.all(r.rgb == GREEN)
    with pytest.raises(ImageDecodeError) as info:
        load_image(b"")
    assert info.value.code == "empty_file" and info.value.source == "<bytes>"


def test_file_like_input(tmp_path: Path) -> None:
    path = mk_jpeg(tmp_path)
    with open(path, "rb") as f:
        r = load_image(f)
    assert r.format == "JPEG" and r.rgb.shape == (48, 64, 3)
    stream = io.BytesIO(b"JUNK" + path.read_bytes())
    stream.seek(4)  # read from the current position
    assert load_image(stream).rgb.shape == (48, 64, 3)


def test_pathlike_and_str(tmp_path: Path) -> None:
    path = mk_png(tmp_path)
    assert load_image(str(path)).rgb.shape == load_image(path).rgb.shape == (48, 64, 3)


# ---------------------------------------------------------------------------------- draft


def test_jpeg_draft_reduces_scale_and_keeps_full_size(tmp_path: Path) -> None:
    path = _save(_marked(2000, 1500), tmp_path / "big.jpg", "JPEG", quality=90)
    r = load_image(path, min_side=224)
    h, w = r.rgb.shape[:2]
    assert min(h, w) >= 224
    assert r.scale <= 0.25 and w == round(2000 * r.scale)
    assert (r.width, r.height) == (2000, 1500) and r.format == "JPEG"
    assert _close(r.rgb[10, 10], RED, 40) and _close(r.rgb[-10, -10], BLUE, 40)
    full = load_image(path)
    assert full.rgb.shape == (1500, 2000, 3) and full.scale == 1.0


def test_jpeg_draft_with_exif_rotation(tmp_path: Path) -> None:
    path = _exif_jpeg(tmp_path / "big_rot.jpg", _marked(2000, 1500), 6)
    r = load_image(path, min_side=224)
    assert (r.width, r.height) == (1500, 2000)
    assert r.rgb.shape == (500, 375, 3) and r.scale == 0.25


def test_draft_keeps_min_side_when_image_is_small(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (300, 200), RED), tmp_path / "small.jpg", "JPEG")
    r = load_image(path, min_side=224)
    assert r.rgb.shape == (200, 300, 3) and r.scale == 1.0


def test_mpo_is_a_jpeg_and_drafts() -> None:
    buf = io.BytesIO()
    second = Image.new("RGB", (2000, 1500), BLUE)
    Image.new("RGB", (2000, 1500), RED).save(buf, "MPO", save_all=True, append_images=[second])
    r = load_image(buf.getvalue(), min_side=224)
    assert r.format == "JPEG" and r.rgb.shape == (375, 500, 3) and _close(r.rgb, RED, 20)


def test_no_draft_for_png(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (2000, 1500), GREEN), tmp_path / "big.png", "PNG")
    r = load_image(path, min_side=224)
    assert r.rgb.shape == (1500, 2000, 3) and r.scale == 1.0


# ---------------------------------------------------------------------------------- iter_image_paths


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    for rel in ("b.jpg", "a.PNG", "c.txt", "sub/d.jpeg", "sub/deeper/e.TIFF", ".hidden.jpg", ".cache/f.jpg", "z.webp"):
        _touch(tmp_path / "photos" / rel)
    return tmp_path / "photos"


def test_folder_sorted_recursive_and_filtered(tree: Path) -> None:
    got = [p.relative_to(tree).as_posix() for p in iter_image_paths([tree])]
    assert got == ["a.PNG", "b.jpg", "sub/d.jpeg", "sub/deeper/e.TIFF", "z.webp"]
    flat = [p.relative_to(tree).as_posix() for p in iter_image_paths([tree], recursive=False)]
    assert flat == ["a.PNG", "b.jpg", "z.webp"]


def test_globs_in_input_order(tree: Path) -> None:
    got = iter_image_paths([str(tree / "*.webp"), str(tree / "*.jpg"), str(tree / "**" / "*.jpeg")])
    assert [p.name for p in got] == ["z.webp", "b.jpg", "d.jpeg"]
    # a non-recursive '**' behaves like '*'
    assert iter_image_paths([str(tree / "**" / "*.jpeg")], recursive=False) == [tree / "sub" / "d.jpeg"]


def test_missing_file_kept_and_duplicates_dropped(tree: Path) -> None:
    missing = tree / "nope.jpg"
    notes = tree / "c.txt"  # explicit files are kept whatever their extension
    got = iter_image_paths([missing, tree / "b.jpg", tree, str(tree / "./b.jpg"), notes, missing])
    assert got[0] == missing and got[1] == tree / "b.jpg"
    assert got.count(tree / "b.jpg") == 1 and got.count(missing) == 1
    assert got[-1] == notes
    assert [p.name for p in got[2:-1]] == ["a.PNG", "d.jpeg", "e.TIFF", "z.webp"]


def test_empty_glob_raises(tree: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"glob pattern .*\*\.gif"):
        iter_image_paths([str(tree / "*.gif")])
    with pytest.raises(FileNotFoundError, match="glob pattern"):
        iter_image_paths([str(tree / "*.txt")])  # matches, but no image
    assert iter_image_paths([]) == []


@pytest.mark.parametrize("name", ["empty", "x.jpg"])
def test_a_folder_without_images_is_an_input_of_its_own(tmp_path: Path, tree: Path, name: str) -> None:
    folder = tmp_path / name
    folder.mkdir()
    got = iter_image_paths([tree / "b.jpg", folder])
    assert got == [tree / "b.jpg", folder]
    with pytest.raises(ImageDecodeError) as info:
        load_image(folder)
    assert info.value.code == "not_an_image"


@pytest.mark.parametrize("data", [b"a", b"ab", b"abc", b"\x00\x01", b"II*"])
def test_a_few_bytes_are_a_decode_error_not_a_crash(data):
    with pytest.raises(ImageDecodeError):
        load_image(data)
