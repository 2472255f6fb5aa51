// relay console: a few conveniences; every page works without them.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Ask before a form marked data-confirm is sent (delete, retry all).
  document.querySelectorAll("[data-confirm]").forEach((element) => {
    const form = element.tagName === "FORM" ? element : element.form;
    const ask = (event) => {
      if (!window.confirm(element.dataset.confirm)) event.preventDefault();
    };
    if (element.tagName === "FORM") form.addEventListener("submit", ask);
    else element.addEventListener("click", ask);
  });

  // Tick or untick every dead letter at once.
  const all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", () => {
      document.querySelectorAll('input[name="ids"]').forEach((box) => {
        box.checked = all.checked;
      });
    });
  }

  // Reload a page that watches something change (a delivery in flight).
  const seconds = Number(document.body.dataset.refresh || 0);
  if (seconds > 0) {
    window.setTimeout(() => window.location.reload(), seconds * 1000);
  }
});
