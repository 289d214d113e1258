"""The one place where fashionlens turns files and bytes into RGB pixels, safely.

:func:`load_image` decodes a path, ``bytes`` or binary stream into a :class:`DecodedImage` whose
``rgb`` is an ``H×W×3`` C-contiguous ``uint8`` array. Every failure is an :class:`ImageDecodeError`
(a ``ValueError``) with a stable machine ``code`` and a message saying what was expected and what
came. :func:`iter_image_paths` expands files, folders and glob patterns into a list of paths.

Safety rules, in the order they apply:

* size first: a path is ``stat``-ed (empty → ``empty_file``, over ``max_bytes`` →
  ``too_large_file``) before a byte is read; a stream is read at most ``max_bytes + 1`` bytes;
* the format comes from the header bytes as Pillow parses them, never from the file name, and only
  JPEG (incl. MPO), PNG, WebP, BMP, TIFF and GIF are decoded;
* ``width × height`` from the header is checked against ``max_pixels`` before any pixel is decoded.
  The header is parsed with Pillow's own format plugins but without :func:`PIL.Image.open`'s
  ``MAX_IMAGE_PIXELS`` check, so this module's limit is the one that applies and no Pillow global
  is ever changed (if Pillow's own check still fires while decoding, e.g. for a GIF frame, it is
  reported as ``too_many_pixels`` too);
* truncated files raise ``truncated``; ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is never set here.
"""

from __future__ import annotations

import glob
import io
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, Literal, get_args

import numpy as np
from PIL import Image, ImageFile, ImageOps

logger = logging.getLogger(__name__)

ErrorCode = Literal[
    "not_found",
    "empty_file",
    "not_an_image",
    "unsupported_format",
    "truncated",
    "too_many_pixels",
    "too_large_file",
    "decode_failed",
]
ERROR_CODES: Final[frozenset[str]] = frozenset(get_args(ErrorCode))

#: Pillow format names this module decodes. MPO is the multi-picture JPEG many cameras write.
SUPPORTED_FORMATS: Final[frozenset[str]] = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF", "GIF"})
#: File extensions (lower case) that folder expansion and globs keep.
IMAGE_EXTENSIONS: Final[frozenset[str]] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
)

_EXPECTED: Final = "expected an image file (JPEG, PNG, WebP, BMP, TIFF, GIF)"
_JPEG_FORMATS: Final = frozenset({"JPEG", "MPO"})
_ORIENTATION_TAG: Final = 0x0112
_SWAPPING_ORIENTATIONS: Final = frozenset({5, 6, 7, 8})
_HIGH_DEPTH_MODES: Final = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
# ISO-BMFF brands (bytes 8..12 after b"ftyp") of image formats Pillow cannot read without plugins.
_HEIF_BRANDS: Final = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})
_PREFIX_LEN: Final = 16

_warned_load_truncated = False


class ImageDecodeError(ValueError):
    """An input could not be turned into RGB pixels.

    ``code`` is one of :data:`ERROR_CODES` and is stable for machines; ``str(error)`` is for
    humans and says what was expected and what came. ``source`` names the input (a path,
    ``"<bytes>"`` or a stream's name) when known; it is not repeated in the message.
    """

    def __init__(self, code: ErrorCode, message: str, source: str | None = None) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"expected an error code in {sorted(ERROR_CODES)}; got {code!r}")
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.source = source

    def __reduce__(self) -> tuple[type[ImageDecodeError], tuple[str, str, str | None]]:
        # Keep the code across pickling (multiprocessing workers raise these).
        return (type(self), (self.code, self.message, self.source))


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """A decoded, oriented image.

    ``rgb`` is ``H×W×3`` ``uint8``, C-contiguous and writable. ``width``/``height`` are the size
    of the full-resolution image after EXIF orientation, even when ``rgb`` was decoded at a
    reduced JPEG scale; ``scale`` is ``rgb.shape[1] / width`` (1.0 unless reduced). ``format`` is
    Pillow's format name (``"JPEG"`` for MPO too) and ``mode`` the original Pillow mode (e.g.
    ``"P"``, ``"I;16"``, ``"CMYK"``) before conversion to RGB.
    """

    rgb: np.ndarray
    width: int
    height: int
    scale: float
    format: str
    mode: str


