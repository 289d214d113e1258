"""Draw tag results on photos so that a person can check them against the garments.

Each garment's mask is **outlined** (a 2–3 px contour with a dark rim) over a light tint
(``alpha`` ≤ 0.15, so a black jacket still looks black: the colour the user wants to check stays
visible); a garment without a mask gets its box. Garments get distinct colours from a qualitative
palette (:data:`GARMENT_PALETTE`), chosen so that garments whose boxes touch or overlap never share
one. Each label — category (or object type) and colours, each colour with a swatch of the colour it
names — is placed greedily (:func:`place_labels`) at the first free candidate position around its
box, never over another label and never outside the picture; a label placed away from its box
gets a leader line. A field the models are unsure of (``id`` None or ``uncertain`` true, as in
``fashionlens/result/v2``) is shown as ``?``.

:func:`annotate` draws a :class:`~fashionlens.result.TagResult`; :func:`render_result` takes a
saved record (a JSON line of ``fashionlens tag``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from fashionlens.result import Garments, TagResult
from fashionlens.taxonomy import load_taxonomy

#: qualitative palette (Tableau 10 without its grey and olive): one colour per garment
GARMENT_PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (23, 190, 207), (227, 119, 194), (140, 86, 75),
)
#: the mask's tint: light enough that the garment's own colour stays visible
DEFAULT_ALPHA = 0.12
MAX_ALPHA = 0.15
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FALLBACK_NOTE = "no garment detected: whole-image result"

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


# ------------------------------------------------------------------------------------------ label text


def _field(value: Any) -> tuple[str | None, float | None, bool]:
    """``(id, score, unsure)`` of a field as a :class:`~fashionlens.result.Label`-like object or a dict;
    unsure when its ``id`` is None or it says ``uncertain``."""
    if isinstance(value, Mapping):
        vid, score, flag = value.get("id"), value.get("score"), value.get("uncertain")
    else:
        vid, score, flag = getattr(value, "id", None), getattr(value, "score", None), getattr(value, "uncertain", None)
    unsure = vid is None or bool(flag)
    return (None if vid is None else str(vid)), (None if score is None else float(score)), unsure


@dataclass(frozen=True)
class LabelText:
    """A garment's label: its name part (category or object type) and its colours (name, swatch RGB or None)."""

    name: str
    colours: tuple[tuple[str, tuple[int, int, int] | None], ...] = ()

    def __str__(self) -> str:
        return self.name + (" | " + ", ".join(c for c, _ in self.colours) if self.colours else "")


@lru_cache(maxsize=1)
def _palette_rgb() -> dict[str, tuple[int, int, int]]:
    return {k: tuple(int(c) for c in v) for k, v in load_taxonomy().attribute("colours").rgb.items()}  # type: ignore[misc]


def _colours_uncertain(garments: Garments, i: int, attrs: Mapping[str, Any], listed: Any) -> bool:
    """Whether garment ``i``'s colours are marked unsure: on the list (``LabelList.uncertain``), in the
    attributes (``colours_uncertain``, as in JSON) or in ``garments.data``."""
    if getattr(listed, "uncertain", False) or attrs.get("colours_uncertain"):
        return True
    flags = garments.data.get("colours_uncertain") if isinstance(garments.data, Mapping) else None
    return bool(flags[i]) if isinstance(flags, Sequence) and i < len(flags) else False


def _shown(vid: str | None, unsure: bool) -> str:
    """An unsure value as the user sees it: ``?``, or ``jeans?`` when a best guess was kept."""
    return "?" if vid is None else f"{vid}?" if unsure else vid


