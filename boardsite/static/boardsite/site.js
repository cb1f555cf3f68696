// Every page. The Content-Security-Policy refuses inline styles and handlers, so templates carry data- attributes
// and this applies them: a photo's placeholder and dominant colour (set through the CSSOM, which the policy allows),
// and a confirmation before forms marked data-confirm are sent.
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
})();