def load_image(
    source: str | os.PathLike[str] | bytes | BinaryIO,
    *,
    max_pixels: int = 40_000_000,
    max_bytes: int = 50 * 2**20,
    min_side: int | None = None,
) -> DecodedImage:
    """Decode an image file, ``bytes`` or binary stream into oriented 8-bit RGB.

    Args:
        source: a path (``str``/``PathLike``), ``bytes``/``bytearray``/``memoryview``, or a binary
            file object (read from its current position to EOF).
        max_pixels: largest ``width × height`` accepted, checked on the header before decoding.
        max_bytes: largest input size in bytes.
        min_side: when given and the image is a JPEG, decode at 1/2, 1/4 or 1/8 scale (libjpeg's
            DCT scaling) as long as the shorter side stays ``>= min_side``; other formats are
            decoded at full size. No resizing happens here.

    Returns:
        A :class:`DecodedImage`; ``rgb`` is ``H×W×3`` ``uint8``. Alpha is composited over white,
        EXIF orientation is applied, 16-bit greyscale is scaled by its bit depth, animated
        GIF/WebP give their first frame.

    Raises:
        ImageDecodeError: with ``code`` one of :data:`ERROR_CODES`.
        TypeError: ``source`` is neither a path, bytes nor a binary stream.
        ValueError: ``max_pixels``, ``max_bytes`` or ``min_side`` is not positive.

    Example:
        >>> from fashionlens import load_image
        >>> image = load_image("photo.jpg")                  # doctest: +SKIP
        >>> image.rgb.shape, image.width, image.height       # doctest: +SKIP
        ((470, 352, 3), 352, 470)
    """
    for name, value in (("max_pixels", max_pixels), ("max_bytes", max_bytes), ("min_side", min_side)):
        if value is not None and value < 1:
            raise ValueError(f"expected {name} >= 1; got {value}")
    _warn_if_truncated_loading_enabled()

    fp, n_bytes, label = _open_source(source, max_bytes=max_bytes)
    with fp:
        im = _identify(fp, n_bytes=n_bytes, max_pixels=max_pixels, label=label)
        try:
            return _decode(im, max_pixels=max_pixels, min_side=min_side, label=label)
        finally:
            im.close()


def iter_image_paths(inputs: Sequence[str | os.PathLike[str]], *, recursive: bool = True) -> list[Path]:
    """Expand files, folders and glob patterns into image paths, in input order, without duplicates.

    * An explicit file path is returned as given, whatever its extension, and even when it does
      not exist (so the caller can report an error record for it instead of dropping it).
    * A folder yields its image files (extensions in :data:`IMAGE_EXTENSIONS`, any case), sorted by
      path, descending into sub-folders when ``recursive``; hidden files and folders (name starting
      with ``.``) are skipped. A folder with no image file (an empty one, or one named ``x.jpg``) is
      returned itself, so that it gets an error record like any other unusable input.
    * A pattern containing ``*``, ``?`` or ``[`` that is not an existing path is globbed (``**``
      spans folders when ``recursive``); matched files with image extensions are kept, matched
      folders are expanded like folders, results sorted.

    A path seen twice (after ``abspath``/``normpath``) is kept at its first occurrence.

    Raises:
        FileNotFoundError: a glob pattern yields no image file.
    """
    out: list[Path] = []
    seen: set[str] = set()

    def add(path: Path) -> None:
        key = os.path.normcase(os.path.abspath(path))
        if key not in seen:
            seen.add(key)
            out.append(path)

    for item in inputs:
        text = os.path.expanduser(os.fspath(item))
        path = Path(text)
        if path.is_dir():
            found = _images_in_folder(path, recursive=recursive)
            if not found:  # kept as an input of its own, so the caller reports it (load_image: not_an_image)
                logger.warning("folder %r holds no image files (%s)%s", text, _ext_list(),
                               "" if recursive else "; sub-folders not searched")
                add(path)
            for p in found:
                add(p)
        elif not path.exists() and any(c in text for c in "*?["):
            matches = sorted(glob.glob(text, recursive=recursive))
            found = []
            for m in matches:
                mp = Path(m)
                if mp.is_dir():
                    found.extend(_images_in_folder(mp, recursive=recursive))
                elif mp.suffix.lower() in IMAGE_EXTENSIONS:
                    found.append(mp)
                else:
                    logger.debug("skipping %s: not an image extension", mp)
            if not found:
                raise FileNotFoundError(
                    f"expected glob pattern {text!r} to match image files ({_ext_list()}); "
                    f"it matched {len(matches)} path(s) and no image file"
                )
            for p in found:
                add(p)
        else:
            add(path)
    return out


