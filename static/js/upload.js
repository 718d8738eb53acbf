// The upload page: drag and drop, tus-js-client resumable uploads (pause, resume, resume after
// a reload when the same file is picked again), then live processing progress over the websocket.
"use strict";
(() => {
  const config = JSON.parse(document.getElementById("upload-config").textContent);
  const $ = (id) => document.getElementById(id);
  const messages = $("messages");
  let upload = null;
  let socket = null;

  function bar(id, percent, text) {
    const value = Math.max(0, Math.min(100, percent));
    $(id).querySelector("span").style.width = value + "%";
    $(id).setAttribute("aria-valuenow", String(Math.round(value)));
    if (text !== undefined) $(id.replace("-bar", "-text")).textContent = text;
  }
  function setStatus(status, error) {
    const badge = $("job-status");
    badge.textContent = status;
    badge.className = "badge " + status;
    if (status === "ready") {
      bar("transcode-bar", 100, "done");
      $("open").hidden = false;
      SG.notice(messages, "Your video is ready to watch.", "ok");
    } else if (status === "failed") {
      SG.notice(messages, `Processing failed: ${error || "unknown error"}. You can retry it from the studio.`, "error");
    }
  }
  function onMessage(message) {
    if (message.type === "status") setStatus(message.status, message.error);
    if (message.type === "transcode") {
      bar("transcode-bar", message.percent, `${message.stage} ${Math.floor(message.percent)}%`);
    }
  }

  async function start(file) {
    if (upload) { SG.notice(messages, "An upload is already running on this page.", "error"); return; }
    SG.notice(messages, "");
    const title = $("title").value.trim() || file.name.replace(/\.[^.]+$/, "") || "Untitled";
    const options = {
      endpoint: "/api/v1/uploads/",
      chunkSize: config.chunkSize || Infinity,
      retryDelays: [0, 1000, 3000, 5000, 10000],
      headers: { "X-CSRFToken": SG.csrf() },
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      metadata: { filename: file.name, filetype: file.type || "application/octet-stream", title },
      onProgress(sent, total) {
        bar("upload-bar", (sent / total) * 100, `${Math.floor((sent / total) * 100)}%`);
      },
      onSuccess() {
        upload = null; // another file may follow
        bar("upload-bar", 100, "100%");
        $("pause").hidden = true;
        $("resume").hidden = true;
        $("transcode-text").textContent = "queued";
      },
      onError(error) {
        const response = error.originalResponse;
        const body = response ? response.getBody() : "";
        let detail = body;
        try { detail = SG.message(JSON.parse(body)); } catch (ignored) { /* plain text */ }
        SG.notice(messages, `The upload stopped: ${detail || error.message}. Press Resume to continue.`, "error");
        $("pause").hidden = true;
        $("resume").hidden = false;
      },
    };
    upload = new tus.Upload(file, options);
    const previous = await upload.findPreviousUploads();
    const resumable = previous.find((item) => item.metadata && item.metadata.content_id);
    let contentId;
    if (resumable) {
      contentId = resumable.metadata.content_id;
      upload.options.metadata = resumable.metadata;
      upload.resumeFromPreviousUpload(resumable);
      SG.notice(messages, "Resuming your earlier upload of this file where it stopped.");
    } else {
      const created = await SG.api("POST", "/api/v1/contents/", { title });
      if (created.status !== 201) {
        SG.notice(messages, SG.message(created.data, "Could not create the content."), "error");
        upload = null;
        return;
      }
      contentId = created.data.id;
      upload.options.metadata.content_id = contentId;
    }
    $("job").hidden = false;
    $("job-name").textContent = resumable ? resumable.metadata.title || title : title;
    $("open").href = `/watch/${contentId}/`;
    $("job").dataset.contentId = contentId;
    socket = SG.follow(contentId, onMessage);
    upload.start();
  }

  $("pause").addEventListener("click", () => {
    if (!upload) return;
    upload.abort();
    $("pause").hidden = true;
    $("resume").hidden = false;
    SG.notice(messages, "Paused. Press Resume to continue.");
  });
  $("resume").addEventListener("click", () => {
    if (!upload) return;
    $("resume").hidden = true;
    $("pause").hidden = false;
    SG.notice(messages, "");
    upload.start();
  });
  async function begin(file) {
    try {
      await start(file);
    } catch (error) {
      upload = null;
      SG.notice(messages, `The upload could not start: ${error.message || error}`, "error");
    }
  }
  $("file").addEventListener("change", (event) => { if (event.target.files[0]) begin(event.target.files[0]); });
  const zone = $("dropzone");
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) begin(file);
  });
  window.addEventListener("beforeunload", () => { if (socket) socket.close(); });
})();
