// Trends: GET /v1/trends (datasets). Default view: GET …/outlook, the series whose forecast changes most
// (change ÷ interval width, among series whose model beats the naive forecast), drawn with forecast and
// interval. Attribute view: …/series (shares with 95% intervals) + …/outlook?attribute= (forecasts).
// Both add …/report (events). Hand-made SVG charts, no chart library: each chart is laid out at its
// rendered width (1 SVG unit = 1 CSS px), so text keeps its size on a phone; legends are HTML below.
"use strict";

(() => {
  const { api, say, el } = FL;
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const MAX_CHARTS = 8;      // attribute view: the most common values
  const OUTLOOK_CHARTS = 3;  // default view: the best-ranked series
  const HORIZON = 6;
  let datasets = [];
  let drawn = {};   // "attribute=value" → chart state
  let run = 0;      // the latest view asked for; answers to older ones are dropped

  function svgEl(tag, attrs = {}) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  const day = (iso) => String(iso || "").slice(0, 10);
  const pct = (x) => (100 * x).toFixed(1) + "%";
  const signed = (x) => (x >= 0 ? "+" : "−") + Math.abs(100 * x).toFixed(1) + " pts";
  const isBinary = (values) => values.length > 0
    && values.every((v) => ["yes", "no"].includes(String(v).trim().toLowerCase()));

  async function loadDatasets() {
    let answer;
    try { answer = await api("/v1/trends"); } catch (e) {
      say(`Trends are unavailable: ${e.message}`, "error");
      return;
    }
    datasets = answer.datasets || [];
    if (!datasets.length) {
      $("feature-notices").replaceChildren(el("p", { class: "notice",
        text: "No trends dataset is loaded on this server (fashionlens serve --trends NAME=PATH). Nothing to show." }));
      $("trends-button").disabled = true;
      return;
    }
    $("dataset").replaceChildren(...datasets.map((d) => el("option", { value: d.name,
      text: `${d.name} (${d.posts} posts)` })));
    fillAttributes();
    show();
  }

  function fillAttributes() {
    const ds = datasets.find((d) => d.name === $("dataset").value);
    $("attribute").replaceChildren(el("option", { value: "", text: "Largest forecast changes" }),
      ...(ds ? ds.attributes : []).map((a) => el("option", { value: a, text: a })));
  }

  function query() {
    return { ds: $("dataset").value, period: $("period").value, attribute: $("attribute").value,
             minSupport: $("min-support").value };
  }

  const path = (q, what, params) => `/v1/trends/${encodeURIComponent(q.ds)}/${what}?${new URLSearchParams(params)}`;

  async function show(ev) {
    if (ev) ev.preventDefault();
    const q = query();
    if (!q.ds) return;
    const mine = ++run;
    const current = () => mine === run;
    const box = $("charts");
    delete box.dataset.forecasts;
    box.dataset.view = q.attribute ? "attribute" : "outlook";
    box.setAttribute("aria-busy", "true");
    try {
      if (q.attribute) await showAttribute(q, current); else await showOutlook(q, current);
    } catch (e) {
      if (current()) say(`Trends failed: ${e.message}`, "error");
    } finally {
      if (current()) box.removeAttribute("aria-busy");
    }
  }

  // ---------------------------------------------------------------- default view: largest forecast changes

  async function showOutlook(q, current) {
    say("Ranking the series by forecast change…");
    const o = await api(path(q, "outlook", { period: q.period, min_support: q.minSupport, horizon: String(HORIZON),
                                             limit: String(OUTLOOK_CHARTS) }));
    if (!current()) return;
    $("charts-heading").textContent = "Largest forecast changes";
    const list = o.series || [];
    drawn = {};
    if (!list.length) {
      $("charts").replaceChildren(el("p", { class: "notice", text: "No series can be forecast: a forecast needs at "
        + `least 12 ${q.period}s with ${q.minSupport} or more labelled posts. Choose a lower minimum or an attribute.` }));
      $("charts").dataset.forecasts = "0";
      $("events").replaceChildren();
      say("Nothing to forecast.", "error");
      return;
    }
    const intro = o.beat_baseline
      ? `The ${list.length === 1 ? "series" : list.length + " series"} whose forecast ${HORIZON} ${q.period}s ahead moves `
        + "furthest from the last observed share, measured in forecast-interval widths; ranked among the "
        + `${o.beat_baseline} of ${o.candidates} series whose model beats the naive forecast (“no change”) in backtests.`
      : `No series' model beats the naive forecast (“no change”) in backtests, so no change is predicted with `
        + "confidence; shown: the largest changes anyway.";
    const nodes = list.map((s, i) => chart(s, s.points, { forecast: s.forecasts, caption: outlookCaption(s, i, q) }));
    $("charts").replaceChildren(el("p", { class: "muted outlook-intro", text: intro }), ...nodes);
    layoutCharts();
    $("charts").dataset.forecasts = String(list.filter((s) => (s.forecasts || []).length).length);
    say(`Largest forecast changes per ${q.period}. Looking for events…`);
    const report = await api(path(q, "report", { period: q.period, min_support: q.minSupport, max_series: "0" }));
    if (!current()) return;
    addEvents(report, (key) => key in drawn, "the series shown");
    say(`Largest forecast changes per ${q.period}, with events (${report.posts} posts). `
        + "Choose an attribute to see all its values.", "ok");
  }

  function outlookCaption(s, i, q) {
    const when = q.period === "month" ? (iso) => day(iso).slice(0, 7) : day;
    const trust = s.beats_baseline
      ? `backtest error ${(100 * s.mae).toFixed(1)} pts against ${(100 * s.baseline_mae).toFixed(1)} for “no change”`
      : `does not beat “no change” in backtests (${(100 * s.mae).toFixed(1)} against ${(100 * s.baseline_mae).toFixed(1)} pts)`;
    return [el("span", { class: "rank", text: s.rank ? `#${s.rank} ` : "" }), el("span", { text: s.series }),
      el("span", { class: "summary", text: `${pct(s.last_share)} in ${when(s.last_period)} → ${pct(s.forecast)} `
        + `forecast for ${when(s.horizon_period)} (interval ${pct(s.lo)}–${pct(s.hi)}): ${signed(s.change)}, `
        + `${(+s.confidence).toFixed(1)}× the interval width. Model ${s.model}, ${trust}.` })];
  }

  // ---------------------------------------------------------------- attribute view

  async function showAttribute(q, current) {
    say("Loading shares…");
    $("charts-heading").textContent = "Shares over time";
    const series = await api(path(q, "series", { period: q.period, attribute: q.attribute, min_support: q.minSupport }));
    if (!current()) return;
    drawCharts(series, q.attribute);
    say(`Shares of ${q.attribute} per ${q.period}. Computing forecasts and events…`);
    const [outlook, report] = await Promise.all([
      api(path(q, "outlook", { period: q.period, min_support: q.minSupport, horizon: String(HORIZON),
                               attribute: q.attribute, limit: "64" })),
      api(path(q, "report", { period: q.period, min_support: q.minSupport, max_series: "0" }))]);
    if (!current()) return;
    addForecasts(outlook.series || [], q);
    addEvents(report, (key) => key.startsWith(q.attribute + "="), q.attribute);
    say(`Shares of ${q.attribute} per ${q.period} with forecasts and events (${report.posts} posts).`, "ok");
  }

  function drawCharts(answer, attribute) {
    drawn = {};
    let series = (answer.series || []).map((s) => ({ ...s,
      mean: s.points.reduce((a, p) => a + (p.share || 0), 0) / Math.max(1, s.points.length) }));
    const binary = isBinary(series.map((s) => s.value));
    if (binary) series = series.filter((s) => String(s.value).trim().toLowerCase() === "yes");
    series.sort((a, b) => b.mean - a.mean);
    const shown = series.slice(0, MAX_CHARTS);
    const box = $("charts");
    if (!shown.length) {
      box.replaceChildren(el("p", { class: "notice", text: "No period has enough labelled posts for this attribute." }));
      return;
    }
    const nodes = shown.map((s) => chart(s, s.points, { caption: [el("span", { text: `${s.attribute}=${s.value}` })] }));
    if (binary) nodes.unshift(el("p", { class: "muted", text: `${attribute} is yes/no: only the share of “yes” is shown.` }));
    if (series.length > shown.length) nodes.push(el("p", { class: "muted",
      text: `Showing the ${shown.length} most common of ${series.length} ${attribute} values.` }));
    box.replaceChildren(...nodes);
    layoutCharts();
  }

  function addForecasts(ranked, q) {
    const byKey = Object.fromEntries(ranked.map((s) => [s.series, s]));
    let n = 0;
    for (const [key, state] of Object.entries(drawn)) {
      const s = byKey[key];
      if (!s || !(s.forecasts || []).length) continue;
      setForecast(state, s.forecasts);
      if (!s.beats_baseline) state.note = "forecast does not beat “no change” in backtests";
      n++;
      redraw(state);
    }
    $("charts").dataset.forecasts = String(n);
    if (!n && Object.keys(drawn).length) {
      $("charts").prepend(el("p", { class: "notice", text: "No forecast for these series: a forecast needs at least "
        + `12 ${q.period}s with ${q.minSupport} or more labelled posts each. Try a lower minimum.` }));
    }
  }

  // ---------------------------------------------------------------- events

  function addEvents(report, wanted, what) {
    const events = [];
    for (const e of (report.events && report.events.spikes) || []) events.push({ ...e, kind: "spike" });
    for (const e of (report.events && report.events.shifts) || []) events.push({ ...e, kind: `shift (${e.direction})` });
    for (const [key, state] of Object.entries(drawn)) {
      state.events = events.filter((e) => e.series === key);
      redraw(state);
    }
    const trends = ((report.events && report.events.rising_falling) || [])
      .filter((r) => wanted(r.series) && (r.place === undefined || r.place === "all"));
    const since = day(report.volume && report.volume[0] ? report.volume[0].period : "");
    const rows = events.filter((e) => wanted(e.series))
      .map((e) => [e.series, e.kind, day(e.period), e.change !== undefined ? signed(e.change)
        : (e.z !== undefined ? `z ${(+e.z).toFixed(1)}` : "")])
      .concat(trends.filter((r) => r.trend !== "flat").map((r) => [r.series, r.trend, `${since}…`,
        `${signed(r.slope_per_period)} per period`]));
    $("events").replaceChildren(rows.length ? el("table", { class: "events" }, [
      el("thead", {}, el("tr", {}, ["series", "event", "when", "size"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", { text: c }))))),
    ]) : el("p", { class: "muted", text: `No spike, shift or clear rise/fall detected for ${what}.` }));
  }

  // ---------------------------------------------------------------- charts

  function chart(s, points, { forecast = null, caption = [] } = {}) {
    const pts = points.filter((p) => p.share !== null && p.share !== undefined);
    const key = `${s.attribute}=${s.value}`;
    const svg = svgEl("svg", { class: "chart", role: "img", "data-series": key });
    const legend = el("ul", { class: "chart-legend" });
    const state = { key, svg, legend, pts, dates: pts.map((p) => Date.parse(p.period)), period: $("period").value,
                    W: 640, forecast: null, events: [], note: "" };
    state.t0 = Math.min(...state.dates);
    state.t1 = Math.max(...state.dates);
    state.ymax = Math.min(1, Math.max(0.05, ...pts.map((p) => p.ci_high || p.share)) * 1.15);
    if (forecast && forecast.length) setForecast(state, forecast);
    drawn[key] = state;
    return el("figure", { class: "card chart-card" }, [el("figcaption", {}, caption), svg, legend]);
  }

  function setForecast(state, forecast) {
    state.forecast = [...forecast].sort((a, b) => a.step - b.step);
    state.ymax = Math.min(1, Math.max(state.ymax, ...state.forecast.map((p) => p.hi * 1.1)));
    state.t1 = Math.max(state.t1, ...state.forecast.map((p) => Date.parse(p.period)));
  }

  /** Lay every chart out at its rendered width; again whenever the charts' width changes. */
  function layoutCharts() {
    for (const state of Object.values(drawn)) {
      const w = Math.round(state.svg.getBoundingClientRect().width);
      if (w > 0) state.W = w;
      redraw(state);
    }
  }

  /** A round step (1, 2, 2.5 or 5 × 10^k) giving at most 5 intervals up to ``ymax``, and the top it rounds to. */
  function yTicks(ymax) {
    const raw = ymax / 5;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((v) => v >= raw - 1e-12);
    const top = Math.min(1, Math.ceil(ymax / step - 1e-9) * step);
    return { step, top };
  }

  function geometry(state) {
    const W = state.W;
    const font = Math.round(Math.min(14, Math.max(12, W / 48)));    // CSS px: 12 on a phone, up to 14
    const H = Math.round(Math.min(300, Math.max(200, W * 0.42)));
    return { W, H, font, L: Math.ceil(font * 2.6) + 8, R: 10, T: Math.ceil(font * 0.7) + 4, B: font + 16 };
  }

  function xy(state, g, t, v) {
    const span = Math.max(1, state.t1 - state.t0);
    return [g.L + ((t - state.t0) / span) * (g.W - g.L - g.R), g.H - g.B - (v / state.ymax) * (g.H - g.T - g.B)];
  }

  function text(g, x, y, content, anchor = "start") {
    const node = svgEl("text", { x, y, "text-anchor": anchor });
    node.style.fontSize = `${g.font}px`;   // CSSOM, not a style attribute: allowed by the page's CSP
    node.textContent = content;
    return node;
  }

  function redraw(state) {
    const { svg, pts, dates } = state;
    const g = geometry(state);
    const { W, H, L, R, B } = g;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("width", W);
    svg.setAttribute("height", H);
    svg.replaceChildren();
    if (!pts.length) return;
    const ticks = yTicks(state.ymax);
    state.ymax = ticks.top;
    const stepPct = Math.round(100 * ticks.step * 1000) / 1000;
    const digits = Number.isInteger(stepPct) ? 0 : (stepPct >= 0.1 ? 1 : 2);
    for (let i = 0; i * ticks.step <= ticks.top + 1e-9; i++) {   // horizontal grid + y labels
      const v = i * ticks.step;
      const [, y] = xy(state, g, state.t0, v);
      svg.append(svgEl("line", { x1: L, x2: W - R, y1: y, y2: y, class: "grid-line" }));
      svg.append(text(g, L - 6, y + g.font * 0.35, (100 * v).toFixed(digits) + "%", "end"));
    }
    svg.append(svgEl("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }));
    const label = state.period === "month" ? (t) => new Date(t).toISOString().slice(0, 7)
      : (t) => new Date(t).toISOString().slice(0, 10);
    const all = dates.concat((state.forecast || []).map((p) => Date.parse(p.period)));
    const nx = Math.min(all.length, Math.max(2, Math.floor((W - L - R) / (g.font * (state.period === "month" ? 7 : 9)))), 6);
    for (let i = 0; i < nx; i++) {                // x labels at real periods, evenly spread
      const t = all[nx === 1 ? 0 : Math.round((i * (all.length - 1)) / (nx - 1))];
      const [x] = xy(state, g, t, 0);
      svg.append(text(g, x, H - 6, label(t), i === 0 ? "start" : (i === nx - 1 ? "end" : "middle")));
    }
    const band = pts.map((p, i) => xy(state, g, dates[i], p.ci_high))
      .concat(pts.map((p, i) => xy(state, g, dates[i], p.ci_low)).reverse());
    svg.append(svgEl("polygon", { points: band.map((q) => q.join(",")).join(" "), class: "band" }));
    svg.append(svgEl("polyline", { points: pts.map((p, i) => xy(state, g, dates[i], p.share).join(",")).join(" "),
                                   class: "line" }));
    const unsupported = pts.filter((p) => !p.supported).length;
    pts.forEach((p, i) => {
      if (p.supported) return;
      const [x, y] = xy(state, g, dates[i], p.share);
      svg.append(svgEl("circle", { cx: x, cy: y, r: 3.5, class: "unsupported" }));
    });
    if (state.forecast) {
      const f = state.forecast;
      const last = pts[pts.length - 1];
      const fd = f.map((p) => Date.parse(p.period));
      const [nowX] = xy(state, g, dates[dates.length - 1], 0);
      svg.append(svgEl("line", { x1: nowX, x2: nowX, y1: g.T, y2: H - B, class: "now" }));
      const start = xy(state, g, dates[dates.length - 1], last.share);
      const fb = [start].concat(f.map((p, i) => xy(state, g, fd[i], p.hi)), f.map((p, i) => xy(state, g, fd[i], p.lo)).reverse());
      svg.append(svgEl("polygon", { points: fb.map((q) => q.join(",")).join(" "), class: "forecast-band" }));
      const line = [xy(state, g, dates[dates.length - 1], last.share)].concat(f.map((p, i) => xy(state, g, fd[i], p.forecast)));
      svg.append(svgEl("polyline", { points: line.map((q) => q.join(",")).join(" "), class: "forecast",
                                     "data-model": f[0].model }));
    }
    for (const ev of state.events || []) {
      const [x] = xy(state, g, Date.parse(ev.period), 0);
      const mark = svgEl("path", { d: `M${x - 5},${H - B + 1} L${x + 5},${H - B + 1} L${x},${H - B - 8} Z`, class: "event" });
      const title = svgEl("title"); title.textContent = `${ev.kind} ${day(ev.period)}`; mark.append(title);
      svg.append(mark);
    }
    svg.setAttribute("aria-label", describe(state));
    drawLegend(state, unsupported);
  }

  function describe(state) {
    const { pts, key } = state;
    const first = pts[0], last = pts[pts.length - 1];
    let out = `${key}: share from ${pct(first.share)} (${day(first.period)}) to ${pct(last.share)} (${day(last.period)})`;
    if (state.forecast) {
      const end = state.forecast[state.forecast.length - 1];
      out += `; forecast ${pct(end.forecast)} for ${day(end.period)} (interval ${pct(end.lo)} to ${pct(end.hi)})`;
    }
    if ((state.events || []).length) out += `; ${state.events.length} event(s)`;
    return out;
  }

  /** The legend: HTML under the plot, so it never covers the data and wraps on a narrow screen. */
  function drawLegend(state, unsupported) {
    const items = [["line", "share of posts, 95% band"]];
    if (state.forecast) items.push(["forecast", `forecast (${state.forecast[0].model}), 95% interval`]);
    if (unsupported) items.push(["unsupported", "too few posts"]);
    if ((state.events || []).length) items.push(["event", "event"]);
    const nodes = items.map(([cls, label]) => el("li", {}, [el("span", { class: `key ${cls}`, "aria-hidden": "true" }), label]));
    if (state.note) nodes.push(el("li", { class: "note", text: state.note }));
    state.legend.replaceChildren(...nodes);
  }

  let pending = 0;
  function onResize() {
    if (pending) return;
    pending = requestAnimationFrame(() => { pending = 0; layoutCharts(); });
  }

  document.addEventListener("DOMContentLoaded", () => {
    loadDatasets();
    $("dataset").addEventListener("change", fillAttributes);
    $("trends-form").addEventListener("submit", show);
    if ("ResizeObserver" in window) {
      let width = 0;
      new ResizeObserver((entries) => {
        const w = Math.round(entries[0].contentRect.width);
        if (w !== width) { width = w; onResize(); }
      }).observe($("charts"));
    } else {
      window.addEventListener("resize", onResize);
    }
  });
})();