# --------------------------------------------------------------------------------------------
# reading the input


def _open_source(source: object, *, max_bytes: int) -> tuple[BinaryIO, int, str]:
    """Return ``(binary file object positioned at 0, size in bytes, label)`` after size checks."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = str(path)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ImageDecodeError(
                "not_found", f"{_EXPECTED}; got a path that does not exist: {label}", label
            ) from None
        except OSError as e:
            raise ImageDecodeError("decode_failed", f"{_EXPECTED}; could not stat {label}: {e}", label) from e
        if stat.S_ISDIR(st.st_mode):
            raise ImageDecodeError("not_an_image", f"{_EXPECTED}; got a folder with no image files in it: {label}",
                                   label)
        if not stat.S_ISREG(st.st_mode):
            raise ImageDecodeError(
                "not_an_image", f"{_EXPECTED}; got a special file (not a regular file): {label}", label
            )
        _check_size(st.st_size, max_bytes=max_bytes, label=label)
        try:
            fp: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by load_image's `with`
        except OSError as e:
            raise ImageDecodeError("decode_failed", f"{_EXPECTED}; could not open {label}: {e}", label) from e
        return fp, st.st_size, label

    if isinstance(source, (bytes, bytearray, memoryview)):
        label = "<bytes>"
        _check_size(memoryview(source).nbytes, max_bytes=max_bytes, label=label)
        data = source if isinstance(source, bytes) else bytes(source)
    elif hasattr(source, "read"):
        label = str(getattr(source, "name", "<stream>"))
        data = _read_capped(source, limit=max_bytes + 1, label=label)  # type: ignore[arg-type]
        if len(data) > max_bytes:
            raise ImageDecodeError(
                "too_large_file",
                f"expected at most {max_bytes:,} bytes; got a stream with more than {max_bytes:,} bytes",
                label,
            )
    else:
        raise TypeError(
            f"expected a path (str/PathLike), bytes or a binary file object; got {type(source).__name__}"
        )
    _check_size(len(data), max_bytes=max_bytes, label=label)
    return io.BytesIO(data), len(data), label


def _check_size(n_bytes: int, *, max_bytes: int, label: str) -> None:
    if n_bytes == 0:
        raise ImageDecodeError("empty_file", f"{_EXPECTED}; got an empty input (0 bytes)", label)
    if n_bytes > max_bytes:
        raise ImageDecodeError(
            "too_large_file", f"expected at most {max_bytes:,} bytes; got {n_bytes:,} bytes", label
        )


def _read_capped(stream: BinaryIO, *, limit: int, label: str) -> bytes:
    """Read until EOF or ``limit`` bytes, whichever comes first (handles short reads)."""
    chunks: list[bytes] = []
    total = 0
    while total < limit:
        chunk = stream.read(min(limit - total, 1 << 20))
        if isinstance(chunk, str):
            raise TypeError(f"expected a binary file object (opened with 'rb'); got a text stream {label!r}")
        if not chunk:
            break
        chunks.append(bytes(chunk))
        total += len(chunk)
    return b"".join(chunks)


# --------------------------------------------------------------------------------------------
# identifying the format (header only)


def _identify(fp: BinaryIO, *, n_bytes: int, max_pixels: int, label: str) -> ImageFile.ImageFile:
    """Parse the header with Pillow's format plugins; no pixel is decoded yet.

    This is :func:`PIL.Image.open`'s identification loop without its ``MAX_IMAGE_PIXELS`` check
    (``load_image`` applies its own ``max_pixels``). Supported formats are tried first; an input
    that only an unsupported plugin accepts raises ``unsupported_format``.
    """
    prefix = fp.read(_PREFIX_LEN)
    header_errors: list[tuple[str, Exception]] = []

    Image.init()  # registers every plugin once (TIFF is not among Pillow's "preinit" ones)
    try:
        im = _try_plugins(fp, prefix, [f for f in Image.ID if f in SUPPORTED_FORMATS], header_errors)
    except Image.DecompressionBombError as e:  # a plugin's own check while parsing, e.g. GIF frame extents
        raise ImageDecodeError(
            "too_many_pixels", f"expected at most {max_pixels:,} pixels; got a header Pillow rejects: {e}", label
        ) from e
    if im is not None:
        return im
    if header_errors:
        fmt, err = header_errors[0]
        truncated = isinstance(err, EOFError) or "truncat" in str(err).lower()
        raise ImageDecodeError(
            "truncated" if truncated else "decode_failed",
            f"{_EXPECTED}; got {n_bytes:,} bytes that start like {_pretty(fmt)} "
            f"but whose header could not be read: {err}",
            label,
        ) from err

    if prefix[4:8] == b"ftyp":
        brand = prefix[8:12]
        name = "HEIC/HEIF" if brand in _HEIF_BRANDS else "AVIF" if brand in (b"avif", b"avis") else None
        if name is not None:
            raise ImageDecodeError(
                "unsupported_format", f"{_EXPECTED}; got a {name} image (convert it to JPEG or PNG)", label
            )

    other = _try_plugins(fp, prefix, [f for f in Image.ID if f not in SUPPORTED_FORMATS], [])
    if other is not None:
        fmt = other.format or "unknown"
        other.close()
        raise ImageDecodeError("unsupported_format", f"{_EXPECTED}; got a {fmt} image", label)
    raise ImageDecodeError(
        "not_an_image", f"{_EXPECTED}; got {n_bytes:,} bytes starting with {prefix[:8]!r}", label
    )


def _try_plugins(
    fp: BinaryIO, prefix: bytes, formats: list[str], errors: list[tuple[str, Exception]]
) -> ImageFile.ImageFile | None:
    """Return the first plugin's image that accepts ``prefix`` and parses the header, else None.

    Header parse failures of plugins whose magic bytes matched are appended to ``errors``.
    """
    for fmt in formats:
        factory, accept = Image.OPEN[fmt]
        if accept is not None:
            try:
                verdict = accept(prefix)
            except Exception:  # noqa: BLE001, S112 - some plugins' checks fail on a few-byte input (struct.error)
                continue
            if not verdict or isinstance(verdict, str):  # a str is Pillow's "almost" message
                continue
        fp.seek(0)
        try:
            return factory(fp, "")  # type: ignore[no-any-return]
        except (MemoryError, Image.DecompressionBombError):
            raise
        except Exception as e:  # noqa: BLE001 - a plugin rejecting the header; reported by the caller
            if accept is not None:
                errors.append((fmt, e))
    return None


# --------------------------------------------------------------------------------------------
# decoding


def _decode(im: ImageFile.ImageFile, *, max_pixels: int, min_side: int | None, label: str) -> DecodedImage:
    fmt = "JPEG" if im.format in _JPEG_FORMATS else (im.format or "unknown")
    mode = im.mode
    full_w, full_h = im.size
    if full_w * full_h > max_pixels:
        raise ImageDecodeError(
            "too_many_pixels",
            f"expected at most {max_pixels:,} pixels; got a {fmt} header declaring "
            f"{full_w}×{full_h} = {full_w * full_h:,} pixels (not decoded)",
            label,
        )

    if min_side is not None and im.format in _JPEG_FORMATS:
        # libjpeg picks the largest 1/1, 1/2, 1/4, 1/8 scale that keeps the size >= the request,
        # so asking for (min_side, min_side) keeps the shorter side >= min_side.
        im.draft("RGB", (min_side, min_side))
        logger.debug("%s: JPEG %dx%d drafted to %dx%d for min_side=%d", label, full_w, full_h, *im.size, min_side)

    try:
        im.load()
    except Image.DecompressionBombError as e:
        raise ImageDecodeError("too_many_pixels", f"expected at most {max_pixels:,} pixels; {e}", label) from e
    except MemoryError:
        raise
    except Exception as e:
        msg = str(e) or type(e).__name__
        if isinstance(e, EOFError) or "truncat" in msg.lower():
            raise ImageDecodeError(
                "truncated", f"expected a complete {fmt} file; got a truncated one ({msg})", label
            ) from e
        raise ImageDecodeError(
            "decode_failed", f"expected a decodable {fmt} file; decoding failed: {msg}", label
        ) from e

    swapped = _apply_exif_orientation(im, label)
    width, height = (full_h, full_w) if swapped else (full_w, full_h)

    try:
        rgb = _to_rgb(im)
    except MemoryError:
        raise
    except ValueError as e:  # Pillow: "conversion from X to RGB not supported"
        raise ImageDecodeError(
            "unsupported_format", f"expected a colour mode convertible to RGB; got {mode!r}: {e}", label
        ) from e
    return DecodedImage(rgb=rgb, width=width, height=height, scale=rgb.shape[1] / width, format=fmt, mode=mode)


def _apply_exif_orientation(im: Image.Image, label: str) -> bool:
    """Rotate/flip ``im`` in place per its EXIF orientation; return whether width/height swapped.

    Broken EXIF is logged and ignored: a viewable photo is not rejected for its metadata.
    """
    try:
        orientation = im.getexif().get(_ORIENTATION_TAG, 1)
        ImageOps.exif_transpose(im, in_place=True)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - metadata only
        logger.warning("%s: ignoring unreadable EXIF orientation: %s", label, e)
        return False
    return isinstance(orientation, int) and orientation in _SWAPPING_ORIENTATIONS


def _to_rgb(im: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to an ``H×W×3`` ``uint8`` C-contiguous, writable array."""
    if im.mode in _HIGH_DEPTH_MODES:
        grey = _high_depth_to_u8(im)
        transparency = im.info.get("transparency")
        if isinstance(transparency, int) and im.mode != "F":
            grey[np.asarray(im) == transparency] = 255  # tRNS colour key → white background
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if _has_transparency(im):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        out = Image.alpha_composite(white, rgba).convert("RGB")
    elif im.mode != "RGB":
        out = im.convert("RGB")  # 1, L, P, CMYK (Adobe-inverted handled by Pillow), YCbCr, ...
    else:
        out = im
    return np.ascontiguousarray(np.array(out, dtype=np.uint8))


