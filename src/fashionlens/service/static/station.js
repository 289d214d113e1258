// Sorting station: photos → POST /v1/grade (+ POST /v1/tag for the garment outline) → POST /v1/station/present
// (one value per field with its source: label / model / person; unsure fields marked) → annotated photo,
// facts, damage, route with its reasons → one-tap corrections → POST /v1/corrections.
"use strict";

(() => {
  const { api, say, el, features, decodeRle, drawMask, percent } = FL;
  const ROLES = ["front", "back", "label"];
  const photos = {};       // role → File
  const urls = {};         // role → object URL
  let record = null;       // the item record (fashionlens/item/v1 or v2)
  let tagged = {};         // role → fashionlens/result/v1 record (garment boxes / masks)
  let corrections = {};    // field → corrected value
  let station = null;      // the station view of the record (fashionlens/station/v1: one value per field)
  let categoryNames = {};  // category id → display name (the station view's vocabulary)

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
    record = null; station = null; tagged = {}; corrections = {};
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
    try {
      station = await present(record);
    } catch (e) {
      say(`Graded, but the result could not be shown: ${e.message}`, "error");
      button.disabled = false;
      return;
    }
    categoryNames = Object.fromEntries(station.vocabulary.category.map((c) => [c.id, c.name]));
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

  /** The station view of the record (POST /v1/station/present: one value per field, with its source). */
  async function present(rec, fixes) {
    return api("/v1/station/present", { method: "POST", headers: { "Content-Type": "application/json" },
                                        body: JSON.stringify({ item: rec, corrections: fixes || {} }) });
  }

  const SOURCE_WORDS = { label: "label", model: "model", person: "person" };

  /** A field's source badge: "label", "model" or "person" (what the volunteer sees next to each value). */
  function badge(source) {
    return source ? el("span", { class: "source source-" + source, "data-source": source,
                                 title: { label: "read from the care label", model: "from the models",
                                          person: "set by a sorter" }[source], text: SOURCE_WORDS[source] }) : null;
  }

  /** "maybe: Blazers & formal jackets 57% · Cardigans 50%" (an unsure field's best guesses). */
  function candidateText(f) {
    return "maybe: " + f.candidates.map((c) => c.name + (c.score === null ? "" : " " + percent(c.score))).join(" · ");
  }

  function showResult(rebuildForm = true) {
    const r = record;
    const v = station;
    $("result").hidden = false;
    say(r.error ? `Not graded: ${problemText(r.error)}` : `Graded item ${r.item_id}.`, r.error ? "error" : "ok");
    const route = v.route;
    const routeEl = $("route");
    routeEl.textContent = route.decision || "no route (no sorting rules)";
    routeEl.className = "route " + (route.decision || "");
    $("route-source").replaceChildren(...(route.source ? [badge(route.source)] : []));
    // the reasons are the routing decision's own; a sorter's route keeps the rules' reasons apart
    $("reasons").replaceChildren(...route.reasons.map((t) => el("li", { text: t })));
    const rulesNote = $("rules-reasons");
    rulesNote.hidden = !(route.source === "person" && route.rules_decision && route.rules_decision !== route.decision);
    if (!rulesNote.hidden) rulesNote.textContent = `The sorting rules suggested ${route.rules_decision}: `
      + route.rules_reasons.join("; ");
    const facts = [];
    for (const f of v.fields) {
      if (f.name === "usage") continue;
      const dd = el("dd", { "data-field": f.name, "data-source": f.source || "", class: f.uncertain ? "unsure" : null },
        [el("span", { class: "value", text: f.display }), badge(f.source),
         f.uncertain ? el("span", { class: "unsure-tag", text: "check" }) : null,
         f.hint ? el("span", { class: "hint", text: f.hint }) : null,
         f.note ? el("span", { class: "note", text: f.note }) : null,
         f.uncertain && f.candidates.length ? el("span", { class: "candidates", text: candidateText(f) }) : null]);
      facts.push(el("dt", { text: f.title, class: f.uncertain ? "unsure" : null }), dd);
    }
    for (const vw of r.views || []) if (vw.error) facts.push(el("dt", { text: `${vw.role} photo` }),
                                                             el("dd", { text: "not used: " + problemText(vw.error) }));
    for (const w of r.warnings || []) facts.push(el("dt", { text: "warning" }), el("dd", { text: w.message || String(w) }));
    $("facts").replaceChildren(...facts);
    const regions = (r.damage && r.damage.regions) || [];
    $("damage").replaceChildren(...(regions.length
      ? regions.map((d) => el("li", { text: `${d.type} on the ${d.view}: ${percent(d.area_share)} of the garment (score ${d.score.toFixed(2)})` }))
      : [el("li", { text: r.model && Object.keys(r.model).some((k) => k.startsWith("damage")) ? "none found" : "none found (or no damage model on this server)" })]));
    const views = ["front", "back"].filter((vw) => photos[vw]);
    currentView = views[0];
    $("view-tabs").replaceChildren(...views.map((vw) => el("button", {
      type: "button", "aria-pressed": String(vw === currentView), "data-view": vw, text: vw,
      onclick: () => { drawView(vw); },
    })));
    drawView(currentView);
    if (!rebuildForm) return;
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
      // the main garment (largest box x score, as grading picks it) is labelled with the item's category
      const garments = (tag && tag.garments) || [];
      const size = (g) => g.bbox[2] * g.bbox[3] * ((g.category && g.category.score) || g.score || 1);
      const main = garments.reduce((best, g) => (best === null || size(g) > size(best) ? g : best), null);
      const catField = station && station.fields.find((f) => f.name === "type");
      for (const g of garments) {
        // a light tint only (alpha 0.14), so the garment's own colours stay visible under it
        if (g.mask) drawMask(ctx, decodeRle(g.mask), [40, 110, 220, 36], cw, ch);
        const [x, y, w, h] = g.bbox;
        ctx.strokeStyle = "rgb(20, 90, 200)"; ctx.lineWidth = 3;
        ctx.strokeRect(x * s, y * s, w * s, h * s);
        // an unsure category (result v2: id null) reads "?" rather than a guess
        const text = g === main && catField && catField.value ? catField.display
          : g.category && g.category.id ? (categoryNames[g.category.id] || g.category.id)
            : `${g.object_type || "garment"} ?`;
        label(ctx, text + (g === main && catField && catField.uncertain ? " ?" : ""), x * s, y * s, "rgb(20, 90, 200)");
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

  async function showCorrections() {
    const section = $("corrections");
    section.hidden = false;
    let feats;
    try { feats = await features(); } catch (e) {
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
    // the form is built from the same station view as the result: same values, same words, same sources
    const order = ["usage", "condition", "type", "material", "pattern", "colors", "damage", "stains", "holes", "pilling"];
    const fields = order.map((n) => station.fields.find((f) => f.name === n && f.correctable)).filter(Boolean);
    $("correction-fields").replaceChildren(...fields.map(fieldControl));
  }

  function fieldControl(f) {
    const buttons = f.name !== "type" && f.choices.length <= 5;
    const shown = f.value === null || f.value === undefined ? (f.uncertain ? f.display : "no value") : f.display;
    const legend = el("legend", {}, [`${f.title}: ${shown} `, badge(f.source),
                                     f.uncertain ? el("span", { class: "unsure-tag", text: "check" }) : null]);
    const box = el("div", { class: "choices" });
    const fs = el("fieldset", { class: "field" + (f.uncertain ? " unsure" : ""), "data-field": f.name,
                                "data-source": f.source || "" }, [legend]);
    if (f.hint) fs.append(el("p", { class: "hint", text: f.hint }));
    if (f.note) fs.append(el("p", { class: "note", text: f.note }));
    if (f.uncertain && f.candidates.length) fs.append(el("p", { class: "note", text: candidateText(f) }));
    const set = (value) => {
      if (value === null) delete corrections[f.name];
      else corrections[f.name] = f.name === "colors" ? [value] : value;
      // the value shown is now the sorter's: its badge says so until saved
      fs.dataset.source = value === null ? (f.source || "") : "person";
      const b = legend.querySelector(".source");
      const nb = badge(value === null ? f.source : "person");
      if (b && nb) b.replaceWith(nb); else if (nb) legend.append(nb);
      fs.classList.toggle("unsure", value === null && f.uncertain);
    };
    if (buttons) {
      for (const c of f.choices) {
        const isModel = String(c.id) === String(f.value);
        const b = el("button", { type: "button", "aria-pressed": "false", "data-field": f.name, "data-value": String(c.id),
                                 text: c.name + (isModel ? " ✓" : "") });
        b.addEventListener("click", () => {
          const on = b.getAttribute("aria-pressed") !== "true";
          for (const other of box.querySelectorAll("button")) other.setAttribute("aria-pressed", "false");
          b.setAttribute("aria-pressed", String(on));
          set(on ? c.id : null);
        });
        box.append(b);
      }
    } else {
      const id = "fix-" + f.name;
      const keep = f.value === null || f.value === undefined ? "no value: choose one" : `keep: ${f.display}`;
      // an unsure field's candidates come first, then every value (the same words either way)
      const suggested = f.uncertain ? f.candidates.filter((c) => f.choices.some((x) => String(x.id) === String(c.id))) : [];
      const option = (c) => el("option", { value: String(c.id), text: c.name });
      const select = el("select", { id, "data-field": f.name, "aria-label": f.title },
        [el("option", { value: "", text: keep }),
         ...(suggested.length ? [el("optgroup", { label: "best guesses" }, suggested.map(option)),
                                 el("optgroup", { label: "all" }, f.choices.map(option))]
           : f.choices.map(option))]);
      select.addEventListener("change", () => {
        const c = f.choices.find((x) => String(x.id) === select.value);
        set(c ? c.id : null);
      });
      box.append(select);
    }
    fs.append(box);
    return fs;
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
      if (saved.station) { station = saved.station; showResult(false); }
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
