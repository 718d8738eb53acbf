// One scenario per page, driven by tests/web/test_players.py: load a stream in one player, start
// playing, ask for the other rendition, check the picture changes to it, then play at 4x to
// `ended` (harnessRun). Or, for tests/web/test_chunked_playback.py, a stream still being encoded
// (EVENT playlists, a dynamic MPD) started at 0 and played at 1x while it grows, to `ended`
// (harnessLive). Everything observed lands in window.report, which the test polls.
"use strict";

const LIBRARIES = {
  hlsjs: "hls.min.js",
  dashjs: "dash.all.min.js",
  "shaka-dash": "shaka-player.compiled.js",
  "shaka-hls": "shaka-player.compiled.js",
  native: null,
};

const report = {
  stage: "loading", // loading, playing, switching, finishing, done
  done: false,
  ended: false,
  errors: [], // fatal player errors and media element errors
  warnings: [], // errors the player says it recovers from
  renditions: [],
  textTracks: null, // [{language, label}] the player lists once the manifest is loaded
  asked: null,
  before: null, // {declared, shown} sizes of the rendition playing before the switch
  switched: null, // {width, height} of the picture once the asked rendition shows
  switchError: null,
  stalledAt: null,
  waits: [], // [currentTime, seconds buffered ahead of it] at each `waiting`
  timeline: [], // media element events with the time they happened at, and "finishing@t"
};
window.report = report;

// When a player declares the end of its media (MediaSource.endOfStream), for the timeline.
for (const Source of [window.MediaSource, window.ManagedMediaSource].filter(Boolean)) {
  const endOfStream = Source.prototype.endOfStream;
  Source.prototype.endOfStream = function (...args) {
    const video = document.getElementById("video");
    report.timeline.push(`endOfStream@${video ? video.currentTime.toFixed(3) : "?"}`);
    return endOfStream.apply(this, args);
  };
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.appendChild(script);
  });
}

function until(predicate, ms, what) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const timer = setInterval(() => {
      let value;
      try {
        value = predicate();
      } catch (error) {
        value = false;
      }
      if (value) {
        clearInterval(timer);
        resolve(value);
      } else if (performance.now() - started > ms || report.errors.length) {
        clearInterval(timer);
        reject(new Error(report.errors.length ? report.errors[0] : `timed out: ${what}`));
      }
    }, 50);
  });
}

// --- one adapter per player: load(url), renditions(), active(), select(rendition) ------------
// ``startTime``: where to start (each player's own way to say it); undefined: its default, which
// for a live stream (a playlist without ENDLIST, a dynamic MPD) is near the live edge.

function hlsjsAdapter(video, startTime) {
  const hls = new Hls(startTime === undefined ? {} : { startPosition: startTime });
  hls.on(Hls.Events.ERROR, (event, data) => {
    const text = `hls.js ${data.type}/${data.details}${data.response ? ` (HTTP ${data.response.code})` : ""}`;
    (data.fatal ? report.errors : report.warnings).push(text);
  });
  return {
    load(url) {
      const parsed = new Promise((resolve) => hls.once(Hls.Events.MANIFEST_PARSED, resolve));
      hls.loadSource(url);
      hls.attachMedia(video);
      return parsed;
    },
    renditions: () =>
      hls.levels.map((level, index) => ({ id: String(index), width: level.width, height: level.height })),
    active: () => String(hls.currentLevel),
    textTracks: () => hls.subtitleTracks.map((t) => ({ language: t.lang, label: t.name })),
    select: (rendition) => {
      hls.currentLevel = Number(rendition.id); // locks the level and flushes what was buffered
    },
  };
}

