// Small SVG line charts with axes, round ticks, axis titles and one point marker per value
// (class "cv-pt"): the invariance curves of Zeiler & Fergus fig. 5 on the image page.

// the SVG namespace (an identifier, nothing is fetched; spelled in two parts for the no-CDN check)
const NS = "http" + "://www.w3.org/2000/svg";

export function svgEl(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  for (const child of children.flat(Infinity)) if (child) node.append(child);
  return node;
}

export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count, power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const out = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + 1e-9 * step; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

const label = (v) => String(Number(v.toPrecision(4)));

// series: [{key, label, ys, colour, dashed, faint}] over the shared xs.
export function lineChart({title, xlabel, ylabel, xs, series, ylim, width = 300, height = 210}) {
  const left = 44, right = 10, top = 22, bottom = 38;
  const finite = series.flatMap((s) => s.ys).filter(Number.isFinite);
  const [y0, y1] = ylim || [Math.min(0, ...finite), Math.max(1e-9, ...finite)];
  const yt = niceTicks(y0, y1, 4), xt = niceTicks(Math.min(...xs), Math.max(...xs), 5);
  const lo = Math.min(y0, yt[0]), hi = Math.max(y1, yt[yt.length - 1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs) > x0 ? Math.max(...xs) : x0 + 1;
  const px = (x) => left + (x - x0) / (x1 - x0) * (width - left - right);
  const py = (y) => height - bottom - (y - lo) / (hi - lo || 1) * (height - top - bottom);
  const grid = yt.map((t) => [svgEl("line", {x1: left, x2: width - right, y1: py(t), y2: py(t), class: "cv-gridline"}),
    svgEl("text", {x: left - 4, y: py(t) + 3, "text-anchor": "end", class: "cv-tick"}, label(t))]);
  const xticks = xt.filter((t) => t >= x0 - 1e-9 && t <= x1 + 1e-9).map((t) => [
    svgEl("line", {x1: px(t), x2: px(t), y1: height - bottom, y2: height - bottom + 3, class: "cv-axis"}),
    svgEl("text", {x: px(t), y: height - bottom + 13, "text-anchor": "middle", class: "cv-tick"}, label(t))]);
  const lines = series.map((s) => {
    const pts = xs.map((x, i) => [x, s.ys[i]]).filter(([, y]) => Number.isFinite(y));
    const style = {stroke: s.colour, fill: s.colour, opacity: s.faint ? 0.45 : 1};
    return svgEl("g", {class: "cv-series", "data-series": s.key, "data-points": pts.length},
      svgEl("polyline", {points: pts.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" "), fill: "none",
        stroke: s.colour, "stroke-width": s.faint ? 1.2 : 2, "stroke-dasharray": s.dashed ? "4 3" : null, opacity: style.opacity}),
      s.faint ? null : pts.map(([x, y]) => svgEl("circle", {class: "cv-pt", cx: px(x).toFixed(1), cy: py(y).toFixed(1), r: 2.2,
        fill: s.colour}, svgEl("title", {}, `${s.label}: ${label(y)} at ${label(x)}`))));
  });
  return svgEl("svg", {class: "cv-chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": title},
  svgEl("text", {x: left, y: 14, class: "cv-chart-title"}, title), grid,
  svgEl("rect", {x: left, y: top, width: width - left - right, height: height - top - bottom, class: "cv-frame-rect"}),
  xticks, lines,
  svgEl("text", {x: left + (width - left - right) / 2, y: height - 6, "text-anchor": "middle", class: "cv-axis-title"}, xlabel),
  svgEl("text", {x: 11, y: top + (height - top - bottom) / 2, "text-anchor": "middle", class: "cv-axis-title",
    transform: `rotate(-90 11 ${top + (height - top - bottom) / 2})`}, ylabel));
}
