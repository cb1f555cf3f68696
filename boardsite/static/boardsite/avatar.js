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

  function csrfToken() {
    const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : form.querySelector("[name=csrfmiddlewaretoken]").value;
  }
  const TYPES = { jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", webp: "image/webp", gif: "image/gif",
                  heic: "image/heic", heif: "image/heif" };
  function typeOf(file) {
    if (file.type) return file.type;
    return TYPES[(file.name.split(".").pop() || "").toLowerCase()] || "application/octet-stream";
  }
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  function say(text, cls) { progress.hidden = false; status.textContent = text; progress.className = cls || ""; }

  function sendToS3(ticket, file) {
    return new Promise((resolve, reject) => {
      const data = new FormData();
      Object.entries(ticket.fields).forEach(([k, v]) => data.append(k, v));
      data.append("file", file); // must come last
      const xhr = new XMLHttpRequest();
      xhr.open("POST", ticket.url);
      xhr.upload.onprogress = (e) => e.lengthComputable && (bar.value = Math.round((100 * e.loaded) / e.total));
      xhr.onload = () => (xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(new Error(`storage answered ${xhr.status}`)));
      xhr.onerror = () => reject(new Error("the upload was interrupted"));
      xhr.send(data);
    });
  }

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
      ticket = await post(api, { filename: file.name, content_type: typeOf(file), size: file.size });
    } catch (e) { say(e.message, "error"); return; }
    try {
      await sendToS3(ticket.upload, file);
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
