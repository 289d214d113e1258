"""The HTML report's layout (trends/report_layout.py): no empty sections (one line says which inputs would
fill them), charts drawn wide and narrow with text of at least 10 CSS px and legends outside the plots."""

import base64
import io
import re
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from fashionlens.trends import report as report_module
from fashionlens.trends import report_layout as layout
from fashionlens.trends.inputs import load_inputs
from fashionlens.trends.report import build_report
from fashionlens.trends.synthetic import write_tagged_posts

MODELS = ["mean", "last", "cyclic"]
SOCIAL_TITLES = ("Top authors by activity", "Top authors by engagement", "Hashtags", "Hashtag co-occurrence",
                 "Caption sentiment")


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Tag results, their full post metadata, and a metadata table with only image and timestamp."""
    root = tmp_path_factory.mktemp("gen-layout")
    results, posts = write_tagged_posts(root, 4000, months=24, seed=5)
    bare = root / "posts_bare.csv"
    pd.read_csv(posts)[["image", "timestamp"]].to_csv(bare, index=False)
    return results, posts, bare


def _h2(page: str) -> list[str]:
    return re.findall(r"<h2>(.*?)</h2>", page)


def test_report_without_social_inputs_leaves_sections_out_and_says_why(generated, tmp_path: Path):
    results, _, bare = generated
    build_report(load_inputs([results], bare), tmp_path, max_forecast_series=4, models=MODELS, progress=False)
    page = (tmp_path / "report.html").read_text()
    titles = _h2(page)
    assert not set(SOCIAL_TITLES) & set(titles), titles
    assert "Lead–lag between places" not in titles  # no places either
    assert "<em>none</em>" not in page  # no empty table anywhere (the validation table included)
    lines = re.findall(r"<p class='left-out'>(.*?)</p>", page)
    assert "Authors, hashtags and sentiment need post metadata: pass --meta posts.csv with author, hashtags and " \
           "caption columns." in lines, lines
    assert any(line.startswith("Rising/falling per place and lead–lag need places") for line in lines), lines
    # the tables are still written, empty, for scripts that read them
    assert (tmp_path / "hashtags.csv").is_file() and (tmp_path / "sentiment.csv").is_file()
    assert "Largest forecast changes" in " ".join(titles) and "name='viewport'" in page


def test_report_with_social_inputs_keeps_every_section(generated, tmp_path: Path):
    results, posts, _ = generated
    build_report(load_inputs([results], posts), tmp_path, max_forecast_series=4, models=MODELS, progress=False)
    page = (tmp_path / "report.html").read_text()
    titles = _h2(page)
    assert set(SOCIAL_TITLES) <= set(titles)
    assert not any("need post metadata" in line for line in re.findall(r"<p class='left-out'>(.*?)</p>", page))


@pytest.mark.parametrize("columns, line", [
    (["author", "hashtags", "caption"], ("Authors, hashtags and sentiment need post metadata: pass --meta posts.csv "
                                         "with author, hashtags and caption columns.")),
    (["caption"], "Sentiment need post metadata: pass --meta posts.csv with caption column."),
    (["hashtags"], "Hashtags need post metadata: pass --meta posts.csv with hashtags column."),
])
def test_split_sections_lines(columns, line):
    sections = [("Top authors by activity", "top_authors_activity"), ("Hashtags", "hashtags"),
                ("Caption sentiment", "sentiment"), ("Spikes (robust z)", "spikes")]
    full = pd.DataFrame({"x": [1]})
    empty_for = {"author": "top_authors_activity", "hashtags": "hashtags", "caption": "sentiment"}
    tables = {k: full for _, k in sections}
    for c in columns:
        tables[empty_for[c]] = pd.DataFrame()
    posts = pd.DataFrame({"author": [None], "hashtags": [None], "caption": [None]})
    kept, lines = layout.split_sections(sections, tables, posts, min_support=30)
    assert [k for _, k in kept] == [k for _, k in sections if k not in {empty_for[c] for c in columns}]
    assert lines == [line]
    tables["spikes"] = pd.DataFrame()
    assert layout.split_sections(sections, tables, posts, min_support=30)[1][-1] == "None found, so left out: spikes."


def test_charts_readable_on_a_phone_with_legends_outside(generated, tmp_path: Path, monkeypatch):
    """Every chart in both layouts: text ≥ 10 CSS px as shown, no figure legend over an axes, and the narrow
    PNG fits a 390 px screen at its 2× density (so it is not shrunk)."""
    import matplotlib.text

    results, posts, _ = generated
    seen: list[dict] = []
    original = report_module._png

    def capture(fig) -> str:
        fig.autofmt_xdate()
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        lay = layout.current()
        texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
        axes = [ax.get_window_extent(renderer).frozen() for ax in fig.axes if ax.get_visible()]
        legends = [leg.get_window_extent(renderer).frozen() for leg in fig.legends]
        legends += [ax.get_legend().get_window_extent(renderer).frozen() for ax in fig.axes if ax.get_legend()]
        inside = [b.x0 >= -1 and b.x1 <= fig.bbox.width + 1 for b in legends]
        b64 = original(fig)
        seen.append({"layout": lay.name, "min_px": min(lay.css_px(t.get_fontsize()) for t in texts),
                     "overlap": [(a, b) for a in axes for b in legends if a.overlaps(b)], "legends": len(legends),
                     "legends_inside": all(inside),
                     "css_width": Image.open(io.BytesIO(base64.b64decode(b64))).width / lay.density})
        return b64

    monkeypatch.setattr(report_module, "_png", capture)
    build_report(load_inputs([results], posts), tmp_path, max_forecast_series=4, models=MODELS, progress=False)
    assert {s["layout"] for s in seen} == {"wide", "narrow"} and len(seen) == 10  # 5 charts × 2 layouts
    assert sum(s["legends"] for s in seen) >= 4  # trends and forecast charts, each layout
    for s in seen:
        assert s["min_px"] >= 10, s
        assert s["overlap"] == [] and s["legends_inside"], s
        if s["layout"] == "narrow":
            assert 300 <= s["css_width"] <= 374, s  # 390 px minus the page's 8 px padding each side
        else:
            assert s["css_width"] <= 1100, s
    page = (tmp_path / "report.html").read_text()
    assert page.count("<picture>") == 5 and page.count(" 2x'>") == 5
