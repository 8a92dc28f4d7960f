// Colour bars: the tag's colour map (anchors from the tags route, tb_plugin/metadata.py
// COLORMAPS) with the value range its ends stand for in the shown picture.

import {el, fmt, state} from "./common.js";

function gradient(name) {
  const anchors = state.schema.colormaps && state.schema.colormaps[name];
  if (!anchors || !anchors.length) return "#888";
  const stops = anchors.map((c, i) => `rgb(${c.join(",")}) ${(100 * i / Math.max(1, anchors.length - 1)).toFixed(1)}%`);
  return `linear-gradient(to right, ${stops.join(", ")})`;
}

// `scale`: {colormap, encoding, meaning}; `range`: [low, high] or null when not logged.
export function colorBar(scale, range) {
  if (!scale) return null;
  const low = range ? fmt(range[0]) : "low", high = range ? fmt(range[1]) : "high";
  const title = [scale.meaning, scale.encoding].filter(Boolean).join(" \u00b7 ");
  return el("div", {class: "cv-colorbar", title, "data-colormap": scale.colormap,
    "data-range": range ? range.join(",") : ""},
  el("span", {class: "cv-cb-low", text: low}),
  el("span", {class: "cv-cb-ramp", style: `background:${gradient(scale.colormap)}`}),
  el("span", {class: "cv-cb-high", text: high}),
  scale.meaning ? el("div", {class: "cv-cb-meaning", text: scale.meaning}) : null);
}

// The value range of image `index` of `tag` in a step document, or null.
export function rangeOf(doc, tag, index) {
  const ranges = doc && doc.ranges && doc.ranges[tag];
  if (!ranges || !ranges.length) return null;
  return ranges[Math.min(index, ranges.length - 1)];
}
