// The studio page: drop zone, live checks that mirror the server's rules (same wording), the
// history's live region. The form works without this file; this only makes it comfortable.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // Every limit and every message comes from the server (gallery/options.py), so the page and the
  // server can never disagree on a rule or its words.
  const rules = JSON.parse(document.getElementById("studio-rules").textContent);
  const MAX_REFS = rules.maxReferences, MAX_BYTES = rules.maxReferenceBytes, MAX_IMAGES = rules.maxImages;
  const MIN_SIDE = rules.minReferenceSide, MAX_SIDE = rules.maxReferenceSide;
  const TYPES = rules.referenceTypes, pixelSizes = rules.pixelSizes, MODELS = rules.models;
  const EXTRA_NAMES = { output_format: "file format", web_search: "web search", watermark: "watermark", background: "background" };

  // Files chosen in this page, kept across re-renders of the form (a rejected submission).
  let uploads = []; // {token, file, url, width, height, error}
  let nextToken = 0;

  const $ = (root, sel) => root.querySelector(sel);
  const $$ = (root, sel) => Array.from(root.querySelectorAll(sel));
  const form = () => document.getElementById("studio-form");
  const number = (n) => n.toLocaleString("en-US");
  const say = (key, values = {}) => rules.messages[key].replace(/\{(\w+)\}/g, (_, name) => String(values[name]));

  function sizeText(bytes) {
    // Django's filesizeformat: 1 decimal, 1024-based.
    const units = ["bytes", "KB", "MB", "GB"];
    let value = bytes, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`;
  }

  const messages = {
    tooMany: (count) => say("too_many_references", { count, limit: MAX_REFS, over: count - MAX_REFS }),
    tooBig: (name, bytes) => {
      let shown = sizeText(bytes);
      if (shown === sizeText(MAX_BYTES)) shown = `${number(bytes)} bytes`;
      return say("reference_too_big", { name, size: shown, limit: `${MAX_BYTES / 1048576} MB`, limit_bytes: number(MAX_BYTES) });
    },
    format: (name) => say("reference_unreadable", { name }),
    sides: (name, width, height) => say("reference_sides", { name, width, height, min_side: number(MIN_SIDE), max_side: number(MAX_SIDE) }),
    aspect: (name, width, height) => say("reference_aspect", { name, width, height }),
    counts: (refs, n) => say("too_many_images", { count: refs, s: refs === 1 ? "" : "s", n, total: refs + n, max: MAX_IMAGES, left: MAX_IMAGES - refs }),
    n: () => say("n_range", { max: MAX_IMAGES }),
    blank: () => say("prompt_blank"),
    long: (length, model) => {
      const over = length - model.maxPromptChars;
      return say("prompt_too_long", { length: number(length), model: model.name, limit: number(model.maxPromptChars), over: number(over), characters: over > 1 ? "characters" : "character" });
    },
    customFormat: () => say("custom_format"),
    customPixels: (width, height, model) => say("custom_pixels", { width, height, pixels: number(width * height), model: model.name, min_pixels: number(model.pixels[0]), max_pixels: number(model.pixels[1]) }),
    customAspect: (width, height) => say("custom_aspect", { width, height }),
  };

  function checkUpload(upload) {
    const { file, width, height } = upload;
    if (file.size > MAX_BYTES) return messages.tooBig(file.name, file.size);
    if (!TYPES.includes(file.type) || !width) return messages.format(file.name);
    if (Math.min(width, height) < MIN_SIDE || Math.max(width, height) > MAX_SIDE) return messages.sides(file.name, width, height);
    const [minAspect, maxAspect] = rules.referenceAspect;
    if (width / height < minAspect || width / height > maxAspect) return messages.aspect(file.name, width, height);
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
    const refused = uploads.filter((u) => u.error).length;
    $(form(), "[data-ref-count]").textContent = `${count - refused} of ${MAX_REFS}` + (refused ? ` · ${refused} refused` : "");
    if (count) $(form(), "[data-references]").open = true; // chosen references are always in view
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

  // --- Models ----------------------------------------------------------------------------
  // The models a submission runs on: the compared ones, or the one picked. Each refuses what it
  // cannot take, named in the message, as the server does.
  function activeModels(f) {
    const compared = $$(f, "input[name=compare]:checked").map((input) => input.value);
    const picked = ($(f, "input[name=model]:checked") || {}).value || rules.defaultModel;
    return (compared.length ? compared : [picked]).map((id) => ({ id, ...MODELS[id] }));
  }
  const offeredByAll = (models, list) => models[0][list].filter((v) => models.every((m) => m[list].includes(v)));
  const takesExtra = (model, extra) => { const v = model.extras[extra]; return Array.isArray(v) ? v.length > 0 : v; };
  const checkedValue = (f, name) => ($(f, `input[name=${name}]:checked`) || {}).value;

  // Offers what the models take and changes, with a note, any setting they cannot take.
  function applyModels(f, announceChanges) {
    const models = activeModels(f);
    const notes = [];
    const first = models[0];
    const lacking = (test) => (models.find(test) || first).name;
    const switchTo = (name, offered, preferred) => {
      $$(f, `[data-${name}]`).forEach((label) => { label.hidden = !offered.includes(label.dataset[name]); });
      const current = checkedValue(f, name);
      if (current && offered.includes(current)) return;
      const next = offered.includes(preferred) ? preferred : offered[0];
      const input = $(f, `input[name=${name}][value="${next}"]`);
      if (input) input.checked = true;
      if (current && announceChanges) {
        notes.push(name === "quality"
          ? say("switched_quality", { model: lacking((m) => !m.qualities.includes(current)), quality: current, new: next })
          : say("switched_priority", { model: lacking((m) => !m.priorities.includes(current)), new: next }));
      }
    };
    switchTo("quality", offeredByAll(models, "qualities"), models.length === 1 ? first.defaultQuality : "2K");
    switchTo("priority", offeredByAll(models, "priorities"), "standard");
    const maxImages = Math.min(...models.map((m) => m.maxImages));
    const n = $(f, "input[name=n]");
    n.max = String(maxImages === 1 ? 1 : MAX_IMAGES);
    if (maxImages === 1 && models.length === 1 && Number(n.value) > 1) {
      n.value = "1";
      if (announceChanges) notes.push(say("switched_n", { model: first.name }));
    }
    $$(f, "[data-extra]").forEach((label) => {
      const extra = label.dataset.extra;
      const taken = models.every((m) => takesExtra(m, extra));
      label.hidden = !taken;
      const control = $(label, "input, select");
      const set = control.type === "checkbox" ? control.checked : control.value !== "";
      if (!taken && set) {
        if (control.type === "checkbox") control.checked = false; else control.value = "";
        if (announceChanges) notes.push(say("switched_extra", { model: lacking((m) => !takesExtra(m, extra)), extra: EXTRA_NAMES[extra] }));
      }
    });
    const prompt = $(f, "textarea[name=prompt]");
    prompt.maxLength = Math.min(...models.map((m) => m.maxPromptChars));
    const strength = $(f, "[data-model-strength]");
    strength.textContent = models.length > 1
      ? `Comparing ${list(models.map((m) => m.shortName))}: one task per model, side by side in the history.`
      : `${first.name}: ${first.strength}`;
    $(f, "[data-model-picker]").classList.toggle("is-comparing", models.length > 1);
    if (announceChanges) {
      const note = $(f, "[data-model-note]");
      note.textContent = notes.join(" ");
      note.hidden = !notes.length;
    }
    return models;
  }
  const list = (names) => names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}` : names[0];

  function validate() {
    const f = form();
    const models = activeModels(f);
    const prompt = $(f, "textarea[name=prompt]").value.replace(/\r\n?/g, "\n").trim();
    const promptErrors = models.filter((m) => prompt.length > m.maxPromptChars).map((m) => messages.long(prompt.length, m));
    const count = tiles().length;
    const refErrors = count > MAX_REFS ? [messages.tooMany(count)] : uploads.filter((u) => u.error).map((u) => u.error);
    const nValue = $(f, "input[name=n]").value;
    const n = Number(nValue);
    let nErrors = [];
    if (!/^\d+$/.test(nValue) || n < 1 || n > MAX_IMAGES) nErrors = [messages.n()];
    else if (models.length === 1 && n > models[0].maxImages) nErrors = [say("one_image", { model: models[0].name })];
    else if (count <= MAX_REFS && count + n > MAX_IMAGES) nErrors = [messages.counts(count, n)];
    const custom = $(f, "input[name=custom_size]").value.trim();
    let customErrors = [];
    if (custom) {
      const m = custom.match(/^(\d{1,5})\s*[x×X*]\s*(\d{1,5})$/);
      if (!m) customErrors = [messages.customFormat()];
      else {
        const w = Number(m[1]), h = Number(m[2]);
        customErrors = models.filter((model) => !w || !h || w * h < model.pixels[0] || w * h > model.pixels[1]).map((model) => messages.customPixels(w, h, model));
        if (!customErrors.length && (w / h < rules.customAspect[0] || w / h > rules.customAspect[1])) customErrors = [messages.customAspect(w, h)];
      }
    }
    const compared = $$(f, "input[name=compare]:checked").length;
    showErrors("prompt", promptErrors);
    showErrors("references", refErrors);
    showErrors("n", nErrors);
    showErrors("custom_size", customErrors);
    showErrors("compare", compared === 1 || compared > 4 ? [say("compare_count", { count: compared })] : []);
    updateSummary(models, nErrors.length ? NaN : n, custom && !customErrors.length ? custom : "");
  }

  function money(dollars) {
    // As the server's per_image filter: every digit of a price below a dollar ($0.0222), cents above.
    return dollars === 0 ? "$0" : dollars >= 1 ? `$${dollars.toFixed(2)}` : `$${Number(dollars.toFixed(4))}`;
  }

  // The ledger's money format (budgets.money): $0.0222 below a cent, else $1,234.50.
  function ledgerMoney(dollars) {
    if (dollars === 0) return "$0";
    if (dollars < 0.01) return `$${dollars.toFixed(4).replace(/0+$/, "")}`;
    return `$${dollars.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
  }

  // Warns before Generate when the estimate passes what is left of the team's budget or the
  // member's cap, in the words the server refuses with.
  function showBudget(f, total) {
    const note = $(f, "[data-budget-note]");
    if (!note) return;
    const budget = rules.budget || {};
    const cost = Math.round(total * 10000) / 10000;
    let text = "";
    if (budget.team && cost > budget.team.left) {
      text = say("team_budget", { cost: ledgerMoney(cost), left: budget.team.leftText, budget: budget.team.limitText, month: budget.month });
    } else if (budget.member && cost > budget.member.left) {
      text = say("member_cap", { cost: ledgerMoney(cost), left: budget.member.leftText, cap: budget.member.limitText, month: budget.month });
    }
    note.textContent = text;
    note.hidden = !text;
  }

  function updateSummary(models, n, custom) {
    const f = form();
    const counter = $(f, "[data-char-count]");
    const limit = Math.min(...models.map((m) => m.maxPromptChars));
    const length = $(f, "textarea[name=prompt]").value.replace(/\r\n?/g, "\n").trim().length;
    counter.textContent = `${number(length)} / ${number(limit)} characters`;
    counter.classList.toggle("over", length > limit);
    const ratio = checkedValue(f, "size") || "auto";
    const quality = checkedValue(f, "quality") || models[0].defaultQuality;
    let pixels = "the model picks the size";
    if (custom) pixels = custom.replace(/\s*[x×X*]\s*/, "×") + " (custom)";
    else if (pixelSizes[ratio]) pixels = pixelSizes[ratio][quality].join("×");
    if (!Number.isFinite(n)) {
      $(f, "[data-resolved]").textContent = `${pixels} · choose a number of images to see the cost`;
      showBudget(f, 0);
      return;
    }
    const count = n;
    // The price of each model at the provider its task would go to (rules.pricing, from the server).
    const parts = models.map((m) => {
      const images = m.maxImages === 1 ? 1 : count;
      const each = (rules.pricing[m.id] || {})[m.qualities.includes(quality) ? quality : m.defaultQuality];
      return { m, images, each: Number(each || 0) };
    });
    const images = parts.reduce((sum, p) => sum + p.images, 0);
    const total = parts.reduce((sum, p) => sum + p.images * p.each, 0);
    const cost = parts.length === 1
      ? `estimated cost up to ${images} × ${money(parts[0].each)} = ${money(total)}`
      : `estimated cost up to ${money(total)} (${parts.map((p) => `${p.m.shortName} ${p.images} × ${money(p.each)}`).join(", ")})`;
    const tasks = parts.length > 1 ? `${parts.length} models · ` : "";
    $(f, "[data-resolved]").textContent = `${pixels} · ${tasks}up to ${images} image${images > 1 ? "s" : ""} · ${cost}`;
    showBudget(f, total);
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
    // Files may be dropped anywhere on the form: the (collapsed) references open to take them.
    const carriesFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes("Files");
    f.addEventListener("dragover", (e) => {
      if (!carriesFiles(e)) return;
      e.preventDefault();
      $(f, "[data-references]").open = true;
      zone.classList.add("is-dragover");
    });
    f.addEventListener("dragleave", (e) => { if (!f.contains(e.relatedTarget)) zone.classList.remove("is-dragover"); });
    f.addEventListener("drop", (e) => {
      if (!carriesFiles(e)) return;
      e.preventDefault(); zone.classList.remove("is-dragover");
      if (e.dataTransfer.files.length) addFiles(e.dataTransfer.files);
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
    const edited = (e) => {
      if (e.target.name) touch(e.target.name);
      if (e.type === "change" && ["model", "compare"].includes(e.target.name)) { touch("quality", "priority", "n", "prompt", "custom_size"); applyModels(f, true); }
      validate();
    };
    f.addEventListener("input", edited);
    f.addEventListener("change", edited);
    f.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); f.requestSubmit(); }
    });
    applyModels(f, false);
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

  // --- Sending: every click is answered ---------------------------------------------------
  // A click used to be dropped without a word while an earlier submission was still on its way
  // (hx-sync "drop"), and a refused upload (413), a server error or a lost connection left the
  // page unchanged. Now a second Generate while sending is refused out loud, the upload shows its
  // progress, and every outcome ends in a sentence next to the button.
  let sending = false;
  const isForm = (e) => e.detail && e.detail.elt && e.detail.elt.id === "studio-form";

  function say_status(text, kind = "") {
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
  document.addEventListener("submit", (e) => {
    if (e.target.id !== "studio-form") return;
    if (sending) {
      e.preventDefault();
      e.stopImmediatePropagation();
      say_status("Still sending your previous task: it will show in the history in a moment.", "error");
      return;
    }
    syncInputs();
  }, true);
  let sent = null; // what was sent: edits made while it travels are kept when the form comes back
  document.addEventListener("htmx:beforeRequest", (e) => {
    if (!isForm(e) || e.detail.requestConfig.verb !== "post") return;
    sending = true;
    sent = { prompt: $(form(), "textarea[name=prompt]").value, uploads: new Set(uploads.map((u) => u.token)) };
    form().setAttribute("aria-busy", "true");
    say_status("Sending…");
    progress(0);
  });
  document.addEventListener("htmx:xhr:progress", (e) => {
    if (!isForm(e) || !e.detail.lengthComputable || !e.detail.total) return;
    const done = e.detail.loaded / e.detail.total;
    progress(done);
    if (e.detail.total > 256 * 1024) say_status(`Sending… ${sizeText(e.detail.loaded)} of ${sizeText(e.detail.total)}`);
  });
  // The request is over when its answer is about to be swapped in: events of the old form, once
  // it is replaced, no longer reach the document (a flag cleared only there stayed set, and every
  // later Generate was refused).
  function sendingOver() {
    sending = false;
    if (form()) form().removeAttribute("aria-busy");
    progress(null);
  }
  let typedMeanwhile = null;
  document.addEventListener("htmx:beforeSwap", (e) => {
    if (!isForm(e)) return;
    sendingOver();
    // A refusal that comes with the form (400 rejected, 402 over budget, 503 storage refused, …)
    // is swapped in: its sentence is in the form, next to what the person typed.
    const xhr = e.detail.xhr;
    if (xhr.status >= 400 && /id="studio-form"/.test(xhr.responseText || "")) { e.detail.shouldSwap = true; e.detail.isError = false; }
    const prompt = $(form(), "textarea[name=prompt]").value;
    typedMeanwhile = e.detail.xhr.status === 200 && sent && prompt !== sent.prompt ? prompt : null;
  });
  document.addEventListener("htmx:afterRequest", (e) => { if (isForm(e)) sendingOver(); });
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
  document.addEventListener("htmx:responseError", (e) => {
    const xhr = e.detail.xhr;
    if (/id="studio-form"/.test(xhr.responseText || "")) return;
    if (/studioMessage/.test(xhr.getResponseHeader("HX-Trigger") || "")) return; // says it itself
    if (isForm(e)) {
      say_status(serverSentence(xhr) || FAILED[xhr.status] || `The studio could not take this task (error ${xhr.status}). Nothing was sent: try again in a moment.`, "error");
      return;
    }
    // A history action (retry, cancel, delete, remix) refused with a page of its own: its sentence.
    if (e.detail.elt && e.detail.elt.closest && e.detail.elt.closest("#history, #studio-form")) {
      const text = serverSentence(xhr) || `The studio could not do this (error ${xhr.status}). Reload the page and try again.`;
      document.dispatchEvent(new CustomEvent("studioMessage", { detail: { text, error: true } }));
    }
  });
  document.addEventListener("htmx:sendError", (e) => {
    if (!isForm(e)) return;
    say_status("The studio could not be reached, so nothing was sent. Check the connection and press Generate again.", "error");
  });
  let queued = null; // the row whose "Queued" sentence is shown: cleared when it finishes
  document.addEventListener("taskCreated", (e) => {
    // The files sent are in the task now; files added while it was sent stay for the next one.
    uploads = uploads.filter((u) => sent && !sent.uploads.has(u.token)); fileTokens = [];
    const id = e.detail && e.detail.id;
    // After the swap: the new row, at the top of the history, comes into view; focus goes back to
    // the prompt without moving the page (on a phone the prompt is above the new row).
    setTimeout(() => {
      say_status("Queued: your task is at the top of the history.", "done");
      queued = id ? `task-${id}` : null;
      const row = id && document.getElementById(`task-${id}`);
      if (row) row.scrollIntoView({ block: "nearest", behavior: matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth" });
      const prompt = form() && $(form(), "textarea[name=prompt]");
      if (prompt && typedMeanwhile !== null) {
        prompt.value = typedMeanwhile;
        prompt.dispatchEvent(new Event("input", { bubbles: true }));
      }
      if (prompt) prompt.focus({ preventScroll: true });
      renderTiles(); validate();
    }, 0);
  });

  // Clear: the prompt and every reference go; the model and settings stay.
  document.addEventListener("click", (e) => {
    if (!e.target.closest("[data-clear-form]") || !form()) return;
    const f = form();
    uploads = []; fileTokens = [];
    $$(f, "[data-ref-tiles] li").forEach((li) => li.remove());
    $(f, "[data-reference-order]").value = "";
    const prompt = $(f, "textarea[name=prompt]");
    prompt.value = "";
    serverErrors = new Set();
    say_status("");
    updateCount(); validate();
    prompt.focus();
  });

  // The empty history's example fills the prompt.
  document.addEventListener("click", (e) => {
    const example = e.target.closest("[data-example-prompt]");
    if (!example || !form()) return;
    const prompt = $(form(), "textarea[name=prompt]");
    prompt.value = example.textContent.trim();
    prompt.dispatchEvent(new Event("input", { bubbles: true }));
    prompt.focus();
  });

  // Messages from the server about a row's action (retry refused, delete postponed, …).
  document.addEventListener("studioMessage", (e) => {
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

  // --- History: idle when hidden, announce finished tasks -------------------------------
  let lastHiddenPoll = 0;
  document.addEventListener("htmx:beforeRequest", (e) => {
    if (e.detail.elt.id !== "history-poll") return;
    // A task being sent comes back with the history: a poll now would only race it.
    if (sending) { e.preventDefault(); return; }
    if (!document.hidden) return;
    if (Date.now() - lastHiddenPoll < 10000) e.preventDefault(); // every ~10 s while hidden
    else lastHiddenPoll = Date.now();
  });
  // A submit, or anything else that brings a whole new history, makes a poll under way moot: its
  // answer would come for a poller no longer on the page, and htmx could not place it ("Invalid
  // re-target #history"). It is abandoned; the new history brings its own poller.
  document.addEventListener("htmx:beforeRequest", (e) => {
    const poll = document.getElementById("history-poll");
    if (!poll || e.detail.elt === poll) return;
    if (isForm(e) || (e.detail.target && e.detail.target.id === "history")) htmx.trigger(poll, "htmx:abort");
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
    const row = queued && document.getElementById(queued);
    if (queued && (!row || ["completed", "failed", "cancelled"].includes(row.dataset.status))) { queued = null; say_status(""); }
    if (!done.length) return;
    $(document, "[data-announcer]").textContent = done.join(" ");
    if (document.hidden) { unseen += done.length; document.title = `(${unseen}) ✓ ${baseTitle}`; }
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) { unseen = 0; document.title = baseTitle; }
  });
  document.addEventListener("htmx:afterSettle", () => { setUpForm(form()); announce(); });
  document.addEventListener("htmx:oobAfterSwap", announce);

  setUpForm(form());
  statuses = readStatuses();
})();
