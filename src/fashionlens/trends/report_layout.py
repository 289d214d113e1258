"""Layout of the HTML trends report: charts readable on a phone and on a laptop, and a plain line
instead of empty sections.

Every chart is drawn twice (:func:`draw_both`): ``WIDE`` (8 in at 90 dpi, shown at its natural size;
legends to the right of the plots, panels two a row) and ``NARROW`` (4 in at 180 dpi, shown at half
its pixel size, so 360 CSS px wide and sharp on 2× screens; legends below the plots, one panel a
row). :func:`picture_html` lets the browser pick: the narrow PNG up to 720 CSS px of screen width.
Both use 10 pt text (9 pt ticks and legends), which is 12.5 (11.25) CSS px in either, and
constrained layout with the legend *outside* the axes, so a legend never covers data.
"""

from __future__ import annotations

import contextvars
import html
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd

NARROW_MAX_CSS_PX = 720  # screens up to this width get the narrow charts


@dataclass(frozen=True)
class ChartLayout:
    """One way to draw the report's charts: figure width, pixel density, text sizes, panels, legend place."""

    name: str
    width_in: float
    dpi: int
    density: int  # PNG pixels per CSS pixel (the ``srcset`` ``x`` descriptor)
    font_pt: float
    small_pt: float  # ticks and legends
    columns: int  # panels per row at most
    legend_loc: str  # a matplotlib "outside …" figure-legend location
    legend_cols: int

    def css_px(self, pt: float) -> float:
        """The size in CSS pixels of ``pt``-point text in this layout's PNG as the report shows it."""
        return pt * self.dpi / 72 / self.density


WIDE = ChartLayout("wide", 8.0, 90, 1, 10.0, 9.0, 2, "outside right upper", 1)
NARROW = ChartLayout("narrow", 4.0, 180, 2, 10.0, 9.0, 1, "outside lower center", 2)
_CURRENT: contextvars.ContextVar[ChartLayout] = contextvars.ContextVar("chart_layout", default=WIDE)


def current() -> ChartLayout:
    """The layout charts are being drawn in (``WIDE`` outside :func:`use`)."""
    return _CURRENT.get()


@contextmanager
def use(layout: ChartLayout) -> Iterator[ChartLayout]:
    """Draw in ``layout``: its text sizes and constrained layout for every figure made meanwhile."""
    import matplotlib.pyplot as plt

    token = _CURRENT.set(layout)
    rc = {"font.size": layout.font_pt, "axes.titlesize": layout.font_pt, "axes.labelsize": layout.font_pt,
          "xtick.labelsize": layout.small_pt, "ytick.labelsize": layout.small_pt,
          "legend.fontsize": layout.small_pt, "figure.constrained_layout.use": True, "savefig.dpi": layout.dpi}
    try:
        with plt.rc_context(rc):
            yield layout
    finally:
        _CURRENT.reset(token)


def subplots(height_in: float) -> tuple[Any, Any]:
    """``(figure, axes)``: one plot, the current layout's width, ``height_in`` tall."""
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(current().width_in, height_in))