function dashjsAdapter(video, startTime) {
  const player = dashjs.MediaPlayer().create();
  player.updateSettings({ debug: { logLevel: 1 }, streaming: { abr: { autoSwitchBitrate: { video: false } } } });
  const events = dashjs.MediaPlayer.events;
  player.on(events.ERROR, (event) => {
    const error = event.error || {};
    report.errors.push(`dash.js error ${error.code}: ${error.message || JSON.stringify(event)}`);
  });
  player.on(events.PLAYBACK_ERROR, (event) => report.errors.push(`dash.js playback error ${event.error}`));
  // dash.js's own end signal: it re-emits the element's `ended`, and when its timer sees the end
  // first it pauses the element itself, which then never fires `ended` (seen once in ~40 runs).
  player.on(events.PLAYBACK_ENDED, (event) => {
    report.timeline.push(`dash.js PLAYBACK_ENDED@${video.currentTime.toFixed(3)}`);
    if (event.isLast) {
      markEnded(video);
    }
  });
  return {
    load(url) {
      const ready = new Promise((resolve) => player.on(events.STREAM_INITIALIZED, resolve));
      // A number without "posix:": seconds from MPD@availabilityStartTime for a dynamic MPD.
      player.initialize(video, url, false, startTime);
      return ready;
    },
    renditions: () =>
      player.getRepresentationsByType("video").map((r) => ({ id: String(r.id), width: r.width, height: r.height })),
    active: () => String(player.getCurrentRepresentationForType("video").id),
    textTracks: () =>
      player.getTracksFor("text").map((t) => ({ language: t.lang, label: (t.labels || []).map((l) => l.text).join() })),
    select: (rendition) => player.setRepresentationForTypeById("video", rendition.id, true),
  };
}

function shakaAdapter(video, startTime) {
  shaka.polyfill.installAll();
  const player = new shaka.Player();
  player.configure({ abr: { enabled: false } });
  player.addEventListener("error", (event) => {
    const error = event.detail;
    const text = `Shaka error ${error.code} (category ${error.category}): ${JSON.stringify(error.data).slice(0, 300)}`;
    (error.severity === shaka.util.Error.Severity.CRITICAL ? report.errors : report.warnings).push(text);
  });
  const videoTracks = () => player.getVariantTracks().filter((track) => track.height);
  return {
    async load(url) {
      await player.attach(video);
      await player.load(url, startTime);
    },
    renditions: () => videoTracks().map((t) => ({ id: String(t.id), width: t.width, height: t.height })),
    active: () => String(videoTracks().find((t) => t.active).id),
    textTracks: () => player.getTextTracks().map((t) => ({ language: t.language, label: t.label })),
    select: (rendition) => {
      const track = videoTracks().find((t) => String(t.id) === rendition.id);
      player.selectVariantTrack(track, /* clearBuffer */ true);
    },
  };
}

function nativeAdapter(video, startTime) {
  // Chromium's own HLS: no API to list or pick renditions.
  return {
    load(url) {
      if (!video.canPlayType("application/vnd.apple.mpegurl")) {
        throw new Error("this browser has no native HLS");
      }
      const loaded = new Promise((resolve) => video.addEventListener("loadedmetadata", resolve, { once: true }));
      video.src = url;
      return startTime === undefined ? loaded : loaded.then(() => { video.currentTime = startTime; });
    },
    renditions: () => [],
    active: () => null,
    textTracks: () => Array.from(video.textTracks).map((t) => ({ language: t.language, label: t.label })),
    select: () => {},
  };
}

const ADAPTERS = {
  hlsjs: hlsjsAdapter,
  dashjs: dashjsAdapter,
  "shaka-dash": shakaAdapter,
  "shaka-hls": shakaAdapter,
  native: nativeAdapter,
};

// Where playback ended is judged when it ends: dash.js may seek back into the last segment
// after `ended` (seen once: ended at 5.900 of 5.91, then a seek to 5.400).
// The first end signal (the element's `ended` or dash.js's last PLAYBACK_ENDED) is also put on the
// timeline as "end", where the join test stops looking for seeks.
function markEnded(video) {
  if (!report.ended) {
    report.timeline.push(`end@${video.currentTime.toFixed(3)}`);
  }
  report.ended = true;
  report.endedAt = report.endedAt || where(video);
}

function where(video) {
  const ranges = [];
  for (let i = 0; i < video.buffered.length; i++) {
    ranges.push(`${video.buffered.start(i).toFixed(3)}-${video.buffered.end(i).toFixed(3)}`);
  }
  return {
    currentTime: video.currentTime,
    duration: video.duration,
    buffered: ranges.join(" "),
    readyState: video.readyState,
    paused: video.paused,
  };
}

