// Gallery enhancements. Every action also works without this file: the filter bar is a GET
// form, the selection bar a POST form, deletion asks on a page of its own, links are links.
// With it: filters apply themselves, tiles fill their rows, each tile is one Tab stop with keys
// for the rest, deleting asks in the site's dialog (site.js), tiles open in the viewer (viewer.js).
(function () {
  "use strict";
  // htmx runs a page's scripts again when the back button brings back its copy of the page:
  // the listeners below are on the document already.
  if (window.seedreamGallery) return;
  window.seedreamGallery = true;

  // Filter bar: search as you type, other fields as they change; one request per search; and
  // bookmarkable URLs without empty parameters. htmx sends the form on "submit" only. Everything
  // is delegated: the back button may bring back a new copy of the page's elements.
  const filterBar = () => document.getElementById("filters");
  let typing = null;
  function hideApply() {
    const apply = document.querySelector("#filters [data-apply]");
    if (apply) apply.hidden = true; // every change applies itself
  }
  hideApply();
  document.addEventListener("input", (event) => {
    const form = event.target.form;
    if (!form || form.id !== "filters" || event.target.type !== "search") return;
    clearTimeout(typing);
    typing = setTimeout(() => form.requestSubmit(), 400);
  });
  // A search box fires "change" when it loses focus or Enter is pressed: typing has sent it.
  document.addEventListener("change", (event) => {
    const form = event.target.form;
    if (form && form.id === "filters" && event.target.type !== "search") form.requestSubmit();
  });
  document.addEventListener("submit", (event) => {
    if (event.target.id === "filters") clearTimeout(typing); // Enter sends it now, once
  });
  document.addEventListener("htmx:configRequest", (event) => {
    if (event.detail.elt !== filterBar()) return;
    const parameters = event.detail.parameters;
    for (const [name, value] of [...parameters.entries()]) {
      if (value === "") parameters.delete(name);
    }
    // The results already show exactly this (Enter after the typing pause, a field changed
    // back): nothing to ask.
    const asked = new URLSearchParams([...parameters.entries()]);
    if (asked.toString() === new URLSearchParams(window.location.search).toString()) event.preventDefault();
  });

  // Tiles: justified rows that show each whole picture. Without this file tiles keep their
  // natural width at the row height (ragged rows); with it each grows in proportion to its
  // aspect ratio, so a row fills the width and every tile in it keeps its picture's shape.
  // One Tab stop per tile (its link): select and favourite are reached by keys (see the hint).
  function prepare(root) {
    const tiles = root.matches && root.matches(".tile") ? [root] : root.querySelectorAll(".tile");
    for (const tile of tiles) {
      const img = tile.querySelector(".tile-open img");
      const width = Number(img && img.getAttribute("width"));
      const height = Number(img && img.getAttribute("height"));
      if (width > 0 && height > 0) tile.style.setProperty("--ar", (width / height).toFixed(4));
      tile.querySelectorAll('input[name="ids"], .favourite').forEach((control) => { control.tabIndex = -1; });
    }
    const grid = document.getElementById("grid");
    if (grid) grid.classList.add("justified");
    const hint = document.querySelector("[data-tile-keys]");
    if (hint) hint.hidden = false; // the keys work: tell them
  }
  // The Content-Security-Policy refuses style attributes in markup. htmx copies a few attributes,
  // style among them, from an old element to the new one of the same id when it swaps, and keeps
  // a copy of the page's markup for the back button: neither may carry the tiles' --ar.
  function unstyle() {
    document.querySelectorAll(".tile[style]").forEach((tile) => tile.removeAttribute("style"));
  }
  prepare(document);
  document.addEventListener("htmx:beforeHistorySave", unstyle);
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "results") unstyle();
  });
  document.addEventListener("htmx:historyRestore", () => {
    prepare(document);
    hideApply();
  });
  document.addEventListener("htmx:load", (event) => {
    const elt = event.detail.elt;
    if (!(elt instanceof Element)) return;
    prepare(elt.closest(".tile") || elt);
    announce(elt);
  });

  // Selection: checkboxes, shift-click (or Shift+Space) for a range, select all on screen, a bar
  // with the count.
  const selectionBar = () => document.querySelector("[data-selection-bar]");
  let lastClicked = null;

  function boxes() {
    return Array.from(document.querySelectorAll('#grid input[name="ids"][form="selection"]'));
  }

  function imagesWord(count) {
    return count === 1 ? "1 image" : `${count.toLocaleString()} images`;
  }

  function refresh() {
    const bar = selectionBar();
    if (!bar) return;
    const checked = boxes().filter((box) => box.checked);
    const chosen = checked.length;
    bar.hidden = chosen === 0;
    // Delete is offered only when every ticked image may be deleted by this person.
    const deletable = checked.every((box) => box.hasAttribute("data-deletable"));
    const remove = bar.querySelector("[data-delete-button]");
    remove.hidden = !deletable;
    bar.querySelector("[data-delete-hint]").hidden = deletable || chosen === 0;
    bar.querySelector("[data-selected-count]").textContent = `${chosen.toLocaleString()} selected`;
    bar.querySelectorAll("[data-select-all], [data-clear-selection]").forEach((b) => (b.hidden = false));
    // What the confirmation says (site.js asks with these).
    const team = bar.dataset.team;
    remove.setAttribute("data-confirm", `Delete ${imagesWord(chosen)}?`);
    remove.setAttribute("data-confirm-button", `Delete ${imagesWord(chosen)}`);
    remove.setAttribute("data-confirm-detail", chosen === 1
      ? `It is removed from the gallery and from storage for everyone in ${team}. Its task stays in the history. This cannot be undone.`
      : `They are removed from the gallery and from storage for everyone in ${team}. Their tasks stay in the history. This cannot be undone.`);
    const grid = document.getElementById("grid");
    if (grid) grid.classList.toggle("selecting", chosen > 0);
  }

  function tick(box, range) {
    const all = boxes();
    if (range && lastClicked && lastClicked !== box && all.includes(lastClicked)) {
      const [from, to] = [all.indexOf(lastClicked), all.indexOf(box)].sort((a, b) => a - b);
      all.slice(from, to + 1).forEach((other) => (other.checked = box.checked));
    }
    lastClicked = box;
    refresh();
  }

  function selectAll(on) {
    boxes().forEach((box) => (box.checked = on));
    if (!on) lastClicked = null;
    refresh();
  }

  if (selectionBar()) {
    document.addEventListener("click", (event) => {
      if (!(event.target instanceof Element)) return;
      const box = event.target.closest('input[name="ids"][form="selection"]');
      if (box) tick(box, event.shiftKey);
      if (event.target.closest("[data-selection-bar] [data-select-all]")) selectAll(true);
      if (event.target.closest("[data-selection-bar] [data-clear-selection]")) selectAll(false);
    });
    document.addEventListener("keydown", (event) => {
      const bar = selectionBar();
      if (event.key === "Escape" && bar && !bar.hidden && !document.querySelector("dialog[open]")) selectAll(false);
    });
    document.addEventListener("htmx:afterSettle", refresh);
    document.addEventListener("htmx:historyRestore", refresh);
    // After deleting, come back to the view as it is now (the filters may have changed).
    document.addEventListener("htmx:pushedIntoHistory", () => {
      const next = document.querySelector('[data-selection-bar] input[name="next"]');
      if (next) next.value = window.location.pathname + window.location.search;
    });
    window.addEventListener("pageshow", refresh); // the back button may restore checked boxes
    refresh();
  }

  // Keys on a focused tile: Enter opens it, Space (or X) selects it, Shift+Space selects the
  // range from the last one, F toggles the favourite, arrows / Home / End move between tiles.
  const status = () => document.querySelector("[data-tile-status]");
  let announceFavourite = null;

  function tileLinks() {
    return Array.from(document.querySelectorAll("#grid .tile-open"));
  }

  function neighbour(link, key) {
    const links = tileLinks();
    const at = links.indexOf(link);
    if (key === "ArrowLeft") return links[at - 1];
    if (key === "ArrowRight") return links[at + 1];
    if (key === "Home") return links[0];
    if (key === "End") return links[links.length - 1];
    // Up and down: the tile of the row above or below whose middle is nearest.
    const here = link.getBoundingClientRect();
    const middle = here.left + here.width / 2;
    const rows = links.map((other) => other.getBoundingClientRect());
    const below = key === "ArrowDown";
    const tops = rows.map((r) => r.top).filter((top) => (below ? top > here.top + 1 : top < here.top - 1));
    if (!tops.length) return null;
    const row = below ? Math.min(...tops) : Math.max(...tops);
    let best = null;
    let distance = Infinity;
    rows.forEach((r, i) => {
      if (Math.abs(r.top - row) > 1) return;
      const d = Math.abs(r.left + r.width / 2 - middle);
      if (d < distance) [best, distance] = [links[i], d];
    });
    return best;
  }

  document.addEventListener("keydown", (event) => {
    const link = event.target.closest && event.target.closest("#grid .tile-open");
    if (!link || event.altKey || event.ctrlKey || event.metaKey || document.querySelector("dialog[open]")) return;
    const tile = link.closest(".tile");
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (key === " " || key === "x") {
      const box = tile.querySelector('input[name="ids"]');
      if (!box) return;
      event.preventDefault(); // Space would scroll the page
      box.checked = !box.checked;
      tick(box, event.shiftKey);
      const said = status();
      if (said) said.textContent = `${box.checked ? "Selected" : "Not selected"} · ${boxes().filter((b) => b.checked).length} selected`;
    } else if (key === "f" && !event.shiftKey) {
      const button = tile.querySelector(".favourite");
      if (!button) return;
      event.preventDefault();
      announceFavourite = tile;
      button.click();
    } else if (["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End"].includes(key) && !event.shiftKey) {
      const to = neighbour(link, key);
      event.preventDefault();
      if (to) {
        to.focus();
        to.scrollIntoView({ block: "nearest" });
      }
    }
  });
  // The favourite's new state, once its button has been swapped in.
  function announce(elt) {
    const said = status();
    if (!said || !announceFavourite || !announceFavourite.contains(elt)) return;
    const on = announceFavourite.querySelector('.favourite[aria-pressed="true"]');
    said.textContent = on ? "Added to favourites" : "Removed from favourites";
    announceFavourite = null;
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
