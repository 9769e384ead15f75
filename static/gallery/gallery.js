// Gallery enhancements. Every action also works without this file: the filter bar is a GET
// form, the selection bar a POST form, deletion asks on a page of its own, links are links.
(function () {
  "use strict";

  // Filter bar: search as you type; bookmarkable URLs without empty parameters.
  const filters = document.getElementById("filters");
  if (filters) {
    const apply = filters.querySelector("[data-apply]");
    if (apply) apply.hidden = true; // every change applies itself
    let typing = null;
    filters.addEventListener("input", (event) => {
      if (event.target.type !== "search") return;
      clearTimeout(typing);
      typing = setTimeout(() => filters.requestSubmit(), 400);
    });
    document.addEventListener("htmx:configRequest", (event) => {
      if (event.detail.elt !== filters) return;
      for (const [name, value] of [...event.detail.parameters.entries()]) {
        if (value === "") event.detail.parameters.delete(name);
      }
    });
  }

  // Selection: checkboxes, shift-click for a range, select all on screen, a bar with the count.
  const bar = document.querySelector("[data-selection-bar]");
  let lastClicked = null;

  function boxes() {
    return Array.from(document.querySelectorAll('#grid input[name="ids"][form="selection"]'));
  }

  function refresh() {
    if (!bar) return;
    const checked = boxes().filter((box) => box.checked);
    const chosen = checked.length;
    bar.hidden = chosen === 0;
    // Delete is offered only when every ticked image may be deleted by this person.
    const deletable = checked.every((box) => box.hasAttribute("data-deletable"));
    bar.querySelector("[data-delete-button]").hidden = !deletable;
    bar.querySelector("[data-delete-hint]").hidden = deletable || chosen === 0;
    bar.querySelector("[data-selected-count]").textContent = `${chosen} selected`;
    bar.querySelectorAll("[data-select-all], [data-clear-selection]").forEach((b) => (b.hidden = false));
    const grid = document.getElementById("grid");
    if (grid) grid.classList.toggle("selecting", chosen > 0);
  }

  if (bar) {
    document.addEventListener("click", (event) => {
      const box = event.target.closest && event.target.closest('input[name="ids"][form="selection"]');
      if (!box) return;
      const all = boxes();
      if (event.shiftKey && lastClicked && lastClicked !== box && all.includes(lastClicked)) {
        const [from, to] = [all.indexOf(lastClicked), all.indexOf(box)].sort((a, b) => a - b);
        all.slice(from, to + 1).forEach((other) => (other.checked = box.checked));
      }
      lastClicked = box;
      refresh();
    });
    bar.querySelector("[data-select-all]").addEventListener("click", () => {
      boxes().forEach((box) => (box.checked = true));
      refresh();
    });
    bar.querySelector("[data-clear-selection]").addEventListener("click", () => {
      boxes().forEach((box) => (box.checked = false));
      lastClicked = null;
      refresh();
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !document.querySelector("dialog[open]") && !bar.hidden) {
        bar.querySelector("[data-clear-selection]").click();
      }
    });
    document.addEventListener("htmx:afterSettle", refresh);
    // After deleting, come back to the view as it is now (the filters may have changed).
    document.addEventListener("htmx:pushedIntoHistory", () => {
      bar.querySelector('input[name="next"]').value = window.location.pathname + window.location.search;
    });
    window.addEventListener("pageshow", refresh); // the back button may restore checked boxes
    refresh();
  }

  // Deleting asks first, in a dialog (the server asks on a page of its own without JavaScript).
  const dialog = document.querySelector("[data-confirm-dialog]");
  let pending = null;
  if (dialog && typeof dialog.showModal === "function") {
    document.addEventListener("click", (event) => {
      const button = event.target.closest && event.target.closest("[data-confirm-delete]");
      if (!button) return;
      event.preventDefault();
      let what = button.dataset.deleteWhat;
      if (!what) {
        const count = boxes().filter((box) => box.checked).length;
        what = `${count} image${count === 1 ? "" : "s"}`;
      }
      dialog.querySelector("[data-delete-what]").textContent = what;
      pending = button;
      dialog.showModal();
    });
    dialog.querySelector("[data-dialog-cancel]").addEventListener("click", () => dialog.close());
    dialog.querySelector("[data-dialog-confirm]").addEventListener("click", () => {
      const form = pending.form;
      const confirmed = document.createElement("input");
      Object.assign(confirmed, { type: "hidden", name: "confirmed", value: "1" });
      form.appendChild(confirmed);
      form.requestSubmit(pending);
      confirmed.remove();
      dialog.close();
    });
  }

  // Image page: arrow keys step to the newer and older image.
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    if (event.target.closest && event.target.closest("input, textarea, select, [contenteditable]")) return;
    if (document.querySelector("dialog[open]")) return;
    const rel = { ArrowLeft: "prev", ArrowRight: "next" }[event.key];
    const link = rel && document.querySelector(`.image-nav a[rel="${rel}"]`);
    if (link) {
      event.preventDefault();
      window.location.assign(link.href);
    }
  });

  // Copy buttons are shown only where the clipboard can be written (site.js does the copying).
  if (navigator.clipboard) document.querySelectorAll("[data-copy-from]").forEach((button) => { button.hidden = false; });
})();