async function switchRendition(video, adapter) {
  report.renditions = adapter.renditions();
  if (report.renditions.length < 2) {
    report.switchError = `only ${report.renditions.length} rendition(s) offered`;
    return;
  }
  const active = adapter.active();
  report.before = {
    declared: report.renditions.find((r) => r.id === active),
    shown: { width: video.videoWidth, height: video.videoHeight },
  };
  const target = report.renditions.find((r) => r.id !== active);
  report.asked = target;
  report.stage = "switching";
  adapter.select(target);
  try {
    // The picture itself, not only the player's bookkeeping, must change to the asked rung.
    await until(
      () => adapter.active() === target.id && Math.abs(video.videoHeight - target.height) <= 2,
      15000,
      `the picture to become ${target.width}x${target.height} (it stays ${video.videoWidth}x${video.videoHeight})`,
    );
    report.switched = { width: video.videoWidth, height: video.videoHeight };
  } catch (error) {
    report.switchError = String(error.message || error);
  }
}

// The video element, observed: its errors, end, stalls and events land in the report.
function observed() {
  const video = document.getElementById("video");
  // As a page that shows captions or draws frames must: media fetched in CORS mode, which also
  // makes Chromium's native HLS (otherwise a no-cors load) depend on our CORS answers.
  video.crossOrigin = "anonymous";
  video.addEventListener("error", () => {
    const error = video.error;
    report.errors.push(`media element error ${error && error.code}: ${error && error.message}`);
  });
  video.addEventListener("ended", () => markEnded(video));
  video.addEventListener("waiting", () => {
    report.stalledAt = where(video);
    // A wait with data buffered ahead is the decoder catching up (a busy machine); with none,
    // the player ran out of media.
    let ahead = 0;
    for (let i = 0; i < video.buffered.length; i++) {
      if (video.buffered.start(i) <= video.currentTime + 0.1 && video.currentTime <= video.buffered.end(i)) {
        ahead = video.buffered.end(i) - video.currentTime;
      }
    }
    report.waits.push([video.currentTime, ahead]);
  });
  for (const name of ["playing", "pause", "seeking", "seeked", "waiting", "ended", "ratechange"]) {
    video.addEventListener(name, () => report.timeline.push(`${name}@${video.currentTime.toFixed(3)}`));
  }
  return video;
}

window.harnessRun = async function (player, url, endTimeoutMs) {
  const video = observed();
  try {
    if (LIBRARIES[player]) {
      await loadScript(LIBRARIES[player]);
    }
    const adapter = ADAPTERS[player](video);
    // A player that gives up (an error event) may never settle its load: stop at its error.
    await Promise.race([adapter.load(url), until(() => false, 20000, "the manifest to load")]);
    report.textTracks = adapter.textTracks();
    report.stage = "playing";
    video.muted = true;
    await video.play();
    await until(() => video.currentTime > 0.2, 15000, "playback to start");
    await switchRendition(video, adapter);
    report.stage = "finishing";
    report.timeline.push(`finishing@${video.currentTime.toFixed(3)}`);
    video.playbackRate = 4;
    if (video.paused) {
      await video.play();
    }
    await until(() => report.ended, endTimeoutMs, "the ended event");
  } catch (error) {
    if (!report.errors.includes(String(error.message))) {
      report.errors.push(`${report.stage}: ${error.message || error}`);
    }
  } finally {
    report.where = report.endedAt || where(video);
    report.done = true;
  }
};

// A stream still being encoded: started at ``startTime`` and played at 1x; report.started says
// when playback began (the test then publishes the other chunks); it ends once the manifests
// are final. report.maxTime: how far it played.
window.harnessLive = async function (player, url, startTime, endTimeoutMs) {
  const video = observed();
  report.maxTime = 0;
  video.addEventListener("timeupdate", () => { report.maxTime = Math.max(report.maxTime, video.currentTime); });
  try {
    if (LIBRARIES[player]) {
      await loadScript(LIBRARIES[player]);
    }
    const adapter = ADAPTERS[player](video, startTime);
    await Promise.race([adapter.load(url), until(() => false, 20000, "the manifest to load")]);
    report.stage = "playing";
    video.muted = true;
    await video.play();
    await until(() => video.currentTime > 0.2, 15000, "playback to start");
    report.started = true;
    report.stage = "finishing";
    await until(() => report.ended, endTimeoutMs, "the ended event");
  } catch (error) {
    if (!report.errors.includes(String(error.message))) {
      report.errors.push(`${report.stage}: ${error.message || error}`);
    }
  } finally {
    report.where = report.endedAt || where(video);
    report.done = true;
  }
};
