// Player beacons (apps/access/audience.py): what a viewer's playback was like, sent in batches.
// window.StreamGateBeacons.attach({video, hls, contentId, session}) measures
//   - time to first frame: from the play request to the first frame shown
//     (requestVideoFrameCallback where the browser has it, else the "playing" event);
//   - rebuffering: each stall ("waiting" until playing again) that is not a seek;
//   - seconds watched: media time that advanced while playing;
//   - the rendition on screen (hls.js's level, else the video's height);
// and sends them at most once a minute, plus a last batch when the page is hidden or left
// (navigator.sendBeacon, text/plain JSON, which the server accepts). Attaching again to the
// same video (a renewed playback link) sends what is pending and continues with the new session.
"use strict";
(() => {
  const PERIOD_MS = 60_000;
  const MAX_EVENTS = 60; // the server takes 64
  const trackers = new WeakMap();

  function send(contentId, session, events) {
    if (!session || !events.length) return;
    const url = `/api/v1/contents/${contentId}/beacons/`;
    const body = JSON.stringify({ session, events });
    if (navigator.sendBeacon && navigator.sendBeacon(url, body)) return;
    fetch(url, { method: "POST", body, keepalive: true, credentials: "omit",
      headers: { "Content-Type": "text/plain" } }).catch(() => {});
  }

  function track(video) {
    const state = {
      contentId: null, session: null, hls: null,
      events: [], watched: 0, lastTime: null,
      playRequestedAt: null, started: false, stallStartedAt: null,
      lastSentAt: 0, height: null,
    };
    const now = () => performance.now();

    const push = (event) => {
      if (state.events.length >= MAX_EVENTS) {
        // Keep the batch bounded: merge stalls into the last one rather than drop them.
        const last = state.events.find((e) => e.type === "rebuffer");
        if (event.type === "rebuffer" && last) last.seconds = Math.min(600, last.seconds + event.seconds);
        return;
      }
      state.events.push(event);
    };

    function flush(force) {
      if (!force && now() - state.lastSentAt < PERIOD_MS) return;
      if (state.stallStartedAt !== null && force) endStall();
      let watched = state.watched;
      state.watched = 0;
      while (watched > 0.05) {
        const seconds = Math.min(600, watched);
        push({ type: "watched", seconds: Math.round(seconds * 1000) / 1000 });
        watched -= seconds;
      }
      if (!state.events.length) return;
      const events = state.events;
      state.events = [];
      state.lastSentAt = now();
      send(state.contentId, state.session, events);
    }

    function firstFrame() {
      if (state.started || state.playRequestedAt === null) return;
      state.started = true;
      const ttff = Math.round(now() - state.playRequestedAt);
      push({ type: "start", ttff_ms: Math.max(0, Math.min(120000, ttff)) });
    }

    function endStall() {
      if (state.stallStartedAt === null) return;
      const seconds = (now() - state.stallStartedAt) / 1000;
      state.stallStartedAt = null;
      if (seconds > 0.05) push({ type: "rebuffer", seconds: Math.round(Math.min(600, seconds) * 1000) / 1000 });
    }

    function rendition(height) {
      if (!height || height === state.height) return;
      state.height = height;
      push({ type: "rendition", height });
    }

    video.addEventListener("play", () => {
      if (state.started || state.playRequestedAt !== null) return;
      state.playRequestedAt = now();
      if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(firstFrame);
    });
    video.addEventListener("playing", () => {
      if (!video.requestVideoFrameCallback) firstFrame();
      endStall();
    });
    video.addEventListener("waiting", () => {
      if (state.started && !video.seeking && state.stallStartedAt === null) state.stallStartedAt = now();
    });
    video.addEventListener("seeking", () => { state.stallStartedAt = null; state.lastTime = null; });
    video.addEventListener("timeupdate", () => {
      const time = video.currentTime;
      if (state.lastTime !== null && !video.paused && !video.seeking) {
        const delta = time - state.lastTime;
        if (delta > 0 && delta < 5) state.watched += delta; // a jump is a seek, not watching
      }
      state.lastTime = time;
    });
    video.addEventListener("resize", () => { if (!state.hls) rendition(video.videoHeight); });

    setInterval(() => flush(false), PERIOD_MS / 4);
    window.addEventListener("pagehide", () => flush(true));
    document.addEventListener("visibilitychange", () => { if (document.visibilityState === "hidden") flush(true); });

    return {
      update({ hls, contentId, session }) {
        if (state.session && session !== state.session) flush(true); // to the old session
        state.contentId = contentId;
        state.session = session;
        if (hls && hls !== state.hls && window.Hls) {
          state.hls = hls;
          hls.on(Hls.Events.LEVEL_SWITCHED, (event, data) => {
            const level = hls.levels && hls.levels[data.level];
            if (level) rendition(level.height);
          });
        }
      },
      flush: () => flush(true),
    };
  }

  window.StreamGateBeacons = {
    attach({ video, hls, contentId, session }) {
      if (!trackers.has(video)) trackers.set(video, track(video));
      const tracker = trackers.get(video);
      tracker.update({ hls, contentId, session });
      return tracker;
    },
  };
})();
