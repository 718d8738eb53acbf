// Asks for the watch page's playback grant as soon as the page is parsed, while hls.js (600 KB)
// is still downloading and compiling: watch.js then finds the answer waiting instead of making
// the same request after hls.js has loaded (tests/benchmarks/ttff.py measures the difference).
"use strict";
(() => {
  const config = JSON.parse(document.getElementById("watch-config").textContent);
  // Ready, or still processing with its first parts published (watch.js, the same rule).
  if (config.status !== "ready" && !config.playable) return;
  window.StreamGateFirstGrant = SG.api("POST", `/api/v1/contents/${config.id}/playback/`);
})();
