// The studio editor's Captions section: upload a WebVTT or SRT file per language (multipart to
// POST /api/v1/contents/<id>/captions/), list the content's captions, delete one. The API
// checks everything; its reason is shown as it is.
"use strict";
(() => {
  const section = document.getElementById("captions");
  if (!section) return;
  const config = JSON.parse(document.getElementById("edit-config").textContent);
  const base = `/api/v1/contents/${config.id}/captions/`;
  const $ = (id) => document.getElementById(id);
  const list = $("caption-list");
  const messages = $("caption-messages");
  const form = $("caption-form");
  const MAX_BYTES = 1024 * 1024;

  function item(caption) {
    const li = document.createElement("li");
    li.dataset.id = caption.id;
    const language = document.createElement("span");
    language.className = "caption-language";
    language.textContent = caption.language;
    const label = document.createElement("span");
    label.className = "caption-label";
    label.textContent = caption.label;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "btn danger";
    remove.dataset.delete = "";
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", `Delete captions: ${caption.label} (${caption.language})`);
    li.append(language, label, remove);
    return li;
  }

  function refreshEmpty() {
    $("caption-none").hidden = list.children.length > 0;
  }

  async function send(method, url, body) {
    try {
      const response = await fetch(url, {
        method,
        body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": SG.csrf(), Accept: "application/json" },
      });
      const text = await response.text();
      let data = null;
      try { data = text ? JSON.parse(text) : null; } catch (error) { data = { detail: text.slice(0, 200) }; }
      return { status: response.status, data };
    } catch (error) {
      return { status: 0, data: { detail: "The server could not be reached. Check your connection and try again." } };
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = $("caption-file").files[0];
    const language = $("caption-language").value.trim();
    if (!file) return SG.notice(messages, "Choose a .vtt or .srt file first.", "error");
    if (!language) return SG.notice(messages, "Give the captions' language, e.g. en or pt-BR.", "error");
    if (file.size > MAX_BYTES) return SG.notice(messages, "The file is larger than 1 MiB, the most a caption file may have.", "error");
    const body = new FormData();
    body.append("file", file);
    body.append("language", language);
    body.append("label", $("caption-label").value);
    const button = $("caption-upload");
    button.disabled = true;
    SG.notice(messages, "Uploading…");
    const { status, data } = await send("POST", base, body);
    button.disabled = false;
    if (status !== 201) {
      return SG.notice(messages, `The captions were not added. ${SG.message(data)}`, "error");
    }
    list.appendChild(item(data));
    refreshEmpty();
    form.reset();
    SG.notice(messages, `Captions added: ${data.label} (${data.language}).`, "ok");
  });

  list.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-delete]");
    if (!button) return;
    const li = button.closest("li");
    button.disabled = true;
    const { status, data } = await send("DELETE", `${base}${li.dataset.id}/`);
    if (status !== 204 && status !== 404) {
      button.disabled = false;
      return SG.notice(messages, `The captions were not deleted. ${SG.message(data)}`, "error");
    }
    const label = li.querySelector(".caption-label").textContent;
    li.remove();
    refreshEmpty();
    SG.notice(messages, `Captions deleted: ${label}.`, "ok");
  });
})();
