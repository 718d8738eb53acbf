// The catalog's finder: choosing a sort or a filter applies it at once (the form works
// without this script too: the Search button submits everything).
"use strict";
(() => {
  const form = document.querySelector("[data-testid=finder]");
  if (!form) return;
  for (const select of form.querySelectorAll("select")) {
    select.addEventListener("change", () => form.requestSubmit());
  }
})();
