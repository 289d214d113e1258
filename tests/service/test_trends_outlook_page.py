"""``GET /v1/trends/{dataset}/outlook`` (series ranked by forecast change) and the trends page's default
view in headless Chromium at a phone's and a laptop's size: a forecast is shown, chart text is at least
10 CSS px, legends sit under the plots. The app holds only a trends dataset (generated tagged posts plus
a yes/no attribute), so no model is loaded.

Screenshots go to the test's temporary folder and to ``/tmp/fashionlens_screens/trends_*.png``. The
browser tests are skipped, with the reason, without Playwright or a Chromium binary.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

SCREENS = Path("/tmp/fashionlens_screens")
SIZES = [(390, 844), (1366, 900)]


def _with_hat(data: Any) -> Any:
    """The generated posts plus ``wearing_hat`` yes/no (yes for half the long sleeves: seasonal, so forecastable)."""
    from fashionlens.trends.inputs import TrendData

    lab = data.labels.astype({"attribute": str, "value": str})
    sleeve = lab[lab["attribute"] == "sleeve"]
    hat = pd.DataFrame({"post": sleeve["post"].to_numpy(), "attribute": "wearing_hat",
                        "value": np.where((sleeve["value"] == "long") & (sleeve["post"] % 2 == 0), "Yes", "No")})
    labels = pd.concat([lab, hat], ignore_index=True).astype({"attribute": "category", "value": "category"})
    return TrendData(data.posts, labels, data.report, data.sources)


@pytest.fixture(scope="module")
def trends_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from fashionlens.service import ServiceSettings, create_app
    from fashionlens.service.models import ServiceModels
    from fashionlens.trends.inputs import load_inputs
    from fashionlens.trends.synthetic import write_tagged_posts

    results, posts = write_tagged_posts(tmp_path_factory.mktemp("trends-page"), 2400, months=24, seed=1)
    settings = ServiceSettings(preload=False)
    models = ServiceModels(settings, trends={"synthetic": _with_hat(load_inputs([results], posts))})
    models.ready = True
    return create_app(settings, models=models)


@pytest.fixture(scope="module")
def client(trends_app: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(trends_app) as c:
        yield c


# ------------------------------------------------------------------------------------------------ the router

def test_outlook_ranks_series_by_forecast_change(client: Any) -> None:
    r = client.get("/v1/trends/synthetic/outlook", params={"limit": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["baseline"] == "last" and "ets" not in body["models"] and body["horizon"] == 6
    series = body["series"]
    assert 1 <= len(series) <= 5 and body["candidates"] >= len(series) and body["beat_baseline"] >= 1
    best = series[0]
    assert best["rank"] == 1 and best["beats_baseline"] and best["confidence"] > 0
    ranked = [s for s in series if s["beats_baseline"]]
    assert [s["confidence"] for s in ranked] == sorted((s["confidence"] for s in ranked), reverse=True)
    assert [s["rank"] for s in ranked] == list(range(1, len(ranked) + 1))
    for s in series:
        assert s["series"] == f"{s['attribute']}={s['value']}"
        assert len(s["forecasts"]) == 6 and [f["step"] for f in s["forecasts"]] == list(range(1, 7))
        end = s["forecasts"][-1]
        assert end["period"] == s["horizon_period"] and end["forecast"] == pytest.approx(s["forecast"])
        assert s["change"] == pytest.approx(s["forecast"] - s["last_share"])
        assert s["confidence"] == pytest.approx(abs(s["change"]) / s["width"])
        assert s["points"] and {"period", "n", "k", "share", "ci_low", "ci_high", "supported"} <= set(s["points"][0])
        last = [p for p in s["points"] if p["supported"]][-1]
        assert last["period"] == s["last_period"] and last["share"] == pytest.approx(s["last_share"])
    assert all(s["series"] != "wearing_hat=No" for s in series)
    # the seasonal sleeves (and the hat that follows them) change most in the generated data
    assert best["attribute"] in {"sleeve", "wearing_hat"}, [s["series"] for s in series]


def test_outlook_of_one_attribute_and_binary_attributes(client: Any) -> None:
    body = client.get("/v1/trends/synthetic/outlook", params={"attribute": "pattern", "limit": 64}).json()
    assert {s["attribute"] for s in body["series"]} == {"pattern"}
    assert {s["value"] for s in body["series"]} == {"plain", "striped", "floral", "checked", "graphic"}
    hat = client.get("/v1/trends/synthetic/outlook", params={"attribute": "wearing_hat"}).json()
    assert [s["series"] for s in hat["series"]] == ["wearing_hat=Yes"]  # yes/no: only the yes share
    # cached: the same answer again
    assert client.get("/v1/trends/synthetic/outlook", params={"attribute": "pattern", "limit": 64}).json() == body


@pytest.mark.parametrize("params, status", [
    ({"attribute": "nope"}, 422), ({"limit": 65}, 422), ({"horizon": 0}, 422), ({"period": "year"}, 422),
    ({"min_support": 100_000}, 200),
])
def test_outlook_rejects_bad_queries(client: Any, params: dict[str, Any], status: int) -> None:
    r = client.get("/v1/trends/synthetic/outlook", params=params)
    assert r.status_code == status, r.text
    if status == 200:  # no period has that many posts: nothing to forecast, said with an empty list
        assert r.json()["series"] == [] and r.json()["candidates"] == 0
    assert client.get("/v1/trends/other/outlook").status_code == 404


# ------------------------------------------------------------------------------------------------ the page

@pytest.fixture(scope="module")
def server(trends_app: Any) -> Iterator[str]:
    from test_web_browser import _Server

    with _Server(trends_app) as s:
        yield s.url


def _page(browser: Any, width: int, height: int) -> tuple[Any, Any, list[str], list[str]]:
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
    pg = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1:", "blob:", "data:"))
          else None)
    return context, pg, errors, outside


def _wait(page: Any, js: str, timeout_s: float = 30.0) -> None:
    """Poll ``js`` until true (``wait_for_function`` needs 'unsafe-eval', which the page's CSP refuses)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(f"() => Boolean({js})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {js}")
        time.sleep(0.1)


def _shot(page: Any, tmp_path: Path, name: str) -> None:
    data = page.screenshot(full_page=True)
    (tmp_path / f"{name}.png").write_bytes(data)
    SCREENS.mkdir(parents=True, exist_ok=True)
    (SCREENS / f"{name}.png").write_bytes(data)


# every text of the charts with its computed size and the size it is drawn at (the SVG's scale applied),
# and where the plots and their legends are
_MEASURE = """() => {
  const texts = Array.from(document.querySelectorAll('#charts svg.chart text')).map((t) => {
    const svg = t.ownerSVGElement, ctm = svg.getScreenCTM();
    const css = parseFloat(getComputedStyle(t).fontSize);
    return {text: t.textContent, css, drawn: css * Math.hypot(ctm.a, ctm.b), height: t.getBBox().height * ctm.a};
  });
  const html = Array.from(document.querySelectorAll('#charts .chart-legend li, #charts figcaption span'))
    .map((e) => ({text: e.textContent, css: parseFloat(getComputedStyle(e).fontSize)}));
  const boxes = Array.from(document.querySelectorAll('#charts figure')).map((f) => {
    const s = f.querySelector('svg.chart').getBoundingClientRect(), l = f.querySelector('.chart-legend').getBoundingClientRect();
    return {svgLeft: s.left, svgRight: s.right, svgBottom: s.bottom, legendTop: l.top, legendHeight: l.height};
  });
  return {texts, html, boxes, scrollWidth: document.documentElement.scrollWidth};
}"""


@pytest.mark.parametrize("width, height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_default_view_shows_the_largest_forecast_change(browser: Any, server: str, client: Any, tmp_path: Path,
                                                         width: int, height: int) -> None:
    context, page, errors, outside = _page(browser, width, height)
    try:
        page.goto(server + "/trends")
        _wait(page, "document.getElementById('charts').dataset.forecasts !== undefined")
        _wait(page, "document.getElementById('status').textContent.includes('with events')")
        assert page.get_attribute("#charts", "data-view") == "outlook"
        assert int(page.get_attribute("#charts", "data-forecasts")) >= 1
        best = client.get("/v1/trends/synthetic/outlook", params={"limit": 3}).json()["series"][0]
        first = page.locator("#charts figure").first
        assert first.locator("svg.chart").get_attribute("data-series") == best["series"]
        assert first.locator("polyline.forecast").count() == 1 and first.locator("polygon.forecast-band").count() == 1
        assert "#1" in first.locator("figcaption").inner_text() and "interval" in first.locator("figcaption").inner_text()
        assert "forecast" in first.locator(".chart-legend").inner_text()
        assert page.locator("svg.chart[data-series='wearing_hat=No']").count() == 0
        m = page.evaluate(_MEASURE)
        sizes = [t["drawn"] for t in m["texts"]]
        print(f"{width}x{height}: chart text drawn at {min(sizes):.1f}–{max(sizes):.1f} px (CSS {sorted({t['css'] for t in m['texts']})}), "
              f"legend/caption {sorted({h['css'] for h in m['html']})} px")
        assert m["texts"] and min(sizes) >= 10, m["texts"]
        assert min(t["height"] for t in m["texts"]) >= 10  # the glyph boxes too, not only the declared size
        assert all(h["css"] >= 10 for h in m["html"]), m["html"]
        for b in m["boxes"]:  # the legend is below the plot, inside the page
            assert b["legendTop"] >= b["svgBottom"] - 0.5 and b["legendHeight"] > 0, b
            assert b["svgLeft"] >= 0 and b["svgRight"] <= width, b
        assert m["scrollWidth"] <= width
        _shot(page, tmp_path, f"trends_{width}x{height}")
    finally:
        context.close()
    assert errors == [], errors
    assert outside == [], outside


def test_attribute_view_binary_and_resizing(browser: Any, server: str, tmp_path: Path) -> None:
    context, page, errors, outside = _page(browser, 1366, 900)
    try:
        page.goto(server + "/trends")
        page.wait_for_selector("#attribute option[value='wearing_hat']", state="attached")
        page.select_option("#attribute", "wearing_hat")
        page.click("#trends-button")
        _wait(page, "document.getElementById('status').textContent.includes('with forecasts')")
        assert page.get_attribute("#charts", "data-view") == "attribute"
        keys = page.evaluate("Array.from(document.querySelectorAll('svg.chart')).map((s) => s.dataset.series)")
        assert keys == ["wearing_hat=Yes"]  # yes/no: the yes share only
        assert "only the share of “yes”" in page.inner_text("#charts")
        assert page.locator("svg.chart polyline.forecast").count() == 1
        page.select_option("#attribute", "pattern")
        page.click("#trends-button")
        _wait(page, "document.getElementById('status').textContent.includes('Shares of pattern') && "
                    "document.getElementById('status').textContent.includes('with forecasts')")
        assert page.locator("svg.chart").count() == 5 and int(page.get_attribute("#charts", "data-forecasts")) == 5
        wide = page.evaluate("document.querySelector('svg.chart').viewBox.baseVal.width")
        page.set_viewport_size({"width": 390, "height": 844})  # a chart is laid out again at its new width
        _wait(page, "document.querySelector('svg.chart').viewBox.baseVal.width < 400")
        m = page.evaluate(_MEASURE)
        assert wide > 1000 and min(t["drawn"] for t in m["texts"]) >= 10 and m["scrollWidth"] <= 390
        _shot(page, tmp_path, "trends_pattern_390x844")
    finally:
        context.close()
    assert errors == [], errors
    assert outside == [], outside
