// One card of the dashboard: a tag's images with a step slider and play button, an image
// picker or grid, an overlay on the probe images (every map kind, single and grid), a
// colour bar with the picture's value range, class names, live receptive fields on hover,
// the evolution strip, and links to the unit and image pages. The kinds it treats
// specially come from the tags route (state.schema), not from copies here.

import {className, el, fmt, forget, imageEl, optimizedText, pngData, probeCaption, probeName, runDocs, series,
  showError, state, stepIndex} from "./common.js";
import {colorBar, rangeOf} from "./colorbar.js";
import {evolutionStrip, stepControl} from "./evolution.js";
import {attachHover, cropEl, layerEntry, unitWindow} from "./geometry.js";

export function titleOf(content, docs) {
  const named = /^class(\d+)$/.exec(content.detail); // class models, class feature visualizations
  if (named) {
    const c = Number(named[1]), what = content.method === "classmodel" ? "class model" : content.method;
    return `${what} \u00b7 ${className(docs, c)} (class ${c})`;
  }
  const map = content.map !== null && content.map !== undefined ? ` \u00b7 map ${content.map}` : "";
  return `${content.method} \u00b7 ${content.layer}${map}${/^map\d+$/.test(content.detail) ? "" : ` \u00b7 ${content.detail}`}`;
}

function describe(content, docs) {
  const bits = [content.kind];
  for (const [k, v] of Object.entries(content.params || {})) {
    if (k === "target" && v !== "predicted") {
      const names = (Array.isArray(v) ? v : [v]).map((c) => className(docs, c));
      bits.push(`target=${names.join(", ")}`);
    } else {
      bits.push(`${k}=${typeof v === "object" ? JSON.stringify(v) : v}`);
    }
  }
  return bits.join(" \u00b7 ");
}

export function makeCard({run, tag, content}) {
  const card = el("div", {class: "cv-card", "data-run": run, "data-tag": tag, "data-kind": content.kind});
  const body = el("div", {class: "cv-body"}, el("div", {class: "cv-loading", text: "loading\u2026"}));
  // titled as it will be once loaded (a bare tag has no spaces and could only wrap mid-word)
  const listed = {detail: tag.split("/").slice(2).join("/"), ...content};
  card.append(el("div", {class: "cv-card-head"}, el("span", {class: "cv-tag", text: titleOf(listed, null), title: tag}),
    el("span", {class: "cv-run", text: run})), el("div", {class: "cv-meta"}), body);
  card.cvLoad = () => fillCard(card, run, tag, content).catch((err) => {
    body.replaceChildren(el("div", {class: "cv-card-error", role: "alert", text: String(err.message || err)}));
  });
  card.cvRefresh = async () => {
    if (!card.cvView) return;
    forget(run, tag);
    const [data, docs] = await Promise.all([series(run, tag), runDocs(run)]);
    updateSteps(card.cvView, followSteps(content, data.steps || [], docs), docs);
  };
  return card;
}

// The probe images are logged once, but their predictions every step: the probe card steps through every
// logged step (the image stays the one logged at or before it), so its caption agrees with the other cards.
function followSteps(content, steps, docs) {
  const logged = Object.keys((docs && docs.steps) || {}).map(Number).filter((n) => Number.isFinite(n));
  if (content.kind !== "input" || !steps.length || !logged.length) return steps;
  const all = [...new Set([...logged, ...steps.map((s) => s.step)])].sort((a, b) => a - b);
  return all.map((step) => {
    const image = steps[stepIndex(steps, step)];
    return {...image, step, imageStep: image.step};
  });
}

// New steps arrived: keep the user's step, or follow the newest when the newest was shown.
function updateSteps(view, steps, docs) {
  if (!steps.length) return;
  const atLast = view.step >= view.steps.length - 1;
  const current = view.steps[view.step].step;
  view.steps = steps;
  view.docs = docs;
  view.step = atLast ? steps.length - 1 : stepIndex(steps, current);
  view.stepper.refresh();
  view.stepper.set(view.step);
}

