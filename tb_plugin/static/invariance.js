// Zeiler & Fergus fig. 5 on the image page: for the chosen probe image and step, one small chart
// per transform (vertical translation, scale, rotation) of the relative feature distance at an early
// and a late layer and of the target's probability, over the transform's range. The curves come in
// the PNG of the callback's invariance/<layer>/curves tag (its picture: the transformed copies).
// When more than one step was logged, the first logged step is drawn dashed and faint beside the
// chosen one, so the growth of invariance over training shows.

import {className, el, fmt, imageEl, pngData, series, state, stepIndex} from "./common.js";
import {lineChart} from "./charts.js";

const AXIS = {translate: "vertical translation (px, + = down)", scale: "scale factor (\u00d7)",
  rotate: "rotation (degrees, counter-clockwise)", flip: "left-right flip (0 = as is, 1 = mirrored)"};
const TITLE = {translate: "vertical translation", scale: "scale", rotate: "rotation", flip: "flip"};
const COLOURS = ["#1f77b4", "#e6550d", "#2ca02c"];

export function invarianceTags(run) {
  const tags = state.tags[run] || {};
  return Object.keys(tags).filter((t) => tags[t].method === "invariance").sort();
}

function seriesOf(data, t, faint) {
  const c = data.transforms[t], layers = data.layers;
  const pick = layers.length > 1 ? [layers[0], layers[layers.length - 1]] : layers;
  const out = pick.map((layer, k) => ({key: `${k ? "late" : "early"}${faint ? "-first" : ""}`, colour: COLOURS[k],
    label: `${k ? "late" : "early"} ${layer}`, ys: c.relative[layer], dashed: faint, faint}));
  out.push({key: `probability${faint ? "-first" : ""}`, colour: COLOURS[2], label: "p(target)", ys: c.probability,
    dashed: faint, faint});
  return out;
}

function chart(t, data, first) {
  const c = data.transforms[t];
  const lines = [...(first && first.transforms[t] ? seriesOf(first, t, true) : []), ...seriesOf(data, t, false)];
  const top = Math.max(1, ...lines.flatMap((s) => s.ys).filter(Number.isFinite));
  return el("figure", {class: "cv-inv-chart", "data-transform": t, "data-points": c.values.length},
    lineChart({title: TITLE[t] || t, xlabel: AXIS[t] || `${t} (${c.unit})`, ylabel: "rel. distance \u00b7 probability",
      xs: c.values, series: lines, ylim: [0, top]}));
}

function legend(data, docs, step, firstStep) {
  const layers = data.layers.length > 1 ? [data.layers[0], data.layers[data.layers.length - 1]] : data.layers;
  const items = layers.map((layer, k) => el("span", {class: "cv-key"},
    el("i", {style: `background:${COLOURS[k]}`}), `${k ? "late" : "early"} layer ${layer}: \u2016f(copy) \u2212 f(image)\u2016 / \u2016f(image)\u2016`));
  items.push(el("span", {class: "cv-key"}, el("i", {style: `background:${COLOURS[2]}`}),
    `p(${className(docs, data.target)}) \u00b7 unchanged image ${fmt(data.base_probability)}`));
  items.push(el("span", {class: "cv-key cv-key-steps", text: firstStep === null ? `step ${step}`
    : `solid: step ${step} \u00b7 dashed: step ${firstStep} (first logged)`}));
  return el("div", {class: "cv-inv-legend"}, items);
}

// The section for probe `probe` at `step` (filled when the curves arrive), or null when not logged.
export function invarianceSection(run, probe, step, docs) {
  const tags = invarianceTags(run);
  if (!tags.length) return null;
  const section = el("section", {class: "cv-section cv-invariance", "data-tag": tags[0]},
    el("h3", {text: "Invariance (Zeiler & Fergus fig. 5): feature distance and target probability under transforms"}),
    el("div", {class: "cv-loading", text: "loading\u2026"}));
  fill(section, run, tags[0], probe, step, docs).catch((err) => {
    section.replaceChildren(el("h3", {text: "Invariance"}), el("div", {class: "cv-card-error", role: "alert",
      text: String(err.message || err)}));
  });
  return section;
}

async function fill(section, run, tag, probe, step, docs) {
  const s = await series(run, tag);
  if (!s.steps.length) return section.replaceChildren(el("div", {class: "cv-empty", text: "no steps logged yet"}));
  const at = s.steps[stepIndex(s.steps, step === undefined ? Infinity : step)];
  const url = at.blobs[Math.min(probe, at.blobs.length - 1)];
  const earliest = s.steps[0].step !== at.step ? s.steps[0] : null;
  const [data, first] = await Promise.all([pngData(url),
    earliest ? pngData(earliest.blobs[Math.min(probe, earliest.blobs.length - 1)]) : null]);
  if (!data || !data.transforms) {
    return section.replaceChildren(el("div", {class: "cv-empty", text: "this picture carries no curves"}));
  }
  section.dataset.step = String(at.step);
  const charts = Object.keys(data.transforms).map((t) => chart(t, data, first));
  section.replaceChildren(section.querySelector("h3"), legend(data, docs, at.step, earliest ? earliest.step : null),
    el("div", {class: "cv-inv-row"}, el("figure", {class: "cv-inv-copies"}, imageEl(url, "cv-inv-img",
      "the transformed copies"), el("figcaption", {text: "transformed copies"})), charts));
}
