// The studio's history: idle when hidden, out of the way of a submission, announcing finished
// tasks, and the "Queued" sentence. The last of the studio's scripts: it starts the page.
(function () {
  "use strict";
  const S = window.Studio;
  const { $, $$, form } = S;

  // --- History: idle when hidden, announce finished tasks -------------------------------
  let lastHiddenPoll = 0;
  S.on("htmx:beforeRequest", (e) => {
    if (e.detail.elt.id !== "history-poll") return;
    // A task being sent comes back with the history: a poll now would only race it.
    if (S.sending) { e.preventDefault(); return; }
    if (!document.hidden) return;
    if (Date.now() - lastHiddenPoll < 10000) e.preventDefault(); // every ~10 s while hidden
    else lastHiddenPoll = Date.now();
  });
  // A submit, or anything else that brings a whole new history, makes a poll under way moot: its
  // answer would come for a poller no longer on the page, and htmx could not place it ("Invalid
  // re-target #history"). It is abandoned; the new history brings its own poller.
  S.on("htmx:beforeRequest", (e) => {
    const poll = document.getElementById("history-poll");
    if (!poll || e.detail.elt === poll) return;
    if (S.isForm(e) || (e.detail.target && e.detail.target.id === "history")) htmx.trigger(poll, "htmx:abort");
  });

  // The "Queued" sentence of a task just created (studio-send.js, on taskCreated): shown until its
  // row finishes or leaves the history.
  let queued = null;
  function noteQueued(id) {
    S.sayStatus("Queued: your task is at the top of the history.", "done");
    queued = id ? `task-${id}` : null;
  }

  let statuses = null;
  let unseen = 0;
  const baseTitle = document.title;
  function readStatuses() {
    return new Map($$(document, "#history .task-row").map((row) => [row.id, row.dataset.status]));
  }
  function announce() {
    const now = readStatuses();
    const done = [];
    if (statuses) {
      for (const row of $$(document, "#history .task-row")) {
        const before = statuses.get(row.id);
        if (before && before !== row.dataset.status && ["completed", "failed", "cancelled"].includes(row.dataset.status)) {
          const images = Number(row.dataset.images);
          done.push(row.dataset.status === "completed"
            ? `Finished: “${row.dataset.prompt}”, ${images} image${images === 1 ? "" : "s"}.`
            : `${row.dataset.status === "failed" ? "Failed" : "Cancelled"}: “${row.dataset.prompt}”.`);
        }
      }
    }
    statuses = now;
    const row = queued && document.getElementById(queued);
    if (queued && (!row || ["completed", "failed", "cancelled"].includes(row.dataset.status))) { queued = null; S.sayStatus(""); }
    if (!done.length) return;
    $(document, "[data-announcer]").textContent = done.join(" ");
    if (document.hidden) { unseen += done.length; document.title = `(${unseen}) ✓ ${baseTitle}`; }
  }
  S.on("visibilitychange", () => {
    if (!document.hidden) { unseen = 0; document.title = baseTitle; }
  });
  // A swap may bring a new form (wired once per render) and new rows (announced).
  S.on("htmx:afterSettle", () => { S.setUpForm(form()); announce(); });
  S.on("htmx:oobAfterSwap", announce);

  S.noteQueued = noteQueued;

  // Every studio script has run (the template loads this one last): wire the form, note the rows.
  S.setUpForm(form());
  statuses = readStatuses();
})();
