// Shared helpers of StreamGate's pages: the CSRF token, JSON API calls, small DOM helpers.
"use strict";
const SG = (() => {
  function cookie(name) {
    const found = document.cookie.split("; ").find((part) => part.startsWith(name + "="));
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }
  function csrf() {
    return cookie("csrftoken");
  }
  // fetch a JSON API with the session and its CSRF token; never throws for HTTP errors.
  async function api(method, url, body) {
    const options = { method, credentials: "same-origin", headers: { "X-CSRFToken": csrf(), Accept: "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (error) {
      return { status: 0, data: { detail: "The server could not be reached. Check your connection and try again." } };
    }
    let data = null;
    const text = await response.text();
    try { data = text ? JSON.parse(text) : null; } catch (error) { data = { detail: text.slice(0, 200) }; }
    return { status: response.status, data, headers: response.headers };
  }
  // The first human-readable message of an API error body.
  function message(data, fallback) {
    if (!data) return fallback || "Something went wrong.";
    if (typeof data === "string") return data;
    if (data.detail) return String(data.detail);
    for (const [field, value] of Object.entries(data)) {
      const text = Array.isArray(value) ? value.join(" ") : (value && value.detail) || JSON.stringify(value);
      return `${field}: ${text}`;
    }
    return fallback || "Something went wrong.";
  }
  function notice(element, text, kind) {
    element.innerHTML = "";
    if (!text) return;
    const box = document.createElement("div");
    box.className = "notice" + (kind ? " " + kind : "");
    box.setAttribute("role", kind === "error" ? "alert" : "status");
    box.textContent = text;
    element.appendChild(box);
  }
  // A websocket to a content's progress group; reconnects with backoff until closed for good.
  function follow(contentId, onMessage) {
    let delay = 500;
    let stopped = false;
    let socket;
    function open() {
      if (stopped) return;
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${location.host}/ws/contents/${contentId}/`);
      socket.onmessage = (event) => { delay = 500; onMessage(JSON.parse(event.data)); };
      socket.onclose = (event) => {
        if (stopped || event.code === 4401 || event.code === 4404) return;
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }
    open();
    return { close() { stopped = true; socket.close(); } };
  }
  function safeNext(next) {
    if (typeof next !== "string" || !next.startsWith("/") || next.includes("\\")) return "/";
    return new URL(next, location.origin).origin === location.origin ? next : "/";
  }
  // A DOM element: attributes ("text" sets its text, "html" trusted markup), then its children
  // (null and undefined skipped).
  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (name === "text") node.textContent = value;
      else if (name === "html") node.innerHTML = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) if (child !== null && child !== undefined && child !== false) node.append(child);
    return node;
  }
  // "2:00", "1:02:03": a length in seconds, rounded as the server's |clock filter writes it.
  function clock(seconds) {
    const whole = Math.max(0, Math.round(Number(seconds) || 0));
    const [hours, minutes, rest] = [Math.floor(whole / 3600), Math.floor((whole % 3600) / 60), whole % 60];
    const pad = (n) => String(n).padStart(2, "0");
    return hours ? `${hours}:${pad(minutes)}:${pad(rest)}` : `${minutes}:${pad(rest)}`;
  }
  return { api, csrf, message, notice, follow, safeNext, el, clock };
})();
