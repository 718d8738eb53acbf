// The studio list: each content still on its way follows its progress live (one forward-only
// bar, plain words, a time estimate); its poster appears when it is ready, or when the first
// parts of a long video are watchable (Watch then shows, with how much is ready); Delete asks
// in a dialog, then removes the row without a reload.
"use strict";
(() => {
  const messages = document.getElementById("messages");
  const dialog = document.getElementById("delete-dialog");

  function badgeText(state) {
    const moving = !SGProgress.STEADY.has(state.status);
    return moving ? `${state.label} ${Math.floor(state.overall)}%` : state.label;
  }
  async function showPoster(row) {
    const answer = await SG.api("GET", `/api/v1/contents/${row.dataset.contentId}/`);
    if (answer.status === 200 && answer.data.thumbnail_url) setPoster(row, answer.data.thumbnail_url);
  }
  function setPoster(row, url) {
    const image = row.querySelector("[data-role=poster]");
    image.src = url;
    image.hidden = false;
    const placeholder = row.querySelector(".no-poster");
    if (placeholder) placeholder.remove();
  }
  // A long video still processing: watchable up to ``seconds`` (a websocket ``playable``).
  function showPlayable(row, seconds) {
    const first = !row.dataset.playable;
    row.dataset.playable = "1";
    row.querySelector(".watch").hidden = false;
    const duration = parseFloat(row.dataset.duration);
    const of = duration ? ` of ${SG.clock(duration)}` : "";
    row.querySelector("[data-role=playable]").textContent = `${SG.clock(seconds)}${of} ready to watch`;
    if (first) showPoster(row); // published with the first part
  }
  function follow(row) {
    const badge = row.querySelector("[data-role=badge]");
    const bar = row.querySelector("[data-role=progress]");
    const eta = row.querySelector("[data-role=eta]");
    const tracker = SGProgress.tracker((state, message) => {
      row.dataset.status = state.status;
      badge.textContent = badgeText(state);
      badge.className = "badge " + state.status;
      bar.hidden = SGProgress.STEADY.has(state.status);
      SGProgress.paint(bar, state.overall);
      eta.textContent = state.eta;
      if (message.type !== "status") return;
      // Watchable when ready, or while processing once its first parts are (a new attempt, a
      // failure or a replaced file takes those away).
      if (state.status !== "processing") row.dataset.playable = "";
      row.querySelector(".watch").hidden = !(state.status === "ready" || row.dataset.playable);
      if (!row.dataset.playable) row.querySelector("[data-role=playable]").textContent = "";
      const shown = row.querySelector("[data-role=error]");
      if (shown) shown.remove();
      if (state.status === "failed") {
        const error = document.createElement("div");
        error.className = "muted";
        error.dataset.role = "error";
        error.textContent = state.error || "Processing failed.";
        row.querySelector(".title-cell").appendChild(error);
      }
      if (state.status === "ready") showPoster(row);
    }, { overall: Number(row.dataset.overall) || 0, status: row.dataset.status });
    return SG.follow(row.dataset.contentId, (message) => {
      if (message.type === "poster" && message.thumbnail_url) setPoster(row, message.thumbnail_url);
      else if (message.type === "playable" && row.dataset.status === "processing") showPlayable(row, message.seconds);
      else tracker.feed(message);
    });
  }
  function ask(title) {
    // Resolves true when the creator confirms in the dialog (Escape and Cancel say no).
    dialog.querySelector("[data-role=delete-title]").textContent = title;
    dialog.returnValue = "";
    dialog.showModal();
    return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "delete"), { once: true }));
  }
  async function remove(row, follower) {
    const title = row.dataset.title;
    const opener = row.querySelector("[data-role=delete]");
    if (!(await ask(title))) { opener.focus(); return; }
    const deleted = await SG.api("DELETE", `/api/v1/contents/${row.dataset.contentId}/`);
    if (deleted.status !== 204 && deleted.status !== 404) {
      SG.notice(messages, SG.message(deleted.data, "The video was not deleted."), "error");
      opener.focus();
      return;
    }
    follower.close();
    const next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    SG.notice(messages, `Deleted “${title}”.`, "ok");
    if (next) next.querySelector("[data-role=delete]").focus();
    else {
      document.querySelector("[data-testid=studio]").hidden = true;
      document.getElementById("empty").hidden = false;
    }
  }
  document.querySelectorAll("tr[data-content-id]").forEach((row) => {
    // Every row not yet ready follows its progress (a failed or draft one may get a new file
    // from another tab), and shows its poster when it is ready; ready rows need no socket.
    const follower = row.dataset.status === "ready" ? { close() {} } : follow(row);
    row.querySelector("[data-role=delete]").addEventListener("click", () => remove(row, follower));
  });
})();
