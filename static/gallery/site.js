// Every page: menus close with Esc, times read in the browser's own locale, Copy buttons copy,
// and destructive actions ask first in one styled dialog.
(function () {
  "use strict";
  // htmx runs a page's scripts again when the back button brings back its copy of the page:
  // the listeners below are on the document already.
  if (window.seedreamSite) return;
  window.seedreamSite = true;

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
  document.addEventListener("htmx:historyRestore", () => localise(document));

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

  // One way to confirm ----------------------------------------------------------------------------
  //   <form data-confirm="Delete this key?" data-confirm-detail="Apps using it stop working."
  //         data-confirm-button="Delete key">
  // asks in a styled dialog before it is submitted, plain or by htmx; the same attributes on one
  // submit button of a form ask only for that button (a form that also downloads, say). The
  // button that submitted is kept (its name and value are sent). htmx's hx-confirm="…" asks in
  // the same dialog instead of the browser's confirm(), taking data-confirm-button and
  // data-confirm-detail from the element or an ancestor. Cancel or Esc sends nothing; focus goes
  // back to the button that asked. A confirmed form carries confirmed=1, so a server can ask on a
  // page of its own when no script asked (a browser without JavaScript).
  let confirmDialog = null;

  function makeConfirmDialog() {
    const dialog = document.createElement("dialog");
    dialog.className = "confirm-dialog";
    dialog.setAttribute("aria-labelledby", "confirm-dialog-question");
    dialog.setAttribute("aria-describedby", "confirm-dialog-detail");
    dialog.innerHTML = `<article>
        <h2 id="confirm-dialog-question"></h2>
        <p id="confirm-dialog-detail"></p>
        <footer>
          <button type="button" class="secondary" data-confirm-cancel>Cancel</button>
          <button type="button" class="danger" data-confirm-ok></button>
        </footer>
      </article>`;
    dialog.querySelector("[data-confirm-cancel]").addEventListener("click", () => dialog.close("cancel"));
    dialog.querySelector("[data-confirm-ok]").addEventListener("click", () => dialog.close("ok"));
    dialog.addEventListener("click", (e) => { if (e.target === dialog) dialog.close("cancel"); }); // the backdrop
    document.body.appendChild(dialog);
    return dialog;
  }

  // Resolves true when confirmed. `opener` gets focus back either way.
  function ask({ question, detail, button, opener }) {
    if (typeof HTMLDialogElement !== "function") return Promise.resolve(window.confirm(question));
    if (!confirmDialog || !confirmDialog.isConnected) {
      // (htmx's copy of the page for the back button may have brought back a copy of it)
      document.querySelectorAll("dialog.confirm-dialog").forEach((copy) => copy.remove());
      confirmDialog = makeConfirmDialog();
    }
    const dialog = confirmDialog;
    if (dialog.open) return Promise.resolve(false);
    dialog.querySelector("h2").textContent = question;
    const paragraph = dialog.querySelector("p");
    paragraph.textContent = detail || "";
    paragraph.hidden = !detail;
    dialog.querySelector("[data-confirm-ok]").textContent = button || "Confirm";
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => {
        if (opener && opener.isConnected) opener.focus({ preventScroll: true });
        resolve(dialog.returnValue === "ok");
      }, { once: true });
      dialog.showModal();
      dialog.querySelector("[data-confirm-cancel]").focus(); // the safe choice is the default
    });
  }

  function words(element, name) {
    const holder = element && element.closest(`[${name}]`);
    return holder ? holder.getAttribute(name) : "";
  }

  function buttonText(button) {
    if (!button || !button.matches("button, input[type=submit]")) return "";
    return button.tagName === "INPUT" ? button.value : button.textContent.trim();
  }

  let passing = null; // the form being submitted again after its confirmation
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form === passing) return;
    const submitter = event.submitter && event.submitter !== form ? event.submitter : null;
    const source = submitter && submitter.hasAttribute("data-confirm") ? submitter
      : form.hasAttribute("data-confirm") ? form : null;
    if (!source) return;
    event.preventDefault();
    event.stopImmediatePropagation(); // htmx, listening on the form, never hears of it
    const opener = submitter || (form.contains(document.activeElement) ? document.activeElement : null);
    ask({
      question: source.getAttribute("data-confirm"),
      detail: source.getAttribute("data-confirm-detail") || form.getAttribute("data-confirm-detail"),
      button: source.getAttribute("data-confirm-button") || form.getAttribute("data-confirm-button") || buttonText(submitter),
      opener,
    }).then((confirmed) => {
      if (!confirmed || !form.isConnected) return;
      if (!form.querySelector('input[name="confirmed"]')) {
        const flag = document.createElement("input");
        Object.assign(flag, { type: "hidden", name: "confirmed", value: "1" });
        form.appendChild(flag);
      }
      passing = form;
      try {
        // htmx takes the submitter from the last focused or clicked button: it has focus again.
        form.requestSubmit(submitter && submitter.isConnected ? submitter : undefined);
      } finally {
        passing = null;
      }
    });
  }, true);

  document.addEventListener("htmx:confirm", (event) => {
    const { question, elt } = event.detail;
    if (!question) return;
    event.preventDefault();
    if (elt === passing) { // asked already, by its data-confirm
      event.detail.issueRequest(true);
      return;
    }
    const active = document.activeElement;
    const opener = active && active !== document.body && elt.contains(active) ? active : elt;
    ask({
      question,
      detail: words(elt, "data-confirm-detail"),
      button: words(elt, "data-confirm-button") || buttonText(opener) || buttonText(elt),
      opener,
    }).then((confirmed) => {
      if (confirmed) event.detail.issueRequest(true);
    });
  });
})();
