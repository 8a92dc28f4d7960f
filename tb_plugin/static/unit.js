// The unit page of one followed feature map (a Microscope page for your own network):
// per probe image the deconv projection cropped to the receptive field of the map's
// strongest activation beside the same input patch (Zeiler & Fergus 2014, fig. 2), the
// field drawn on the probe, the top-k held-out patches with their projections, the
// feature visualization when one was logged (with its objective and the model's probability), and
// the evolution across steps (fig. 4), beside the filter sheet when the layer is the first conv (fig. 6).

import {el, fmt, imageEl, optimizedText, pngData, probeCaption, probeName, runDocs, series, state, stepIndex}
  from "./common.js";
import {filterSection, filtersTag} from "./filters.js";
import {evolutionStrip, stepControl} from "./evolution.js";
import {cropEl, drawBox, layerEntry, unitWindow} from "./geometry.js";
import {topkRow} from "./card.js";

const CROP_PX = 112;

function tagsOf(run, test) {
  const tags = state.tags[run] || {};
  return Object.keys(tags).filter((t) => test(tags[t])).sort();
}

async function unitData(v) {
  const same = (c) => c.layer === v.layer && c.map === v.map;
  const [deconv] = tagsOf(v.run, (c) => c.method === "deconv" && same(c));
  const topk = tagsOf(v.run, (c) => c.method === "topk" && same(c));
  const vis = tagsOf(v.run, (c) => c.method === "featurevis" && same(c));
  const load = (tag) => (tag ? series(v.run, tag) : Promise.resolve(null));
  const [docs, proj, input, ...rest] = await Promise.all([runDocs(v.run), load(deconv), load(state.schema.input_tag),
    ...topk.map(load), ...vis.map(load)]);
  return {docs, deconv, proj, input, topk: rest.slice(0, topk.length).map((s, i) => ({tag: topk[i], s})),
    vis: rest.slice(topk.length).map((s, i) => ({tag: vis[i], s}))};
}

// The strongest position of the unit on probe `i` at `step` (from the step document), or null.
function peakOf(d, v, step, i) {
  const doc = d.docs.steps && d.docs.steps[step];
  const rows = doc && doc.units && doc.units[v.layer] && doc.units[v.layer][String(v.map)];
  return rows && rows[i] ? rows[i] : null;
}

function header(v, d, entry) {
  const rf = entry ? `receptive field ${entry.rf_size[0]}\u00d7${entry.rf_size[1]} px, stride ` +
    `${entry.rf_stride[0]}, padding ${entry.rf_padding[0]} \u00b7 output ${entry.output_shape.join("\u00d7")}` : "";
  return el("div", {class: "cv-page-head"},
    el("button", {type: "button", class: "cv-back", text: "\u2039 all cards", onclick: () => state.navigate({name: "cards"})}),
    el("h2", {text: `Unit ${v.layer} \u00b7 map ${v.map}`}), el("span", {class: "cv-page-sub", text: rf}),
    d.deconv ? null : el("span", {class: "cv-empty", text: "no deconv projections logged for this map"}));
}

// Fig. 2 for one probe image: the probe with the field drawn, the input patch and the projection.
function probePair(v, d, entry, s, inputUrl, i) {
  const peak = peakOf(d, v, s.step, i);
  const size = d.docs.walk.input_size;
  const probe = imageEl(inputUrl, "cv-probe-small");
  const frame = el("div", {class: "cv-frame"}, probe);
  const fig = el("figure", {class: "cv-unit-pair", "data-probe": i}, frame);
  if (peak) {
    const win = unitWindow(entry, peak[0], peak[1], size);
    const place = () => drawBox(frame, probe, win, size);
    probe.addEventListener("load", place);
    if (probe.complete) requestAnimationFrame(place);
    fig.append(el("div", {class: "cv-pair"}, cropEl(inputUrl, win, size, CROP_PX, "cv-crop cv-patch"),
      cropEl(s.blobs[Math.min(i, s.blobs.length - 1)], win, size, CROP_PX, "cv-crop cv-proj")));
  }
  fig.append(el("figcaption", {text: [probeName(d.docs, d.proj.content.labels, i), probeCaption(d.docs, s.step, i),
    peak ? `peak ${fmt(peak[2])} at (${peak[0]}, ${peak[1]})` : "no unit position logged"].join(" \u00b7 ")}));
  return fig;
}

// A section that was not logged for this unit says so, and which ConvVizCallback method logs it.
function notLogged(title, method, extra = "") {
  return el("section", {class: "cv-section cv-missing", "data-method": method}, el("h3", {text: title}),
    el("p", {class: "cv-not-logged",
      text: `not logged (enable "${method}" in ConvVizCallback methods${extra})`}));
}

const PAIRS_TITLE = "What the unit sees: input patch beside its deconv projection (Zeiler & Fergus fig. 2)";

function pairsSection(v, d, entry) {
  if (!d.proj || !d.proj.steps.length) return notLogged(PAIRS_TITLE, "deconv");
  if (!d.input || !entry) return null;
  const s = d.proj.steps[stepIndex(d.proj.steps, v.step)];
  const inputs = d.input.steps[d.input.steps.length - 1].blobs;
  return el("section", {class: "cv-section"},
    el("h3", {text: PAIRS_TITLE}),
    el("div", {class: "cv-pairs"}, inputs.map((url, i) => probePair(v, d, entry, s, url, i))));
}

const TOPK_TITLE = "Top activations over the held-out set";

