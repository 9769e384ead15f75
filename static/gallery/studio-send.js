// The studio's sending: Generate, its progress and every answer to it, Clear, and the server's
// messages about a row's action. Runs after studio-rules.js and studio-dropzone.js.
(function () {
  "use strict";
  const S = window.Studio;
  const { $, $$, form, sizeText } = S;

  // --- Sending: every click is answered ---------------------------------------------------
  // A click used to be dropped without a word while an earlier submission was still on its way
  // (hx-sync "drop"), and a refused upload (413), a server error or a lost connection left the
  // page unchanged. Now a second Generate while sending is refused out loud, the upload shows its
  // progress, and every outcome ends in a sentence next to the button.
  S.sending = false; // read by studio-history.js: no poll while a task is on its way
  const isForm = (e) => e.detail && e.detail.elt && e.detail.elt.id === "studio-form";

  function sayStatus(text, kind = "") {
    const status = form() && $(form(), "[data-send-status]");
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("is-error", kind === "error");
    status.classList.toggle("is-done", kind === "done");
  }

  function progress(fraction) {
    const bar = form() && $(form(), "[data-upload-progress]");
    if (!bar) return;
    bar.hidden = fraction === null;
    if (fraction !== null) bar.value = Math.round(fraction * 100);
  }

  // Capture phase: runs before htmx (or the browser) reads the form's values.
  S.on("submit", (e) => {
    if (e.target.id !== "studio-form") return;
    if (S.sending) {
      e.preventDefault();
      e.stopImmediatePropagation();
      sayStatus("Still sending your previous task: it will show in the history in a moment.", "error");
      return;
    }
    S.syncInputs();
  }, true);
  let sent = null; // what was sent: edits made while it travels are kept when the form comes back
  S.on("htmx:beforeRequest", (e) => {
    if (!isForm(e) || e.detail.requestConfig.verb !== "post") return;
    S.sending = true;
    sent = { prompt: $(form(), "textarea[name=prompt]").value, uploads: new Set(S.uploads.map((u) => u.token)) };
    form().setAttribute("aria-busy", "true");
    sayStatus("Sending…");
    progress(0);
  });
  S.on("htmx:xhr:progress", (e) => {
    if (!isForm(e) || !e.detail.lengthComputable || !e.detail.total) return;
    const done = e.detail.loaded / e.detail.total;
    progress(done);
    if (e.detail.total > 256 * 1024) sayStatus(`Sending… ${sizeText(e.detail.loaded)} of ${sizeText(e.detail.total)}`);
  });
  // The request is over when its answer is about to be swapped in: events of the old form, once
  // it is replaced, no longer reach the document (a flag cleared only there stayed set, and every
  // later Generate was refused).
  function sendingOver() {
    S.sending = false;
    if (form()) form().removeAttribute("aria-busy");
    progress(null);
  }
  let typedMeanwhile = null;
  S.on("htmx:beforeSwap", (e) => {
    if (!isForm(e)) return;
    sendingOver();
    // A refusal that comes with the form (400 rejected, 402 over budget, 503 storage refused, …)
    // is swapped in: its sentence is in the form, next to what the person typed.
    const xhr = e.detail.xhr;
    if (xhr.status >= 400 && /id="studio-form"/.test(xhr.responseText || "")) { e.detail.shouldSwap = true; e.detail.isError = false; }
    const prompt = $(form(), "textarea[name=prompt]").value;
    typedMeanwhile = e.detail.xhr.status === 200 && sent && prompt !== sent.prompt ? prompt : null;
  });
  S.on("htmx:afterRequest", (e) => { if (isForm(e)) sendingOver(); });
  const FAILED = {
    413: "These files are too large to send together: nothing was sent. Remove some references or use smaller ones.",
    403: "The studio refused this form (it may have been open too long). Nothing was sent: reload the page and try again.",
  };
  // The sentence of the studio's own error page (templates/error.html), when that is the answer.
  function serverSentence(xhr) {
    if (!(xhr.getResponseHeader("Content-Type") || "").startsWith("text/html")) return "";
    const doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    const text = doc.querySelector("main [role=alert] p");
    return text ? text.textContent.trim() : "";
  }
  S.on("htmx:responseError", (e) => {
    const xhr = e.detail.xhr;
    if (/id="studio-form"/.test(xhr.responseText || "")) return;
    if (/studioMessage/.test(xhr.getResponseHeader("HX-Trigger") || "")) return; // says it itself
    if (isForm(e)) {
      sayStatus(serverSentence(xhr) || FAILED[xhr.status] || `The studio could not take this task (error ${xhr.status}). Nothing was sent: try again in a moment.`, "error");
      return;
    }
    // A history action (retry, cancel, delete, remix) refused with a page of its own: its sentence.
    if (e.detail.elt && e.detail.elt.closest && e.detail.elt.closest("#history, #studio-form")) {
      const text = serverSentence(xhr) || `The studio could not do this (error ${xhr.status}). Reload the page and try again.`;
      document.dispatchEvent(new CustomEvent("studioMessage", { detail: { text, error: true } }));
    }
  });
  S.on("htmx:sendError", (e) => {
    if (!isForm(e)) return;
    sayStatus("The studio could not be reached, so nothing was sent. Check the connection and press Generate again.", "error");
  });
  S.on("taskCreated", (e) => {
    // The files sent are in the task now; files added while it was sent stay for the next one.
    S.uploads = S.uploads.filter((u) => sent && !sent.uploads.has(u.token)); S.fileTokens = [];
    const id = e.detail && e.detail.id;
    // After the swap: the new row, at the top of the history, comes into view; focus goes back to
    // the prompt without moving the page (on a phone the prompt is above the new row).
    setTimeout(() => {
      S.noteQueued(id);
      const row = id && document.getElementById(`task-${id}`);
      if (row) row.scrollIntoView({ block: "nearest", behavior: matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth" });
      const prompt = form() && $(form(), "textarea[name=prompt]");
      if (prompt && typedMeanwhile !== null) {
        prompt.value = typedMeanwhile;
        prompt.dispatchEvent(new Event("input", { bubbles: true }));
      }
      if (prompt) prompt.focus({ preventScroll: true });
      S.renderTiles(); S.validate();
    }, 0);
  });

  // Clear: the prompt and every reference go; the model and settings stay.
  S.on("click", (e) => {
    if (!e.target.closest("[data-clear-form]") || !form()) return;
    const f = form();
    S.uploads = []; S.fileTokens = [];
    $$(f, "[data-ref-tiles] li").forEach((li) => li.remove());
    $(f, "[data-reference-order]").value = "";
    const prompt = $(f, "textarea[name=prompt]");
    prompt.value = "";
    S.serverErrors = new Set();
    sayStatus("");
    S.updateCount(); S.validate();
    prompt.focus();
  });

  // The empty history's example fills the prompt.
  S.on("click", (e) => {
    const example = e.target.closest("[data-example-prompt]");
    if (!example || !form()) return;
    const prompt = $(form(), "textarea[name=prompt]");
    prompt.value = example.textContent.trim();
    prompt.dispatchEvent(new Event("input", { bubbles: true }));
    prompt.focus();
  });

  // Messages from the server about a row's action (retry refused, delete postponed, …).
  S.on("studioMessage", (e) => {
    const text = e.detail && (e.detail.text || e.detail.value);
    if (!text) return;
    $(document, "[data-announcer]").textContent = text;
    const note = document.createElement("p");
    note.className = e.detail.error ? "message message-error" : "message";
    note.setAttribute("role", e.detail.error ? "alert" : "status");
    note.textContent = text;
    const list = document.getElementById("history-list");
    if (list) { list.before(note); setTimeout(() => note.remove(), 8000); }
  });

  // Generate with Ctrl/Cmd+Enter (wired once per form render, after studio-dropzone.js's part).
  S.onForm((f) => {
    f.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); f.requestSubmit(); }
    });
  });

  Object.assign(S, { isForm, sayStatus });
})();
