// The top bar's menu is a <details>: always open on wide screens (where it is a plain row of
// links), a disclosure on phones that closes on Escape or a tap elsewhere.
"use strict";
(() => {
  const menu = document.querySelector("details.menu");
  if (!menu) return;
  const wide = window.matchMedia("(min-width: 48.01rem)");
  const fit = () => { menu.open = wide.matches; };
  fit();
  wide.addEventListener("change", fit);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && menu.open && !wide.matches) {
      menu.open = false;
      menu.querySelector("summary").focus();
    }
  });
  document.addEventListener("click", (event) => {
    if (menu.open && !wide.matches && !menu.contains(event.target)) menu.open = false;
  });
})();
