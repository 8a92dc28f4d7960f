// One card of the dashboard: a tag's images with a step slider, an image picker
// or grid, an overlay on the probe images and the evolution strip. The kinds it
// treats specially come from the tags route (state.schema), not from copies here.

import {el, imageEl, series, showError, state} from "./common.js";

function describe(content) {
  const bits = [content.kind];
  if (content.map !== null && content.map !== undefined) bits.push(`map ${content.map}`);
  const params = content.params || {};
  for (const [k, v] of Object.entries(params)) {
    bits.push(`${k}=${typeof v === "object" ? JSON.stringify(v) : v}`);
  }
  return bits.join(" \u00b7 ");
}

export function makeCard({run, tag, content}) {
  const card = el("div", {class: "cv-card", "data-run": run, "data-tag": tag, "data-kind": content.kind});
  card.append(
    el("div", {class: "cv-card-head"},
      el("span", {class: "cv-tag", text: tag}),
      el("span", {class: "cv-run", text: run})),
    el("div", {class: "cv-meta", text: describe(content)}),
    el("div", {class: "cv-body"}, el("div", {class: "cv-loading", text: "loading\u2026"})));
  card.cvLoad = () => fillCard(card, run, tag, content).catch((err) => {
    const body = card.querySelector(".cv-body");
    body.replaceChildren(el("div", {class: "cv-card-error", role: "alert", text: String(err.message || err)}));
  });
  return card;
}

// A card's view: what it shows (step, image, overlay, grid) and the elements it draws into.
function newView(card, run, content, steps) {
  const view = {card, run, content, steps, labels: content.labels || [], step: steps.length - 1, index: 0,
    overlay: false, opacity: 0.6, grid: state.schema.grid_kinds.includes(content.kind), inputSeries: null,
    stage: el("div", {class: "cv-stage"}), stepLabel: el("span", {class: "cv-step-label"}),
    strip: el("div", {class: "cv-evolution", hidden: true})};
  view.slider = el("input", {class: "cv-step", type: "range", min: 0, max: steps.length - 1,
    value: view.step, "aria-label": "step", disabled: steps.length < 2});
  view.slider.addEventListener("input", () => { view.step = Number(view.slider.value); draw(view); });
  return view;
}

async function fillCard(card, run, tag, content) {
  const data = await series(run, tag);
  const body = card.querySelector(".cv-body");
  const steps = data.steps || [];
  if (!steps.length) {
    body.replaceChildren(el("div", {class: "cv-empty", text: "no steps logged yet"}));
    return;
  }
  const view = newView(card, run, content, steps);
  const controls = el("div", {class: "cv-controls"}, el("label", {class: "cv-slider"}, view.stepLabel, view.slider));
  controls.append(...imageControls(view), ...overlayControls(view), evolutionButton(view));
  body.replaceChildren(view.stage, controls, view.strip);
  draw(view);
}

// Which image of a step, and whether to show them all as a grid.
function imageControls(view) {
  const maxLength = Math.max(...view.steps.map((s) => s.blobs.length));
  if (maxLength < 2) return [];
  const indexSelect = el("select", {class: "cv-index", "aria-label": "image"});
  for (let i = 0; i < maxLength; i++) {
    indexSelect.append(el("option", {value: i, text: view.labels[i] || `image ${i}`}));
  }
  indexSelect.addEventListener("change", () => { view.index = Number(indexSelect.value); draw(view); });
  const gridBox = el("input", {type: "checkbox", class: "cv-grid-toggle", checked: view.grid});
  gridBox.addEventListener("change", () => { view.grid = gridBox.checked; draw(view); });
  const gridLabel = state.schema.grid_kinds.includes(view.content.kind) ? " top-k grid" : " all images";
  return [indexSelect, el("label", {class: "cv-check"}, gridBox, gridLabel)];
}

// Overlay: blend this map over the logged probe image of the same run.
function overlayControls(view) {
  const inputTag = state.schema.input_tag;
  const tags = state.tags[view.run];
  if (!state.schema.overlay_kinds.includes(view.content.kind) || !(tags && tags[inputTag])) return [];
  const box = el("input", {type: "checkbox", class: "cv-overlay-toggle"});
  const opacity = el("input", {type: "range", class: "cv-opacity", min: 0, max: 100,
    value: Math.round(view.opacity * 100), "aria-label": "overlay opacity"});
  box.addEventListener("change", async () => {
    view.overlay = box.checked;
    if (view.overlay && !view.inputSeries) {
      try {
        view.inputSeries = await series(view.run, inputTag);
      } catch (err) {
        view.overlay = false;
        box.checked = false;
        showError(`overlay: ${err.message}`);
      }
    }
    draw(view);
  });
  opacity.addEventListener("input", () => {
    view.opacity = Number(opacity.value) / 100;
    const top = view.stage.querySelector(".cv-heat");
    if (top) top.style.opacity = String(view.opacity);
  });
  return [el("label", {class: "cv-check"}, box, " overlay"), el("label", {class: "cv-slider"}, "opacity ", opacity)];
}

// Evolution: this image across all logged steps.
function evolutionButton(view) {
  const button = el("button", {type: "button", class: "cv-evolution-button", text: "evolution",
    title: "this image across all logged steps", disabled: view.steps.length < 2});
  button.addEventListener("click", () => {
    view.strip.hidden = !view.strip.hidden;
    if (!view.strip.hidden) drawStrip(view);
  });
  return button;
}

function inputFor(view, index) {
  const s = view.inputSeries && view.inputSeries.steps;
  if (!s || !s.length) return null;
  const last = s[s.length - 1];
  return last.blobs[Math.min(index, last.blobs.length - 1)];
}

function draw(view) {
  const s = view.steps[view.step];
  view.stepLabel.textContent = `step ${s.step} `;
  view.card.dataset.step = String(s.step);
  if (view.grid && s.blobs.length > 1) {
    view.stage.replaceChildren(el("div", {class: "cv-grid"}, s.blobs.map((url, i) =>
      el("figure", {}, imageEl(url, "cv-cell"), el("figcaption", {text: view.labels[i] || `#${i + 1}`})))));
    return;
  }
  const url = s.blobs[Math.min(view.index, s.blobs.length - 1)];
  const base = view.overlay ? inputFor(view, view.index) : null;
  if (base) {
    const heat = imageEl(url, "cv-main cv-heat");
    heat.style.opacity = String(view.opacity);
    view.stage.replaceChildren(el("div", {class: "cv-overlay"}, imageEl(base, "cv-base"), heat));
  } else {
    view.stage.replaceChildren(imageEl(url, "cv-main"));
  }
  if (!view.strip.hidden) drawStrip(view);
}

function drawStrip(view) {
  view.strip.replaceChildren(...view.steps.map((s, i) => {
    const url = s.blobs[Math.min(view.index, s.blobs.length - 1)];
    const fig = el("figure", {class: i === view.step ? "cv-current" : ""},
      imageEl(url, "cv-thumb", `step ${s.step}`), el("figcaption", {text: String(s.step)}));
    fig.addEventListener("click", () => { view.step = i; view.slider.value = i; draw(view); });
    return fig;
  }));
}
