// What the pages that send files straight to S3 share (board.js: photos, avatar.js: the profile picture) and what
// every script that posts to the site needs (select.js too): the CSRF token, a file's type, the presigned POST.
(function () {
  "use strict";

  // The cookie, or (a page whose cookie is not readable) the form's hidden field.
  function csrfToken(form) {
    const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (m) return decodeURIComponent(m[1]);
    const field = form && form.querySelector("[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  // Browsers often leave file.type empty for HEIC (and sometimes others): fall back to the extension.
  const TYPES = { jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", webp: "image/webp", gif: "image/gif",
                  heic: "image/heic", heif: "image/heif" };
  function typeOf(file) {
    if (file.type) return file.type;
    const ext = (file.name.split(".").pop() || "").toLowerCase();
    return TYPES[ext] || "application/octet-stream";
  }

  // The ticket's presigned POST, with its progress in percent.
  function sendToS3(ticket, file, onProgress) {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      Object.entries(ticket.fields).forEach(([k, v]) => form.append(k, v));
      form.append("file", file); // must come last
      const xhr = new XMLHttpRequest();
      xhr.open("POST", ticket.url);
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(Math.round((100 * e.loaded) / e.total));
      xhr.onload = () => (xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(new Error(`storage answered ${xhr.status}`)));
      xhr.onerror = () => reject(new Error("the upload was interrupted"));
      xhr.send(form);
    });
  }

  window.boardsiteUpload = { csrfToken, typeOf, sendToS3 };
})();
