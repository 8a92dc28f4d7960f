// Zeiler & Fergus fig. 6: the first convolution's filter sheet (each filter normalized alone, mid-grey
// = 0; blue frame = dead, red = high-frequency) with its statistics, read from the sheet's PNG
// (keras_convviz/loggers/zeiler.py), and the sheet across the logged steps. Shown on the layer page
// of that convolution and on the unit pages of its maps (the unit's own filter outlined).

import {el, fmt, imageEl, pngData, series, state, stepIndex} from "./common.js";
import {evolutionStrip} from "./evolution.js";

export function filtersTag(run, layer) {
  const tags = state.tags[run] || {};
  return Object.keys(tags).find((t) => tags[t].method === "filters" && (!layer || tags[t].layer === layer)) || null;
}

function statsText(d) {
  const k = d.kernel ? d.kernel.join("\u00d7") : "";
  return [`${d.count} filters ${k}`, `${d.dead.length} dead (norm < ${fmt(d.dead_fraction)} \u00d7 median ${fmt(d.median_norm)})`,
    `${d.aliased.length} high-frequency (> ${fmt(d.aliasing_threshold)} of the spectral power above half Nyquist; ` +
    `white noise 0.8)`, `median share ${fmt(d.median_share)}`].join(" \u00b7 ");
}

function flagged(d) {
  const list = (xs) => (xs.length ? xs.join(", ") : "none");
  return el("ul", {class: "cv-filter-flags"},
    el("li", {class: "cv-flag-dead"}, el("i", {}), `dead: ${list(d.dead)}`),
    el("li", {class: "cv-flag-hf"}, el("i", {}), `high-frequency: ${list(d.aliased)}`));
}

// The outline of filter `k` on the sheet, placed once the picture has its size.
function outline(frame, img, d, k) {
  const {columns, pad, cell} = d.sheet, r = Math.floor(k / columns), c = k % columns;
  const box = el("div", {class: "cv-filter-box", "data-filter": k});
  const place = () => {
    const s = img.clientWidth / img.naturalWidth;
    Object.assign(box.style, {left: `${(pad + c * (cell + pad) - 3) * s}px`, top: `${(pad + r * (cell + pad) - 3) * s}px`,
      width: `${(cell + 6) * s}px`, height: `${(cell + 6) * s}px`});
  };
  img.addEventListener("load", place);
  if (img.complete) requestAnimationFrame(place);
  frame.append(box);
}

// The section at `step`; `unit`: a map index to outline; `onStep(i)` picks a step from the strip.
export function filterSection(run, tag, step, unit = null, onStep = null) {
  const section = el("section", {class: "cv-section cv-filters", "data-tag": tag},
    el("h3", {text: "First-layer filters (Zeiler & Fergus fig. 6)"}), el("div", {class: "cv-loading", text: "loading\u2026"}));
  fill(section, run, tag, step, unit, onStep).catch((err) => {
    section.append(el("div", {class: "cv-card-error", role: "alert", text: String(err.message || err)}));
  });
  return section;
}

async function fill(section, run, tag, step, unit, onStep) {
  const s = await series(run, tag);
  if (!s.steps.length) return;
  const i = stepIndex(s.steps, step === undefined ? Infinity : step), at = s.steps[i];
  const d = await pngData(at.blobs[0]);
  const img = imageEl(at.blobs[0], "cv-filter-sheet", `filter sheet of ${s.content.layer} at step ${at.step}`);
  const frame = el("div", {class: "cv-frame cv-filter-frame"}, img);
  const parts = [frame, el("div", {class: "cv-caption", text: `${s.content.layer} \u00b7 step ${at.step} \u00b7 ` +
    "each filter normalized alone, mid-grey = 0"})];
  if (d && d.sheet) {
    if (unit !== null && unit < d.count) {
      outline(frame, img, d, unit);
      parts.push(el("div", {class: "cv-filter-unit", text: `filter ${unit}: norm ${fmt(d.norm[unit])}, ` +
        `high-frequency share ${fmt(d.high_frequency[unit])}${d.dead.includes(unit) ? " \u00b7 dead" : ""}` +
        `${d.aliased.includes(unit) ? " \u00b7 high-frequency" : ""}`}));
    }
    parts.push(el("div", {class: "cv-filter-stats", text: statsText(d)}), flagged(d));
  }
  if (s.steps.length > 1) {
    const strip = el("div", {class: "cv-evolution cv-filter-evolution"});
    evolutionStrip(strip, s.steps.map((t) => ({step: t.step, url: t.blobs[0]})), i, onStep || (() => {}));
    parts.push(el("div", {class: "cv-filter-strip-label", text: "the sheet across training (click a step)"}), strip);
  }
  section.dataset.step = String(at.step);
  section.replaceChildren(section.querySelector("h3"), ...parts);
}
