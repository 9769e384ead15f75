// The studio's references: drop, paste or choose files, see each as a tile, reorder them, and
// hand them to the real file input. Runs after studio-rules.js (window.Studio).
(function () {
  "use strict";
  const S = window.Studio;
  const { $, $$, form, sizeText, rules } = S;
  const MAX_REFS = rules.maxReferences, MAX_BYTES = rules.maxReferenceBytes, TYPES = rules.referenceTypes;

  // Files chosen in this page, kept across re-renders of the form (a rejected submission).
  S.uploads = []; // {token, file, url, width, height, error}
  let nextToken = 0;

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
    added.forEach((u) => { u.error = S.checkUpload(u); });
    S.uploads = S.uploads.concat(added);
    S.touch("references", "n");
    renderTiles();
    S.validate();
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
    S.uploads.forEach((u) => list.append(tileFor(u)));
    // Keep the order the person chose across re-renders.
    const byToken = new Map($$(list, "li").map((li) => [li.dataset.token, li]));
    order.map((t) => byToken.get(t.startsWith("f") ? uploadTokenForFile(t) : t)).filter(Boolean).forEach((li) => list.append(li));
    $$(list, "li").forEach((li) => { if (!order.includes(li.dataset.token)) list.append(li); });
    updateCount();
  }

  S.fileTokens = []; // upload tokens in the order they were put into the file input (f0, f1, …)
  function uploadTokenForFile(token) { return S.fileTokens[Number(token.slice(1))]; }

  function tiles() { return $$(form(), "[data-ref-tiles] li"); }

  function updateCount() {
    const count = tiles().length;
    const refused = S.uploads.filter((u) => u.error).length;
    $(form(), "[data-ref-count]").textContent = `${count - refused} of ${MAX_REFS}` + (refused ? ` · ${refused} refused` : "");
    if (count) $(form(), "[data-references]").open = true; // chosen references are always in view
  }

  // Puts the chosen files into the real file input and the tile order into reference_order,
  // so htmx (or the browser) submits a plain multipart form.
  function syncInputs() {
    const f = form();
    const transfer = new DataTransfer();
    S.fileTokens = [];
    const order = tiles().map((li) => {
      const upload = S.uploads.find((u) => u.token === li.dataset.token);
      if (!upload) return li.dataset.token;
      transfer.items.add(upload.file);
      S.fileTokens.push(upload.token);
      return `f${S.fileTokens.length - 1}`;
    });
    $(f, "[data-file-input]").files = transfer.files;
    $(f, "[data-reference-order]").value = order.join(",");
  }

  // --- Wiring (once per form render) ----------------------------------------------------
  S.onForm((f) => {
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
      S.uploads = S.uploads.filter((u) => u.token !== li.dataset.token);
      li.remove();
      S.touch("references", "n");
      updateCount(); S.validate();
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
    if (window.Sortable) window.Sortable.create(list, { animation: 120, onEnd: () => S.validate() });
    renderTiles();
  });

  // Pasting an image anywhere on the studio page adds it as a reference.
  S.on("paste", (e) => {
    const files = Array.from((e.clipboardData && e.clipboardData.files) || []).filter((file) => file.type.startsWith("image/"));
    if (!files.length || !form()) return;
    e.preventDefault();
    addFiles(files.map((file, i) => file.name && file.name !== "image.png" ? file : new File([file], `pasted-${Date.now()}-${i}.png`, { type: file.type })));
  });

  Object.assign(S, { renderTiles, tiles, updateCount, syncInputs });
})();