function newView(card, run, tag, content, steps, docs) {
  const view = {card, run, tag, content, steps, docs, labels: content.labels || [], step: steps.length - 1,
    index: 0, overlay: false, opacity: 0.6, grid: state.schema.grid_kinds.includes(content.kind), inputSeries: null,
    stage: el("div", {class: "cv-stage"}), caption: el("div", {class: "cv-caption"}),
    bar: el("div", {class: "cv-bar"}), strip: el("div", {class: "cv-evolution", hidden: true})};
  view.stepper = stepControl(() => view.steps.length, (i) => `step ${view.steps[i].step}`,
    (i) => { view.step = i; draw(view); });
  return view;
}

async function fillCard(card, run, tag, listed) {
  const [data, docs] = await Promise.all([series(run, tag), runDocs(run)]);
  const content = data.content || listed; // the listing is slim: params, labels and scale come with the series
  const body = card.querySelector(".cv-body");
  card.querySelector(".cv-meta").textContent = describe(content, docs);
  card.querySelector(".cv-tag").textContent = titleOf(content, docs);
  const steps = followSteps(content, data.steps || [], docs);
  if (!steps.length) {
    body.replaceChildren(el("div", {class: "cv-empty", text: "no steps logged yet"}));
    return;
  }
  const view = newView(card, run, tag, content, steps, docs);
  card.cvView = view;
  const controls = el("div", {class: "cv-controls"}, view.stepper.element);
  controls.append(...imageControls(view), ...await zoomControls(view), ...overlayControls(view), evolutionButton(view),
    ...pageLinks(view));
  body.replaceChildren(view.stage, view.caption, view.bar, controls, view.strip);
  view.stepper.set(view.step);
}

// Which image of a step, and whether to show them all as a grid.
function imageControls(view) {
  const maxLength = Math.max(...view.steps.map((s) => s.blobs.length));
  if (maxLength < 2) return [];
  const indexSelect = el("select", {class: "cv-index", "aria-label": "image"});
  for (let i = 0; i < maxLength; i++) {
    indexSelect.append(el("option", {value: i, text: probeName(view.docs, view.labels, i)}));
  }
  indexSelect.addEventListener("change", () => { view.index = Number(indexSelect.value); draw(view); });
  const gridBox = el("input", {type: "checkbox", class: "cv-grid-toggle", checked: view.grid});
  gridBox.addEventListener("change", () => { view.grid = gridBox.checked; draw(view); });
  const gridLabel = state.schema.grid_kinds.includes(view.content.kind) ? " top-k grid" : " all images";
  return [indexSelect, el("label", {class: "cv-check"}, gridBox, gridLabel)];
}

// Overlay: blend this map over the logged probe image of the same run, single or grid.
export function overlayControls(view) {
  const inputTag = state.schema.input_tag;
  const tags = state.tags[view.run];
  if (!state.schema.overlay_kinds.includes(view.content.kind) || !(tags && tags[inputTag])) return [];
  const box = el("input", {type: "checkbox", class: "cv-overlay-toggle", checked: view.overlay});
  const opacity = el("input", {type: "range", class: "cv-opacity", min: 0, max: 100,
    value: Math.round(view.opacity * 100), "aria-label": "overlay opacity"});
  box.addEventListener("change", async () => {
    view.overlay = box.checked;
    if (view.overlay && !view.inputSeries) {
      try {
        view.inputSeries = await series(view.run, inputTag);
      } catch (err) {
        view.overlay = box.checked = false;
        showError(`overlay: ${err.message}`);
      }
    }
    draw(view);
  });
  opacity.addEventListener("input", () => {
    view.opacity = Number(opacity.value) / 100;
    for (const top of view.stage.querySelectorAll(".cv-heat")) top.style.opacity = String(view.opacity);
  });
  return [el("label", {class: "cv-check"}, box, " overlay"), el("label", {class: "cv-slider"}, "opacity ", opacity)];
}

