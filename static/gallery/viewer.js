// The full-screen image viewer, on any page that loads this file.
//
//   <div data-viewer-group>
//     <a data-viewer href="/gallery/42/" data-full="/media/images/42/original/" data-caption="…">
//       <img src="…thumbnail…" alt="…" width="2048" height="1152"></a> …
//   </div>
//
// A plain click (or Enter) on such a link opens the original fitted to the screen, on a dark
// backdrop, with its caption (data-caption, else the image's alt), previous/next buttons and
// "Open image page" (the link's href). ArrowLeft/ArrowRight (or a swipe) step through the links of
// the same group, Home/End go to its ends; Esc, the close button or a click on the backdrop
// closes it, and focus goes back to the link of the image last shown. Ctrl/Cmd/Shift/Alt-click
// and middle-click keep doing what they do to a link. Without JavaScript the link is only a link.
// Links added later (htmx swaps, more tiles) are found too: everything is delegated.
(function () {
  "use strict";
  if (window.seedreamViewer) return; // loaded twice (by a page and by the base template)
  window.seedreamViewer = true;

  const SVG = (paths) =>
    `<svg aria-hidden="true" focusable="false" class="icon" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" ` +
    `fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">${paths}</svg>`;
  const ICONS = {
    prev: SVG('<path d="m15 18-6-6 6-6"/>'),
    next: SVG('<path d="m9 18 6-6-6-6"/>'),
    close: SVG('<path d="M18 6 6 18"/><path d="m6 6 12 12"/>'),
    page: SVG('<path d="M15 3h6v6"/><path d="M10 14 21 3"/><path d="M18 13v6a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2h6"/>'),
  };

  let dialog = null;
  let parts = {};
  let current = null; // the link whose image is shown
  let loading = null; // the full image being fetched for it

  function build() {
    dialog = document.createElement("dialog");
    dialog.className = "viewer";
    dialog.setAttribute("aria-labelledby", "viewer-caption");
    dialog.innerHTML = `
      <figure class="viewer-stage">
        <img class="viewer-image" alt="" decoding="async">
      </figure>
      <div class="viewer-bar">
        <p class="viewer-caption" aria-live="polite"><span id="viewer-caption"></span>
          <span class="viewer-position"></span></p>
        <a class="viewer-page" href="">${ICONS.page} Open image page</a>
        <button type="button" class="viewer-close" title="Close (Esc)" aria-label="Close">${ICONS.close}</button>
      </div>
      <button type="button" class="viewer-step viewer-prev" title="Previous image (←)" aria-label="Previous image"
              aria-keyshortcuts="ArrowLeft">${ICONS.prev}</button>
      <button type="button" class="viewer-step viewer-next" title="Next image (→)" aria-label="Next image"
              aria-keyshortcuts="ArrowRight">${ICONS.next}</button>`;
    document.body.appendChild(dialog);
    parts = {
      stage: dialog.querySelector(".viewer-stage"),
      image: dialog.querySelector(".viewer-image"),
      caption: dialog.querySelector("#viewer-caption"),
      position: dialog.querySelector(".viewer-position"),
      page: dialog.querySelector(".viewer-page"),
      close: dialog.querySelector(".viewer-close"),
      prev: dialog.querySelector(".viewer-prev"),
      next: dialog.querySelector(".viewer-next"),
    };
    parts.close.addEventListener("click", () => dialog.close());
    parts.prev.addEventListener("click", () => step(-1));
    parts.next.addEventListener("click", () => step(1));
    // A click on the dark backdrop (not on the image or a control) closes the viewer.
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog || event.target === parts.stage) dialog.close();
    });
    dialog.addEventListener("close", () => {
      loading = null;
      parts.image.removeAttribute("src");
      document.documentElement.classList.remove("viewer-open");
      if (current && current.isConnected) current.focus();
    });
    // A swipe left or right steps, as the arrow keys do.
    let start = null;
    dialog.addEventListener("pointerdown", (event) => {
      start = event.pointerType === "mouse" ? null : { x: event.clientX, y: event.clientY };
    });
    dialog.addEventListener("pointerup", (event) => {
      if (!start) return;
      const dx = event.clientX - start.x;
      const dy = event.clientY - start.y;
      start = null;
      if (Math.abs(dx) > 50 && Math.abs(dx) > 1.5 * Math.abs(dy)) step(dx < 0 ? 1 : -1);
    });
  }

  function groupOf(link) {
    const group = link.closest("[data-viewer-group]");
    return group ? Array.from(group.querySelectorAll("a[data-viewer][data-full]")) : [link];
  }

  function samePage(url) {
    const target = new URL(url, window.location.href);
    return target.pathname === window.location.pathname;
  }

  function show(link) {
    current = link;
    const links = groupOf(link);
    const at = links.indexOf(link);
    const thumb = link.querySelector("img");
    const text = link.dataset.caption || (thumb && thumb.alt) || link.title || "Image";
    parts.caption.textContent = text;
    parts.position.textContent = links.length > 1 ? `${at + 1} of ${links.length}` : "";
    parts.image.alt = thumb && thumb.alt ? thumb.alt : text;
    parts.prev.hidden = parts.next.hidden = links.length < 2;
    parts.prev.setAttribute("aria-disabled", String(at <= 0));
    parts.next.setAttribute("aria-disabled", String(at >= links.length - 1));
    const full = link.dataset.full;
    parts.page.href = link.href;
    parts.page.hidden = link.getAttribute("href") === full || samePage(link.href);

    // The thumbnail at once (already loaded), the original as soon as it has arrived.
    parts.image.classList.add("is-loading");
    if (thumb && (thumb.currentSrc || thumb.src)) parts.image.src = thumb.currentSrc || thumb.src;
    const original = new Image();
    loading = original;
    original.decoding = "async";
    original.addEventListener("load", () => {
      if (loading !== original) return;
      parts.image.src = original.src;
      parts.image.classList.remove("is-loading");
    });
    original.addEventListener("error", () => {
      if (loading !== original) return;
      parts.image.classList.remove("is-loading");
      parts.position.textContent = `${parts.position.textContent} · the full image could not be loaded`.replace(/^ · /, "");
    });
    original.src = full;
    // The next image is probably wanted next.
    const after = links[at + 1];
    if (after) new Image().src = after.dataset.full;
  }

  // htmx keeps a copy of the page's markup for the back button, this dialog included: after the
  // copy comes back, the copy is not ours and ours is gone.
  function ensure() {
    if (dialog && dialog.isConnected) return;
    document.querySelectorAll("dialog.viewer").forEach((copy) => copy.remove());
    build();
  }
  document.addEventListener("htmx:historyRestore", () => {
    document.querySelectorAll("dialog.viewer").forEach((copy) => { if (copy !== dialog) copy.remove(); });
  });

  function open(link) {
    ensure();
    show(link);
    if (!dialog.open) {
      document.documentElement.classList.add("viewer-open");
      dialog.showModal();
      parts.close.focus();
    }
  }

  function step(by) {
    if (!current) return;
    const links = groupOf(current);
    const at = links.indexOf(current);
    const to = links[at + by];
    if (to) {
      show(to);
      // Keep the gallery under the viewer in step, so closing lands where one is.
      to.scrollIntoView({ block: "nearest" });
    }
  }

  document.addEventListener("click", (event) => {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
    const link = event.target.closest && event.target.closest("a[data-viewer][data-full]");
    if (!link || typeof HTMLDialogElement !== "function") return;
    event.preventDefault();
    open(link);
  });

  document.addEventListener("keydown", (event) => {
    if (!dialog || !dialog.open || event.altKey || event.ctrlKey || event.metaKey) return;
    const links = groupOf(current);
    const moves = {
      ArrowLeft: -1,
      ArrowRight: 1,
      Home: -links.indexOf(current),
      End: links.length - 1 - links.indexOf(current),
    };
    if (!(event.key in moves)) return;
    event.preventDefault();
    event.stopPropagation();
    if (moves[event.key]) step(moves[event.key]);
  });
})();
