// Every page. The Content-Security-Policy refuses inline styles and handlers, so templates carry data- attributes
// and this applies them: a photo's placeholder and dominant colour (set through the CSSOM, which the policy allows),
// a confirmation before forms marked data-confirm are sent, and a box saying why when a photo does not load.
(function () {
  "use strict";

  function paint(root) {
    root.querySelectorAll("[data-color], [data-placeholder]").forEach((node) => {
      if (node.dataset.color) node.style.backgroundColor = node.dataset.color;
      if (node.dataset.placeholder) node.style.backgroundImage = `url("${node.dataset.placeholder}")`;
    });
  }

  paint(document);
  window.boardsitePaint = paint; // for tiles a page adds later (board.js)
  // Links marked data-key="ArrowLeft" (previous / next photo) follow that key, unless one is typing.
  document.addEventListener("keydown", (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey || e.shiftKey || e.defaultPrevented) return;
    const typing = e.target.closest && e.target.closest("input, textarea, select, [contenteditable]");
    const link = !typing && document.querySelector(`a[data-key="${e.key}"]`);
    if (link) { e.preventDefault(); link.click(); }
  });
  document.addEventListener("submit", (e) => {
    const message = e.target.dataset && e.target.dataset.confirm;
    if (message && !window.confirm(message)) e.preventDefault();
  });

  // --- photos that do not load -----------------------------------------------------------------------------------
  // Whatever the reason the browser could not load a photo (an expired URL or session, the CDN's cookies not sent,
  // the network, files gone from storage), the page asks the site before it says anything: GET /api/images?ids=…
  // answers for the images one may still see, and with &verify=1 whether their files are in storage. Many photos
  // failing at once (a session that expired) make one request, not one each: calls within DEBOUNCE_MS are joined.
  const DEBOUNCE_MS = 150;
  const BATCH = { plain: 100, verify: 10 }; // the API's limits (verify: each id costs the site a HEAD)
  const queues = { plain: new Map(), verify: new Map() }; // id -> the callers waiting for it
  let flushTimer = null;

  async function ask(entries, verify) {
    const api = document.body.dataset.statusApi;
    const ids = entries.map(([id]) => encodeURIComponent(id)).join(",");
    try {
      const r = await fetch(`${api}?ids=${ids}${verify ? "&verify=1" : ""}`, { headers: { Accept: "application/json" } });
      if (!r.ok) throw new Error(`the site answered ${r.status}`);
      const answer = await r.json();
      const images = new Map(answer.images.map((image) => [image.id, image]));
      entries.forEach(([id, waiting]) => waiting.forEach((w) => w.resolve(images.get(id) || null)));
    } catch (err) {
      entries.forEach(([, waiting]) => waiting.forEach((w) => w.reject(err)));
    }
  }

  function flush() {
    flushTimer = null;
    Object.entries(queues).forEach(([kind, queue]) => {
      const entries = [...queue.entries()];
      queue.clear();
      for (let i = 0; i < entries.length; i += BATCH[kind]) ask(entries.slice(i, i + BATCH[kind]), kind === "verify");
    });
  }

  // The image's tile payload (with `files` when verifying), null when one may not see it (signed out, removed from
  // the board, deleted: the site does not say which); rejects when the site could not be asked.
  function imageStatus(id, { verify = false } = {}) {
    return new Promise((resolve, reject) => {
      const queue = verify ? queues.verify : queues.plain;
      if (!queue.has(id)) queue.set(id, []);
      queue.get(id).push({ resolve, reject });
      if (flushTimer) clearTimeout(flushTimer);
      flushTimer = setTimeout(flush, DEBOUNCE_MS);
    });
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => (k === "text" ? (node.textContent = v) : node.setAttribute(k, v)));
    (children || []).forEach((c) => node.appendChild(typeof c === "string" ? document.createTextNode(c) : c));
    return node;
  }

  // What to say about a photo that did not load: "missing" (its files are gone: the site checked), "hidden" (one may
  // no longer see it) or "unloaded" (the files are there, or nobody could tell). ``links``: false inside a link.
  function problem(kind, { pageUrl = "", links = true } = {}) {
    const here = location.pathname + location.search;
    if (kind === "missing") {
      return [
        el("strong", { text: "Photo missing" }),
        el("span", { class: "reason", text: "Its files are no longer in storage." }),
        ...(links && pageUrl ? [el("a", { href: pageUrl, text: "details" })] : []),
      ];
    }
    if (kind === "hidden") {
      const login = `${document.body.dataset.loginUrl}?next=${encodeURIComponent(here)}`;
      return [
        // The site does not say whether an id exists: deleted and no longer visible look the same to it.
        el("span", { class: "reason" }, [
          "This photo is no longer available to you: it was deleted, or you need to ",
          links ? el("a", { href: login, text: "log in again" }) : "log in again",
          ".",
        ]),
      ];
    }
    return [
      el("span", { class: "reason" }, [
        "This photo could not be loaded. ",
        links ? el("a", { href: location.href, text: "Reload the page." }) : "Reload the page.",
      ]),
      ...(links && pageUrl ? [el("a", { href: pageUrl, text: "details" })] : []),
    ];
  }

  // What the site says about an image whose photo did not load, as one of problem()'s kinds.
  async function diagnose(id) {
    try {
      const image = await imageStatus(id, { verify: true });
      if (!image) return { kind: "hidden" };
      return { kind: image.files === "missing" ? "missing" : "unloaded", image: image };
    } catch (err) {
      return { kind: "unloaded" };
    }
  }

  window.boardsite = { imageStatus, diagnose, problem };

  // Photos outside the board's grid (the image page, the boards' covers) carry data-check="<image id>": a photo
  // that does not load gives way to a box of the same size that says why, once the site has said it.
  async function replaceBroken(img) {
    if (img.dataset.checked) return;
    img.dataset.checked = "1";
    // The room the photo had: the stylesheet's shape (a square cover), else its own from its width and height
    // attributes (computed "auto 800 / 600"), as wide as the photo at most (a broken image's own box is not it).
    const box = el("span", { class: "photo-problem", "aria-busy": "true" });
    const ratio = getComputedStyle(img).aspectRatio;
    const [width, height] = [Number(img.getAttribute("width")), Number(img.getAttribute("height"))];
    if (!ratio.startsWith("auto")) {
      box.style.aspectRatio = ratio;
    } else if (width && height) {
      box.style.aspectRatio = `${width} / ${height}`;
      box.style.maxWidth = `min(100%, ${width}px)`;
    }
    (img.closest("picture") || img).replaceWith(box);
    const { kind } = await diagnose(img.dataset.check);
    box.replaceChildren(...problem(kind, { links: !box.closest("a") }));
    box.dataset.problem = kind;
    box.removeAttribute("aria-busy");
  }

  document.addEventListener("error", (e) => {
    if (e.target.tagName === "IMG" && e.target.dataset.check) replaceBroken(e.target);
  }, true); // "error" does not bubble: listen while it goes down
  // This script is deferred: photos that failed before it ran get the same treatment.
  document.querySelectorAll("img[data-check]").forEach((img) => {
    if (img.complete && img.naturalWidth === 0 && img.currentSrc) replaceBroken(img);
  });
})();
