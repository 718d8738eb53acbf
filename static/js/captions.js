// The player's captions menu: "Off" and each subtitle track the stream offers (the HLS master's
// SUBTITLES group, which the server fills from the content's captions). With hls.js the tracks
// are hls.subtitleTracks; with native HLS (Safari) they are the video's textTracks. Cues are
// drawn by the browser (native ::cue rendering of a "showing" text track).
//
// window.StreamGateCaptions.attach({hls, video, container}) builds the menu once in `container`
// and may be called again with a new hls.js instance (a renewed playback link): the viewer's
// choice is kept, by language.
"use strict";
(() => {
  let current = { hls: null, video: null };
  let wanted = ""; // the language chosen, "" for off
  let menu = null;
  const watched = new WeakSet(); // videos whose track list we already follow

  function build(container) {
    const wrap = document.createElement("span");
    wrap.className = "captions-control";
    wrap.hidden = true;
    const label = document.createElement("label");
    label.htmlFor = "captions-menu";
    label.textContent = "Captions";
    const select = document.createElement("select");
    select.id = "captions-menu";
    select.dataset.testid = "captions";
    wrap.append(label, select);
    container.appendChild(wrap);
    select.addEventListener("change", () => choose(select.value));
    return select;
  }

  // [{language, label}] in the order the stream lists them.
  function tracks() {
    const { hls, video } = current;
    if (hls) return (hls.subtitleTracks || []).map((t) => ({ language: t.lang || "", label: t.name || t.lang || "Captions" }));
    return Array.from(video.textTracks)
      .filter((t) => t.kind === "subtitles" || t.kind === "captions")
      .map((t) => ({ language: t.language || "", label: t.label || t.language || "Captions" }));
  }

  function fill() {
    const list = tracks();
    menu.length = 0;
    menu.add(new Option("Off", ""));
    list.forEach((track, index) => menu.add(new Option(track.label, String(index))));
    menu.parentElement.hidden = list.length === 0;
    const index = list.findIndex((track) => track.language === wanted);
    menu.value = index >= 0 ? String(index) : "";
    apply(index);
  }

  function apply(index) {
    const { hls, video } = current;
    if (hls) {
      hls.subtitleDisplay = index >= 0;
      hls.subtitleTrack = index;
      return;
    }
    Array.from(video.textTracks)
      .filter((t) => t.kind === "subtitles" || t.kind === "captions")
      .forEach((t, i) => { t.mode = i === index ? "showing" : "disabled"; });
  }

  function choose(value) {
    const index = value === "" ? -1 : parseInt(value, 10);
    wanted = index >= 0 ? tracks()[index].language : "";
    apply(index);
  }

  function attach({ hls, video, container }) {
    current = { hls: hls || null, video };
    if (!menu) menu = build(container);
    if (current.hls) {
      const events = window.Hls.Events;
      current.hls.on(events.SUBTITLE_TRACKS_UPDATED, () => { if (current.hls === hls) fill(); });
    } else if (!watched.has(video)) {
      watched.add(video);
      video.textTracks.addEventListener("addtrack", () => { if (!current.hls) fill(); });
      video.textTracks.addEventListener("removetrack", () => { if (!current.hls) fill(); });
    }
    fill();
  }

  window.StreamGateCaptions = { attach };
})();
