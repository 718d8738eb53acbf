// The studio's audience chart: views per day as bars in an inline SVG (no chart library). The
// numbers are also in the page as a table; the figure's aria-label sums them up.
"use strict";
(() => {
  const holder = document.getElementById("audience-chart");
  const source = document.getElementById("audience-data");
  if (!holder || !source) return;
  const { days } = JSON.parse(source.textContent);
  const NS = "http://www.w3.org/2000/svg";
  const width = 600, height = 180, left = 28, bottom = 22, top = 8;
  const peak = Math.max(1, ...days.map((d) => d.views));
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const make = (name, attrs, text) => {
    const node = document.createElementNS(NS, name);
    Object.entries(attrs).forEach(([key, value]) => node.setAttribute(key, String(value)));
    if (text !== undefined) node.textContent = text;
    svg.appendChild(node);
    return node;
  };
  const plotHeight = height - bottom - top;
  const step = (width - left) / Math.max(1, days.length);
  make("line", { x1: left, y1: top + plotHeight, x2: width, y2: top + plotHeight, class: "axis" });
  make("text", { x: left - 6, y: top + 10, "text-anchor": "end", class: "label" }, String(peak));
  make("text", { x: left - 6, y: top + plotHeight, "text-anchor": "end", class: "label" }, "0");
  days.forEach((day, index) => {
    const barHeight = (day.views / peak) * plotHeight;
    const bar = make("rect", {
      x: left + index * step + step * 0.15,
      y: top + plotHeight - barHeight,
      width: step * 0.7,
      height: Math.max(barHeight, day.views ? 1 : 0),
      class: "bar",
    });
    const title = document.createElementNS(NS, "title");
    title.textContent = `${day.day}: ${day.views}`;
    bar.appendChild(title);
    if (index === days.length - 1 || (index % 7 === 0 && index < days.length - 4)) {
      const last = index === days.length - 1; // flush right, or the edge would cut it
      const x = last ? width - 1 : left + index * step + step / 2;
      make("text", { x, y: height - 6, "text-anchor": last ? "end" : "middle", class: "label" }, day.day.slice(5));
    }
  });
  holder.appendChild(svg);
})();
