// The watch page: ask for signed playback URLs, explain any refusal (with the gate in words and
// the poster, templates/partials/gate_panel.html), then play with hls.js (or native HLS), a
// quality menu that says which rung Auto chose, and storyboard previews with their time on the
// seek bar (the WebVTT sprite track). The buttons and keys are player_controls.js's.
"use strict";
(() => {
  const config = JSON.parse(document.getElementById("watch-config").textContent);
  const $ = (id) => document.getElementById(id);
  const video = $("video");
  const state = $("state");
  let hls = null;

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

  const target = config.embed ? ' target="_top"' : "";  // sign in outside an <iframe>
  let storyboardBase = null;
  let storyboardLoaded = false;

  async function grant() {
    if (config.status !== "ready") return;
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
    state.hidden = true;
    state.classList.remove("gated");
    video.hidden = false;
    $("controls").hidden = false;
    const base = urls.hls_url.replace(/master\.m3u8$/, "");
    if (hls) hls.destroy(); // a fresh link after the old one expired
    const menu = $("quality");
    menu.length = 1; // "Auto"
    if (window.Hls && Hls.isSupported()) {
      hls = new Hls({ capLevelToPlayerSize: true });
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
    let text;
    try {
      const response = await fetch(storyboardBase + "storyboard.vtt", { credentials: "omit" });
      if (!response.ok) return;
      text = await response.text();
    } catch (error) { return; }
    const seconds = (stamp) => stamp.split(":").reduce((total, part) => total * 60 + parseFloat(part), 0);
    for (const block of text.split(/\n\n+/)) {
      const match = block.match(/([\d:.]+) --> ([\d:.]+)\n(\S+)#xywh=(\d+),(\d+),(\d+),(\d+)/);
      if (match) cues.push({ start: seconds(match[1]), end: seconds(match[2]), image: match[3], x: +match[4], y: +match[5], w: +match[6], h: +match[7] });
    }
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

  if (config.status === "ready") {
    grant();
  } else if (config.canManage && config.status !== "failed") {
    // The owner waits here: play as soon as processing ends, without a reload.
    const follower = SG.follow(config.id, (message) => {
      if (message.type !== "status") return;
      if (message.status === "ready") {
        follower.close();
        config.status = "ready";
        grant();
      } else if (message.status === "failed") {
        follower.close();
        showState(`<p>Processing failed: ${escape(message.error || "unknown error")}</p>`);
      }
    });
  }
})();
