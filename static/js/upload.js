// The upload page: a queue of files, each its own row with its own title (from its file name),
// its own resumable tus upload (two at a time), cancel, and then its processing followed live
// (one forward-only bar, plain words, a time estimate) until it can be watched. A failed file
// offers Retry only when encoding again can help, and always "Replace the file".
"use strict";
(() => {
  const config = JSON.parse(document.getElementById("upload-config").textContent);
  const $ = (id) => document.getElementById(id);
  const queue = $("queue");
  const PARALLEL = 2;
  const ACTIVE = new Set(["starting", "uploading"]);
  const items = [];
  let serial = 0;

  const titleOf = (file) => file.name.replace(/\.[^.]+$/, "").replace(/[_]+/g, " ").trim().slice(0, 200) || "Untitled";
  function sizeOf(bytes) {
    if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
    if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
    return `${(bytes / 1024 ** 3).toFixed(2)} GB`;
  }

  function render(item) {
    const node = $("queue-item").content.firstElementChild.cloneNode(true);
    const part = (role) => node.querySelector(`[data-role=${role}]`);
    const id = `upload-${item.serial}`;
    node.dataset.serial = String(item.serial);
    part("title-label").htmlFor = `${id}-title`;
    part("title").id = `${id}-title`;
    part("replace-input").id = `${id}-replace`;
    part("replace-label").htmlFor = `${id}-replace`;
    part("file").id = `${id}-file`;
    part("title").setAttribute("aria-describedby", `${id}-file`);
    item.node = node;
    item.part = part;
    part("title").addEventListener("change", () => rename(item));
    part("cancel").addEventListener("click", () => cancel(item));
    part("pause").addEventListener("click", () => pause(item));
    part("resume").addEventListener("click", () => resume(item));
    part("retry").addEventListener("click", () => retry(item));
    part("replace-input").addEventListener("change", (event) => {
      if (event.target.files[0]) replace(item, event.target.files[0]);
      event.target.value = "";
    });
    describe(item);
    return node;
  }
  function describe(item) {
    const { part, file } = item;
    part("title").value = item.title;
    part("file").textContent = `${file.name} · ${sizeOf(file.size)}`;
    part("name").textContent = ` the upload of ${file.name}`;
    part("bar").setAttribute("aria-label", `Progress of ${file.name}`);
  }
  function say(item, text, kind) { SG.notice(item.part("message"), text, kind); }
  function show(item, role, visible) { item.part(role).hidden = !visible; }
  function setState(item, state) {
    item.state = state;
    item.node.dataset.state = state;
  }

  function paint(item, state) {
    const { part } = item;
    const moving = !SGProgress.STEADY.has(state.status);
    part("status").textContent = state.label || "Waiting to upload";
    part("status").className = "badge " + (state.status || "");
    SGProgress.paint(part("bar"), state.overall);
    part("percent").textContent = `${Math.floor(state.overall)}%`;
    part("bar").hidden = part("percent").hidden = state.status === "failed"; // no bar to finish
    part("eta").textContent = moving ? state.eta : "";
    item.node.dataset.status = state.status || "";
  }
  function onStatus(item, state) {
    const failed = state.status === "failed";
    show(item, "watch", state.status === "ready");
    show(item, "retry", failed && state.retryable);
    show(item, "replace", failed);
    if (state.status === "ready") {
      say(item, "Ready to watch.", "ok");
      item.follower.close();
      item.follower = null;
    } else if (failed) {
      say(item, state.error || "Processing failed.", "error");
      setState(item, "failed");
    } else if (state.status === "queued" || state.status === "processing") {
      say(item, "");
    }
    if (failed || state.status === "ready") ["pause", "resume", "cancel"].forEach((role) => show(item, role, false));
  }
  function follow(item) {
    if (item.follower) return;
    item.follower = SG.follow(item.contentId, (message) => item.tracker.feed(message));
  }

  function add(file) {
    const item = { file, serial: ++serial, title: titleOf(file), state: "waiting", contentId: null, upload: null, follower: null };
    item.tracker = SGProgress.tracker((state, message) => {
      paint(item, state);
      if (message.type === "status") onStatus(item, state);
    }, { label: "Waiting to upload" });
    queue.appendChild(render(item));
    items.push(item);
  }
  function pump() {
    let running = items.filter((item) => ACTIVE.has(item.state)).length;
    for (const item of items) {
      if (running >= PARALLEL) break;
      if (item.state !== "waiting") continue;
      running += 1;
      start(item).catch((error) => {
        setState(item, "stopped");
        say(item, `The upload could not start: ${error.message || error}`, "error");
        pump();
      });
    }
  }

  async function start(item) {
    setState(item, "starting");
    const { part } = item;
    const title = part("title").value.trim() || item.title;
    const upload = new tus.Upload(item.file, {
      endpoint: "/api/v1/uploads/",
      chunkSize: config.chunkSize || Infinity,
      retryDelays: [0, 1000, 3000, 5000, 10000],
      headers: { "X-CSRFToken": SG.csrf() },
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      metadata: { filename: item.file.name, filetype: item.file.type || "application/octet-stream", title },
      onProgress(sent, total) {
        // The bytes this page sent, at once; the server's messages say the same a little later.
        item.tracker.feed({ type: "upload", overall: Math.floor((30 * sent) / total), label: "Uploading" });
      },
      onSuccess() {
        setState(item, "uploaded");
        ["pause", "resume", "cancel"].forEach((role) => show(item, role, false));
        pump();
      },
      onError(error) {
        const response = error.originalResponse;
        const body = response ? response.getBody() : "";
        let detail = body;
        try { detail = SG.message(JSON.parse(body)); } catch (ignored) { /* plain text */ }
        setState(item, "stopped");
        say(item, `The upload stopped: ${(detail || error.message || "").replace(/\.$/, "")}. Press Resume to continue.`, "error");
        show(item, "pause", false);
        show(item, "resume", true);
        pump();
      },
    });
    item.upload = upload;
    if (!item.contentId) {
      const previous = await upload.findPreviousUploads();
      const resumable = previous.find((found) => found.metadata && found.metadata.content_id);
      if (resumable) {
        item.contentId = resumable.metadata.content_id;
        upload.options.metadata = Object.assign({}, resumable.metadata);
        part("title").value = resumable.metadata.title || title;
        upload.resumeFromPreviousUpload(resumable);
        say(item, "Resuming your earlier upload of this file where it stopped.");
      } else {
        const created = await SG.api("POST", "/api/v1/contents/", { title });
        if (created.status !== 201) throw new Error(SG.message(created.data, "the video could not be created"));
        item.contentId = created.data.id;
      }
    }
    if (item.state !== "starting") { // cancelled while the video was being created
      if (!item.replacing) await SG.api("DELETE", `/api/v1/contents/${item.contentId}/`);
      return;
    }
    upload.options.metadata.content_id = item.contentId;
    item.node.dataset.contentId = item.contentId;
    part("watch").href = `/watch/${item.contentId}/`;
    part("edit").href = `/studio/${item.contentId}/`;
    show(item, "edit", true);
    show(item, "pause", true);
    follow(item);
    setState(item, "uploading");
    upload.start();
  }

  async function rename(item) {
    const input = item.part("title");
    const title = input.value.trim();
    if (!title) { input.value = item.title; return; }
    item.title = title;
    if (!item.contentId) return; // used when its upload starts
    const saved = await SG.api("PATCH", `/api/v1/contents/${item.contentId}/`, { title });
    say(item, saved.status === 200 ? "Title saved." : SG.message(saved.data, "The title was not saved."), saved.status === 200 ? "ok" : "error");
  }
  function pause(item) {
    if (!item.upload || item.state !== "uploading") return;
    item.upload.abort();
    setState(item, "paused");
    show(item, "pause", false);
    show(item, "resume", true);
    say(item, "Paused. Press Resume to continue.");
    pump();
  }
  function resume(item) {
    if (!item.upload) return;
    setState(item, "uploading");
    show(item, "resume", false);
    show(item, "pause", true);
    say(item, "");
    item.upload.start();
  }
  async function cancel(item) {
    const started = item.contentId && !item.replacing;
    const previous = item.state;
    setState(item, "cancelled");
    if (item.upload && previous !== "waiting") {
      try { await item.upload.abort(true); } catch (ignored) { /* the upload ends with its content */ }
    }
    if (item.follower) item.follower.close();
    if (started) await SG.api("DELETE", `/api/v1/contents/${item.contentId}/`);
    items.splice(items.indexOf(item), 1);
    item.node.remove();
    SG.notice($("messages"), `The upload of ${item.file.name} was cancelled.`);
    pump();
  }
  async function retry(item) {
    const retried = await SG.api("POST", `/api/v1/contents/${item.contentId}/retry/`);
    if (retried.status === 202) {
      say(item, "Retrying.");
      show(item, "retry", false);
      show(item, "replace", false);
      follow(item);
    } else {
      say(item, SG.message(retried.data, "The retry was refused."), "error");
    }
  }
  function replace(item, file) {
    // The same video (its title, link and settings) gets a new source file.
    item.file = file;
    item.replacing = true;
    item.upload = null;
    item.tracker.begin();
    describe(item);
    item.part("title").value = item.title;
    show(item, "replace", false);
    show(item, "retry", false);
    show(item, "cancel", true);
    say(item, "");
    setState(item, "waiting");
    follow(item);
    pump();
  }

  let replacing = config.replace; // {id, title}: the next file replaces that video's file
  if (replacing) SG.notice($("messages"), `The file you choose replaces the file of “${replacing.title}”.`);
  function enqueue(files) {
    SG.notice($("messages"), "");
    [...files].forEach((file) => {
      add(file);
      if (!replacing) return;
      const item = items[items.length - 1];
      Object.assign(item, { contentId: replacing.id, replacing: true, title: replacing.title });
      item.part("title").value = replacing.title;
      replacing = null;
    });
    pump();
  }
  $("file").addEventListener("change", (event) => {
    if (event.target.files.length) enqueue(event.target.files);
    event.target.value = ""; // the same file may be picked again (to resume it)
  });
  const zone = $("dropzone");
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files.length) enqueue(event.dataTransfer.files);
  });
  window.addEventListener("beforeunload", () => items.forEach((item) => item.follower && item.follower.close()));
})();
