// Trends: GET /v1/trends (datasets) → /series (shares with 95% intervals) drawn as hand-made SVG
// charts → /report (forecasts and events) added to the charts and listed in a table. No chart library.
"use strict";

(() => {
  const { api, say, el } = FL;
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const MAX_CHARTS = 8;
  let datasets = [];
  let drawn = {};   // "attribute=value" → {svg, x(), y(), dates}

  function svgEl(tag, attrs = {}) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  const day = (iso) => iso.slice(0, 10);

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
  }

  function fillAttributes() {
    const ds = datasets.find((d) => d.name === $("dataset").value);
    $("attribute").replaceChildren(...(ds ? ds.attributes : []).map((a) => el("option", { value: a, text: a })));
  }

  async function show(ev) {
    if (ev) ev.preventDefault();
    const ds = $("dataset").value, period = $("period").value, attribute = $("attribute").value;
    const minSupport = $("min-support").value;
    if (!ds || !attribute) return;
    say("Loading shares…");
    $("trends-button").disabled = true;
    try {
      const q = new URLSearchParams({ period, attribute, min_support: minSupport });
      const series = await api(`/v1/trends/${encodeURIComponent(ds)}/series?${q}`);
      drawCharts(series, attribute);
      say(`Shares of ${attribute} per ${period}. Computing forecasts and events…`);
      const r = new URLSearchParams({ period, min_support: minSupport, horizon: "6", max_series: "6" });
      const report = await api(`/v1/trends/${encodeURIComponent(ds)}/report?${r}`);
      addReport(report, attribute);
      say(`Shares of ${attribute} per ${period} with forecasts and events (${report.posts} posts).`, "ok");
    } catch (e) {
      say(`Trends failed: ${e.message}`, "error");
    } finally {
      $("trends-button").disabled = false;
    }
  }

  function drawCharts(answer, attribute) {
    drawn = {};
    const series = (answer.series || []).map((s) => ({ ...s,
      mean: s.points.reduce((a, p) => a + (p.share || 0), 0) / Math.max(1, s.points.length) }));
    series.sort((a, b) => b.mean - a.mean);
    const shown = series.slice(0, MAX_CHARTS);
    const box = $("charts");
    if (!shown.length) {
      box.replaceChildren(el("p", { class: "notice", text: "No period has enough labelled posts for this attribute." }));
      return;
    }
    const nodes = shown.map((s) => chart(s));
    if (series.length > shown.length) nodes.push(el("p", { class: "muted",
      text: `Showing the ${shown.length} most common of ${series.length} ${attribute} values.` }));
    box.replaceChildren(...nodes);
  }

  function chart(s) {
    const W = 640, H = 220, L = 44, R = 12, T = 12, B = 28;
    const pts = s.points.filter((p) => p.share !== null && p.share !== undefined);
    const dates = pts.map((p) => Date.parse(p.period));
    const state = { svg: null, dates, W, H, L, R, T, B, ymax: 0, t0: 0, t1: 1, pts };
    const ymax = Math.min(1, Math.max(0.05, ...pts.map((p) => p.ci_high || p.share)) * 1.15);
    state.ymax = ymax; state.t0 = Math.min(...dates); state.t1 = Math.max(...dates);
    const key = `${s.attribute}=${s.value}`;
    const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "data-series": key,
      "aria-label": `${key}: share from ${percentText(pts[0])} (${day(pts[0].period)}) to ${percentText(pts[pts.length - 1])} (${day(pts[pts.length - 1].period)})` });
    state.svg = svg;
    drawn[key] = state;
    rescale(state, state.t1);
    redraw(state);
    const fig = el("figure", { class: "card" }, [el("figcaption", { text: key }), svg]);
    return fig;
  }

  function percentText(p) { return (100 * p.share).toFixed(1) + "%"; }

  function rescale(state, tEnd) { state.t1 = Math.max(state.t1, tEnd); }

  function xy(state, t, v) {
    const { W, H, L, R, T, B } = state;
    const span = Math.max(1, state.t1 - state.t0);
    return [L + ((t - state.t0) / span) * (W - L - R), H - B - (v / state.ymax) * (H - T - B)];
  }

  function redraw(state) {
    const { svg, pts, dates, W, H, L, R, B } = state;
    svg.replaceChildren();
    for (let i = 0; i <= 4; i++) {             // horizontal grid + y labels
      const v = (state.ymax * i) / 4;
      const [, y] = xy(state, state.t0, v);
      svg.append(svgEl("line", { x1: L, x2: W - R, y1: y, y2: y, class: "grid-line" }));
      const label = svgEl("text", { x: 4, y: y + 4 }); label.textContent = (100 * v).toFixed(0) + "%"; svg.append(label);
    }
    svg.append(svgEl("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }));
    for (const t of [state.t0, (state.t0 + state.t1) / 2, state.t1]) {
      const [x] = xy(state, t, 0);
      const label = svgEl("text", { x: Math.min(x - 28, W - 70), y: H - 8 });
      label.textContent = new Date(t).toISOString().slice(0, 7); svg.append(label);
    }
    const band = pts.map((p, i) => xy(state, dates[i], p.ci_high))
      .concat(pts.map((p, i) => xy(state, dates[i], p.ci_low)).reverse());
    svg.append(svgEl("polygon", { points: band.map((q) => q.join(",")).join(" "), class: "band" }));
    svg.append(svgEl("polyline", { points: pts.map((p, i) => xy(state, dates[i], p.share).join(",")).join(" "),
                                   class: "line" }));
    pts.forEach((p, i) => {
      if (p.supported) return;
      const [x, y] = xy(state, dates[i], p.share);
      svg.append(svgEl("circle", { cx: x, cy: y, r: 3.5, class: "unsupported" }));
    });
    if (state.forecast) {
      const f = state.forecast;
      const last = pts[pts.length - 1];
      const fd = f.map((p) => Date.parse(p.period));
      const fb = f.map((p, i) => xy(state, fd[i], p.hi)).concat(f.map((p, i) => xy(state, fd[i], p.lo)).reverse());
      svg.append(svgEl("polygon", { points: fb.map((q) => q.join(",")).join(" "), class: "forecast-band" }));
      const line = [xy(state, dates[dates.length - 1], last.share)].concat(f.map((p, i) => xy(state, fd[i], p.forecast)));
      svg.append(svgEl("polyline", { points: line.map((q) => q.join(",")).join(" "), class: "forecast",
                                     "data-model": f[0].model }));
    }
    for (const ev of state.events || []) {
      const t = Date.parse(ev.period);
      const [x] = xy(state, t, 0);
      const mark = svgEl("path", { d: `M${x - 5},${H - B + 1} L${x + 5},${H - B + 1} L${x},${H - B - 8} Z`, class: "event" });
      const title = svgEl("title"); title.textContent = `${ev.kind} ${day(ev.period)}`; mark.append(title);
      svg.append(mark);
    }
  }

  function addReport(report, attribute) {
    const byKey = {};
    for (const f of report.forecasts || []) (byKey[f.series] = byKey[f.series] || []).push(f);
    const events = [];
    for (const e of (report.events && report.events.spikes) || []) events.push({ ...e, kind: "spike" });
    for (const e of (report.events && report.events.shifts) || []) events.push({ ...e, kind: `shift (${e.direction})` });
    let nForecasts = 0;
    for (const [key, state] of Object.entries(drawn)) {
      const f = (byKey[key] || []).sort((a, b) => a.step - b.step);
      if (f.length) {
        state.forecast = f;
        state.ymax = Math.min(1, Math.max(state.ymax, ...f.map((p) => p.hi * 1.1)));
        rescale(state, Math.max(...f.map((p) => Date.parse(p.period))));
        nForecasts++;
      }
      state.events = events.filter((e) => e.series === key);
      redraw(state);
    }
    $("charts").dataset.forecasts = String(nForecasts);
    if (!nForecasts && Object.keys(drawn).length) {
      $("charts").prepend(el("p", { class: "notice", text: "No forecast for these series: the server forecasts only "
        + "the most-labelled series of the dataset (max_series), and none of them is shown here." }));
    }
    const trends = ((report.events && report.events.rising_falling) || []).filter((r) => r.series.startsWith(attribute + "="));
    const rows = events.filter((e) => e.series.startsWith(attribute + "="))
      .map((e) => [e.series, e.kind, day(e.period), e.change !== undefined ? signed(e.change) : (e.z !== undefined ? `z ${(+e.z).toFixed(1)}` : "")])
      .concat(trends.filter((r) => r.trend !== "flat").map((r) => [r.series, r.trend, `${day(report.volume[0] ? report.volume[0].period : "")}…`, `${signed(r.slope_per_period)} per period`]));
    $("events").replaceChildren(rows.length ? el("table", { class: "events" }, [
      el("thead", {}, el("tr", {}, ["series", "event", "when", "size"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", { text: c }))))),
    ]) : el("p", { class: "muted", text: `No spike, shift or clear rise/fall detected for ${attribute}.` }));
  }

  function signed(x) { return (x >= 0 ? "+" : "") + (100 * x).toFixed(1) + " pts"; }

  document.addEventListener("DOMContentLoaded", () => {
    loadDatasets();
    $("dataset").addEventListener("change", fillAttributes);
    $("trends-form").addEventListener("submit", show);
  });
})();
