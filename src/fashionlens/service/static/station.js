// Sorting station: photos → POST /v1/grade (+ POST /v1/tag for the garment outline) → annotated photo,
// facts, damage, route with reasons → one-tap corrections → POST /v1/corrections.
"use strict";

(() => {
  const { api, say, el, features, taxonomy, decodeRle, drawMask, percent } = FL;
  const ROLES = ["front", "back", "label"];
  const photos = {};       // role → File
  const urls = {};         // role → object URL
  let record = null;       // the item record (fashionlens/item/v1)
  let tagged = {};         // role → fashionlens/result/v1 record (garment boxes / masks)
  let corrections = {};    // field → corrected value

  const $ = (id) => document.getElementById(id);

  function choosePhoto(role, file) {
    if (urls[role]) URL.revokeObjectURL(urls[role]);
    photos[role] = file;
    urls[role] = URL.createObjectURL(file);
    const chosen = $(role + "-chosen");
    chosen.replaceChildren(el("img", { src: urls[role], alt: "" }), `${file.name} (${Math.round(file.size / 1024)} KB)`);
  }

  function clearPhotos() {
    for (const role of ROLES) {
      if (urls[role]) URL.revokeObjectURL(urls[role]);
      delete photos[role]; delete urls[role];
      $(role + "-chosen").textContent = "No photo yet.";
    }
    record = null; tagged = {}; corrections = {};
    $("result").hidden = true; $("corrections").hidden = true;
    say("");
  }

  function photoForm(roles) {
    const form = new FormData();
    for (const role of roles) if (photos[role]) form.append(role, photos[role], photos[role].name || role + ".jpg");
    return form;
  }

  async function grade(ev) {
    ev.preventDefault();
    if (!photos.front && !photos.back) {
      say("Add a front or back photo first.", "error");
      return;
    }
    const button = $("grade-button");
    button.disabled = true;
    say("Grading…");
    try {
      record = await api("/v1/grade", { method: "POST", body: photoForm(ROLES) });
    } catch (e) {
      say(`Grading failed: ${e.message}` + (e.code ? ` (${e.code})` : ""), "error");
      button.disabled = false;
      return;
    }
    corrections = {};
    tagged = {};
    showResult();
    button.disabled = false;
    // the item record has no per-view garment outline: ask /v1/tag (same detector) for it
    const garmentRoles = ["front", "back"].filter((r) => photos[r]);
    try {
      const form = new FormData();
      for (const r of garmentRoles) form.append("images", photos[r], photos[r].name || r + ".jpg");
      const answer = await api("/v1/tag", { method: "POST", body: form });
      garmentRoles.forEach((r, i) => { tagged[r] = answer.results[i]; });
      const failed = garmentRoles.filter((r) => tagged[r] && tagged[r].error);
      if (failed.length) say(`Graded. No outline for the ${failed.join(" and ")} photo: `
        + failed.map((r) => problemText(tagged[r].error)).join("; "), "");
      drawView(currentView);
    } catch (e) {
      $("annotated").dataset.garments = "unavailable";
      say(`Graded. The garment outline could not be drawn: ${e.message}`, "");
    }
  }

  let currentView = "front";

  /** An item or view error ({type, message}; a plain string in records from older versions). */
  function problemText(e) {
    return typeof e === "object" && e !== null ? `${e.message} (${e.type})` : String(e);
  }

  function showResult() {
    const r = record;
    $("result").hidden = false;
    say(r.error ? `Not graded: ${problemText(r.error)}` : `Graded item ${r.item_id}.`, r.error ? "error" : "ok");
    const route = r.route;
    const routeEl = $("route");
    routeEl.textContent = route ? route.decision : "no route (no sorting rules)";
    routeEl.className = "route " + (route ? route.decision : "");
    $("reasons").replaceChildren(...((route && route.reasons) || []).map((t) => el("li", { text: t })));
    const facts = [];
    const fact = (k, v) => facts.push(el("dt", { text: k }), el("dd", { text: v === null || v === undefined || v === "" ? "—" : v }));
    fact("Category", r.category ? `${r.category.id} (${percent(r.category.score)})` : null);
    fact("Object type", r.object_type);
    const attrs = r.attributes || {};
    for (const [name, a] of Object.entries(attrs)) {
      if (Array.isArray(a)) fact(name, a.map((c) => c.share !== undefined ? `${c.id} ${percent(c.share)}` : c.id).join(", "));
      else if (a && typeof a === "object") fact(name, a.id + (a.source === "label" ? " (from the label)" : ""));
    }
    if (r.composition) fact("Composition", r.composition.text);
    fact("Brand", r.brand);
    for (const [head, g] of Object.entries(r.grades || {})) fact(`${head} (grading head)`, String(g.id));
    for (const v of r.views || []) if (v.error) fact(`${v.role} photo`, "not used: " + problemText(v.error));
    for (const w of r.warnings || []) fact("warning", w.message || String(w));
    $("facts").replaceChildren(...facts);
    const regions = (r.damage && r.damage.regions) || [];
    $("damage").replaceChildren(...(regions.length
      ? regions.map((d) => el("li", { text: `${d.type} on the ${d.view}: ${percent(d.area_share)} of the garment (score ${d.score.toFixed(2)})` }))
      : [el("li", { text: r.model && Object.keys(r.model).some((k) => k.startsWith("damage")) ? "none found" : "none found (or no damage model on this server)" })]));
    const views = ["front", "back"].filter((v) => photos[v]);
    currentView = views[0];
    $("view-tabs").replaceChildren(...views.map((v) => el("button", {
      type: "button", "aria-pressed": String(v === currentView), "data-view": v, text: v,
      onclick: () => { drawView(v); },
    })));
    drawView(currentView);
    showCorrections();
    $("result-heading").focus();
  }

  function drawView(view) {
    currentView = view;
    for (const b of $("view-tabs").querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.dataset.view === view));
    const canvas = $("annotated");
    const img = new Image();
    img.onload = () => {
      const maxW = 1024;
      const scale = Math.min(1, maxW / img.naturalWidth);
      const cw = Math.round(img.naturalWidth * scale), ch = Math.round(img.naturalHeight * scale);
      canvas.width = cw; canvas.height = ch;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(img, 0, 0, cw, ch);
      const tag = tagged[view];
      const origW = tag && tag.image && tag.image.width ? tag.image.width : img.naturalWidth;
      const s = cw / origW;
      let nGarments = 0, nDamage = 0;
      for (const g of (tag && tag.garments) || []) {
        // a light tint only (alpha 0.14), so the garment's own colours stay visible under it
        if (g.mask) drawMask(ctx, decodeRle(g.mask), [40, 110, 220, 36], cw, ch);
        const [x, y, w, h] = g.bbox;
        ctx.strokeStyle = "rgb(20, 90, 200)"; ctx.lineWidth = 3;
        ctx.strokeRect(x * s, y * s, w * s, h * s);
        // an unsure category (result v2: id null) reads "?" rather than a guess
        label(ctx, g.category && g.category.id ? g.category.id : `${g.object_type || "garment"} ?`, x * s, y * s,
              "rgb(20, 90, 200)");
        nGarments++;
      }
      for (const d of (record.damage && record.damage.regions) || []) {
        if (d.view !== view) continue;
        if (d.mask) drawMask(ctx, decodeRle(d.mask), [220, 30, 40, 140], cw, ch);
        const [x, y, w, h] = d.bbox;
        ctx.strokeStyle = "rgb(200, 20, 30)"; ctx.lineWidth = 3;
        ctx.strokeRect(x * s, y * s, w * s, h * s);
        label(ctx, d.type, x * s, (y + h) * s + 16, "rgb(200, 20, 30)");
        nDamage++;
      }
      canvas.dataset.view = view;
      canvas.dataset.garments = tag ? (tag.error ? "unavailable" : String(nGarments)) : "pending";
      canvas.dataset.damage = String(nDamage);
      const outline = !tag ? "garment outline loading" : tag.error ? "no garment outline" : nGarments + " garment(s) outlined";
      canvas.setAttribute("aria-label", `${view} photo: ${outline}, ${nDamage} damage region(s)`);
    };
    img.src = urls[view];
  }

  function label(ctx, text, x, y, colour) {
    ctx.font = "bold 15px system-ui, sans-serif";
    const w = ctx.measureText(text).width + 8;
    const top = Math.max(0, y - 18);
    ctx.fillStyle = colour; ctx.fillRect(x, top, w, 18);
    ctx.fillStyle = "#fff"; ctx.fillText(text, x + 4, top + 14);
  }

  function modelValues(r, tax) {
    const head = (h) => (r.grades && r.grades[h] ? r.grades[h].id : null);
    const attr = (a) => (r.attributes && r.attributes[a] && !Array.isArray(r.attributes[a]) ? r.attributes[a].id : null);
    const colours = r.attributes && Array.isArray(r.attributes.colours) ? r.attributes.colours.map((c) => c.id) : [];
    return {
      usage: head("usage") || (r.route ? r.route.decision : null),
      condition: head("condition"),
      type: head("type") || (r.category ? r.category.id : null),
      material: (r.composition && r.composition.main_fibre) || head("material") || attr("material"),
      pattern: head("pattern") || attr("pattern"),
      colors: colours.length ? colours[0] : null,
      stains: head("stains"), holes: head("holes"), pilling: head("pilling"),
    };
  }

  async function showCorrections() {
    const section = $("corrections");
    section.hidden = false;
    let tax, feats;
    try { [tax, feats] = await Promise.all([taxonomy(), features()]); } catch (e) {
      $("correction-notice").textContent = `Corrections are unavailable: ${e.message}`;
      return;
    }
    const notice = $("correction-notice");
    const save = $("save-button");
    if (!feats.corrections.available) {
      notice.className = "notice";
      notice.textContent = "Corrections cannot be saved on this server: no corrections database is configured "
        + "(start it with `fashionlens serve --corrections-db FILE`). You can still review the result.";
      save.disabled = true;
    } else { notice.textContent = ""; save.disabled = false; }
    const gv = tax.grading_values || {};
    const attrValues = (a) => (tax.attributes[a] ? tax.attributes[a].values : []);
    const fields = [
      { name: "usage", label: "Route", kind: "buttons", values: tax.routes },
      { name: "condition", label: "Condition (grade 1–5)", kind: "buttons", values: gv.condition || [] },
      { name: "type", label: "Category", kind: "select", values: tax.categories.map((c) => c.id) },
      { name: "material", label: "Main material", kind: "select", values: attrValues("material") },
      { name: "pattern", label: "Pattern", kind: "select", values: attrValues("pattern") },
      { name: "colors", label: "Main colour", kind: "select", values: attrValues("colours"), list: true },
      { name: "stains", label: "Stains", kind: "buttons", values: gv.stains || [] },
      { name: "holes", label: "Holes", kind: "buttons", values: gv.holes || [] },
      { name: "pilling", label: "Pilling (grade 1–5)", kind: "buttons", values: gv.pilling || [] },
    ];
    const model = modelValues(record, tax);
    $("correction-fields").replaceChildren(...fields.map((f) => fieldControl(f, model[f.name])));
  }

  function fieldControl(f, modelValue) {
    const shown = modelValue === null || modelValue === undefined ? "no value" : String(modelValue);
    const legend = el("legend", { text: `${f.label} — model: ${shown}` });
    const box = el("div", { class: "choices" });
    const set = (value) => {
      if (value === null) delete corrections[f.name];
      else corrections[f.name] = f.list ? [value] : value;
    };
    if (f.kind === "buttons") {
      for (const v of f.values) {
        const b = el("button", { type: "button", "aria-pressed": "false", "data-field": f.name, "data-value": String(v),
                                 text: String(v) + (String(v) === String(modelValue) ? " ✓" : "") });
        b.addEventListener("click", () => {
          const on = b.getAttribute("aria-pressed") !== "true";
          for (const other of box.querySelectorAll("button")) other.setAttribute("aria-pressed", "false");
          b.setAttribute("aria-pressed", String(on));
          set(on ? v : null);
        });
        box.append(b);
      }
    } else {
      const id = "fix-" + f.name;
      const select = el("select", { id, "data-field": f.name, "aria-label": f.label },
        [el("option", { value: "", text: `keep the model's value (${shown})` }),
         ...f.values.map((v) => el("option", { value: v, text: v }))]);
      select.addEventListener("change", () => set(select.value === "" ? null : select.value));
      box.append(select);
    }
    return el("fieldset", { class: "field" }, [legend, box]);
  }

  async function saveCorrections(ev) {
    ev.preventDefault();
    const status = $("correction-status");
    if (!record) return;
    const form = photoForm(ROLES);
    form.append("item", JSON.stringify(record));
    form.append("corrections", JSON.stringify(corrections));
    const sorter = $("sorter").value.trim();
    if (sorter) form.append("sorter", sorter);
    $("save-button").disabled = true;
    try {
      const saved = await api("/v1/corrections", { method: "POST", body: form });
      status.className = "notice ok";
      status.textContent = `Saved correction #${saved.id} of item ${saved.item_id}`
        + (saved.fields.length ? ` (${saved.fields.join(", ")}).` : " (the model's values confirmed).");
    } catch (e) {
      status.className = "notice error";
      status.textContent = `Not saved: ${e.message}`;
    } finally {
      $("save-button").disabled = false;
    }
  }

  async function showFeatureNotices() {
    const box = $("feature-notices");
    try {
      const f = await features();
      const notes = [];
      if (!f.ready) notes.push("The server is still loading its models; grading answers once they are loaded.");
      if (!f.grade.available) notes.push("Grading is not available on this server.");
      else if (f.grade.missing_parts.length) notes.push(`This server grades without: ${f.grade.missing_parts.join(", ")} (weights not installed).`);
      if (!f.corrections.available) notes.push("Corrections are not saved on this server (no corrections database configured).");
      box.replaceChildren(...notes.map((t) => el("p", { class: "notice", text: t })));
    } catch (e) {
      box.replaceChildren(el("p", { class: "notice error", text: `Server features unknown: ${e.message}` }));
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const role of ROLES) {
      for (const kind of ["camera", "file"]) {
        $(`${role}-${kind}`).addEventListener("change", (ev) => {
          if (ev.target.files && ev.target.files[0]) choosePhoto(role, ev.target.files[0]);
        });
      }
    }
    $("grade-form").addEventListener("submit", grade);
    $("grade-form").addEventListener("reset", clearPhotos);
    $("correction-form").addEventListener("submit", saveCorrections);
    showFeatureNotices();
  });
})();
