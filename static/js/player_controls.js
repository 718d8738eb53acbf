// The watch page's controls for the <video>, whatever feeds it (hls.js or native HLS, see
// watch.js): play/pause, volume, speed, picture-in-picture, full screen, the seek bar and clock,
// YouTube's keyboard shortcuts, click to pause, and the share and shortcuts dialogs. The
// browser's own controls are not used: they differ between browsers and have no quality menu.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const player = $("player");
  const video = $("video");
  const controls = $("controls");
  if (!player || !video || !controls) return;
  const config = JSON.parse($("watch-config").textContent);

  // "1:05", "1:02:03": the clock YouTube shows.
  function clock(seconds) {
    const s = Math.max(0, Math.floor(Number.isFinite(seconds) ? seconds : 0));
    const hours = Math.floor(s / 3600);
    const minutes = Math.floor((s % 3600) / 60);
    const rest = String(s % 60).padStart(2, "0");
    return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
  }

  // A short on-screen note for keyboard actions ("+10 s", "Volume 40%"), as YouTube shows.
  let osdTimer = null;
  function osd(text) {
    const box = $("osd");
    box.textContent = text;
    box.classList.add("shown");
    clearTimeout(osdTimer);
    osdTimer = setTimeout(() => box.classList.remove("shown"), 700);
  }

  const togglePlay = () => (video.paused || video.ended ? video.play().catch(() => {}) : video.pause());
  const duration = () => (Number.isFinite(video.duration) ? video.duration : 0);
  function seekTo(seconds) {
    video.currentTime = Math.min(Math.max(0, seconds), Math.max(0, duration() - 0.05));
  }
  function seekBy(delta) {
    seekTo(video.currentTime + delta);
    osd(`${delta > 0 ? "+" : "−"}${Math.abs(delta)} s`);
  }
  function setVolume(volume) {
    video.volume = Math.min(1, Math.max(0, Math.round(volume * 100) / 100));
    video.muted = video.volume === 0;
    osd(`Volume ${Math.round(video.volume * 100)}%`);
  }
  const SPEEDS = [0.5, 0.75, 1, 1.25, 1.5, 1.75, 2];
  function setSpeed(rate) {
    video.playbackRate = rate;
    $("speed").value = String(rate);
    osd(`${rate}×`);
  }
  function toggleFullscreen() {
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else if (player.requestFullscreen) player.requestFullscreen().catch(() => {});
  }
  function togglePip() {
    if (document.pictureInPictureElement) document.exitPictureInPicture().catch(() => {});
    else video.requestPictureInPicture().catch(() => {});
  }

  // --- buttons and menus ----------------------------------------------------------------------
  $("play").addEventListener("click", togglePlay);
  video.addEventListener("click", togglePlay);
  video.addEventListener("dblclick", toggleFullscreen);
  const showPlaying = () => {
    const playing = !video.paused && !video.ended;
    player.classList.toggle("playing", playing);
    $("play").setAttribute("aria-label", playing ? "Pause" : "Play");
    $("play").title = playing ? "Pause (k)" : "Play (k)";
  };
  ["play", "pause", "ended", "emptied"].forEach((name) => video.addEventListener(name, showPlaying));

  $("mute").addEventListener("click", () => {
    video.muted = !video.muted;
    if (!video.muted && video.volume === 0) video.volume = 0.5;
  });
  $("volume").addEventListener("input", (event) => {
    video.volume = parseFloat(event.target.value);
    video.muted = video.volume === 0;
  });
  video.addEventListener("volumechange", () => {
    player.classList.toggle("muted", video.muted);
    $("mute").setAttribute("aria-label", video.muted ? "Unmute" : "Mute");
    $("mute").title = video.muted ? "Unmute (m)" : "Mute (m)";
    $("volume").value = String(video.muted ? 0 : video.volume);
    try { localStorage.setItem("sg-volume", JSON.stringify({ volume: video.volume, muted: video.muted })); } catch (error) { /* private mode */ }
  });
  try {
    const saved = JSON.parse(localStorage.getItem("sg-volume") || "null");
    if (saved && Number.isFinite(saved.volume)) { video.volume = saved.volume; video.muted = !!saved.muted; }
  } catch (error) { /* unreadable: the defaults */ }

  $("speed").addEventListener("change", (event) => { video.playbackRate = parseFloat(event.target.value); });
  video.addEventListener("ratechange", () => { $("speed").value = String(video.playbackRate); });

  if (document.pictureInPictureEnabled && !video.disablePictureInPicture) {
    $("pip").hidden = false;
    $("pip").addEventListener("click", togglePip);
  }
  $("fullscreen").addEventListener("click", toggleFullscreen);
  document.addEventListener("fullscreenchange", () => {
    const full = document.fullscreenElement === player;
    player.classList.toggle("fullscreen", full);
    $("fullscreen").setAttribute("aria-label", full ? "Exit full screen" : "Full screen");
  });

  // --- seek bar and clock ---------------------------------------------------------------------
  let dragging = false;
  const seek = $("seek");
  const showTime = () => {
    if (!dragging) seek.value = String(video.currentTime);
    seek.setAttribute("aria-valuetext", `${clock(video.currentTime)} of ${clock(duration())}`);
    $("time").textContent = `${clock(video.currentTime)} / ${clock(duration())}`;
  };
  video.addEventListener("loadedmetadata", () => { seek.max = String(duration()); showTime(); });
  video.addEventListener("durationchange", () => { seek.max = String(duration()); });
  video.addEventListener("timeupdate", showTime);
  seek.addEventListener("input", () => { dragging = true; $("time").textContent = `${clock(parseFloat(seek.value))} / ${clock(duration())}`; });
  seek.addEventListener("change", () => { seekTo(parseFloat(seek.value)); dragging = false; });

  // --- keyboard: YouTube's keys, never taken from a text field, a menu or an open dialog -------
  function keyHandler(event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (controls.hidden) return; // nothing playing yet (a refusal, processing)
    const target = event.target;
    if (target.closest && target.closest("dialog")) return;
    const tag = target.tagName;
    const typing = tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable ||
      (tag === "INPUT" && target.type !== "range" && target.type !== "checkbox");
    if (typing) return;
    const onRange = tag === "INPUT" && target.type === "range"; // arrows, Home/End move it
    const onButton = tag === "BUTTON" || (tag === "INPUT" && target.type === "checkbox"); // Space is theirs
    const key = event.key;
    const actions = {
      " ": onButton ? null : togglePlay,
      k: togglePlay,
      j: () => seekBy(-10),
      l: () => seekBy(10),
      ArrowLeft: onRange ? null : () => seekBy(-5),
      ArrowRight: onRange ? null : () => seekBy(5),
      ArrowUp: onRange ? null : () => setVolume(video.volume + 0.05),
      ArrowDown: onRange ? null : () => setVolume(video.volume - 0.05),
      m: () => { video.muted = !video.muted; osd(video.muted ? "Muted" : "Sound on"); },
      f: toggleFullscreen,
      Home: onRange ? null : () => seekTo(0),
      End: onRange ? null : () => seekTo(duration()),
      "<": () => setSpeed(SPEEDS[Math.max(0, SPEEDS.indexOf(video.playbackRate) - 1)] || 1),
      ">": () => setSpeed(SPEEDS[Math.min(SPEEDS.length - 1, SPEEDS.indexOf(video.playbackRate) + 1)] || 1),
      "?": () => openDialog("shortcuts-dialog"),
    };
    let action = actions[key.length === 1 ? key.toLowerCase() : key] || actions[key];
    if (/^[0-9]$/.test(key) && !onRange) action = () => seekTo((duration() * parseInt(key, 10)) / 10);
    if (!action) return;
    event.preventDefault(); // Space must not scroll the page
    action();
  }
  document.addEventListener("keydown", keyHandler);

  // --- dialogs: share (link, start time, responsive embed) and shortcuts -----------------------
  function openDialog(id) {
    const dialog = $(id);
    if (!dialog.open) dialog.showModal();
  }
  const origin = (config.publicUrl || location.origin).replace(/\/$/, "");
  const watchUrl = `${origin}/watch/${config.id}/`;
  const escapeAttr = (text) => String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  function fillShare() {
    const at = Math.floor(video.currentTime || 0);
    $("share-at-time").textContent = clock(at);
    const start = $("share-at").checked && at > 0 ? at : 0;
    $("share-link").value = start ? `${watchUrl}?t=${start}` : watchUrl;
    const embed = `${watchUrl}?embed=1${start ? `&t=${start}` : ""}`;
    $("share-embed").value =
      `<div style="position:relative;width:100%;aspect-ratio:16/9">` +
      `<iframe src="${escapeAttr(embed)}" title="${escapeAttr(config.title || "Video")}" ` +
      `style="position:absolute;inset:0;width:100%;height:100%;border:0" ` +
      `allow="fullscreen; picture-in-picture" allowfullscreen></iframe></div>`;
  }
  $("share").addEventListener("click", () => { fillShare(); $("share-status").textContent = ""; openDialog("share-dialog"); });
  $("share-at").addEventListener("change", fillShare);
  $("shortcuts").addEventListener("click", () => openDialog("shortcuts-dialog"));
  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const field = $(button.dataset.copy);
      field.select();
      let copied = false;
      try { await navigator.clipboard.writeText(field.value); copied = true; } catch (error) {
        copied = document.execCommand && document.execCommand("copy"); // http:// sites
      }
      $("share-status").textContent = copied ? "Copied." : "Selected: press Ctrl+C to copy.";
    });
  });

  // A shared link's start time (?t=83), once the video knows its length.
  const start = parseInt(new URLSearchParams(location.search).get("t") || "0", 10);
  if (start > 0) video.addEventListener("loadedmetadata", () => seekTo(start), { once: true });

  window.StreamGatePlayer = { clock, osd, seekTo };
})();