def garment_label_text(garments: Garments, i: int, *, max_colours: int = 2) -> LabelText:
    """Garment ``i``'s label: ``jeans 0.91`` (the category and its score; the object type and the
    detector's score before classification; ``upper-body ?`` when the category is unsure, ``jeans? 0.41``
    when an unsure best guess was kept) and up to ``max_colours`` colours with their palette swatches
    (``?`` for an unsure colour, ``colour ?`` when the garment's colours are unsure and none is listed)."""
    cat = garments.category[i] if garments.category is not None else None
    object_type = garments.object_type[i]
    if cat is not None:
        cid, score, unsure = _field(cat)
        name = f"{object_type} ?" if cid is None else f"{_shown(cid, unsure)} {score or 0.0:.2f}"
    else:  # the score as in the JSON record (4 decimals), so saved and live results read alike
        conf = garments.confidence[i]
        name = object_type if conf is None or np.isnan(conf) else f"{object_type} {round(float(conf), 4):.2f}"
    attrs = garments.attributes[i] if garments.attributes is not None else None
    attrs = attrs if isinstance(attrs, Mapping) else {}
    listed = attrs.get("colours")
    colours: list[tuple[str, tuple[int, int, int] | None]] = []
    rgb = _palette_rgb()
    for c in (listed if isinstance(listed, list) else [])[:max_colours]:
        cid, _, unsure = _field(c)
        colours.append((_shown(cid, unsure), None if cid is None else rgb.get(cid)))
    if not colours and _colours_uncertain(garments, i, attrs, listed):
        colours.append(("colour ?", None))
    return LabelText(name, tuple(colours))


def garment_label(garments: Garments, i: int, *, max_colours: int = 2) -> str:
    """``"jeans 0.91 | blue, black"``: garment ``i``'s label as text (:func:`garment_label_text`)."""
    return str(garment_label_text(garments, i, max_colours=max_colours))


# ------------------------------------------------------------------------------------------ colours


def _rect_gap(a: Sequence[float], b: Sequence[float]) -> float:
    """Distance between two ``x0, y0, x1, y1`` rectangles (0 when they touch or overlap)."""
    dx = max(0.0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0.0, max(a[1], b[1]) - min(a[3], b[3]))
    return float(np.hypot(dx, dy))


def garment_colours(boxes: Sequence[Sequence[float]], *, near: float = 0.0,
                    palette: Sequence[tuple[int, int, int]] = GARMENT_PALETTE) -> list[tuple[int, int, int]]:
    """One palette colour per garment (``boxes`` as ``x0, y0, x1, y1``): greedily, in order, the
    colour least used by garments whose boxes are within ``near`` pixels of this one (touching or
    overlapping), then least used overall, then first in the palette. Neighbours share a colour only
    when more than ``len(palette)`` garments crowd around one."""
    if not palette:
        raise ValueError("expected a palette with at least one colour")
    chosen: list[int] = []
    used = np.zeros(len(palette), int)
    for i, box in enumerate(boxes):
        by_neighbours = np.zeros(len(palette), int)
        for j in range(i):
            if _rect_gap(box, boxes[j]) <= near:
                by_neighbours[chosen[j]] += 1
        k = min(range(len(palette)), key=lambda c: (by_neighbours[c], used[c], c))
        chosen.append(k)
        used[k] += 1
    return [tuple(palette[k]) for k in chosen]  # type: ignore[misc]


# ------------------------------------------------------------------------------------------ placement


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _overlap_area(a: Rect, b: Sequence[float]) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _candidates(box: Sequence[float], lw: int, lh: int) -> list[tuple[int, int]]:
    """Top-left corners around ``box``, in order of preference: above it, inside its top, below it,
    inside its bottom, beside it, then further above and below."""
    x0, y0, x1, y1 = (round(v) for v in box)
    ym = (y0 + y1 - lh) // 2
    out = [(x0, y0 - lh), (x1 - lw, y0 - lh), (x0, y0), (x1 - lw, y0), (x0, y1), (x1 - lw, y1),
           (x0, y1 - lh), (x1 - lw, y1 - lh), (x1, y0), (x0 - lw, y0), (x1, ym), (x0 - lw, ym),
           (x1, y1 - lh), (x0 - lw, y1 - lh)]
    for k in (1, 2, 3):
        out += [(x0, y0 - lh * (k + 1)), (x0, y1 + lh * k), (x0, y0 + lh * k), (x1, y0 + lh * k),
                (x0 - lw, y0 + lh * k)]
    return out