function topkCaption(d, tag, step, i) {
  const row = topkRow(d.docs, tag, step, i);
  return row ? `#${i + 1} \u00b7 ${fmt(row[0])} \u00b7 image ${row[1]}` : `#${i + 1}`;
}

function topkSection(v, d) {
  if (!d.topk.length) return notLogged(TOPK_TITLE, "topk", ", with heldout=images");
  const rows = d.topk.filter((t) => t.s && t.s.steps.length).map((t) => {
    const s = t.s.steps[stepIndex(t.s.steps, v.step)];
    const what = t.tag.endsWith("_projections") ? "deconv projections" : "patches";
    return el("div", {class: "cv-topk-row", "data-tag": t.tag}, el("div", {class: "cv-row-label", text: what}),
      s.blobs.map((url, i) => el("figure", {}, imageEl(url, "cv-topk"), el("figcaption", {text: topkCaption(d, t.tag, s.step, i)}))));
  });
  return el("section", {class: "cv-section"}, el("h3", {text: TOPK_TITLE}), rows);
}

function visSection(v, d) {
  const shown = d.vis.filter((t) => t.s && t.s.steps.length);
  if (!shown.length) return notLogged("Feature visualization", "featurevis");
  return el("section", {class: "cv-section cv-vis-section"}, el("h3", {text: "Feature visualization"}),
    shown.map((t) => {
      const s = t.s.steps[stepIndex(t.s.steps, v.step)], c = t.s.content;
      const what = (c.labels && c.labels[0]) || c.detail;
      const values = el("figcaption", {class: "cv-values"}), warn = el("div", {class: "cv-warn", hidden: true});
      pngData(s.blobs[0]).then((data) => {
        const [text, warning] = optimizedText(data, d.docs);
        values.textContent = text;
        warn.textContent = warning || "";
        warn.hidden = !warning;
      }).catch(() => {});
      return el("figure", {class: "cv-vis", "data-tag": t.tag, "data-step": s.step},
        imageEl(s.blobs[0], "cv-topk cv-vis-img", `feature visualization of ${v.layer} map ${v.map}`),
        el("figcaption", {text: `${what} \u00b7 step ${s.step}`}),
        c.params && c.params.objective ? el("figcaption", {text: c.params.objective}) : null, values, warn);
    }));
}

// As on Microscope's unit pages: the dataset examples and the feature visualization side by side.
function examplesSection(v, d) {
  const parts = [topkSection(v, d), visSection(v, d)].filter(Boolean);
  return parts.length ? el("div", {class: "cv-unit-examples"}, parts) : null;
}

// Evolution: the projection on the chosen probe, cropped to that step's field, at every step.
function evolutionSection(v, d, entry, stepper) {
  if (!d.proj) return notLogged("Evolution across training", "deconv");
  if (!entry) return null;
  const strip = el("div", {class: "cv-evolution cv-unit-evolution"});
  const size = d.docs.walk.input_size;
  const items = d.proj.steps.map((s) => {
    const peak = peakOf(d, v, s.step, v.probe);
    const url = s.blobs[Math.min(v.probe, s.blobs.length - 1)];
    return {step: s.step, url, win: peak ? unitWindow(entry, peak[0], peak[1], size) : null};
  });
  evolutionStrip(strip, items, stepIndex(d.proj.steps, v.step), (i) => stepper.set(i));
  strip.querySelectorAll("figure").forEach((fig, i) => {
    if (items[i].win) fig.querySelector("img").replaceWith(cropEl(items[i].url, items[i].win, size, 96));
  });
  return el("section", {class: "cv-section"}, el("h3", {text: `Evolution across training (probe ${v.probe})`}), strip);
}

function probeSelect(v, d, redraw) {
  const n = d.input ? d.input.steps[d.input.steps.length - 1].blobs.length : 0;
  const select = el("select", {class: "cv-index", "aria-label": "probe image"});
  for (let i = 0; i < n; i++) select.append(el("option", {value: i, text: probeName(d.docs, null, i)}));
  select.value = String(v.probe);
  select.addEventListener("change", () => { v.probe = Number(select.value); redraw(); });
  return select;
}

export async function renderUnit(root, v) {
  const d = await unitData(v);
  const entry = layerEntry(d.docs.walk, v.layer);
  const steps = d.proj ? d.proj.steps : [];
  const body = el("div", {class: "cv-unit-body"});
  const sheet = filtersTag(v.run, v.layer);
  const evolution = () => {
    const parts = [evolutionSection(v, d, entry, stepper), sheet ? filterSection(v.run, sheet, v.step, v.map) : null]
      .filter(Boolean);
    return parts.length > 1 ? el("div", {class: "cv-unit-examples cv-unit-evolution-row"}, parts) : parts[0];
  };
  const draw = () => body.replaceChildren(...[pairsSection(v, d, entry), examplesSection(v, d), evolution()]
    .filter(Boolean));
  const stepper = stepControl(() => steps.length, (i) => `step ${steps[i].step}`, (i) => {
    v.step = steps[i].step;
    v.follow = i === steps.length - 1; // on reload, a page showing the newest step shows the next newest
    draw();
  });
  root.replaceChildren(el("div", {class: "cv-page cv-unit-page", "data-layer": v.layer, "data-map": v.map},
    header(v, d, entry), el("div", {class: "cv-controls"}, stepper.element, probeSelect(v, d, draw)), body));
  if (steps.length) stepper.set(v.follow || v.step === undefined ? steps.length - 1 : stepIndex(steps, v.step));
  else draw();
  return {refresh: () => renderUnit(root, v)};
}
