// The edit page's poster picker: the video's storyboard as a grid of frames (click one to make
// it the poster, taken from the original at that time), or an uploaded image. The API answers
// with the content, whose thumbnail_url is a new, versioned URL.
"use strict";
(() => {
  const config = JSON.parse(document.getElementById("edit-config").textContent);
  const $ = (id) => document.getElementById(id);
  const url = `/api/v1/contents/${config.id}/poster/`;
  const messages = $("poster-messages");
  const MAX_FRAMES = 48;

  const clock = (seconds) => `${Math.floor(seconds / 60)}:${String(Math.floor(seconds % 60)).padStart(2, "0")}`;
  function chosen(answer, pressed) {
    if (answer.status !== 200) {
      SG.notice(messages, SG.message(answer.data, "The poster was not changed."), "error");
      return;
    }
    $("poster-preview").src = answer.data.thumbnail_url;
    $("poster-preview").hidden = false;
    $("frames").querySelectorAll("button").forEach((button) => button.setAttribute("aria-pressed", String(button === pressed)));
    SG.notice(messages, "Poster saved.", "ok");
  }
  async function frames() {
    const grant = await SG.api("POST", `/api/v1/contents/${config.id}/playback/`);
    if (grant.status !== 200) { $("frames-hint").textContent = "The frames could not be loaded; you can still upload an image."; return; }
    const base = grant.data.hls_url.replace(/[^/]+$/, "");
    let text = "";
    try {
      const response = await fetch(base + "storyboard.vtt", { credentials: "omit" });
      if (response.ok) text = await response.text();
    } catch (error) { /* shown below */ }
    const seconds = (stamp) => stamp.split(":").reduce((total, part) => total * 60 + parseFloat(part), 0);
    const cues = [];
    for (const block of text.split(/\n\n+/)) {
      const match = block.match(/([\d:.]+) --> ([\d:.]+)\n(\S+)#xywh=(\d+),(\d+),(\d+),(\d+)/);
      if (match) cues.push({ start: seconds(match[1]), end: seconds(match[2]), image: match[3], x: +match[4], y: +match[5], w: +match[6], h: +match[7] });
    }
    if (!cues.length) { $("frames-hint").textContent = "This video has no storyboard; you can upload an image."; return; }
    $("frames-hint").textContent = "Choose the frame that shows your video best.";
    const step = Math.max(1, Math.ceil(cues.length / MAX_FRAMES));
    cues.filter((cue, index) => index % step === 0).forEach((cue) => {
      const button = document.createElement("button");
      button.type = "button";
      button.setAttribute("aria-pressed", "false");
      button.setAttribute("aria-label", `Use the frame at ${clock(cue.start)}`);
      button.style.width = `${cue.w}px`;
      button.style.height = `${cue.h}px`;
      button.style.backgroundImage = `url("${base}${cue.image}")`;
      button.style.backgroundPosition = `-${cue.x}px -${cue.y}px`;
      button.addEventListener("click", async () => chosen(await SG.api("POST", url, { time: cue.start }), button));
      $("frames").appendChild(button);
    });
  }
  $("poster-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    const body = new FormData();
    body.append("image", file);
    let answer;
    try {
      const response = await fetch(url, { method: "POST", body, credentials: "same-origin", headers: { "X-CSRFToken": SG.csrf(), Accept: "application/json" } });
      answer = { status: response.status, data: await response.json().catch(() => null) };
    } catch (error) {
      answer = { status: 0, data: { detail: "The server could not be reached." } };
    }
    chosen(answer, null);
    event.target.value = "";
  });
  frames();
})();
