"""Pascal VOC / labelImg XML annotations → :class:`ImageRecord`.

One ``*.xml`` per image in ``xml_dir`` (not recursive, sorted by name). Read per file:
``filename``, ``size/width``/``size/height`` (when absent or 0 the size is read from the image
header, or left ``None`` if the image is missing) and each ``object`` with ``name``, ``bndbox``
(``xmin ymin xmax ymax``) and ``difficult``.

VOC boxes are 1-based and inclusive (labelImg writes the same convention, clamping ``xmin`` to 1):
with ``one_based=True`` (default) a box becomes ``(xmin - 1, ymin - 1, xmax, ymax)``, i.e. the
0-based, max-exclusive ``bbox_xyxy`` of the records (as Detectron2 reads VOC). ``difficult``
objects are kept unless ``include_difficult=False``; ``record.meta["difficult"]`` holds one bool
per garment. Object names are mapped with the rule of :mod:`fashionlens.io._mapping` (unmapped
labels kept with ``object_type=None``).

Images are looked up in ``image_dir``; by default in ``<xml_dir>/../JPEGImages`` when that folder
exists (the VOC layout), else next to the XML files (the labelImg default).

XML is parsed with ``defusedxml`` when installed, else the standard library; either way a file
with a DTD or entity declaration is rejected (ValueError), as no VOC file needs one.
"""

from __future__ import annotations

import logging
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from fashionlens.io._mapping import LabelResolver, MappingArg, image_size
from fashionlens.io.records import ImageRecord

try:  # pragma: no cover - depends on the environment
    from defusedxml.ElementTree import fromstring as _fromstring
except ImportError:  # pragma: no cover
    _fromstring = ET.fromstring

logger = logging.getLogger(__name__)


def _parse_xml(path: Path) -> ET.Element:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc}") from None
    upper = data.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        raise ValueError(f"{path}: DTD/entity declarations are not allowed in annotation XML")
    try:
        return _fromstring(data)
    except ET.ParseError as exc:
        raise ValueError(f"{path}: not well-formed XML ({exc})") from None
    except Exception as exc:  # defusedxml raises its own errors for forbidden constructs
        raise ValueError(f"{path}: rejected XML ({type(exc).__name__}: {exc})") from None


def _optional_text(elem: ET.Element, tag: str) -> str | None:
    child = elem.find(tag)
    if child is None or child.text is None or not child.text.strip():
        return None
    return child.text.strip()


def _text(elem: ET.Element, tag: str, where: str) -> str:
    text = _optional_text(elem, tag)
    if text is None:
        raise ValueError(f"{where}: missing or empty <{tag}>")
    return text


def _number(elem: ET.Element, tag: str, where: str) -> float:
    text = _text(elem, tag, where)
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: <{tag}> must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: <{tag}> must be finite, got {text!r}")
    return value


def _size(root: ET.Element, where: str) -> tuple[int, int] | None:
    size = root.find("size")
    if size is None:
        return None
    w_text, h_text = _optional_text(size, "width"), _optional_text(size, "height")
    if w_text is None or h_text is None:
        return None
    try:
        w, h = int(float(w_text)), int(float(h_text))
    except ValueError:
        raise ValueError(f"{where}: <size> width/height must be integers, got {w_text!r}x{h_text!r}") from None
    if w < 0 or h < 0:
        raise ValueError(f"{where}: <size> must not be negative, got {w}x{h}")
    return (w, h) if w and h else None


def read_voc(
    xml_dir: str | os.PathLike[str],
    image_dir: str | os.PathLike[str] | None = None,
    *,
    mapping: MappingArg = None,
    source: str = "voc",
    include_difficult: bool = True,
    one_based: bool = True,
) -> list[ImageRecord]:
    """Read every ``*.xml`` in ``xml_dir``; one record per file. ``group`` is the image file stem."""
    xdir = Path(xml_dir)
    if not xdir.is_dir():
        raise ValueError(f"xml_dir {xdir} is not a directory")
    if image_dir is not None:
        idir = Path(image_dir)
    else:
        voc_images = xdir.parent / "JPEGImages"
        idir = voc_images if voc_images.is_dir() else xdir
    resolver = LabelResolver(mapping)
    files = sorted(xdir.glob("*.xml"))
    if not files:
        logger.warning("%s: no .xml files", xdir)
    offset = 1.0 if one_based else 0.0
    n_difficult = 0
    records: list[ImageRecord] = []
    for path in files:
        root = _parse_xml(path)
        if root.tag != "annotation":
            raise ValueError(f"{path}: root element must be <annotation>, got <{root.tag}>")
        filename = _text(root, "filename", str(path))
        image_path = idir / filename
        size = _size(root, str(path))
        if size is None and image_path.is_file():
            size = image_size(image_path, where=str(path))
        record = ImageRecord(
            path=image_path, source=source, group=Path(filename).stem,
            width=size[0] if size else None, height=size[1] if size else None,
            meta={"annotation_file": str(path), "difficult": []},
        )
        for k, obj in enumerate(root.findall("object")):
            where = f"{path}: object {k}"
            name = _text(obj, "name", where)
            difficult_text = _optional_text(obj, "difficult") or "0"
            if difficult_text not in ("0", "1"):
                raise ValueError(f"{where}: <difficult> must be 0 or 1, got {difficult_text!r}")
            difficult = difficult_text == "1"
            if difficult and not include_difficult:
                n_difficult += 1
                continue
            box = obj.find("bndbox")
            if box is None:
                raise ValueError(f"{where}: missing <bndbox>")
            xmin, ymin, xmax, ymax = (_number(box, t, where) for t in ("xmin", "ymin", "xmax", "ymax"))
            if xmax < xmin or ymax < ymin:
                raise ValueError(f"{where}: bndbox needs xmax >= xmin and ymax >= ymin, got {(xmin, ymin, xmax, ymax)}")
            bbox = (max(xmin - offset, 0.0), max(ymin - offset, 0.0), xmax, ymax)
            record.garments.append(resolver.garment(name, bbox_xyxy=bbox, where=where))
            record.meta["difficult"].append(difficult)
        records.append(record)
    if n_difficult:
        logger.info("%s: skipped %d difficult objects (include_difficult=False)", xdir, n_difficult)
    resolver.log_summary(logger, str(xdir))
    return records
