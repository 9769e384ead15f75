// The studio page, in four deferred scripts that share window.Studio, loaded in this order by
// templates/gallery/studio.html: studio-rules.js (this one: the namespace, the shared helpers and
// the live checks that mirror the server's rules, same wording), studio-dropzone.js (files),
// studio-send.js (sending and its answers), studio-history.js (the history's live region; it
// starts the page). The form works without them; they only make it comfortable.
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

  // One document listener per event type for the whole studio: each concern adds its handler with
  // Studio.on, and the handlers run in the order they were added (the order of the script tags).
  // A handler that throws is reported and the next one still runs, as separate listeners would.
  const handlers = new Map();
  function addHandler(type, handler, capture = false) {
    if (!handlers.has(type)) {
      const list = [];
      handlers.set(type, list);
      document.addEventListener(type, (e) => {
        for (const run of list) {
          try { run(e); } catch (error) { window.reportError ? window.reportError(error) : setTimeout(() => { throw error; }); }
        }
      }, capture);
    }
    handlers.get(type).push(handler);
  }

  // Wiring, once per form render: each concern adds its part with Studio.onForm (in script order);
  // the render ends with one check of the whole form, once every part is in place.
  const formSetups = [];
  function setUpForm(f) {
    if (!f || f.dataset.ready) return;
    f.dataset.ready = "1";
    formSetups.forEach((setUp) => setUp(f));
    validate();
  }

  const S = window.Studio = {
    rules, $, $$, form, number, say, sizeText, setUpForm,
    on: addHandler,
    onForm: (setUp) => { formSetups.push(setUp); },
    serverErrors: new Set(), // fields showing the server's errors: see "Mirrored rules" below
  };

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

  // A chosen file against the server's rules for references (the drop zone decodes it first).
  function checkUpload(upload) {
    const { file, width, height } = upload;
    if (file.size > MAX_BYTES) return messages.tooBig(file.name, file.size);
    if (!TYPES.includes(file.type) || !width) return messages.format(file.name);
    if (Math.min(width, height) < MIN_SIDE || Math.max(width, height) > MAX_SIDE) return messages.sides(file.name, width, height);
    const [minAspect, maxAspect] = rules.referenceAspect;
    if (width / height < minAspect || width / height > maxAspect) return messages.aspect(file.name, width, height);
    return "";
  }

  // --- Mirrored rules -------------------------------------------------------------------
  // Fields showing the server's errors (a rejected submission). The server knows more than these
  // checks (a blank prompt, a file it cannot read), so its errors stay until that field changes.
  // (Studio.serverErrors: set per form render below, emptied by Clear in studio-send.js.)
  function touch(...fields) { fields.forEach((field) => S.serverErrors.delete(field)); }

  function showErrors(field, list) {
    const ul = $(form(), `[data-errors-for="${field}"]`);
    if (!ul || S.serverErrors.has(field)) return;
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
    const count = S.tiles().length;
    const refErrors = count > MAX_REFS ? [messages.tooMany(count)] : S.uploads.filter((u) => u.error).map((u) => u.error);
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
  S.onForm((f) => {
    S.serverErrors = new Set($$(f, "ul[data-errors-for]").filter((ul) => ul.children.length).map((ul) => ul.dataset.errorsFor));
    const edited = (e) => {
      if (e.target.name) touch(e.target.name);
      if (e.type === "change" && ["model", "compare"].includes(e.target.name)) { touch("quality", "priority", "n", "prompt", "custom_size"); applyModels(f, true); }
      validate();
    };
    f.addEventListener("input", edited);
    f.addEventListener("change", edited);
    applyModels(f, false);
  });

  Object.assign(S, { checkUpload, touch, validate });
})();
