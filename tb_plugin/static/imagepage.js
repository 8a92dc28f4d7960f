// The image page: one probe image with every logged map of it side by side at one step
// (saliency, SmoothGrad, guided backprop, IG, Grad-CAM, occlusion, deconv, box filters),
// each with its colour bar and value range, one overlay switch for all, the predicted
// and explained classes by name with probabilities, and live receptive fields: hovering
// any panel draws the field on that panel and on the probe image. Below them, when the callback's
// invariance method logged them, the image's invariance curves (Zeiler & Fergus fig. 5, invariance.js).

import {className, el, imageEl, percent, probeName, runDocs, series, state, stepDoc, stepIndex}
  from "./common.js";
import {colorBar, rangeOf} from "./colorbar.js";
import {stepControl} from "./evolution.js";
import {attachHover, drawBox, layerEntry} from "./geometry.js";
import {titleOf} from "./card.js";
import {invarianceSection, invarianceTags} from "./invariance.js";

function mapTags(run, walk) {
  const tags = state.tags[run] || {}, order = state.schema.method_order;
  const layerRank = (name) => (walk ? walk.layers.findIndex((l) => l.name === name) : -1);
  // the class-score methods side by side first; the many followed deconv maps after them
  const methodRank = (m) => (order.indexOf(m) < 0 ? order.length : order.indexOf(m)) + (m === "deconv" ? order.length : 0);
  const rank = (c) => [methodRank(c.method), layerRank(c.layer)];
  return Object.keys(tags).filter((t) => state.schema.overlay_kinds.includes(tags[t].kind)).sort((a, b) => {
    const ra = rank(tags[a]), rb = rank(tags[b]);
    return ra[0] - rb[0] || ra[1] - rb[1] || (a < b ? -1 : a > b ? 1 : 0);
  });
}

function predictionList(docs, step, probe) {
  const doc = stepDoc(docs, step);
  if (!doc || !doc.predictions || !doc.predictions[probe]) {
    return el("div", {class: "cv-empty", text: "no predictions logged (a run from before schema 2)"});
  }
  const explained = doc.explained ? doc.explained[probe] : null;
  const rows = doc.predictions[probe].map(([c, p]) => el("li", {class: c === explained ? "cv-explained" : ""},
    el("span", {class: "cv-pred-name", text: className(docs, c)}),
    el("span", {class: "cv-pred-bar"}, el("span", {style: `width:${(100 * p).toFixed(1)}%`})),
    el("span", {class: "cv-pred-p", text: percent(p)})));
  return el("div", {class: "cv-predictions"}, el("div", {class: "cv-pred-title", text: "predicted"}),
    el("ol", {}, rows), el("div", {class: "cv-explains",
      text: `maps explain: ${className(docs, explained)} (the pre-softmax score)`}));
}

function panel(p, tag, s, docs, probeFrame, probeImg) {
  const content = s.content, step = s.steps[stepIndex(s.steps, p.step)];
  const index = Math.min(p.probe, step.blobs.length - 1);
  const main = imageEl(step.blobs[index], p.overlay ? "cv-main cv-heat" : "cv-main");
  const frame = el("div", {class: p.overlay ? "cv-frame cv-overlay" : "cv-frame"},
    p.overlay ? imageEl(p.inputUrl, "cv-base") : null, main);
  if (p.overlay) main.style.opacity = String(p.opacity);
  const walk = docs.walk, size = walk && walk.input_size;
  const layer = () => (layerEntry(walk, content.layer) ? content.layer : state.filters.layer);
  attachHover(frame, main, walk, layer, (win) => {
    const box = probeFrame.querySelector(".cv-rf-box");
    if (win) drawBox(probeFrame, probeImg, win, size);
    else if (box) box.hidden = true;
  });
  const doc = docs.steps ? docs.steps[step.step] : null;
  return el("figure", {class: "cv-panel", "data-tag": tag, "data-kind": content.kind}, frame,
    el("figcaption", {}, el("div", {class: "cv-panel-title", text: titleOf(content, docs)}),
      step.step === p.step ? null : el("div", {class: "cv-panel-note", text: `logged at step ${step.step}`})),
    colorBar(content.scale, rangeOf(doc, tag, index)));
}

