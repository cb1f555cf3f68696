// Board page: many photos at once. Without script the tiles' checkboxes and the bar's buttons post a form that
// leads to a confirmation page; with it: click a checkbox (or, once something is selected, a tile) to select,
// shift-click for a range, Space or Enter on a focused tile or checkbox to toggle, Escape to clear; the bar counts,
// a dialog confirms, one request deletes or moves, and a toast offers Undo for the undo window.
(function () {
  "use strict";
  const form = document.getElementById("bulk");
  const grid = document.getElementById("grid");
  if (!form || !grid) return;
  const count = document.getElementById("selection-count");
  const status = document.getElementById("selection-status");
  const clear = document.getElementById("selection-clear");
  const dialog = document.getElementById("bulk-confirm");
  const toast = document.getElementById("undo-toast");
  const target = document.getElementById("move-target");
  const buttons = [...form.querySelectorAll("button[type=submit]")];
  const undoSeconds = Number(form.dataset.undoSeconds) || 8;
  const intro = count.textContent;
  let last = null; // the checkbox clicked last: the anchor of a shift-click range

  const { csrfToken } = window.boardsiteUpload; // upload.js

  const boxes = () => [...grid.querySelectorAll("input.select")];
  const chosen = () => boxes().filter((b) => b.checked);

  function refresh() {
    const n = chosen().length;
    boxes().forEach((b) => b.closest(".tile").classList.toggle("selected", b.checked));
    count.textContent = n ? `${n} photo${n === 1 ? "" : "s"} selected` : intro;
    buttons.forEach((b) => (b.disabled = n === 0));
    clear.hidden = n === 0;
    form.hidden = boxes().length === 0; // nothing one may select (yet): no bar
  }

  // Everything from the anchor (the box used last) to ``box`` takes ``state``; without an anchor, ``box`` alone.
  function select(box, state, range) {
    const all = boxes();
    if (range && last && last !== box && all.includes(last)) {
      const [a, b] = [all.indexOf(last), all.indexOf(box)].sort((x, y) => x - y);
      all.slice(a, b + 1).forEach((x) => (x.checked = state));
    } else {
      box.checked = state;
    }
    last = box;
    refresh();
  }

  const toggle = (box, range) => select(box, !box.checked, range);

  function clearAll() {
    boxes().forEach((b) => (b.checked = false));
    last = null;
    refresh();
  }

  // A click on a checkbox: the browser toggles it; a shift-click also sets everything since the last one clicked.
  grid.addEventListener("click", (e) => {
    const box = e.target.closest("input.select");
    if (box) {
      select(box, box.checked, e.shiftKey); // the browser has toggled it already: the range follows
      return;
    }
    // Once something is selected, a click on a tile selects it instead of opening the photo.
    const tile = e.target.closest(".tile");
    const tileBox = tile && tile.querySelector("input.select");
    if (tileBox && chosen().length) {
      e.preventDefault();
      toggle(tileBox, e.shiftKey);
    }
  });

  grid.addEventListener("keydown", (e) => {
    const tile = e.target.closest && e.target.closest(".tile");
    const box = tile && tile.querySelector("input.select");
    if (!box) return;
    // Enter on the checkbox, or Space or Enter on the tile's link while selecting, toggles (Space on a checkbox is
    // native; with nothing selected the link opens the photo as usual).
    const onBox = e.target === box;
    const selecting = !onBox && (e.key === " " || e.key === "Enter") && chosen().length;
    if ((onBox && e.key === "Enter") || selecting) {
      e.preventDefault();
      toggle(box, e.shiftKey);
    }
  });

  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && chosen().length && !(dialog && dialog.open)) clearAll();
  });
  clear.addEventListener("click", clearAll);

  function ask(question) {
    return new Promise((resolve) => {
      document.getElementById("bulk-confirm-text").textContent = question;
      const done = (answer) => {
        dialog.removeEventListener("close", onClose);
        dialog.querySelectorAll("button").forEach((b) => (b.onclick = null));
        if (dialog.open) dialog.close();
        resolve(answer);
      };
      const onClose = () => done(false); // Escape
      dialog.addEventListener("close", onClose);
      dialog.querySelectorAll("button").forEach((b) => (b.onclick = () => done(b.value === "confirm")));
      dialog.showModal();
      dialog.querySelector("button[value=confirm]").focus();
    });
  }

  async function post(url, body) {
    const r = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "application/json" },
      body: JSON.stringify(body || {}),
    });
    const answer = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(answer.error || `the site answered ${r.status}`);
    return answer;
  }

  let toastTimer = null;
  let toastDone = null;
  function showToast(text, undo, undoMs) {
    clearTimeout(toastTimer);
    // A new toast ends the one on show: its action goes on (a delete's finish is still sent when its window ends).
    if (toastDone) toastDone();
    toast.querySelector(".text").textContent = text;
    const button = toast.querySelector(".undo");
    button.hidden = !undo;
    button.onclick = undo || null;
    toast.hidden = false;
    return new Promise((resolve) => {
      toastDone = resolve;
      toastTimer = setTimeout(() => { toast.hidden = true; toastDone = null; resolve(); }, undo ? undoMs : 4000);
    });
  }

  // The tiles an action took away, with where they were, so Undo can put them back.
  function takeAway(ids) {
    const taken = [];
    ids.forEach((id) => {
      const tile = grid.querySelector(`.tile[data-image-id="${id}"]`);
      if (tile) { taken.push([tile, tile.nextSibling]); tile.remove(); }
    });
    return taken;
  }

  function putBack(taken) {
    taken.slice().reverse().forEach(([tile, next]) => {
      grid.insertBefore(tile, next && next.parentNode === grid ? next : null);
      const box = tile.querySelector("input.select");
      if (box) box.checked = false;
    });
    refresh();
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const action = e.submitter && e.submitter.value;
    const ids = chosen().map((b) => b.value);
    if (!ids.length || !action) return;
    const n = `${ids.length} photo${ids.length === 1 ? "" : "s"}`;
    const where = target && target.selectedOptions[0] ? target.selectedOptions[0].textContent : "";
    const question = action === "move" ? `Move ${n} to “${where}”?` : `Delete ${n}?`;
    if (!(await ask(question))) return;
    let batch;
    const sent = Date.now();
    try {
      batch = await post(form.dataset.api, { action, ids, target: action === "move" ? target.value : undefined });
    } catch (err) {
      showToast(`Nothing was changed: ${err.message}`);
      return;
    }
    const received = Date.now();
    const taken = takeAway(batch.ids);
    last = null;
    refresh();
    const done = `${batch.count} photo${batch.count === 1 ? "" : "s"} ${action === "move" ? `moved to “${where}”` : "deleted"}.`;
    status.textContent = done;
    let undone = false;
    await showToast(done, async () => {
      undone = true;
      clearTimeout(toastTimer);
      try {
        await post(batch.undo_url);
        putBack(taken);
        status.textContent = "Undone.";
        showToast("Undone.");
      } catch (err) {
        showToast(`Could not undo: ${err.message}`);
      }
    // The window started when the site acted, before its answer arrived: the toast ends in time for an Undo to count.
    }, Math.max(1000, undoSeconds * 1000 - (Date.now() - sent) - 500));
    // The window has passed (the site opened it between sending and answering): the deletion is done now rather
    // than at the sweep's next run.
    if (!undone && action === "delete") {
      const wait = Math.max(0, received + undoSeconds * 1000 + 250 - Date.now());
      setTimeout(() => post(batch.finish_url).catch(() => {}), wait);
    }
  });

  refresh();
  // Tiles that arrive later ("More photos") bring their checkboxes; the count stays right.
  new MutationObserver(refresh).observe(grid, { childList: true });
})();
