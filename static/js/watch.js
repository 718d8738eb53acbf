// The watch page: ask for signed playback URLs, explain any refusal (with the gate in words and
// the poster, templates/partials/gate_panel.html), then play with hls.js (or native HLS), a
// quality menu that says which rung Auto chose, and storyboard previews with their time on the
// seek bar (the WebVTT sprite track). The buttons and keys are player_controls.js's.
// A long video still processing plays from its first encoded chunks: its playlists grow (EVENT)
// until the last chunk ends them, and the line under the player says how much is ready.
"use strict";
(() => {
  const config = JSON.parse(document.getElementById("watch-config").textContent);
  const $ = (id) => document.getElementById(id);
  const video = $("video");
  const state = $("state");
  const note = $("processing-note");
  let hls = null;
  let granted = false; // play() has run: a stream is attached
  // Whether a grant can be asked for now: a ready video, or one still processing whose first
  // chunks are published (config.playable, the API's ``playable``).
  const processing = () => config.status === "processing";
  const playableNow = () => config.status === "ready" || (processing() && config.playable);

  // A rung's everyday name from its short side (portrait 1080x1920 is 1080p), snapped to the
  // usual names: square-pixel ladders have sizes such as 864x486 (480p) or 416x234 (240p).
  const RUNG_NAMES = [144, 240, 360, 480, 540, 720, 1080, 1440, 2160, 4320];
  function rungName(level) {
    const side = Math.min(level.width, level.height);
    const nearest = RUNG_NAMES.reduce((a, b) => (Math.abs(b - side) < Math.abs(a - side) ? b : a));
    return `${Math.abs(nearest - side) <= side * 0.04 ? nearest : side}p`;
  }

  function showState(html) {
    state.hidden = false;
    state.classList.remove("gated");
    state.innerHTML = html;
    video.hidden = true;
    $("controls").hidden = true;
  }
  // A refusal of gated content: the poster, what the gate asks in words (rendered by the
  // server), then ``lead``, ``detail``, what was checked (the server's rule-by-rule answer,
  // folded away) and the actions. Falls back to plain text without the panel.
  function showGate(lead, detail, actions, checked = "") {
    const template = $("gate-panel");
    if (!template) return showState(`<p><strong>${escape(lead)}</strong></p><p data-testid="requirement">${escape(checked || detail)}</p><p>${actions}</p>`);
    const panel = template.content.firstElementChild.cloneNode(true);
    panel.querySelector('[data-slot="lead"]').textContent = lead;
    panel.querySelector('[data-slot="detail"]').textContent = detail;
    panel.querySelector('[data-slot="requirement"]').textContent = checked;
    panel.querySelector('[data-slot="checked"]').hidden = !checked;
    panel.querySelector('[data-slot="actions"]').innerHTML = actions;
    showState("");
    state.classList.add("gated");
    state.appendChild(panel);
  }
  const escape = (text) => String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const clock = window.StreamGatePlayer ? window.StreamGatePlayer.clock : (seconds) => `${Math.floor(seconds || 0)} s`;

  // "Still processing: 2:00 of 10:00 ready — it plays as the rest arrives.", or, when the viewer
  // has caught up with the encoder, that playback goes on when the next part arrives; empty for
  // a ready video.
  let waitingAtEdge = false;
  function showProgress() {
    if (!processing() || !config.playable) {
      note.textContent = "";
      return;
    }
    const ready = SG.clock(config.playableSeconds);
    const of = config.duration ? ` of ${SG.clock(config.duration)}` : "";
    note.textContent = waitingAtEdge
      ? `Still processing: you have reached the end of what is ready (${ready}${of}); playback goes on as soon as the next part arrives.`
      : `Still processing: ${ready}${of} ready — it plays as the rest arrives.`;
  }
  video.addEventListener("waiting", () => {
    const edge = processing() && video.currentTime >= (config.playableSeconds || 0) - 1.5;
    if (edge !== waitingAtEdge) { waitingAtEdge = edge; showProgress(); }
  });
  video.addEventListener("playing", () => {
    if (waitingAtEdge) { waitingAtEdge = false; showProgress(); }
  });
  // More of a video still processing is ready (a websocket ``playable`` message, or the API):
  // the first part starts the player; later ones only move the line (hls.js reloads the growing
  // playlist by itself) and the seek previews.
  function morePlayable(seconds) {
    if (!processing() || typeof seconds !== "number") return;
    if (config.playable && seconds <= (config.playableSeconds || 0)) return;
    const first = !config.playable;
    config.playable = true;
    config.playableSeconds = seconds;
    showProgress();
    if (first && !granted) grant();
    else if (storyboardLoaded) storyboard();
  }

  const target = config.embed ? ' target="_top"' : "";  // sign in outside an <iframe>
  let storyboardBase = null;
  let storyboardLoaded = false;

  async function grant() {
    if (!playableNow()) return;
    // The first answer was asked for by watch_grant.js while hls.js loaded; later ones (check
    // again, an expired link) are asked for here.
    const first = window.StreamGateFirstGrant;
    window.StreamGateFirstGrant = null;
    const answer = await (first || SG.api("POST", `/api/v1/contents/${config.id}/playback/`));
    if (answer.status === 200) { play(answer.data); return true; }
    const message = SG.message(answer.data, "This video cannot be played.");
    const detail = escape(message);
    const reason = answer.data && answer.data.reason;
    if (answer.status === 401) {
      showGate("Sign in to watch.", $("gate-panel") ? "" : message, `<a class="btn" href="${config.signIn}"${target}>Sign in with your wallet</a>`);
      showPrices();
    } else if (answer.status === 403 && reason === "purchase_required" && window.StreamGatePurchase && config.embed) {
      // Wallets are not offered to other sites' frames: buy on the watch page itself.
      showGate("Buy access to watch this video.", StreamGatePurchase.summary(answer.data.offers), `<a class="btn" href="/watch/${config.id}/" target="_top">Buy on StreamGate</a>`);
    } else if (answer.status === 403 && reason === "purchase_required" && window.StreamGatePurchase) {
      showGate("Buy access to watch this video.", "", `<button class="btn secondary" type="button" id="check-again">Already bought? Check again</button>`);
      const offers = StreamGatePurchase.offers(answer.data.offers || [], { contentId: config.id, chainNames: config.chainNames, onPlayable: grant });
      const actions = state.querySelector('[data-slot="actions"]');
      if (actions) actions.before(offers);
      else state.prepend(offers);
      $("check-again").addEventListener("click", grant);
    } else if (answer.status === 403) {
      const unchecked = reason === "chain_not_configured" || reason === "gate_invalid";
      const lead = reason === "no_wallet" ? "Link a wallet to watch." : unchecked ? "This video's access rule cannot be checked here." : "This video is for holders only.";
      const denied = reason === "gate_denied";
      const friendly = "None of your linked wallets holds what this video needs yet. Just got it? Check again in a minute.";
      showGate(lead, denied ? friendly : message, `<a class="btn secondary" href="${config.signIn}"${target}>Use another wallet</a> <button class="btn" type="button" id="check-again">Check again</button>`, denied ? message : "");
      $("check-again").addEventListener("click", grant);
    } else if (answer.status === 409) {
      showState(`<p>This video is still processing. ${detail}</p>`);
    } else if (answer.status === 503) {
      const wait = parseInt((answer.headers && answer.headers.get("Retry-After")) || "10", 10);
      showState(`<p><strong>We could not check your wallet right now.</strong></p><p>${detail}</p><p class="muted">Trying again in ${wait} s…</p>`);
      setTimeout(grant, wait * 1000);
    } else {
      showState(`<p>${detail}</p>`);
    }
  }

  // A visitor who is not signed in sees what access costs before signing in.
  async function showPrices() {
    if (!window.StreamGatePurchase) return;
    const content = await SG.api("GET", `/api/v1/contents/${config.id}/`);
    const offers = content.status === 200 && content.data && content.data.offers;
    const slot = state.querySelector('[data-slot="detail"]');
    if (!offers || !offers.length || !slot) return;
    slot.textContent = `For sale: ${StreamGatePurchase.summary(offers)}. Sign in, then buy with your wallet.`;
    slot.dataset.testid = "prices";
  }

  function play(urls) {
    granted = true;
    state.hidden = true;
    state.classList.remove("gated");
    video.hidden = false;
    $("controls").hidden = false;
    const base = urls.hls_url.replace(/[^/]+$/, ""); // the stream folder (a key token may follow the name)
    if (hls) hls.destroy(); // a fresh link after the old one expired
    const menu = $("quality");
    menu.length = 1; // "Auto"
    if (window.Hls && Hls.isSupported()) {
      // startPosition 0: a video still processing has an EVENT playlist, which hls.js would join
      // at its live edge; a viewer starts at the beginning and plays on as the playlist grows.
      hls = new Hls({ capLevelToPlayerSize: true, startPosition: 0 });
      hls.loadSource(urls.hls_url);
      hls.attachMedia(video);
      hls.on(Hls.Events.MANIFEST_PARSED, (event, data) => {
        data.levels
          .map((level, index) => ({ level, index }))
          .sort((a, b) => b.level.height - a.level.height)
          .forEach(({ level, index }) => {
            const option = document.createElement("option");
            option.value = String(index);
            option.textContent = rungName(level);
            menu.appendChild(option);
          });
      });
      hls.on(Hls.Events.LEVEL_SWITCHED, (event, data) => showAutoLevel(data.level));
      hls.on(Hls.Events.ERROR, (event, data) => {
        if (!data.fatal) return;
        if (data.response && data.response.code === 403) {
          grant(); // the link expired: ask for a fresh one
        } else if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
          hls.startLoad();
        } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
          hls.recoverMediaError();
        } else {
          showState(`<p>Playback failed: ${escape(data.details)}</p>`);
        }
      });
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = urls.hls_url; // Safari: native HLS, its own quality selection
      $("quality").hidden = true;
      // Native HLS, too, joins a growing (EVENT) playlist near its end: back to the beginning.
      if (processing()) video.addEventListener("loadedmetadata", () => { if (video.currentTime > 0) video.currentTime = 0; }, { once: true });
    } else {
      showState("<p>This browser cannot play HLS video.</p>");
      return;
    }
    // Helpers merged into the player, when loaded: called again for each new hls.js instance
    // (a renewed link), whose tracks they then follow.
    if (window.StreamGateCaptions) window.StreamGateCaptions.attach({ hls, video, container: $("captions-slot") });
    if (window.StreamGateBeacons) window.StreamGateBeacons.attach({ video, hls, contentId: config.id, session: urls.view_session });
    storyboardBase = base;
    if (!storyboardLoaded) {
      storyboardLoaded = true;
      storyboard();
    }
  }

  $("quality").addEventListener("change", (event) => {
    if (!hls) return;
    hls.currentLevel = parseInt(event.target.value, 10);
    showAutoLevel(hls.currentLevel);
  });
  // "Auto (720p)": the rung hls.js chose, as YouTube's menu shows it.
  function showAutoLevel(index) {
    const level = hls && hls.levels[index];
    $("quality").options[0].textContent = level && hls.autoLevelEnabled ? `Auto (${rungName(level)})` : "Auto";
  }

  // Storyboard previews: cues "start --> end" + "storyboard/sprite-001.jpg#xywh=x,y,w,h".
  // Cue images resolve against the current link's folder (it changes when a link is renewed).
  // Hovering the seek bar always shows the time there; the picture once the cues are loaded.
  let cues = [];
  async function storyboard() {
    const found = [];
    let text;
    try {
      const response = await fetch(storyboardBase + "storyboard.vtt", { credentials: "omit" });
      if (!response.ok) return;
      text = await response.text();
    } catch (error) { return; }
    const seconds = (stamp) => stamp.split(":").reduce((total, part) => total * 60 + parseFloat(part), 0);
    for (const block of text.split(/\n\n+/)) {
      const match = block.match(/([\d:.]+) --> ([\d:.]+)\n(\S+)#xywh=(\d+),(\d+),(\d+),(\d+)/);
      if (match) found.push({ start: seconds(match[1]), end: seconds(match[2]), image: match[3], x: +match[4], y: +match[5], w: +match[6], h: +match[7] });
    }
    cues = found; // read again as a video still processing grows: the whole list each time
  }
  const seekBar = $("seek");
  const preview = $("preview");
  seekBar.addEventListener("mousemove", (event) => {
    const length = Number.isFinite(video.duration) && video.duration ? video.duration : cues.length ? cues[cues.length - 1].end : 0;
    if (!length) return;
    const box = seekBar.getBoundingClientRect();
    const ratio = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
    const at = ratio * length;
    const cue = cues.find((c) => at >= c.start && at < c.end) || cues[cues.length - 1];
    preview.style.display = "block";
    // Kept inside the bar: a preview at either end must not overflow the player.
    const half = (cue ? cue.w : 48) / 2 + 2;
    preview.style.left = `${Math.min(Math.max(ratio * box.width, half), box.width - half)}px`;
    preview.classList.toggle("time-only", !cue);
    if (cue) {
      preview.style.width = `${cue.w}px`;
      preview.style.height = `${cue.h}px`;
      preview.style.backgroundImage = `url("${storyboardBase}${cue.image}")`;
      preview.style.backgroundPosition = `-${cue.x}px -${cue.y}px`;
    }
    preview.dataset.time = String(Math.floor(at));
    $("preview-time").textContent = clock(at);
  });
  seekBar.addEventListener("mouseleave", () => { preview.style.display = "none"; });

  // What is ready now, from the API: a part published between this page's rendering and its
  // websocket joining the content's group sent its message to nobody.
  async function refresh() {
    const answer = await SG.api("GET", `/api/v1/contents/${config.id}/`);
    if (answer.status === 200 && answer.data && answer.data.playable) morePlayable(answer.data.playable_seconds);
  }

  if (playableNow()) grant();
  if (config.canManage && config.status !== "ready" && config.status !== "failed") {
    // The owner waits or watches here: play as soon as the first part or the whole video is
    // ready, without a reload; the line under the player follows what is ready.
    const follower = SG.follow(config.id, (message) => {
      if (message.type === "playable") {
        morePlayable(message.seconds);
        return;
      }
      if (message.type !== "status") return;
      if (message.status === "ready") {
        follower.close();
        config.status = "ready";
        waitingAtEdge = false;
        showProgress();
        // Already playing: hls.js finds the playlists ended at its next reload and plays on.
        if (granted) { if (storyboardLoaded) storyboard(); }
        else grant();
      } else if (message.status === "failed") {
        follower.close();
        config.status = "failed";
        // What was watchable is gone with the failed job: stop the player.
        if (hls) hls.destroy();
        hls = null;
        video.removeAttribute("src");
        video.load();
        showProgress();
        showState(`<p>Processing failed: ${escape(message.error || "unknown error")}</p>`);
      } else if (message.status === "processing") {
        config.status = "processing";
        refresh(); // sent first on each (re)connection
      }
    });
  }
})();
