// Every page: menus close with Esc, times read in the browser's own locale, Copy buttons copy.
(function () {
  "use strict";

  // Esc closes an open header menu (a <details> dropdown) and gives focus back to its summary.
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    for (const menu of document.querySelectorAll("details.dropdown[open]")) {
      menu.open = false;
      menu.querySelector("summary").focus();
    }
  });
  // A click outside an open menu closes it.
  document.addEventListener("click", (e) => {
    for (const menu of document.querySelectorAll("details.dropdown[open]")) {
      if (!menu.contains(e.target)) menu.open = false;
    }
  });

  // <time datetime="…"> elements: the exact moment in the reader's locale (the server does not
  // know it); relative wording ("3 minutes ago") stays as the server wrote it.
  const exact = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  function localise(root) {
    for (const time of root.querySelectorAll("time[datetime]")) {
      const moment = new Date(time.getAttribute("datetime"));
      if (Number.isNaN(moment.getTime())) continue;
      if (time.hasAttribute("data-exact")) time.textContent = exact.format(moment);
      else time.title = exact.format(moment);
    }
  }
  localise(document);
  document.addEventListener("htmx:afterSettle", (e) => localise(e.detail.elt || document));
  document.addEventListener("htmx:oobAfterSwap", (e) => localise(e.detail.target || document));

  // Copy buttons: <button data-copy-text="…"> or data-copy-from="#selector".
  document.addEventListener("click", async (e) => {
    const button = e.target.closest("[data-copy-text], [data-copy-from]");
    if (!button) return;
    const source = button.dataset.copyFrom && document.querySelector(button.dataset.copyFrom);
    const text = button.dataset.copyText || (source && source.textContent.trim()) || "";
    const label = button.querySelector("[data-copy-label]") || button;
    const before = label.textContent;
    try {
      await navigator.clipboard.writeText(text);
      label.textContent = "Copied";
    } catch {
      label.textContent = "Select and copy it by hand";
    }
    setTimeout(() => { label.textContent = before; }, 2000);
  });
})();
