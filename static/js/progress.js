// One forward-only progress bar per content, fed by its websocket messages (apps/content/
// progress.py computes "overall" across upload, queue, encode and publish on the server; this
// keeps the bar from ever moving back within an attempt, and estimates the time left).
"use strict";
const SGProgress = (() => {
  const STEADY = new Set(["ready", "failed", "draft"]);
  function duration(seconds) {
    if (seconds < 60) return `about ${Math.max(5, Math.round(seconds / 5) * 5)} s left`;
    if (seconds < 3600) return `about ${Math.round(seconds / 60)} min left`;
    return `about ${Math.round(seconds / 360) / 10} h left`;
  }
  // tracker(onChange): feed() it every websocket message; onChange({overall, label, status,
  // eta, error, retryable}) runs with the state after each message.
  function tracker(onChange, initial) {
    const state = Object.assign({ overall: 0, label: "", status: "", eta: "", error: null, retryable: false }, initial || {});
    let start = null; // {time, overall}: the first value seen in this attempt
    function restart() { start = null; state.overall = 0; state.eta = ""; }
    function advance(overall) {
      if (typeof overall !== "number") return;
      state.overall = Math.max(state.overall, Math.min(100, overall));
      const now = performance.now();
      if (!start) { start = { time: now, overall: state.overall }; return; }
      const gained = state.overall - start.overall;
      const elapsed = (now - start.time) / 1000;
      // Shown once the rate means something: 5 points and 3 s into this page's watch.
      state.eta = gained >= 5 && elapsed >= 3 && state.overall < 100 ? duration((elapsed / gained) * (100 - state.overall)) : "";
    }
    function feed(message) {
      if (message.type === "status") {
        // A new attempt (a retry, a replaced file, a restarted encode) may start lower.
        const again = ["processing", "failed", "ready"].includes(state.status);
        if ((message.status === "uploading" || message.status === "queued") && again) restart();
        state.status = message.status;
        state.error = message.error;
        state.retryable = Boolean(message.retryable);
        if (message.label) state.label = message.label;
        if (message.status === "ready") { state.overall = 100; state.eta = ""; }
        else advance(message.overall);
        if (STEADY.has(message.status)) state.eta = "";
      } else if (message.type === "upload" || message.type === "transcode") {
        // A progress report that arrives after the attempt ended is stale (a channel layer
        // need not keep order); the next attempt begins with a status message.
        if (state.status === "ready" || state.status === "failed") return;
        advance(message.overall);
        if (message.label) state.label = message.label;
      } else {
        return;
      }
      onChange(state, message);
    }
    // A new attempt begins here (a replaced file): the bar may start again from 0.
    function begin() { restart(); state.status = ""; state.error = null; state.retryable = false; }
    return { feed, state, begin };
  }
  // Sets a .progress bar (role=progressbar) to the state's value.
  function paint(bar, overall) {
    const value = Math.round(Math.max(0, Math.min(100, overall)));
    bar.firstElementChild.style.width = value + "%";
    bar.setAttribute("aria-valuenow", String(value));
  }
  return { tracker, paint, STEADY };
})();
