// The studio page: drop zone, live checks that mirror the server's rules (same wording), the
// history's live region. The form works without this file; this only makes it comfortable.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  const MAX_REFS = 10, MAX_BYTES = 10 * 1024 * 1024, MAX_IMAGES = 15, MAX_PROMPT = 2000;
  const MIN_SIDE = 14, MAX_SIDE = 6000, TYPES = ["image/jpeg", "image/png", "image/webp"];
  const pixelSizes = JSON.parse(document.getElementById("pixel-sizes").textContent);

  // Files chosen in this page, kept across re-renders of the form (a rejected submission).
  let uploads = []; // {token, file, url, width, height, error}
  let nextToken = 0;

  const $ = (root, sel) => root.querySelector(sel);
  const $$ = (root, sel) => Array.from(root.querySelectorAll(sel));
  const form = () => document.getElementById("studio-form");
  const number = (n) => n.toLocaleString("en-US");

  function sizeText(bytes) {
    // Django's filesizeformat: 1 decimal, 1024-based.
    const units = ["bytes", "KB", "MB", "GB"];
    let value = bytes, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`;
  }

  // --- The server's messages (gallery/forms.py), word for word ---------------------------
  const messages = {
    tooMany: (count) => `You added ${count} reference images; the limit is 10. Remove ${count - 10}.`,
    tooBig: (name, bytes) => {
      let shown = sizeText(bytes);
      if (shown === sizeText(MAX_BYTES)) shown = `${number(bytes)} bytes`;
      return `“${name}” is ${shown}; reference images can be at most 10 MB (${number(MAX_BYTES)} bytes) each.`;
    },
    format: (name) => `“${name}”: This file is not an image we can read. Use a JPG, PNG or WEBP image.`,
    sides: (name, w, h) => `“${name}” is ${w}×${h} pixels; each side must be between 14 and 6,000 pixels.`,
    aspect: (name, w, h) => `“${name}” is ${w}×${h} pixels, too narrow or too wide: width divided by height must be between 1/3 and 3.`,
    counts: (refs, n) => {
      const s = refs === 1 ? "" : "s";
      return `${refs} reference image${s} + ${n} images = ${refs + n}, but together they can be at most 15. With ${refs} reference${s}, ask for at most ${MAX_IMAGES - refs} images.`;
    },
    n: () => "Choose between 1 and 15 images.",
    blank: () => "Write a prompt: describe the image you want.",
    long: (len) => {
      const over = len - MAX_PROMPT;
      return `The prompt is ${number(len)} characters long; the limit is 2,000. Shorten it by ${number(over)} character${over > 1 ? "s" : ""}.`;
    },
    customFormat: () => "Write the custom size as WIDTHxHEIGHT, for example 1920x1080.",
    customPixels: (w, h) => `${w}×${h} is ${number(w * h)} pixels; a custom size must have between 921,600 (1280×720) and 16,777,216 (4096×4096) pixels.`,
    customAspect: (w, h) => `${w}×${h} is too narrow or too wide: width divided by height must be between 1/16 and 16.`,
  };

  function checkUpload(upload) {
    const { file, width, height } = upload;
    if (file.size > MAX_BYTES) return messages.tooBig(file.name, file.size);
    if (!TYPES.includes(file.type) || !width) return messages.format(file.name);
    if (Math.min(width, height) < MIN_SIDE || Math.max(width, height) > MAX_SIDE) return messages.sides(file.name, width, height);
    if (width / height < 1 / 3 || width / height > 3) return messages.aspect(file.name, width, height);
    return "";
  }

  function decode(upload) {
    return new Promise((resolve) => {
      if (upload.file.size > MAX_BYTES || !TYPES.includes(upload.file.type)) return resolve(upload);
      const img = new Image();
      img.onload = () => { upload.width = img.naturalWidth; upload.height = img.naturalHeight; resolve(upload); };
      img.onerror = () => resolve(upload);
      img.src = upload.url;
    });
  }

  // --- Drop zone ------------------------------------------------------------------------
  async function addFiles(files) {
    const added = Array.from(files).map((file) => ({
      token: `u${nextToken++}`, file, url: URL.createObjectURL(file), width: 0, height: 0, error: "",
    }));
    await Promise.all(added.map(decode));
    added.forEach((u) => { u.error = checkUpload(u); });
    uploads = uploads.concat(added);
    touch("references", "n");
    renderTiles();
    validate();
  }

  function tileFor(upload) {
    const li = document.createElement("li");
    li.className = "ref-tile" + (upload.error ? " has-error" : "");
    li.dataset.token = upload.token;
    li.tabIndex = 0;
    const img = document.createElement("img");
    img.src = upload.url; img.alt = ""; img.width = 72; img.height = 72;
    const name = document.createElement("span");
    name.className = "ref-name"; name.textContent = upload.file.name;
    const meta = document.createElement("small");
    meta.className = "muted";
    meta.textContent = (upload.width ? `${upload.width}×${upload.height} · ` : "") + sizeText(upload.file.size);
    const remove = document.createElement("button");
    remove.type = "button"; remove.className = "ref-remove"; remove.dataset.remove = "";
    remove.setAttribute("aria-label", `Remove ${upload.file.name}`);
    remove.textContent = "✕";
    li.append(img, name, meta, remove);
    if (upload.error) {
      const error = document.createElement("span");
      error.className = "tile-error"; error.textContent = upload.error;
      li.append(error);
    }
    return li;
  }

  function renderTiles() {
    const list = $(form(), "[data-ref-tiles]");
    const order = ($(form(), "[data-reference-order]").value || "").split(",");
    $$(list, "li[data-token^='u']").forEach((li) => li.remove());
    uploads.forEach((u) => list.append(tileFor(u)));
    // Keep the order the person chose across re-renders.
    const byToken = new Map($$(list, "li").map((li) => [li.dataset.token, li]));
    order.map((t) => byToken.get(t.startsWith("f") ? uploadTokenForFile(t) : t)).filter(Boolean).forEach((li) => list.append(li));
    $$(list, "li").forEach((li) => { if (!order.includes(li.dataset.token)) list.append(li); });
    updateCount();
  }

  let fileTokens = []; // upload tokens in the order they were put into the file input (f0, f1, …)
  function uploadTokenForFile(token) { return fileTokens[Number(token.slice(1))]; }

  function tiles() { return $$(form(), "[data-ref-tiles] li"); }

  function updateCount() {
    const count = tiles().length;
    $(form(), "[data-ref-count]").textContent = `${count} of 10`;
  }

  // Puts the chosen files into the real file input and the tile order into reference_order,
  // so htmx (or the browser) submits a plain multipart form.
  function syncInputs() {
    const f = form();
    const transfer = new DataTransfer();
    fileTokens = [];
    const order = tiles().map((li) => {
      const upload = uploads.find((u) => u.token === li.dataset.token);
      if (!upload) return li.dataset.token;
      transfer.items.add(upload.file);
      fileTokens.push(upload.token);
      return `f${fileTokens.length - 1}`;
    });
    $(f, "[data-file-input]").files = transfer.files;
    $(f, "[data-reference-order]").value = order.join(",");
  }

  // --- Mirrored rules -------------------------------------------------------------------
  // Fields showing the server's errors (a rejected submission). The server knows more than these
  // checks (a blank prompt, a file it cannot read), so its errors stay until that field changes.
  let serverErrors = new Set();
  function touch(...fields) { fields.forEach((field) => serverErrors.delete(field)); }

  function showErrors(field, list) {
    const ul = $(form(), `[data-errors-for="${field}"]`);
    if (!ul || serverErrors.has(field)) return;
    ul.replaceChildren(...list.map((text) => Object.assign(document.createElement("li"), { textContent: text })));
  }

  function validate() {
    const f = form();
    const prompt = $(f, "textarea[name=prompt]").value.replace(/\r\n?/g, "\n").trim();
    const promptErrors = prompt.length > MAX_PROMPT ? [messages.long(prompt.length)] : [];
    const count = tiles().length;
    const refErrors = count > MAX_REFS ? [messages.tooMany(count)] : uploads.filter((u) => u.error).map((u) => u.error);
    const nValue = $(f, "input[name=n]").value;
    const n = Number(nValue);
    let nErrors = [];
    if (!/^\d+$/.test(nValue) || n < 1 || n > MAX_IMAGES) nErrors = [messages.n()];
    else if (count <= MAX_REFS && count + n > MAX_IMAGES) nErrors = [messages.counts(count, n)];
    const custom = $(f, "input[name=custom_size]").value.trim();
    let customErrors = [];
    if (custom) {
      const m = custom.match(/^(\d{1,5})\s*[x×X*]\s*(\d{1,5})$/);
      if (!m) customErrors = [messages.customFormat()];
      else {
        const w = Number(m[1]), h = Number(m[2]);
        if (!w || !h || w * h < 921600 || w * h > 16777216) customErrors = [messages.customPixels(w, h)];
        else if (w / h < 1 / 16 || w / h > 16) customErrors = [messages.customAspect(w, h)];
      }
    }
    showErrors("prompt", promptErrors);
    showErrors("references", refErrors);
    showErrors("n", nErrors);
    showErrors("custom_size", customErrors);
    updateSummary(n, custom && !customErrors.length ? custom : "");
  }

  function updateSummary(n, custom) {
    const f = form();
    const counter = $(f, "[data-char-count]");
    const length = $(f, "textarea[name=prompt]").value.replace(/\r\n?/g, "\n").trim().length;
    counter.textContent = `${number(length)} / 2,000 characters`;
    counter.classList.toggle("over", length > MAX_PROMPT);
    const ratio = ($(f, "input[name=size]:checked") || {}).value || "auto";
    const quality = ($(f, "input[name=quality]:checked") || {}).value || "2K";
    let pixels = "the model picks the size";
    if (custom) pixels = custom.replace(/\s*[x×X*]\s*/, "×") + " (custom)";
    else if (pixelSizes[ratio]) pixels = pixelSizes[ratio][quality].join("×");
    const count = Number.isFinite(n) && n >= 1 ? n : 1;
    const price = Number(f.dataset.price || 0);
    const money = price === 0 ? "$0" : `$${(count * price).toFixed(count * price < 0.01 ? 4 : 2)}`;
    $(f, "[data-resolved]").textContent = `${pixels} · up to ${count} image${count > 1 ? "s" : ""} · estimated cost up to ${count} × $${price} = ${money}`;
    const sentence = $(f, "[data-ask-sentence]");
    const on = $(f, "[data-ask-for-n]").checked;
    sentence.textContent = count > 1
      ? (on ? `We add “Generate ${count} different images.” to the prompt we send.` : `Off: the model may return a single image.`)
      : "When n is more than 1, we add “Generate n different images.” to the prompt we send.";
  }

  // --- Wiring (once per form render) ----------------------------------------------------
  function setUpForm(f) {
    if (!f || f.dataset.ready) return;
    f.dataset.ready = "1";
    serverErrors = new Set($$(f, "ul[data-errors-for]").filter((ul) => ul.children.length).map((ul) => ul.dataset.errorsFor));
    const zone = $(f, "[data-dropzone]");
    const input = $(f, "[data-file-input]");
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("is-dragover"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("is-dragover"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault(); zone.classList.remove("is-dragover");
      if (e.dataTransfer && e.dataTransfer.files.length) addFiles(e.dataTransfer.files);
    });
    zone.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); }
    });
    input.addEventListener("change", () => {
      const chosen = Array.from(input.files);
      input.value = "";
      if (chosen.length) addFiles(chosen);
    });
    const list = $(f, "[data-ref-tiles]");
    list.addEventListener("click", (e) => {
      const button = e.target.closest("[data-remove]");
      if (!button) return;
      const li = button.closest("li");
      uploads = uploads.filter((u) => u.token !== li.dataset.token);
      li.remove();
      touch("references", "n");
      updateCount(); validate();
      zone.focus();
    });
    list.addEventListener("keydown", (e) => {
      const li = e.target.closest("li");
      if (!li || !e.altKey || !["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight"].includes(e.key)) return;
      e.preventDefault();
      const before = e.key === "ArrowUp" || e.key === "ArrowLeft";
      const sibling = before ? li.previousElementSibling : li.nextElementSibling;
      if (sibling) { before ? sibling.before(li) : sibling.after(li); li.focus(); }
    });
    if (window.Sortable) window.Sortable.create(list, { animation: 120, onEnd: validate });
    const edited = (e) => { if (e.target.name) touch(e.target.name); validate(); };
    f.addEventListener("input", edited);
    f.addEventListener("change", edited);
    f.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); f.requestSubmit(); }
    });
    renderTiles();
    validate();
  }

  // Pasting an image anywhere on the studio page adds it as a reference.
  document.addEventListener("paste", (e) => {
    const files = Array.from((e.clipboardData && e.clipboardData.files) || []).filter((file) => file.type.startsWith("image/"));
    if (!files.length || !form()) return;
    e.preventDefault();
    addFiles(files.map((file, i) => file.name && file.name !== "image.png" ? file : new File([file], `pasted-${Date.now()}-${i}.png`, { type: file.type })));
  });

  // htmx: swap 400 responses (the form with its errors); they are answers, not failures.
  document.addEventListener("htmx:beforeSwap", (e) => {
    if (e.detail.xhr.status === 400) { e.detail.shouldSwap = true; e.detail.isError = false; }
  });
  // Capture phase: runs before htmx (or the browser) reads the form's values.
  document.addEventListener("submit", (e) => { if (e.target.id === "studio-form") syncInputs(); }, true);
  document.addEventListener("taskCreated", () => { uploads = []; fileTokens = []; });

  // --- History: idle when hidden, announce finished tasks -------------------------------
  let lastHiddenPoll = 0;
  document.addEventListener("htmx:beforeRequest", (e) => {
    if (e.detail.elt.id !== "history" || e.detail.requestConfig.verb !== "get" || !document.hidden) return;
    if (Date.now() - lastHiddenPoll < 10000) e.preventDefault(); // every ~10 s while hidden
    else lastHiddenPoll = Date.now();
  });

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
    if (!done.length) return;
    $(document, "[data-announcer]").textContent = done.join(" ");
    if (document.hidden) { unseen += done.length; document.title = `(${unseen}) ✓ ${baseTitle}`; }
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) { unseen = 0; document.title = baseTitle; }
  });
  document.addEventListener("htmx:afterSettle", (e) => {
    setUpForm(form());
    if (e.detail.elt.id === "history" || document.getElementById("history")) announce();
  });

  setUpForm(form());
  statuses = readStatuses();
})();