function evolutionButton(view) {
  const button = el("button", {type: "button", class: "cv-evolution-button", text: "evolution",
    title: "this image across all logged steps", disabled: view.steps.length < 2});
  button.addEventListener("click", () => {
    view.strip.hidden = !view.strip.hidden;
    draw(view);
  });
  return button;
}

function pageLinks(view) {
  const c = view.content, links = [];
  if (c.map !== null && c.map !== undefined && ["deconv", "topk", "featurevis"].includes(c.method)) {
    links.push(el("button", {type: "button", class: "cv-unit-link", text: "unit page \u203a",
      onclick: () => state.navigate({name: "unit", run: view.run, layer: c.layer, map: c.map, probe: view.index,
        step: view.steps[view.step].step})}));
  }
  if (c.method === "filters") {
    links.push(el("button", {type: "button", class: "cv-layer-link", text: "layer page \u203a",
      onclick: () => state.navigate({name: "layer", run: view.run, layer: c.layer, step: view.steps[view.step].step})}));
  }
  if (state.schema.overlay_kinds.includes(c.kind) || c.kind === "input" || c.method === "invariance") {
    links.push(el("button", {type: "button", class: "cv-image-link", text: "image page \u203a",
      onclick: () => state.navigate({name: "image", run: view.run, probe: view.index,
        step: view.steps[view.step].step})}));
  }
  return links;
}

export function inputFor(inputSeries, index) {
  const s = inputSeries && inputSeries.steps;
  if (!s || !s.length) return null;
  const last = s[s.length - 1];
  return last.blobs[Math.min(index, last.blobs.length - 1)];
}

// The hover layer: the tag's own layer when it is spatial, else the layer picked in the strip.
export function hoverLayer(view) {
  return () => (layerEntry(view.docs && view.docs.walk, view.content.layer) ? view.content.layer
    : state.filters.layer);
}

// One picture (optionally over its probe image) in a frame that takes the receptive-field box.
export function pictureFrame(view, url, index) {
  const base = view.overlay ? inputFor(view.inputSeries, index) : null;
  const main = imageEl(url, base ? "cv-main cv-heat" : "cv-main");
  const frame = el("div", {class: base ? "cv-frame cv-overlay" : "cv-frame"}, base ? imageEl(base, "cv-base") : null,
    main);
  if (base) main.style.opacity = String(view.opacity);
  if (state.schema.overlay_kinds.includes(view.content.kind) || view.content.kind === "input") {
    attachHover(frame, main, view.docs && view.docs.walk, hoverLayer(view));
  }
  return frame;
}

// Deconv cards: the projection cropped to the receptive field of the activation it keeps, beside the
// same input patch (Zeiler & Fergus fig. 2), instead of a few pixels on a large grey square.
function peakWindow(view, step, index) {
  const walk = view.docs && view.docs.walk, c = view.content;
  const entry = layerEntry(walk, c.layer), doc = stepExact(view, step);
  const rows = doc && doc.units && doc.units[c.layer] && doc.units[c.layer][String(c.map)];
  if (!entry || !rows || !rows[index]) return null;
  return unitWindow(entry, rows[index][0], rows[index][1], walk.input_size);
}

async function zoomControls(view) {
  if (view.content.method !== "deconv" || !peakWindow(view, view.steps[view.step].step, 0)) return [];
  try {
    view.inputSeries = await series(view.run, state.schema.input_tag);
  } catch (err) {
    return [];
  }
  view.zoom = true;
  const box = el("input", {type: "checkbox", class: "cv-zoom-toggle", checked: true});
  box.addEventListener("change", () => { view.zoom = box.checked; draw(view); });
  return [el("label", {class: "cv-check", title: "crop to the receptive field of the projected activation"}, box,
    " crop to field")];
}

function zoomPair(view, s, index) {
  const win = view.zoom ? peakWindow(view, s.step, index) : null;
  const input = win ? inputFor(view.inputSeries, index) : null;
  if (!input) return null;
  const size = view.docs.walk.input_size;
  return el("div", {class: "cv-pair cv-zoom"},
    el("figure", {}, cropEl(input, win, size, 128, "cv-crop cv-patch"), el("figcaption", {text: "input patch"})),
    el("figure", {}, cropEl(s.blobs[index], win, size, 128, "cv-crop cv-proj"),
      el("figcaption", {text: "projection"})));
}

