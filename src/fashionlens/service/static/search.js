// Catalogue search: words or a photo + taxonomy filters → POST /v1/search → a grid of garments
// (thumbnails from GET /v1/search/crops/{id}; when the photo is not readable here: path and labels).
"use strict";

(() => {
  const { api, say, el, features, taxonomy } = FL;
  const $ = (id) => document.getElementById(id);
  const FILTERS = [["category", "Category"], ["object_type", "Object type"], ["colour", "Colour"],
                   ["pattern", "Pattern"], ["material", "Material"]];
  let photo = null;

  function setPhoto(file) {
    photo = file;
    $("photo-name").textContent = file ? ` ${file.name}` : " or drop one here";
    $("clear-photo").hidden = !file;
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

  async function search(ev) {
    if (ev) ev.preventDefault();
    const text = $("query-text").value.trim();
    if (!photo && !text) { say("Type some words or choose a photo first.", "error"); return; }
    const params = new URLSearchParams({ k: $("k").value });
    for (const [name] of FILTERS) {
      const v = $("filter-" + name).value;
      if (v) params.append(name, v);
    }
    const form = new FormData();
    if (photo) { form.append("image", photo, photo.name || "query.jpg"); params.set("whole_image", "false"); }
    else form.append("text", text);
    say("Searching…");
    $("search-button").disabled = true;
    try {
      const answer = await api("/v1/search?" + params.toString(), { method: "POST", body: form });
      showHits(answer);
    } catch (e) {
      say(e.code === "not_configured" ? "Search is not available: this server has no garment index configured."
        : `Search failed: ${e.message}`, "error");
      $("results").replaceChildren();
    } finally {
      $("search-button").disabled = false;
    }
  }

  function showHits(answer) {
    const hits = answer.hits || [];
    const what = answer.query && answer.query.text ? `“${answer.query.text}”` : "the photo";
    say(hits.length ? `${hits.length} garments like ${what}.` : `No garment matches ${what} with these filters.`,
        hits.length ? "ok" : "");
    $("results").replaceChildren(...hits.map((h) => {
      const labels = [h.category, h.object_type, ...Object.entries(h.attributes || {})
        .map(([k, v]) => (Array.isArray(v) ? v.join("/") : v)).filter((v) => v)].filter((v) => v);
      const img = el("img", { src: `/v1/search/crops/${h.id}?size=256`, alt: `${h.category || "garment"} #${h.rank}`,
                              loading: "lazy" });
      const item = el("li", { "data-id": String(h.id) }, [img,
        el("div", { text: `#${h.rank} · ${h.score.toFixed(3)}` }), el("div", { text: labels.join(", ") })]);
      img.addEventListener("error", () => {
        // the photo is not readable by the server (or the key is missing): say so, show where it is
        img.replaceWith(el("div", { class: "no-picture", text: `picture not available here: ${h.path}` }));
      });
      return item;
    }));
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
    $("search-form").addEventListener("submit", search);
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
