// Review page: one garment/item at a time; each unsure field's candidates as big buttons; keys 1–9 pick,
// 0 = none of these, ↑/↓ change field, Enter = accept, S = skip. Every answer is POSTed at once; requests that
// could not be sent (offline, server busy) wait in an outbox in local storage, in order, and are retried
// until the server has saved them — a reload or a lost connection loses no answer.
"use strict";

(() => {
  const OUTBOX = "fashionlens.review.outbox";
  const REVIEWER = "fashionlens.reviewer";
  const RETRY_MS = 3000;
  const MAX_KEYS = 9;

  let task = null;          // the ReviewTask being reviewed
  let stats = null;         // queue counts
  let active = 0;           // index of the highlighted unsure field
  let local = {};           // field name → answer shown (saved or waiting in the outbox)
  let flushing = false;
  let retryTimer = null;
  let nextAfterFlush = false;

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------------------ outbox (offline-safe)
  function loadOutbox() {
    try { return JSON.parse(window.localStorage.getItem(OUTBOX) || "[]"); } catch (e) { return []; }
  }
  function saveOutbox(box) {
    try { window.localStorage.setItem(OUTBOX, JSON.stringify(box)); } catch (e) { /* private mode: memory only */ }
    memoryBox = box;
  }
  let memoryBox = loadOutbox();
  function outbox() {
    try { return window.localStorage ? loadOutbox() : memoryBox; } catch (e) { return memoryBox; }
  }

  function showSync() {
    const n = outbox().length;
    const line = $("sync");
    line.className = "sync" + (n ? " pending" : " muted");
    line.textContent = n ? `${n} answer${n === 1 ? "" : "s"} waiting to be sent — retrying` : "All answers saved.";
  }

  function enqueue(path, body) {
    const box = outbox();
    box.push({ path, body });
    saveOutbox(box);
    showSync();
    flush();
  }

  function scheduleRetry() {
    if (retryTimer === null) retryTimer = window.setTimeout(() => { retryTimer = null; flush(); }, RETRY_MS);
  }

  async function flush() {
    if (flushing) return;
    flushing = true;
    let sentAll = false;
    try {
      for (;;) {
        const box = outbox();
        if (!box.length) break;
        const req = box[0];
        try {
          await FL.api(req.path, { method: "POST", headers: { "Content-Type": "application/json" },
                                   body: JSON.stringify(req.body) });
        } catch (e) {
          if (e.status === 0 || e.status >= 500 || e.status === 401 || e.status === 403 || e.status === 429) {
            scheduleRetry();   // offline, busy (503 locked) or waiting for a key: keep it and try again
            return;
          }
          FL.say(`The server refused an answer (${e.message}); it was dropped.`, "error");
        }
        const rest = outbox();
        rest.shift();          // the request just sent is still the first: later ones are only appended
        saveOutbox(rest);
        showSync();
      }
      sentAll = true;
    } finally {
      flushing = false;
      showSync();
      // something queued after this run's last look at the outbox: send it too (never left behind)
      if (!sentAll && outbox().length) scheduleRetry();
    }
    if (nextAfterFlush && !outbox().length) {
      nextAfterFlush = false;
      await loadNext();
    }
  }

  // ------------------------------------------------------------------------------------------ the task
  function reviewer() { return $("reviewer").value.trim() || null; }
  function unsure() { return task ? task.fields.filter((f) => f.needs_review) : []; }

  async function loadNext() {
    let data;
    try {
      data = await FL.api("/v1/review/next");
    } catch (e) {
      FL.say(`Could not load the next garment: ${e.message}`, "error");
      if (e.status === 0 || e.status >= 500) window.setTimeout(loadNext, RETRY_MS);
      return;
    }
    task = data.task;
    stats = data.stats;
    local = {};
    if (task) {
      for (const f of task.fields) if (f.answered) local[f.name] = f.answer;
      const prefix = `/v1/review/tasks/${task.id}/answers`;
      for (const req of outbox()) if (req.path === prefix) local[req.body.field] = req.body.value;  // not yet sent
      const fields = unsure();
      const firstOpen = fields.findIndex((f) => !(f.name in local));
      active = firstOpen >= 0 ? firstOpen : 0;
      FL.say("");
    }
    render();
    await drawPhoto();
  }

  function chosen(f, value) {
    const a = f.name in local ? local[f.name] : undefined;
    if (a === undefined) return false;
    if (value === null) return a === null;
    return f.multi ? Array.isArray(a) && a.includes(value) : a === value;
  }

  function pick(index, value) {
    const fields = unsure();
    const f = fields[index];
    if (!task || !f || nextAfterFlush) return;   // accepted/skipped: the next one is on its way
    let answer = value;
    if (f.multi && value !== null) {
      const now = Array.isArray(local[f.name]) ? local[f.name].slice() : (Array.isArray(f.value) ? f.value.slice() : []);
      const at = now.indexOf(value);
      if (at >= 0) now.splice(at, 1); else now.push(value);
      answer = now;
    }
    local[f.name] = answer;
    enqueue(`/v1/review/tasks/${task.id}/answers`, { field: f.name, value: answer, reviewer: reviewer() });
    active = index;
    if (!f.multi && index + 1 < fields.length) active = index + 1;
    render();
  }

  function finish(action) {
    if (!task || nextAfterFlush) return;
    nextAfterFlush = true;
    FL.say(action === "accept" ? "Accepted." : "Skipped.", "ok");
    enqueue(`/v1/review/tasks/${task.id}/${action}`, { reviewer: reviewer() });
  }

  // ---------------------------------------------------------------------------------------- rendering
  function fmt(value) {
    if (value === null || value === undefined) return "unsure";
    return Array.isArray(value) ? (value.length ? value.join(", ") : "none") : String(value);
  }

  function render() {
    const box = $("fields");
    const sure = $("sure-fields");
    box.replaceChildren();
    sure.replaceChildren();
    $("accept").disabled = $("skip").disabled = !task;
    if (!task) {
      $("task-info").textContent = "";
      box.append(FL.el("p", { class: "notice ok", text: "Nothing left to review." }));
      return;
    }
    const left = stats ? `${stats.pending} left to review` : "";
    $("task-info").textContent = [task.kind === "item" ? `item ${task.item_id || task.id}` : `garment ${task.index + 1}`,
                                  task.object_type, `uncertainty ${task.uncertainty.toFixed(2)}`, left]
      .filter(Boolean).join(" · ");
    const fields = unsure();
    if (!fields.length) box.append(FL.el("p", { class: "muted", text: "No unsure field: check and accept." }));
    fields.forEach((f, i) => {
      const scores = Object.fromEntries(f.candidates.map((c) => [c.id, c.score]));
      const numbered = f.choices.slice(0, MAX_KEYS);
      const buttons = numbered.map((value, k) => FL.el("button", {
        type: "button", "aria-pressed": chosen(f, value) ? "true" : "false", "data-value": value,
        onclick: () => pick(i, value),
      }, [FL.el("span", { class: "num", text: String(k + 1) }), value,
          scores[value] !== undefined && scores[value] !== null ? FL.el("span", { class: "score", text: FL.percent(scores[value]) }) : null]));
      buttons.push(FL.el("button", { type: "button", "aria-pressed": chosen(f, null) ? "true" : "false", "data-value": "",
                                     onclick: () => pick(i, null) },
                         [FL.el("span", { class: "num", text: "0" }), "none of these"]));
      const rest = f.choices.slice(MAX_KEYS);
      let other = null;
      if (rest.length) {
        other = FL.el("select", { class: "other", "aria-label": `${f.name}: another value`,
                                  onchange: (ev) => { if (ev.target.value) pick(i, ev.target.value); } },
                      [FL.el("option", { value: "", text: "Other…" })].concat(rest.map((v) => FL.el("option", {
                        value: v, text: v, selected: chosen(f, v) }))));
      }
      const legend = `${f.name} — model: ${fmt(f.value)}` + (f.score !== null ? ` (${FL.percent(f.score)})` : "");
      box.append(FL.el("fieldset", { class: "field" + (i === active ? " active" : ""), "data-field": f.name,
                                     onclick: () => { if (active !== i) { active = i; render(); } } },
                       [FL.el("legend", { text: legend }), FL.el("div", { class: "choices" }, buttons), other]));
    });
    for (const f of task.fields.filter((x) => !x.needs_review)) {
      sure.append(FL.el("dt", { text: f.name }),
                  FL.el("dd", { text: fmt(f.name in local ? local[f.name] : f.value) +
                                (f.score !== null ? ` (${FL.percent(f.score)})` : "") }));
    }
  }

  /** The pixels of a decoded mask within ``band`` pixels of its edge (same {mask, height, width} shape). */
  function outline(decoded, band) {
    const { mask, height: h, width: w } = decoded;
    const out = new Uint8Array(mask.length);
    const inside = (x, y) => x >= 0 && y >= 0 && x < w && y < h && mask[y * w + x] === 1;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (!mask[y * w + x]) continue;
        for (let d = 1; d <= band; d++) {
          if (!inside(x - d, y) || !inside(x + d, y) || !inside(x, y - d) || !inside(x, y + d)) {
            out[y * w + x] = 1;
            break;
          }
        }
      }
    }
    return { mask: out, height: h, width: w };
  }

  let photoUrl = null;
  async function drawPhoto() {
    const canvas = $("photo");
    const ctx = canvas.getContext("2d");
    if (photoUrl) { URL.revokeObjectURL(photoUrl); photoUrl = null; }
    if (!task || !task.photo_url) { canvas.width = canvas.height = 1; return; }
    const shown = task.id;
    let img;
    try {
      const blob = await (await FL.api(task.photo_url, { raw: true })).blob();
      photoUrl = URL.createObjectURL(blob);
      img = new Image();
      img.src = photoUrl;
      await img.decode();
    } catch (e) {
      FL.say(`The photo could not be shown: ${e.message}`, "error");
      return;
    }
    if (!task || task.id !== shown) return;
    const scale = Math.min(1, 1024 / Math.max(img.naturalWidth, img.naturalHeight));
    canvas.width = Math.round(img.naturalWidth * scale);
    canvas.height = Math.round(img.naturalHeight * scale);
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    const sx = canvas.width / (task.width || img.naturalWidth);
    const sy = canvas.height / (task.height || img.naturalHeight);
    if (task.mask) {  // the mask's outline only: a fill would change the colours the reviewer is judging
      try {
        const decoded = FL.decodeRle(task.mask);
        const band = Math.max(1, Math.round(2 * decoded.width / canvas.width));
        FL.drawMask(ctx, outline(decoded, band), [0, 200, 255, 255], canvas.width, canvas.height);
      } catch (e) { /* a mask that does not decode: the box still shows the garment */ }
    }
    if (task.bbox) {
      const [x, y, w, h] = task.bbox;
      ctx.lineWidth = Math.max(2, Math.round(canvas.width / 200));
      ctx.strokeStyle = "#f5a000";
      ctx.strokeRect(x * sx, y * sy, w * sx, h * sy);
    }
  }

  // ----------------------------------------------------------------------------------------- keyboard
  function onKey(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const tag = (ev.target && ev.target.tagName) || "";
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") return;
    const fields = unsure();
    if (/^[0-9]$/.test(ev.key)) {
      const f = fields[active];
      if (!f) return;
      ev.preventDefault();
      if (ev.key === "0") { pick(active, null); return; }
      const value = f.choices[Number(ev.key) - 1];
      if (value !== undefined) pick(active, value);
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      finish("accept");
    } else if (ev.key === "s" || ev.key === "S") {
      ev.preventDefault();
      finish("skip");
    } else if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      if (!fields.length) return;
      ev.preventDefault();
      active = (active + (ev.key === "ArrowDown" ? 1 : fields.length - 1)) % fields.length;
      render();
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    try { $("reviewer").value = window.localStorage.getItem(REVIEWER) || ""; } catch (e) { /* private mode */ }
    $("reviewer").addEventListener("change", () => {
      try { window.localStorage.setItem(REVIEWER, $("reviewer").value.trim()); } catch (e) { /* private mode */ }
    });
    $("accept").addEventListener("click", () => finish("accept"));
    $("skip").addEventListener("click", () => finish("skip"));
    document.addEventListener("keydown", onKey);
    window.addEventListener("online", flush);
    showSync();
    await flush();
    await loadNext();
  });
})();