function draw(view) {
  const s = view.steps[view.step];
  view.card.dataset.step = String(s.step);
  if (view.grid && s.blobs.length > 1) {
    view.stage.replaceChildren(el("div", {class: "cv-grid"}, s.blobs.map((url, i) =>
      el("figure", {}, view.content.kind === "patches" ? imageEl(url, "cv-cell") : pictureFrame(view, url, i),
        el("figcaption", {text: cellCaption(view, s.step, i)})))));
    view.caption.textContent = "";
    view.bar.replaceChildren();
  } else {
    const index = Math.min(view.index, s.blobs.length - 1);
    view.stage.replaceChildren(zoomPair(view, s, index) || pictureFrame(view, s.blobs[index], index));
    view.caption.textContent = cellCaption(view, s.step, index);
    showValues(view, s.blobs[index]);
    const bar = colorBar(view.content.scale, rangeOf(stepExact(view, s.step), view.tag, index));
    view.bar.replaceChildren(...(bar ? [bar] : []));
  }
  if (!view.strip.hidden) {
    evolutionStrip(view.strip, view.steps.map((t) => ({step: t.step, url: t.blobs[Math.min(view.index,
      t.blobs.length - 1)]})), view.step, (i) => view.stepper.set(i));
  }
}

// Class models and feature visualizations: the objective, a random image's, the model's probability, and
// a warning when the optimization failed; the numbers come inside the picture (common.js pngData).
const OPTIMIZED = ["classmodel", "featurevis"];

function showValues(view, url) {
  if (!OPTIMIZED.includes(view.content.method)) return;
  if (!view.values) {
    view.values = el("div", {class: "cv-values"});
    view.warning = el("div", {class: "cv-warn", role: "status", hidden: true});
    view.caption.after(view.values, view.warning);
  }
  view.valuesUrl = url;
  pngData(url).then((data) => {
    if (view.valuesUrl !== url) return; // the user moved on
    const [text, warning] = optimizedText(data, view.docs);
    view.values.textContent = text;
    view.warning.textContent = warning || "";
    view.warning.hidden = !warning;
    view.card.classList.toggle("cv-failed", Boolean(warning));
  }).catch(() => { view.values.textContent = ""; });
}

function stepExact(view, step) {
  return view.docs && view.docs.steps ? view.docs.steps[step] || null : null;
}

function cellCaption(view, step, i) {
  if (view.content.kind === "patches") return topkCaption(view, step, i);
  const name = view.labels[i] || "";
  if (!/^probe /.test(name)) return name;
  const caption = probeCaption(view.docs, step, i);
  const unit = unitValue(view, step, i);
  const logged = view.steps[view.step].imageStep;
  const fixed = logged !== undefined && logged !== step ? `image logged at step ${logged}` : "";
  return [name, caption ? `${caption} at step ${step}` : "", unit, fixed].filter(Boolean).join(" \u00b7 ");
}

function unitValue(view, step, i) {
  const doc = stepExact(view, step), c = view.content;
  const rows = doc && doc.units && doc.units[c.layer] && doc.units[c.layer][String(c.map)];
  return rows && rows[i] ? `peak ${fmt(rows[i][2])} at (${rows[i][0]}, ${rows[i][1]})` : "";
}

// A top-k patch: its rank, activation and source image (the step document's topk rows, when logged).
export function topkRow(docs, tag, step, i) {
  const doc = docs && docs.steps ? docs.steps[step] : null;
  const rows = doc && doc.topk && doc.topk[tag];
  return rows && rows[i] ? rows[i] : null;
}

function topkCaption(view, step, i) {
  const row = topkRow(view.docs, view.tag, step, i);
  const rank = view.labels[i] || `#${i + 1}`;
  return row ? `${rank} \u00b7 ${fmt(row[0])} \u00b7 held-out image ${row[1]}` : rank;
}
