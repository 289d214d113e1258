// Catalogue search: words or a photo + taxonomy filters → POST /v1/search → a grid of garments
// (thumbnails from GET /v1/search/crops/{id}; when the photo is not readable here: path and labels),
// each with its readable caption and similarity. A photo with several garments: the server searches
// the largest confident one (garment=auto) and lists them all; the page shows them as chips cropped
// from the local photo, and tapping one searches that garment instead.
"use strict";

(() => {
  const { api, say, el, features, taxonomy } = FL;
  const $ = (id) => document.getElementById(id);
  const FILTERS = [["category", "Category"], ["object_type", "Object type"], ["colour", "Colour"],
                   ["pattern", "Pattern"], ["material", "Material"]];
  const THUMB = 64;  // chip thumbnail side in CSS pixels
  let photo = null;
  let photoPicture = null;  // Promise of the decoded photo (an <img>) for the chip thumbnails, or null
  let photoUrl = null;

  function setPhoto(file) {
    if (photoUrl) URL.revokeObjectURL(photoUrl);
    photo = file;
    photoUrl = file ? URL.createObjectURL(file) : null;
    photoPicture = null;
    $("photo-name").textContent = file ? ` ${file.name}` : " or drop one here";
    $("clear-photo").hidden = !file;
    hidePicker();
  }

  /** The chosen photo decoded by the browser (once per photo); null when it cannot show it (e.g. HEIC). */
  function picture() {
    if (!photoPicture && photoUrl) {
      const img = new Image();
      img.src = photoUrl;
      photoPicture = img.decode().then(() => img, () => null);
    }
    return photoPicture || Promise.resolve(null);
  }

  async function buildFilters() {
    const tax = await taxonomy();
    const values = {
      category: tax.categories.map((c) => c.id), object_type: tax.object_types,
      colour: tax.attributes.colours ? tax.attributes.colours.values : [],
      pattern: tax.attributes.pattern ? tax.attributes.pattern.values : [],
      material: tax.attributes.material ? tax.attributes.material.values : [],
    };
    $("filters").replaceChildren(...FILTERS.map(([name, text]) => el("label", { for: "filter-" + name }, [
      text, el("select", { id: "filter-" + name, "data-filter": name },
               [el("option", { value: "", text: "any" }), ...values[name].map((v) => el("option", { value: v, text: v }))]),
    ])));
  }

  /** Search the words, or the photo's garment ``garment`` ("auto": the server picks the largest). */
  async function search(ev, garment = "auto") {
    if (ev) ev.preventDefault();
    const text = $("query-text").value.trim();
    if (!photo && !text) { say("Type some words or choose a photo first.", "error"); return; }
    const params = new URLSearchParams({ k: $("k").value });
    for (const [name] of FILTERS) {
      const v = $("filter-" + name).value;
      if (v) params.append(name, v);
    }
    const form = new FormData();
    if (photo) {
      form.append("image", photo, photo.name || "query.jpg");
      params.set("whole_image", "false");
      params.set("garment", String(garment));
    } else {
      form.append("text", text);
    }
    say("Searching…");
    setBusy(true);
    try {
      const answer = await api("/v1/search?" + params.toString(), { method: "POST", body: form });
      showHits(answer);
      await showPicker(answer);
    } catch (e) {
      say(e.code === "not_configured" ? "Search is not available: this server has no garment index configured."
        : `Search failed: ${e.message}`, "error");
      $("results").replaceChildren();
    } finally {
      setBusy(false);
    }
  }

  let busy = false;

  /** While a search runs: the search button is disabled, chip taps are ignored (a chip keeps its focus). */
  function setBusy(on) {
    busy = on;
    $("search-button").disabled = on;
    $("garment-chips").setAttribute("aria-busy", on ? "true" : "false");
    $("results").setAttribute("aria-busy", on ? "true" : "false");
  }

  /** "similarity 71 %": the hit's cosine similarity (negative ones read as 0 %). */
  function similarity(score) {
    return `similarity ${Math.round(100 * Math.max(0, Math.min(1, score)))} %`;
  }

  function queryName(answer) {
    const q = answer.query || {};
    if (q.text) return `“${q.text}”`;
    const g = (q.garments || [])[q.garment];
    return g && q.garments.length > 1 ? `the ${g.name} in your photo` : "the photo";
  }

  function showHits(answer) {
    const hits = answer.hits || [];
    const q = answer.query || {};
    const what = queryName(answer);
    const several = !q.text && (q.garments || []).length > 1;
    const how = several && q.garment_choice === "auto" ? " The largest garment was chosen; tap another one below." : "";
    say(hits.length ? `${hits.length} garments like ${what}.${how}` : `No garment matches ${what} with these filters.${how}`,
        hits.length ? "ok" : "");
    $("similarity-help").hidden = !hits.length;
    const meaning = q.text ? "how well the words match the garment" : "how alike the two garments look (100 % = the same)";
    $("results").replaceChildren(...hits.map((h) => {
      const caption = h.caption || h.category || "garment";
      const img = el("img", { src: `/v1/search/crops/${h.id}?size=256`, alt: caption, loading: "lazy" });
      // text hits re-ranked by their labels carry the cosine as `similarity` (their `score` adds the label bonus)
      const cosine = typeof h.similarity === "number" ? h.similarity : h.score;
      const score = Math.max(0, Math.min(1, cosine));
      const item = el("li", { "data-id": String(h.id), "data-category": h.category || "",
                              "data-object-type": h.object_type || "", "data-score": String(h.score) }, [
        img,
        el("p", { class: "hit-caption", text: caption }),
        el("div", { class: "similarity", title: meaning }, [
          el("meter", { min: "0", max: "1", value: String(score),
                        "aria-label": `similarity, ${meaning}` }),
          el("span", { text: `#${h.rank} · ${similarity(cosine)}` }),
        ]),
      ]);
      img.addEventListener("error", () => {
        // the photo is not readable by the server (or the key is missing): say so, show where it is
        img.replaceWith(el("div", { class: "no-picture", text: `picture not available here: ${h.path}` }));
      });
      return item;
    }));
  }

  function hidePicker() {
    $("garment-picker").hidden = true;
    $("garment-chips").replaceChildren();
  }

  /** Chips for the photo's garments (when it has several): crop thumbnail + name, the searched one pressed. */
  async function showPicker(answer) {
    const q = answer.query || {};
    const garments = q.garments || [];
    if (!photo || q.text || garments.length < 2) { hidePicker(); return; }
    const pic = await picture();
    const wasShown = !$("garment-picker").hidden;
    const hadFocus = $("garment-chips").contains(document.activeElement);
    $("garment-chips").replaceChildren(...garments.map((g) => {
      const chosen = g.index === q.garment;
      const button = el("button", {
        type: "button", class: "chip", "aria-pressed": chosen ? "true" : "false", "data-garment": String(g.index),
        title: g.caption,
        "aria-label": `${g.name} (${g.object_type}), garment ${g.index + 1} of ${garments.length}`
          + (chosen ? ", searched" : ""),
        onclick: () => { if (!chosen && !busy) search(null, g.index); },
      }, [
        thumbnail(pic, g.bbox),
        el("span", { class: "chip-text" }, [
          el("span", { class: "chip-name", text: g.name }),
          el("span", { class: "chip-detail", text: chosen ? `${g.object_type} · searched` : g.object_type }),
        ]),
      ]);
      return el("li", {}, [button]);
    }));
    $("garment-picker").hidden = false;
    if (hadFocus) {
      $("garment-chips").querySelector("button[aria-pressed=true]").focus();  // the keyboard stays where it was
    } else if (!wasShown && $("status").getBoundingClientRect().top > window.innerHeight * 0.6) {
      $("status").scrollIntoView({ block: "start" });  // a phone: the answer and the chips, not the form
    }
  }

  /** A square canvas with the garment's box [x, y, w, h] cropped from the photo (or its number, without one). */
  function thumbnail(pic, bbox) {
    const scale = window.devicePixelRatio || 1;
    const canvas = el("canvas", { class: "chip-thumb", width: String(Math.round(THUMB * scale)),
                                  height: String(Math.round(THUMB * scale)), "aria-hidden": "true" });
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#f0f0f0";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!pic || !bbox) return canvas;
    const [x, y, w, h] = bbox;
    if (!(w > 0 && h > 0)) return canvas;
    const fit = Math.min(canvas.width / w, canvas.height / h);
    const dw = w * fit, dh = h * fit;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(pic, x, y, w, h, (canvas.width - dw) / 2, (canvas.height - dh) / 2, dw, dh);
    return canvas;
  }

  async function notices() {
    try {
      const f = await features();
      if (!f.search.available) {
        $("feature-notices").replaceChildren(el("p", { class: "notice",
          text: "Search is not available on this server: no garment index is configured (fashionlens serve --index DIR)." }));
        $("search-button").disabled = true;
      }
    } catch (e) {
      $("feature-notices").replaceChildren(el("p", { class: "notice error", text: `Server features unknown: ${e.message}` }));
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    buildFilters().catch((e) => say(`Filters unavailable: ${e.message}`, "error"));
    notices();
    $("search-form").addEventListener("submit", (ev) => search(ev));
    $("query-photo").addEventListener("change", (ev) => { if (ev.target.files[0]) { setPhoto(ev.target.files[0]); search(); } });
    $("clear-photo").addEventListener("click", () => { setPhoto(null); $("query-photo").value = ""; });
    const zone = $("dropzone");
    zone.addEventListener("dragover", (ev) => { ev.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (ev) => {
      ev.preventDefault(); zone.classList.remove("over");
      const f = ev.dataTransfer.files && ev.dataTransfer.files[0];
      if (f) { setPhoto(f); search(); }
    });
  });
})();