def panels(n: int, height_in: float) -> tuple[Any, list[Any]]:
    """``(figure, axes)``: ``n`` panels sharing the x axis, ``height_in`` tall each row; a row holds the
    layout's ``columns`` panels (three in one row when there are exactly three and the layout allows two
    or more, so every panel keeps its date labels)."""
    import matplotlib.pyplot as plt

    lay = current()
    cols = 1 if lay.columns == 1 else (n if n <= 3 else lay.columns)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(lay.width_in, height_in * rows), squeeze=False, sharex=True)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def legend(fig: Any, **kwargs: Any) -> Any:
    """One legend for the whole figure, outside every plot: right of them (wide) or below (narrow)."""
    handles, labels = [], []
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels and not lab.startswith("_"):
                handles.append(h)
                labels.append(lab)
    if not handles:
        return None
    lay = current()
    # columns only while the labels fit side by side (about 2 characters of 9 pt text per 0.13 in)
    per_column = max(len(lab) for lab in labels) * 0.075 * lay.small_pt / 9 + 0.5
    cols = max(1, min(lay.legend_cols, len(labels), int(lay.width_in // per_column)))
    return fig.legend(handles, labels, loc=lay.legend_loc, ncols=cols, frameon=False, **kwargs)


def tidy_dates(fig: Any) -> None:
    """Date axes with few, short labels (``2014``, ``Apr``, ``Jul`` …): at most 5 on a narrow chart, 9 on a wide one."""
    import matplotlib.dates as mdates

    most = 5 if current().columns == 1 else 9
    for ax in fig.axes:
        if isinstance(ax.xaxis.get_major_locator(), mdates.AutoDateLocator):
            loc = mdates.AutoDateLocator(minticks=3, maxticks=most)
            loc.intervald[mdates.MONTHLY] = [1, 2, 3, 4, 6, 12]  # yearly ticks rather than a warning
            ax.xaxis.set_major_locator(loc)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc, show_offset=False))


def draw_both(draw: Callable[..., str], *args: Any) -> tuple[str, str]:
    """``(wide, narrow)``: the base64 PNGs ``draw(*args)`` makes in each layout."""
    with use(WIDE):
        wide = draw(*args)
    with use(NARROW):
        narrow = draw(*args)
    return wide, narrow


def picture_html(wide_b64: str, narrow_b64: str, alt: str) -> str:
    """A ``<picture>``: the narrow PNG (at 2 PNG pixels per CSS pixel) up to ``NARROW_MAX_CSS_PX`` of screen
    width, else the wide one; never wider than the page."""
    return (f"<picture><source media='(max-width: {NARROW_MAX_CSS_PX}px)' "
            f"srcset='data:image/png;base64,{narrow_b64} {NARROW.density}x'>"
            f"<img class='chart' src='data:image/png;base64,{wide_b64}' alt='{html.escape(alt, quote=True)}'></picture>")


PAGE_CSS = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:0 8px}"
            "img.chart{max-width:100%;height:auto}"
            "table.t{border-collapse:collapse;font-size:12px;display:block;overflow-x:auto;max-width:100%}"
            "table.t td,table.t th{padding:2px 6px;border-bottom:1px solid #ddd}"
            "p.left-out{background:#f4f4f4;border-left:4px solid #999;padding:6px 10px}")
VIEWPORT = "<meta name='viewport' content='width=device-width, initial-scale=1'>"

# social tables: which column of the post metadata fills them
_SOCIAL: dict[str, tuple[str, str]] = {
    "top_authors_activity": ("authors", "author"), "top_authors_engagement": ("authors", "author"),
    "hashtags": ("hashtags", "hashtags"), "hashtag_pairs": ("hashtags", "hashtags"),
    "sentiment": ("sentiment", "caption")}
_PLACES = ("rising_falling", "lead_lag")


def _join(words: Sequence[str]) -> str:
    words = list(dict.fromkeys(words))
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def split_sections(sections: Sequence[tuple[str, str]], tables: dict[str, pd.DataFrame], posts: pd.DataFrame, *,
                   min_support: int) -> tuple[list[tuple[str, str]], list[str]]:
    """``(kept, lines)``: the ``(title, table key)`` sections whose table has rows, and one plain line per
    kind of left-out section saying what would fill it (post metadata columns, places, more periods)
    or that nothing was found (spikes, shifts)."""
    kept = [(t, k) for t, k in sections if k in tables and tables[k] is not None and not tables[k].empty]
    empty = [(t, k) for t, k in sections if (t, k) not in kept]
    lines = []
    social = [(k, *_SOCIAL[k]) for _, k in empty if k in _SOCIAL]
    if social:
        what = _join([w for _, w, _ in social])
        cols = _join([c for _, _, c in social])
        none = [c for _, _, c in social if c in posts.columns and posts[c].notna().any()]
        extra = f" (the posts' {_join(none)} gave nothing to count)" if none else ""
        lines.append(f"{what[0].upper() + what[1:]} need post metadata: pass --meta posts.csv with "
                     f"{cols} column{'s' if len({c for _, _, c in social}) > 1 else ''}{extra}.")
    if any(k in _PLACES for _, k in empty):
        lines.append(f"Rising/falling per place and lead–lag need places with at least {min_support} labelled posts "
                     "per period: a city column in --meta (StreetStyle: city_id), more posts, or a lower "
                     "--min-support.")
    if any(k == "forecasts" for _, k in empty):
        lines.append(f"Forecasts need at least 12 periods with {min_support} or more labelled posts each.")
    found = [t.split(" (")[0] for t, k in empty if k in ("spikes", "shifts")]
    if found:
        lines.append(f"None found, so left out: {_join([f.lower() for f in found])}.")
    known = set(_SOCIAL) | set(_PLACES) | {"forecasts", "spikes", "shifts"}
    others = [t for t, k in empty if k not in known]
    if others:
        lines.append(f"Left out, nothing to show: {_join(others)}.")
    return kept, lines
