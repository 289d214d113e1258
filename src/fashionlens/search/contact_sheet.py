"""Contact sheet: search hits as a grid of thumbnails with rank and score captions."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps

from fashionlens.imageio import ImageDecodeError, load_image
from fashionlens.search.index import SearchHit

logger = logging.getLogger(__name__)

_BACKGROUND = (255, 255, 255)
_PLACEHOLDER = (128, 128, 128)
_TEXT = (20, 20, 20)
_LINE = 14  # caption line height in pixels (Pillow's default bitmap font)
_PAD = 4


def contact_sheet(
    results: Sequence[SearchHit | Mapping[str, Any]],
    out_png: str | os.PathLike[str],
    *,
    thumb: int = 160,
    cols: int | None = None,
    image_root: str | os.PathLike[str] | None = None,
) -> Path:
    """Draw ``results`` (best first) as a grid of ``thumb × thumb`` tiles and save it as PNG.

    Each tile shows the image cropped to the hit's garment box (``xyxy`` in original-image pixels,
    when present), scaled to fit the square (aspect kept), with the caption ``#rank  score`` and a second line
    (category, else the file name). A hit whose image cannot be read or decoded gets a grey
    placeholder tile with the caption ``unreadable`` instead of failing the sheet.

    Args:
        results: :class:`SearchHit` objects, or dicts with ``path`` and optional ``rank``,
            ``score``, ``xyxy``, ``category`` (e.g. ``SearchHit.to_dict()`` read back from JSON).
        out_png: output file; parent folders are created.
        thumb: tile side in pixels (>= 16).
        cols: tiles per row; default ``min(len(results), 5)``.
        image_root: folder that relative ``path`` values are relative to (default: the working folder).

    Returns:
        The path written. The image is ``cols·(thumb + 2·pad)`` wide and
        ``rows·(thumb + 2·pad + 2 caption lines)`` high; with no results, one tile reading "no results".
    """
    if isinstance(thumb, bool) or not isinstance(thumb, int) or thumb < 16:
        raise ValueError(f"thumb: expected an integer >= 16; got {thumb!r}")
    if cols is not None and (isinstance(cols, bool) or not isinstance(cols, int) or cols < 1):
        raise ValueError(f"cols: expected an integer >= 1; got {cols!r}")
    hits = [_as_hit(r, i) for i, r in enumerate(results)]
    n_cols = cols or max(1, min(len(hits), 5))
    n_rows = max(1, -(-len(hits) // n_cols))
    tile_w, tile_h = thumb + 2 * _PAD, thumb + 2 * _PAD + 2 * _LINE
    sheet = Image.new("RGB", (n_cols * tile_w, n_rows * tile_h), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    root = Path(image_root) if image_root is not None else None
    if not hits:
        draw.text((_PAD, _PAD + thumb // 2), "no results", fill=_TEXT, font=font)
    for i, hit in enumerate(hits):
        x, y = (i % n_cols) * tile_w + _PAD, (i // n_cols) * tile_h + _PAD
        picture = _thumbnail(hit, thumb, root)
        if picture is None:
            draw.rectangle((x, y, x + thumb - 1, y + thumb - 1), fill=_PLACEHOLDER)
            second = "unreadable"
        else:
            sheet.paste(picture, (x + (thumb - picture.width) // 2, y + (thumb - picture.height) // 2))
            second = hit["category"] or Path(hit["path"]).name
        rank = f"#{hit['rank']}"
        score = f"  {hit['score']:.3f}" if hit["score"] is not None else ""
        draw.text((x, y + thumb + 1), _fit(draw, rank + score, thumb, font), fill=_TEXT, font=font)
        draw.text((x, y + thumb + 1 + _LINE), _fit(draw, str(second), thumb, font), fill=_TEXT, font=font)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, format="PNG")
    return out


def _as_hit(result: SearchHit | Mapping[str, Any], position: int) -> dict[str, Any]:
    data = result.to_dict() if isinstance(result, SearchHit) else dict(result)
    if "path" not in data:
        raise ValueError(f"results[{position}]: expected a SearchHit or a mapping with 'path'; got keys {sorted(data)}")
    return {"path": os.fspath(data["path"]), "rank": data.get("rank", position + 1), "score": data.get("score"),
            "xyxy": data.get("xyxy"), "category": data.get("category")}


def _thumbnail(hit: Mapping[str, Any], thumb: int, root: Path | None) -> Image.Image | None:
    path = Path(hit["path"])
    if root is not None and not path.is_absolute():
        path = root / path
    box = hit["xyxy"]
    try:
        # a whole image may be decoded at a reduced JPEG scale; a crop needs full resolution
        decoded = load_image(path, min_side=thumb if box is None else None)
    except (ImageDecodeError, OSError) as e:
        logger.warning("contact sheet: placeholder for %s (%s)", path, e)
        return None
    image = Image.fromarray(decoded.rgb)
    if box is not None:
        x0, y0, x1, y1 = (float(v) * decoded.scale for v in box)
        left, top = max(0, int(x0)), max(0, int(y0))
        right, bottom = min(image.width, round(x1)), min(image.height, round(y1))
        if right - left >= 1 and bottom - top >= 1:
            image = image.crop((left, top, right, bottom))
    return ImageOps.contain(image, (thumb, thumb), Image.Resampling.LANCZOS)


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, font: Any) -> str:
    """``text`` shortened with '...' to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."
