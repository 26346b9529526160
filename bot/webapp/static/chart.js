// The equity and drawdown chart as SVG, drawn in the theme's colours (classes in style.css):
// equity on top, the drawdown from the running peak as a band underneath.
"use strict";

const Chart = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 360;
  const TOP = 150; // equity panel height
  const GAP = 14;
  const DD = 56; // drawdown panel height
  const LEFT = 4;
  const RIGHT = 4;

  function node(name, attrs, text) {
    const el = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  // points: [{t, equity, drawdown_pct}], labels: {equity, drawdown}, fmt: {money(n), pct(n), date(t)}
  function render(given, labels, fmt) {
    let points = given;
    const svg = node("svg", { viewBox: `0 0 ${W} ${TOP + GAP + DD + 16}`, role: "img", "aria-label": labels.equity });
    if (!points.length) return svg;
    if (points.length === 1) points = [points[0], points[0]]; // one reading: a level line across
    const times = points.map((p) => Date.parse(p.t));
    const equity = points.map((p) => Number(p.equity));
    const dd = points.map((p) => Number(p.drawdown_pct) || 0);
    const t0 = times[0];
    const t1 = times[times.length - 1];
    const span = Math.max(t1 - t0, 1);
    let lo = Math.min(...equity);
    let hi = Math.max(...equity);
    if (hi - lo < 1e-9) { hi += 1; lo -= 1; }
    const pad = (hi - lo) * 0.08;
    lo -= pad; hi += pad;
    const ddMax = Math.max(...dd, 1);
    const x = (t, i) => (t1 === t0 ? (i ? W - RIGHT : LEFT) : LEFT + ((t - t0) / span) * (W - LEFT - RIGHT));
    const yEq = (v) => 14 + (1 - (v - lo) / (hi - lo)) * (TOP - 20);
    const base = TOP + GAP;
    const yDd = (v) => base + (v / ddMax) * DD;

    svg.appendChild(node("line", { class: "axis", x1: 0, x2: W, y1: TOP, y2: TOP }));
    svg.appendChild(node("line", { class: "axis", x1: 0, x2: W, y1: base, y2: base }));
    const last = points.length - 1;
    const line = points.map((p, i) => `${x(times[i], i).toFixed(1)},${yEq(equity[i]).toFixed(1)}`);
    const area = [`${x(t0, 0).toFixed(1)},${TOP}`, ...line, `${x(t1, last).toFixed(1)},${TOP}`];
    svg.appendChild(node("polygon", { class: "equity-fill", points: area.join(" ") }));
    svg.appendChild(node("polyline", { class: "equity", points: line.join(" ") }));
    const band = [
      `${x(t0, 0).toFixed(1)},${base}`,
      ...points.map((p, i) => `${x(times[i], i).toFixed(1)},${yDd(dd[i]).toFixed(1)}`),
      `${x(t1, last).toFixed(1)},${base}`,
    ];
    svg.appendChild(node("polygon", { class: "dd", points: band.join(" ") }));

    svg.appendChild(node("text", { x: LEFT, y: 10 }, `${labels.equity} ${fmt.money(equity[equity.length - 1])}`));
    svg.appendChild(node("text", { x: W - RIGHT, y: 10, "text-anchor": "end" }, fmt.money(Math.max(...equity))));
    svg.appendChild(node("text", { x: W - RIGHT, y: TOP - 4, "text-anchor": "end" }, fmt.money(Math.min(...equity))));
    svg.appendChild(node("text", { x: LEFT, y: base + DD + 12 }, `${labels.drawdown} ${fmt.pct(Math.max(...dd))}`));
    svg.appendChild(node("text", { x: W - RIGHT, y: base + DD + 12, "text-anchor": "end" }, fmt.date(points[points.length - 1].t)));
    return svg;
  }

  return { render };
})();
