// Board page: direct-to-S3 uploads with a progress bar per file, and pending tiles that turn into images.
(function () {
  "use strict";
  const grid = document.getElementById("grid");
  const uploader = document.getElementById("uploader");
  const POLL_MS = 1500;
  const PARALLEL = 3;

  const { csrfToken, typeOf, sendToS3 } = window.boardsiteUpload; // upload.js

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => (k === "text" ? (node.textContent = v) : node.setAttribute(k, v)));
    (children || []).forEach((c) => node.appendChild(c));
    return node;
  }

  // --- tiles ---------------------------------------------------------------------------------------------------
  // The same <picture> the server renders: the square thumbnail and the medium size, best format first.
  const TILE_VARIANTS = ["thumb", "medium"];
  const FORMATS = [["avif", "image/avif"], ["webp", "image/webp"], ["jpeg", "image/jpeg"]];
  const SIZES = "(max-width: 640px) 50vw, 240px";

  function picture(image) {
    let variants = Object.values(image.variants);
    const named = TILE_VARIANTS.filter((n) => image.variants[n]).map((n) => image.variants[n]);
    if (named.length) variants = named;
    variants.sort((a, b) => a.width - b.width);
    const present = FORMATS.filter(([f]) => variants.every((v) => v.formats[f]));
    const srcset = (f) => variants.map((v) => `${v.formats[f]} ${v.width}w`).join(", ");
    const children = present.slice(0, -1).map(([f, type]) => el("source", { type: type, srcset: srcset(f), sizes: SIZES }));
    const fallback = present.length ? present[present.length - 1][0] : null;
    const img = el("img", {
      src: fallback ? variants[Math.floor((variants.length - 1) / 2)].formats[fallback] : "",
      srcset: fallback ? srcset(fallback) : "",
      sizes: SIZES,
      width: image.width,
      height: image.height,
      loading: "lazy",
      decoding: "async",
      alt: image.caption || image.filename,
    });
    return el("picture", {}, [...children, img]);
  }

  function renderTile(tile, image) {
    tile.dataset.status = image.status;
    const box = tile.querySelector("input.select"); // its selection checkbox (select.js) stays
    tile.replaceChildren();
    if (image.status === "ready") {
      if (image.dominant_color) tile.style.backgroundColor = image.dominant_color;
      if (image.placeholder) tile.style.backgroundImage = `url("${image.placeholder}")`;
      tile.appendChild(el("a", { href: image.page_url }, [picture(image)]));
    } else if (image.status === "failed") {
      tile.appendChild(
        el("div", { class: "placeholder failed" }, [
          el("strong", { text: image.filename }),
          el("span", { class: "reason", text: image.error || "Processing failed." }),
          el("a", { href: image.page_url, text: "details" }),
        ])
      );
    } else {
      tile.appendChild(
        el("div", { class: "placeholder" }, [
          el("span", { class: "spinner" }),
          document.createTextNode(image.filename || ""),
          el("span", { class: "muted", text: "processing…" }),
        ])
      );
    }
    if (box) tile.appendChild(box);
  }

  function addTile(imageId, statusUrl, filename) {
    const empty = grid.querySelector(".empty");
    if (empty) empty.remove();
    const tile = el("figure", { class: "tile", "data-image-id": imageId, "data-status-url": statusUrl });
    renderTile(tile, { status: "pending", filename: filename });
    if (document.getElementById("bulk")) {
      // One's own upload: selectable at once, like the tiles the page came with (select.js).
      const label = `Select ${filename}`;
      tile.appendChild(
        el("input", { type: "checkbox", class: "select", name: "image", value: imageId, form: "bulk", "aria-label": label })
      );
    }
    grid.prepend(tile);
    pollSoon();
    return tile;
  }

  // All pending tiles in one request (GET /api/images?ids=…), at most BATCH ids each. The pause grows while nothing
  // changes (POLL_MS up to POLL_MAX_MS) and starts again short when a tile settles or an upload starts.
  const POLL_MAX_MS = 15000;
  const BATCH = 100;
  let pollDelay = POLL_MS;
  let pollTimer = null;

  function pendingTiles() {
    return grid ? [...grid.querySelectorAll('.tile[data-status="pending"], .tile[data-status="processing"]')] : [];
  }

  function schedulePoll(delay) {
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = setTimeout(pollPending, delay);
  }

  async function pollPending() {
    pollTimer = null;
    const pending = pendingTiles();
    if (!pending.length) return; // nothing to watch; an upload starts it again
    let changed = false;
    for (let i = 0; i < pending.length; i += BATCH) {
      const tiles = new Map(pending.slice(i, i + BATCH).map((t) => [t.dataset.imageId, t]));
      try {
        const url = `${grid.dataset.statusApi}?ids=${[...tiles.keys()].map(encodeURIComponent).join(",")}`;
        const r = await fetch(url, { headers: { Accept: "application/json" } });
        if (!r.ok) continue;
        const answer = await r.json();
        answer.missing.forEach((id) => {
          // A ticket from the upload-ticket function reaches the site as an event, moments later: not missing yet.
          const tile = tiles.get(id);
          if (tile && Date.now() < Number(tile.dataset.appearsBy || 0)) return;
          tile?.remove();
          changed = true;
        });
        answer.images.forEach((image) => {
          const tile = tiles.get(image.id);
          if (tile && (image.status === "ready" || image.status === "failed")) { renderTile(tile, image); changed = true; }
        });
      } catch (e) { /* the network blinked: try again next round */ }
    }
    pollDelay = changed ? POLL_MS : Math.min(POLL_MAX_MS, Math.round(pollDelay * 1.5));
    schedulePoll(pollDelay);
  }

  function pollSoon() {
    pollDelay = POLL_MS;
    if (!pollTimer) schedulePoll(POLL_MS);
  }

  // --- tiles whose image does not load ---------------------------------------------------------------------------
  // Its URL may have expired (a page left open): ask for fresh ones once. Failing again, ask the site why (site.js:
  // one request for all the tiles failing at once, the files checked in storage) and say only what it knows: the
  // files are gone ("Photo missing", with the link to the image page, where an owner can delete it), one may no
  // longer see the photo (log in again), or it just could not be loaded (reload).
  function trouble(tile, kind, pageUrl) {
    tile.dataset.status = kind;
    const box = tile.querySelector("input.select"); // a missing photo can still be selected and deleted
    tile.replaceChildren(el("div", { class: "placeholder failed" }, window.boardsite.problem(kind, { pageUrl })));
    if (box) tile.appendChild(box);
  }

  async function tileFailed(tile) {
    const id = tile.dataset.imageId;
    const pageUrl = tile.querySelector("a")?.getAttribute("href") || "";
    if (!tile.dataset.retried) {
      tile.dataset.retried = "1";
      try {
        const image = await window.boardsite.imageStatus(id);
        if (!image) { trouble(tile, "hidden"); return; }
        renderTile(tile, image); // fresh URLs (or, failed or processing meanwhile, the tile says so)
        return;
      } catch (err) { /* the site did not answer: ask why below */ }
    }
    const { kind, image } = await window.boardsite.diagnose(id);
    trouble(tile, kind, (image && image.page_url) || pageUrl);
  }

  if (grid) {
    grid.addEventListener("error", (e) => {
      const tile = e.target.tagName === "IMG" ? e.target.closest(".tile") : null;
      if (!tile || tile.dataset.status !== "ready" || tile.dataset.checking) return;
      tile.dataset.checking = "1"; // one question per failure, however many <source>s fail with it
      tileFailed(tile).finally(() => delete tile.dataset.checking);
    }, true); // "error" does not bubble: listen while it goes down
    // Images that failed before this script ran (it is deferred) get the same treatment.
    grid.querySelectorAll(".tile img").forEach((img) => {
      if (img.complete && img.naturalWidth === 0 && img.currentSrc) img.dispatchEvent(new Event("error"));
    });
  }

  // --- more tiles as one scrolls -------------------------------------------------------------------------------
  // The "More photos" link works without script (a page of its own); with it, the next tiles join this page when
  // the link comes near the screen (or is followed from the keyboard), and the address remembers how far the page
  // goes (?until=, beside the ?after= of a page opened from that link), so the back button comes back to the same
  // place. Whoever followed the link (the keyboard) lands on the first new tile, and "N more photos" is announced;
  // tiles loaded because the link came into view leave the focus where it is (it may just have moved to the link).
  const more = document.getElementById("more");
  const moreStatus = document.getElementById("more-status");
  let loading = false;
  let followed = false; // the link was activated: the next tiles take the focus

  async function loadMore() {
    if (loading || !more || !more.dataset.next) return;
    loading = true;
    try {
      const r = await fetch(`${more.dataset.tiles}?after=${encodeURIComponent(more.dataset.next)}`, {
        headers: { Accept: "application/json" },
      });
      if (!r.ok) throw new Error(String(r.status));
      const page = await r.json();
      const holder = document.createElement("div");
      holder.innerHTML = page.html;
      if (window.boardsitePaint) window.boardsitePaint(holder);
      const added = [...holder.children];
      const onLink = followed && document.activeElement === more;
      followed = false;
      grid.append(...added);
      if (page.last) {
        const query = new URLSearchParams(location.search);
        query.set("until", page.last); // ?after= (a page of its own) stays: until counts from there
        history.replaceState(history.state, "", `?${query}`);
      }
      if (moreStatus && added.length) {
        moreStatus.textContent = `${added.length} more photo${added.length === 1 ? "" : "s"}`;
      }
      if (onLink && added.length) {
        const first = added[0].querySelector("a") || added[0];
        if (first === added[0]) first.setAttribute("tabindex", "-1"); // a tile still processing has no link
        first.focus();
      }
      if (page.next) {
        more.dataset.next = page.next;
        more.href = `?after=${encodeURIComponent(page.next)}`;
      } else {
        more.parentElement.remove();
        observer?.disconnect();
      }
      pollSoon();
      // Still in view (a tall screen, a short page): the observer will not fire again by itself.
      if (page.next && more.getBoundingClientRect().top < window.innerHeight + 800) setTimeout(loadMore, 0);
    } catch (e) {
      /* the link still works as a plain page; the observer tries again when it comes into view */
    } finally {
      loading = false;
    }
  }

  const observer = more && "IntersectionObserver" in window
    ? new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && loadMore(), { rootMargin: "800px" })
    : null;
  if (observer) observer.observe(more);
  if (more) more.addEventListener("click", (e) => { e.preventDefault(); followed = true; loadMore(); });

  // --- uploads -------------------------------------------------------------------------------------------------
  function uploadRow(file) {
    const bar = el("progress", { max: "100", value: "0" });
    const status = el("span", { class: "status", text: "waiting" });
    const row = el("li", {}, [el("span", { class: "name", text: file.name }), bar, status]);
    document.getElementById("upload-list").appendChild(row);
    return {
      progress: (p) => (bar.value = p),
      status: (text, cls) => { status.textContent = text; row.className = cls || ""; },
    };
  }


  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // Retry-After is seconds (or, by the standard, a date); wait at least 1 s and at most a minute.
  function retryAfterSeconds(value) {
    let seconds = Number(value);
    if (value === null || value === "" || !Number.isFinite(seconds)) {
      const at = Date.parse(value || "");
      seconds = Number.isFinite(at) ? (at - Date.now()) / 1000 : 5;
    }
    return Math.min(60, Math.max(1, Math.ceil(seconds)));
  }

  // Where this batch's tickets come from (POST /api/upload-grants): the site itself, or the upload-ticket function
  // with a grant the site signed for these files. Any trouble asking: the site's own tickets, as before.
  let grant = null;
  let waiting = [];
  async function askGrant(files) {
    try {
      const r = await fetch(uploader.dataset.grants, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify({
          board: Number(uploader.dataset.board),
          files: files.length,
          bytes: files.reduce((sum, f) => sum + f.size, 0) || 1,
        }),
      });
      grant = r.ok ? await r.json() : null;
    } catch (err) {
      grant = null;
    }
  }

  // A 429 (too many tickets outstanding) is a reason to wait, never to fail: the row says so and asks again once
  // the site says to, so a folder of any size goes through. A 413 or 403 (a quota, a full board) fails this file.
  // The function refusing a grant (expired, used up, revoked) means: ask the site for a new one, once.
  async function requestTicket(file, row) {
    let renewed = false;
    for (;;) {
      const viaFunction = grant && grant.runtime === "lambda" && grant.grant;
      const ticket = { board: Number(uploader.dataset.board), filename: file.name, content_type: typeOf(file), size: file.size };
      const r = await fetch(viaFunction ? grant.ticket_url : uploader.dataset.api, {
        method: "POST",
        headers: viaFunction
          ? { "Content-Type": "application/json" }
          : { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        credentials: viaFunction ? "omit" : "same-origin",
        body: JSON.stringify(viaFunction ? { ...ticket, grant: grant.grant } : ticket),
      });
      const body = await r.json().catch(() => ({}));
      if (viaFunction && !renewed && (r.status === 403 || (r.status === 429 && !r.headers.get("Retry-After")))) {
        renewed = true;
        await askGrant([file, ...waiting]);
        continue;
      }
      if (r.status === 429) {
        row.status(`waiting: ${body.error || "too many uploads at once"}`, "waiting");
        await sleep(1000 * retryAfterSeconds(r.headers.get("Retry-After")));
        row.status("preparing…");
        continue;
      }
      if (!r.ok) throw new Error(body.error || `the site answered ${r.status}`);
      return body;
    }
  }

  async function abandon(image, reason) {
    // Tell the site, so the photo ends "failed" with the reason instead of waiting forever.
    await fetch(image.abandon_url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({ reason: reason }),
    }).catch(() => {});
  }

  async function uploadOne(file) {
    const row = uploadRow(file);
    try {
      row.status("preparing…");
      const { image, upload } = await requestTicket(file, row);
      row.status("uploading…");
      try {
        await sendToS3(upload, file, row.progress);
      } catch (err) {
        await abandon(image, err.message);
        throw err;
      }
      row.progress(100);
      row.status("processing…");
      const tile = addTile(image.id, image.status_url, file.name);
      if (!image.complete_url) tile.dataset.appearsBy = String(Date.now() + 60000);
      if (image.complete_url) {
        // Not for an upload placed for Lambda: S3 itself starts its processing (the ticket then says null).
        const r = await fetch(image.complete_url, { method: "POST", headers: { "X-CSRFToken": csrfToken() } });
        const done = await r.json().catch(() => ({}));
        if (!r.ok) throw new Error(done.error || `the site answered ${r.status}`);
        if (done.status === "ready" || done.status === "failed") renderTile(tile, done);
      } else {
        pollSoon();
      }
      row.status("uploaded", "ok");
    } catch (err) {
      row.status(`failed: ${err.message}`, "failed");
    }
  }

  async function uploadAll(files) {
    const queue = Array.from(files);
    waiting = queue;
    await askGrant(queue);
    const workers = Array.from({ length: Math.min(PARALLEL, queue.length) }, async () => {
      while (queue.length) await uploadOne(queue.shift());
    });
    await Promise.all(workers);
  }

  if (uploader) {
    const input = document.getElementById("file-input");
    input.addEventListener("change", () => { uploadAll(input.files); input.value = ""; });
    ["dragenter", "dragover"].forEach((t) =>
      uploader.addEventListener(t, (e) => { e.preventDefault(); uploader.classList.add("over"); })
    );
    ["dragleave", "drop"].forEach((t) => uploader.addEventListener(t, () => uploader.classList.remove("over")));
    uploader.addEventListener("drop", (e) => {
      e.preventDefault();
      if (e.dataTransfer && e.dataTransfer.files.length) uploadAll(e.dataTransfer.files);
    });
  }
  if (grid) pollPending();
})();
