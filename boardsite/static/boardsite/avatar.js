// Profile page: the picture goes straight to S3 with a ticket (as board.js sends photos), with progress, then the
// page waits for the processor's verdict and reloads to show it (or its reason). Without script the form posts the
// file to the site instead.
(function () {
  const section = document.getElementById("avatar");
  const form = document.getElementById("avatar-form");
  if (!section || !form || !window.fetch) return;
  const input = document.getElementById("avatar-file");
  const progress = document.getElementById("avatar-progress");
  const bar = progress.querySelector("progress");
  const status = progress.querySelector(".status");
  const api = section.dataset.api;

  const shared = window.boardsiteUpload; // upload.js
  const csrfToken = () => shared.csrfToken(form);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  function say(text, cls) { progress.hidden = false; status.textContent = text; progress.className = cls || ""; }

  async function post(url, body) {
    const r = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body || {}),
    });
    const json = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(json.error || `the site answered ${r.status}`);
    return json;
  }

  async function upload(file) {
    bar.value = 0;
    say(`sending ${file.name}…`);
    let ticket;
    try {
      ticket = await post(api, { filename: file.name, content_type: shared.typeOf(file), size: file.size });
    } catch (e) { say(e.message, "error"); return; }
    try {
      await shared.sendToS3(ticket.upload, file, (percent) => (bar.value = percent));
    } catch (e) {
      await post(ticket.avatar.abandon_url).catch(() => {});
      say(`The upload did not finish (${e.message}). Please try again.`, "error");
      return;
    }
    bar.value = 100;
    say("processing…");
    try {
      let state = await post(ticket.avatar.complete_url);
      for (let i = 0; state.state !== "idle" && i < 120; i++) {
        await sleep(1000);
        state = await (await fetch(api, { headers: { Accept: "application/json" } })).json();
      }
      say(state.error ? "refused" : "done", state.error ? "error" : "");
    } catch (e) { say(e.message, "error"); return; }
    window.location.reload(); // the page shows the new picture, or why it was refused
  }

  form.addEventListener("submit", (e) => {
    if (!input.files.length) return;
    e.preventDefault();
    upload(input.files[0]);
  });
  ["dragenter", "dragover"].forEach((t) => form.addEventListener(t, (e) => { e.preventDefault(); form.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => form.addEventListener(t, () => form.classList.remove("over")));
  form.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer && e.dataTransfer.files.length) upload(e.dataTransfer.files[0]);
  });
})();