function overlayControls(p, redraw) {
  const box = el("input", {type: "checkbox", class: "cv-overlay-toggle", checked: p.overlay});
  const opacity = el("input", {type: "range", class: "cv-opacity", min: 0, max: 100,
    value: Math.round(p.opacity * 100), "aria-label": "overlay opacity"});
  box.addEventListener("change", () => { p.overlay = state.overlay.on = box.checked; redraw(); });
  opacity.addEventListener("input", () => {
    p.opacity = state.overlay.opacity = Number(opacity.value) / 100;
    document.querySelectorAll(".cv-image-page .cv-heat").forEach((img) => { img.style.opacity = String(p.opacity); });
  });
  return [el("label", {class: "cv-check"}, box, " overlay on the probe"),
    el("label", {class: "cv-slider"}, "opacity ", opacity)];
}

function probeSelect(p, n, docs, labels, redraw) {
  const select = el("select", {class: "cv-index", "aria-label": "probe image"});
  for (let i = 0; i < n; i++) select.append(el("option", {value: i, text: probeName(docs, labels, i)}));
  select.value = String(p.probe);
  select.addEventListener("change", () => { p.probe = Number(select.value); redraw(); });
  return select;
}

async function pageData(p) {
  const docs = await runDocs(p.run);
  const tags = mapTags(p.run, docs.walk);
  const [input, ...all] = await Promise.all([series(p.run, state.schema.input_tag),
    ...tags.map((t) => series(p.run, t)), ...invarianceTags(p.run).map((t) => series(p.run, t))]);
  const steps = [...new Set(all.flatMap((s) => s.steps.map((x) => x.step)))].sort((a, b) => a - b);
  all.splice(tags.length); // the invariance series give steps; invariance.js draws them
  return {tags, docs, input, all, steps};
}

function body(p, d) {
  const inputs = d.input.steps[d.input.steps.length - 1].blobs;
  p.inputUrl = inputs[Math.min(p.probe, inputs.length - 1)];
  const probeImg = imageEl(p.inputUrl, "cv-probe-large");
  const probeFrame = el("div", {class: "cv-frame"}, probeImg);
  const panels = d.tags.map((t, i) => (d.all[i].steps.length ? panel(p, t, d.all[i], d.docs, probeFrame, probeImg)
    : null));
  return el("div", {class: "cv-image-body"},
    el("div", {class: "cv-image-probe"}, probeFrame, el("div", {class: "cv-probe-name",
      text: probeName(d.docs, d.input.content.labels, p.probe)}), predictionList(d.docs, p.step, p.probe)),
    el("div", {class: "cv-panels"}, panels));
}

export async function renderImage(root, p) {
  const d = await pageData(p);
  Object.assign(p, {overlay: state.overlay.on, opacity: state.overlay.opacity});
  const holder = el("div", {class: "cv-image-holder"});
  const redraw = () => holder.replaceChildren(body(p, d), invarianceSection(p.run, p.probe, p.step, d.docs) || "");
  const stepper = stepControl(() => d.steps.length, (i) => `step ${d.steps[i]}`, (i) => {
    p.step = d.steps[i];
    p.follow = i === d.steps.length - 1;
    redraw();
  });
  const n = d.input.steps[d.input.steps.length - 1].blobs.length;
  root.replaceChildren(el("div", {class: "cv-page cv-image-page", "data-probe": p.probe},
    el("div", {class: "cv-page-head"},
      el("button", {type: "button", class: "cv-back", text: "\u2039 all cards", onclick: () => state.navigate({name: "cards"})}),
      el("h2", {text: "Image page"}), el("span", {class: "cv-page-sub",
        text: `every logged map of one probe image at one step \u00b7 hover a map: the input region it sees`})),
    el("div", {class: "cv-controls"}, stepper.element, probeSelect(p, n, d.docs, d.input.content.labels, redraw),
      ...overlayControls(p, redraw)), holder));
  const at = p.follow || p.step === undefined ? d.steps.length - 1 : stepIndex(d.steps.map((s) => ({step: s})), p.step);
  if (d.steps.length) stepper.set(at);
  else redraw();
  return {refresh: () => renderImage(root, p)};
}
