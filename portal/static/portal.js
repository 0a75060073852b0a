// Small behaviours htmx does not cover; no inline scripts (the CSP forbids them).
(function () {
  "use strict";

  // A server-rendered <dialog data-open> opens as a modal once htmx has swapped it in.
  function openDialogs(root) {
    root.querySelectorAll("dialog[data-open]:not([open])").forEach(function (dialog) {
      dialog.showModal();
    });
  }

  document.addEventListener("htmx:afterSettle", function (event) { openDialogs(event.target); });
  document.addEventListener("DOMContentLoaded", function () { openDialogs(document); });

  document.addEventListener("click", function (event) {
    var closer = event.target.closest("[data-close-dialog]");
    if (closer) {
      var dialog = closer.closest("dialog");
      dialog.close();
      dialog.remove();
    }
  });

  // A confirm button stays disabled until the typed text matches (data-confirm-text).
  document.addEventListener("input", function (event) {
    var input = event.target.closest("[data-confirm-for]");
    if (!input) return;
    var button = document.getElementById(input.dataset.confirmFor);
    button.disabled = input.value.trim() !== input.dataset.confirmText;
  });
})();

// The dropdown beside Delete: a disclosure menu, closed by Escape or a click elsewhere.
(function () {
  "use strict";
  function close(toggle) {
    toggle.setAttribute("aria-expanded", "false");
    document.getElementById(toggle.getAttribute("aria-controls")).hidden = true;
  }
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest("[data-menu-toggle]");
    document.querySelectorAll("[data-menu-toggle][aria-expanded='true']").forEach(function (open) {
      if (open !== toggle) close(open);
    });
    if (!toggle) return;
    var menu = document.getElementById(toggle.getAttribute("aria-controls"));
    var opening = menu.hidden;
    menu.hidden = !opening;
    toggle.setAttribute("aria-expanded", String(opening));
    if (opening) { var first = menu.querySelector("button, a"); if (first) first.focus(); }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("[data-menu-toggle][aria-expanded='true']").forEach(function (open) {
      close(open);
      open.focus();
    });
  });
})();