def place_labels(sizes: Sequence[tuple[int, int]], boxes: Sequence[Sequence[float]], width: int, height: int, *,
                 reserved: Sequence[Rect] = (), garment_pixels: np.ndarray | None = None) -> list[Rect | None]:
    """Greedy label placement: one ``(x0, y0, x1, y1)`` rectangle per label of size ``(w, h)`` for the
    garment in ``boxes[i]`` (``x0, y0, x1, y1``), inside the ``width × height`` picture and overlapping
    no other label nor a ``reserved`` rectangle.

    Garments are placed smallest box first (they have the fewest good places). Each tries the
    candidates of :func:`_candidates`, clamped into the picture, and takes the free one that hides
    least of the garments (``garment_pixels``: an ``height × width`` bool map of every garment's
    mask) and of the other garments' boxes, preferring earlier candidates; when all are taken, the
    free position on a grid over the picture nearest to its box. None for a label larger than the
    picture or with no free place left.
    """
    if len(sizes) != len(boxes):
        raise ValueError(f"expected one size per box, got {len(sizes)} sizes and {len(boxes)} boxes")
    placed: list[Rect] = list(reserved)
    out: list[Rect | None] = [None] * len(sizes)
    covered = None
    if garment_pixels is not None:
        if garment_pixels.shape != (height, width):
            raise ValueError(f"garment_pixels: expected a {height}×{width} map, got shape {garment_pixels.shape}")
        covered = cv2.integral(garment_pixels.astype(np.uint8))  # (h+1)×(w+1) sums: pixels under any rectangle
    order = sorted(range(len(boxes)), key=lambda i: ((boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1]), i))
    for i in order:
        lw, lh = sizes[i]
        if lw > width or lh > height or lw <= 0 or lh <= 0:
            continue
        box = boxes[i]
        others = [boxes[j] for j in range(len(boxes)) if j != i]

        def clamp(x: int, y: int, lw: int = lw, lh: int = lh) -> Rect:
            x, y = min(max(0, x), width - lw), min(max(0, y), height - lh)
            return (x, y, x + lw, y + lh)

        best: tuple[float, int, Rect] | None = None
        for rank, (x, y) in enumerate(_candidates(box, lw, lh)):
            r = clamp(x, y)
            if any(_overlaps(r, p) for p in placed):
                continue
            cost = 0.25 * sum(_overlap_area(r, o) for o in others) / (lw * lh) + 0.03 * rank
            if covered is not None:
                cost += float(covered[r[3], r[2]] - covered[r[1], r[2]] - covered[r[3], r[0]]
                              + covered[r[1], r[0]]) / (lw * lh)
            if best is None or cost < best[0]:
                best = (cost, rank, r)
        if best is None:  # every candidate is taken: the nearest free place on a grid
            anchor = (box[0], box[1])
            free = [clamp(x, y) for y in range(0, height - lh + 1, max(1, lh // 2))
                    for x in range(0, width - lw + 1, max(1, lw // 8))]
            free = [r for r in free if not any(_overlaps(r, p) for p in placed)]
            if not free:
                continue
            r = min(free, key=lambda r: (np.hypot(r[0] - anchor[0], r[1] - anchor[1]), r[1], r[0]))
            best = (0.0, 0, r)
        out[i] = best[2]
        placed.append(best[2])
    return out


# ------------------------------------------------------------------------------------------ drawing


@dataclass(frozen=True)
class _Style:
    font: float
    text_thick: int
    line: int
    pad: int


def _style(h: int, w: int) -> _Style:
    side = min(h, w)
    font = max(0.4, side / 900)  # labels grow with the photo, so they read the same at any size
    return _Style(font=font, text_thick=max(1, round(font * 0.9)), line=2 if side < 700 else 3,
                  pad=max(2, round(side / 300)))


def _label_size(text: LabelText, st: _Style) -> tuple[int, int, int, int]:
    """``(width, height, text height, baseline)`` of a drawn label."""
    (tw, th), base = cv2.getTextSize(str(text), _FONT, st.font, st.text_thick)
    swatches = sum(1 for _, rgb in text.colours if rgb is not None)
    return tw + 2 * st.pad + swatches * (th + st.pad), th + base + 2 * st.pad, th, base


def _fit_label(text: LabelText, st: _Style, width: int) -> LabelText:
    """``text``, shortened to fit ``width`` pixels: fewer colours, then a cut name."""
    colours = list(text.colours)
    while colours and _label_size(LabelText(text.name, tuple(colours)), st)[0] > width:
        colours.pop()
    name = text.name
    while len(name) > 1 and _label_size(LabelText(name, tuple(colours)), st)[0] > width:
        name = name[:-2] + "."
    return LabelText(name, tuple(colours))


def _ink(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white text, whichever reads better on ``rgb``."""
    luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (0, 0, 0) if luminance > 150 else (255, 255, 255)


def _draw_label(out: np.ndarray, rect: Rect, text: LabelText, colour: tuple[int, int, int], st: _Style) -> None:
    x0, y0, x1, y1 = rect
    cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), colour, -1)
    ink = _ink(colour)
    _, _, th, base = _label_size(text, st)
    x, baseline = x0 + st.pad, y1 - st.pad - base

    def put(s: str) -> None:
        nonlocal x
        cv2.putText(out, s, (x, baseline), _FONT, st.font, ink, st.text_thick, cv2.LINE_AA)
        x += cv2.getTextSize(s, _FONT, st.font, st.text_thick)[0][0]

    put(text.name)
    for k, (name, rgb) in enumerate(text.colours):
        put(" | " if k == 0 else ", ")
        if rgb is not None:  # a swatch of the colour the word names, outlined so white and black show
            cv2.rectangle(out, (x, baseline - th), (x + th - 1, baseline - 1), rgb, -1)
            cv2.rectangle(out, (x, baseline - th), (x + th - 1, baseline - 1), ink, 1)
            x += th + st.pad
        put(name)


def _leader(out: np.ndarray, rect: Rect, box: Sequence[float], colour: tuple[int, int, int]) -> None:
    """A line from a label placed away from its box to the box's nearest point."""
    if _rect_gap(rect, box) <= 2:
        return
    cx, cy = (rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2
    bx, by = min(max(cx, box[0]), box[2]), min(max(cy, box[1]), box[3])
    lx, ly = min(max(bx, rect[0]), rect[2] - 1), min(max(by, rect[1]), rect[3] - 1)
    cv2.line(out, (int(lx), int(ly)), (int(bx), int(by)), colour, 1, cv2.LINE_AA)


def _fit_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A full-resolution mask at the drawn image's size (nearest neighbour)."""
    if mask.shape == shape:
        return mask.astype(bool)
    return cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)


@dataclass(frozen=True)
class GarmentDrawing:
    """How :func:`annotate` draws one garment: its colour, box (``x0, y0, x1, y1`` in the drawn
    picture's pixels), label and the label's rectangle (None when no free place was left for it)."""

    colour: tuple[int, int, int]
    box: tuple[float, float, float, float]
    text: LabelText
    label_rect: Rect | None


def layout(result: TagResult, height: int, width: int, *, masks: Sequence[np.ndarray] | None = None
           ) -> list[GarmentDrawing]:
    """Colours, labels and label places of ``result``'s garments in a ``height × width`` picture
    (:func:`garment_colours`, :func:`garment_label_text`, :func:`place_labels`). ``masks``: the
    garments' masks already at that size (else fitted from ``result``)."""
    garments = result.garments
    s = width / (result.width or width)
    st = _style(height, width)
    # boxes rounded as in the JSON record (2 decimals): a live result and its saved line draw the same pixels
    boxes = [(b[0] * s, b[1] * s, (b[0] + b[2]) * s, (b[1] + b[3]) * s) for b in (garments.bbox_json(i) for i in garments)]
    colours = garment_colours(boxes, near=0.02 * float(np.hypot(height, width)))
    if masks is None and garments.mask is not None:
        masks = [_fit_mask(garments.mask[i], (height, width)) for i in garments]
    any_garment = None
    if masks is not None and len(masks):
        any_garment = np.logical_or.reduce([np.asarray(m, bool) for m in masks])
    reserved: list[Rect] = []
    if result.mode == "whole_image_fallback":
        (nw, nh), _ = cv2.getTextSize(_FALLBACK_NOTE, _FONT, st.font, 1)
        reserved.append((0, max(0, height - 10 - nh - 2), min(width, 8 + nw + 2), height))
    texts = [_fit_label(garment_label_text(garments, i), st, width) for i in garments]
    sizes = [_label_size(t, st)[:2] for t in texts]
    rects = place_labels(sizes, boxes, width, height, reserved=reserved, garment_pixels=any_garment)
    return [GarmentDrawing(colours[i], boxes[i], texts[i], rects[i]) for i in garments]


def annotate(rgb: np.ndarray, result: TagResult, *, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """A copy of ``rgb`` with each garment's mask outlined over a light tint (its box when it has
    no mask) and its label placed where it overlaps no other label and stays inside the picture
    (:func:`layout`).

    Boxes and masks in ``result`` are in the photo's full-resolution pixels (``result.width``);
    ``rgb`` may be smaller (a reduced decode) and is drawn on at its own size. ``alpha``: the tint's
    opacity, at most :data:`MAX_ALPHA`.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 RGB image, got shape {rgb.shape}")
    if not 0 <= alpha <= MAX_ALPHA:
        raise ValueError(f"alpha: expected a tint between 0 and {MAX_ALPHA} (the garment's colour must stay "
                         f"visible), got {alpha}")
    out = rgb.copy()
    h, w = out.shape[:2]
    st = _style(h, w)
    garments = result.garments
    masks = None if garments.mask is None else [_fit_mask(garments.mask[i], (h, w)) for i in garments]
    plan = layout(result, h, w, masks=masks)
    contours: list[Any] = [None] * len(plan)
    for i, g in enumerate(plan):
        if masks is None:
            continue
        m = masks[i]
        if alpha > 0:
            out[m] = (out[m] * (1 - alpha) + np.array(g.colour) * alpha + 0.5).astype(np.uint8)
        contours[i], _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    for c in contours:  # dark rims first, so no garment's rim covers another's line
        if c:
            cv2.drawContours(out, c, -1, (0, 0, 0), st.line + 2, cv2.LINE_AA)
    for c, g in zip(contours, plan):
        if c:
            cv2.drawContours(out, c, -1, g.colour, st.line, cv2.LINE_AA)
        else:  # no mask (or an empty one): the box
            x0, y0, x1, y1 = (int(v) for v in g.box)
            cv2.rectangle(out, (x0, y0), (x1, y1), g.colour, st.line)
    if result.mode == "whole_image_fallback":
        cv2.putText(out, _FALLBACK_NOTE, (8, h - 10), _FONT, st.font, (255, 255, 0), 1, cv2.LINE_AA)
    for g in plan:  # leaders first: a label is never crossed by another's leader
        if g.label_rect is not None:
            _leader(out, g.label_rect, g.box, g.colour)
    for g in plan:
        if g.label_rect is not None:
            _draw_label(out, g.label_rect, g.text, g.colour, st)
    return out


def render_result(rgb: np.ndarray, record: Mapping[str, Any], *, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """:func:`annotate` for a saved record (a JSON line of ``fashionlens tag``)."""
    return annotate(rgb, TagResult.from_json(record), alpha=alpha)
