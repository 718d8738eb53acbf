// The studio list: contents still on their way follow their progress live, without reloading.
"use strict";
(() => {
  const FINAL = new Set(["ready", "failed", "draft"]);
  document.querySelectorAll("tr[data-content-id]").forEach((row) => {
    if (FINAL.has(row.dataset.status)) return;
    const badge = row.querySelector("[data-role=badge]");
    const progress = row.querySelector("[data-role=progress]");
    const follower = SG.follow(row.dataset.contentId, (message) => {
      if (message.type === "upload" && message.total) {
        progress.firstElementChild.style.width = (100 * message.received) / message.total + "%";
      } else if (message.type === "transcode") {
        progress.firstElementChild.style.width = message.percent + "%";
      } else if (message.type === "status") {
        badge.textContent = message.status;
        badge.className = "badge " + message.status;
        row.dataset.status = message.status;
        progress.hidden = FINAL.has(message.status);
        if (message.status === "ready" || message.status === "failed") {
          follower.close();
          if (message.status === "failed") {
            const error = document.createElement("div");
            error.className = "muted";
            error.textContent = message.error || "Processing failed.";
            row.querySelector("td:nth-child(2)").appendChild(error);
          }
          if (message.status === "ready" && !row.querySelector("a.watch")) {
            const link = document.createElement("a");
            link.className = "watch";
            link.href = `/watch/${row.dataset.contentId}/`;
            link.textContent = "Watch";
            row.querySelector("[data-role=actions]").appendChild(link);
          }
        }
      }
    });
  });
})();