def _has_transparency(im: Image.Image) -> bool:
    if im.mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in im.info:
        return True
    return im.mode == "P" and im.palette is not None and im.palette.mode.endswith("A")


def _high_depth_to_u8(im: Image.Image) -> np.ndarray:
    """``I;16*``/``I``/``F`` → ``H×W`` ``uint8``, scaled by the real range, not clipped.

    Integer modes are scaled by their bit depth (TIFF ``BitsPerSample`` when present, else 16 for
    ``I;16*`` and for PNG ``I``, else 32): ``v * 255 / (2**bits - 1)``, rounded; negatives → 0.
    ``F`` is read as ``[0, 1]`` when all finite values lie there, else as ``[0, 255]`` (clipped,
    like Pillow); NaN → 0.
    """
    arr = np.asarray(im)
    if im.mode == "F":
        f = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if f.size and f.min() >= 0.0 and f.max() <= 1.0:
            f = f * 255.0
        return np.clip(np.rint(f), 0, 255).astype(np.uint8)
    bits = _bit_depth(im)
    max_value = (1 << bits) - 1
    values = np.clip(arr.astype(np.int64), 0, max_value)
    return ((values * 255 + max_value // 2) // max_value).astype(np.uint8)


def _bit_depth(im: Image.Image) -> int:
    tags = getattr(im, "tag_v2", None)
    if im.format == "TIFF" and tags is not None:
        bps = tags.get(258)  # BitsPerSample
        if isinstance(bps, tuple):
            bps = bps[0] if bps else None
        if isinstance(bps, int) and 1 <= bps <= 32:
            return bps
    if im.mode.startswith("I;16") or im.format == "PNG":
        return 16
    return 32


# --------------------------------------------------------------------------------------------
# helpers


def _images_in_folder(folder: Path, *, recursive: bool) -> list[Path]:
    """Image files under ``folder`` sorted by path parts; hidden entries skipped; symlinked dirs not followed."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")] if recursive else []
        base = Path(root)
        for name in files:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(base / name)
    found.sort(key=lambda p: p.relative_to(folder).parts)
    return found


def _ext_list() -> str:
    return ", ".join(sorted(IMAGE_EXTENSIONS))


def _pretty(fmt: str) -> str:
    return {"WEBP": "a WebP file", "JPEG": "a JPEG file", "MPO": "a JPEG file"}.get(fmt, f"a {fmt} file")


def _warn_if_truncated_loading_enabled() -> None:
    """Warn once if some other module set ``LOAD_TRUNCATED_IMAGES`` (truncation then goes unnoticed)."""
    global _warned_load_truncated
    if ImageFile.LOAD_TRUNCATED_IMAGES and not _warned_load_truncated:
        _warned_load_truncated = True
        logger.warning(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is enabled by another module: truncated images may "
            "decode with grey areas instead of raising ImageDecodeError('truncated')"
        )
