// fashionlens web app: helpers shared by the pages (API calls, problem documents, API key, COCO RLE).
// Plain browser JavaScript, no build step, no third-party code.
"use strict";

const FL = (() => {
  const KEY_STORAGE = "fashionlens.apiKey";

  /** An error answer of the API (an RFC 9457 problem document) or a network failure. */
  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.code = (problem && problem.code) || "http_" + status;
      this.problem = problem || null;
    }
  }

  function apiKey() {
    try { return window.localStorage.getItem(KEY_STORAGE) || ""; } catch (e) { return ""; }
  }

  function setApiKey(key) {
    try {
      if (key) window.localStorage.setItem(KEY_STORAGE, key); else window.localStorage.removeItem(KEY_STORAGE);
    } catch (e) { /* private mode: the key lasts for this page only */ }
  }

  /** fetch() a /v1 route; JSON answers are parsed, errors thrown as ApiError. */
  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    const key = apiKey();
    if (key) headers.set("X-API-Key", key);
    let response;
    try {
      response = await fetch(path, { ...options, headers });
    } catch (e) {
      throw new ApiError(0, { code: "network", detail: "the server could not be reached: " + e.message });
    }
    const type = response.headers.get("content-type") || "";
    if (!response.ok) {
      let problem = null;
      if (type.includes("json")) { try { problem = await response.json(); } catch (e) { problem = null; } }
      const err = new ApiError(response.status, problem);
      if (response.status === 401 || response.status === 403) askForKey(err.message);
      throw err;
    }
    if (options.raw) return response;
    return type.includes("json") ? response.json() : response.text();
  }

  /** Show the API key form (auth on and no / a wrong key). */
  function askForKey(message) {
    const box = document.getElementById("api-key-box");
    if (!box) return;
    box.hidden = false;
    const msg = box.querySelector(".key-message");
    if (msg) msg.textContent = message;
    const input = box.querySelector("input");
    if (input) input.focus();
  }

  function initKeyForm() {
    const box = document.getElementById("api-key-box");
    if (!box) return;
    box.addEventListener("submit", (ev) => {
      ev.preventDefault();
      setApiKey(box.querySelector("input").value.trim());
      box.hidden = true;
      say("API key saved in this browser. Try again.", "ok");
    });
  }

  /** Put a message in the page's live region (read out by screen readers). */
  function say(text, kind = "") {
    const live = document.getElementById("status");
    if (!live) return;
    live.className = "notice" + (kind ? " " + kind : "");
    live.textContent = text;
  }

  /** Create an element: el("li", {class: "x", text: "hi"}, [children]). */
  function el(tag, attrs = {}, children = []) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of [].concat(children)) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  let featuresPromise = null;
  /** What the server has configured (GET /v1/features), fetched once. */
  function features() {
    if (!featuresPromise) featuresPromise = api("/v1/features").catch((e) => { featuresPromise = null; throw e; });
    return featuresPromise;
  }

  let taxonomyPromise = null;
  function taxonomy() {
    if (!taxonomyPromise) taxonomyPromise = api("/v1/taxonomy").catch((e) => { taxonomyPromise = null; throw e; });
    return taxonomyPromise;
  }

  /**
   * COCO RLE → column-major counts. ``counts`` is either the uncompressed list of run lengths or
   * the compressed string of pycocotools (rleFrString: 5-bit groups + 48, 0x20 = more, 0x10 = sign,
   * each count after the second stored as a difference to the count two before).
   */
  function rleCounts(rle) {
    if (Array.isArray(rle.counts)) return rle.counts.slice();
    const s = String(rle.counts);
    const counts = [];
    let p = 0;
    while (p < s.length) {
      let x = 0, k = 0, more = true;
      while (more) {
        if (p >= s.length) throw new Error("RLE string ends inside a number");
        const c = s.charCodeAt(p) - 48;
        x += (c & 0x1f) * Math.pow(32, k);
        more = (c & 0x20) !== 0;
        p++; k++;
        if (!more && (c & 0x10)) x -= Math.pow(32, k);
      }
      if (counts.length > 2) x += counts[counts.length - 2];
      counts.push(x);
    }
    return counts;
  }

  /** Decode a COCO RLE ({size: [h, w], counts}) into a row-major Uint8Array of 0/1, plus h and w. */
  function decodeRle(rle) {
    const [h, w] = rle.size;
    const out = new Uint8Array(h * w);
    const counts = rleCounts(rle);
    let i = 0, value = 0, total = 0;
    for (const n of counts) {
      total += n;
      if (total > h * w) throw new Error(`RLE counts sum to more than ${h}×${w} pixels`);
      if (value) {
        for (let j = i; j < i + n; j++) {   // column-major index j → (x = j / h, y = j % h)
          out[(j % h) * w + Math.floor(j / h)] = 1;
        }
      }
      i += n;
      value = 1 - value;
    }
    return { mask: out, height: h, width: w };
  }

  /** Paint a decoded mask onto ``ctx`` scaled to (dw, dh), in an RGBA colour. */
  function drawMask(ctx, decoded, rgba, dw, dh) {
    const off = document.createElement("canvas");
    off.width = decoded.width; off.height = decoded.height;
    const octx = off.getContext("2d");
    const img = octx.createImageData(decoded.width, decoded.height);
    for (let k = 0; k < decoded.mask.length; k++) {
      if (decoded.mask[k]) {
        img.data[4 * k] = rgba[0]; img.data[4 * k + 1] = rgba[1]; img.data[4 * k + 2] = rgba[2];
        img.data[4 * k + 3] = rgba[3];
      }
    }
    octx.putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, 0, 0, dw, dh);
  }

  function percent(x) { return (100 * x).toFixed(x < 0.1 ? 1 : 0) + "%"; }

  document.addEventListener("DOMContentLoaded", initKeyForm);

  return { ApiError, api, apiKey, setApiKey, say, el, features, taxonomy, rleCounts, decodeRle, drawMask, percent };
})();
