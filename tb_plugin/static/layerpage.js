// A layer page: the first convolution's filter sheet with its statistics (Zeiler & Fergus fig. 6)
// next to the evolution strips of the layer's followed maps (fig. 4: each map's deconv projection on
// probe 0 at every logged step, linked to its unit page), with one step slider for both.

import {el, runDocs, series, state, stepIndex} from "./common.js";
import {evolutionStrip, stepControl} from "./evolution.js";
import {filterSection, filtersTag} from "./filters.js";
import {layerEntry} from "./geometry.js";

function mapTags(run, layer) {
  const tags = state.tags[run] || {};
  return Object.keys(tags).filter((t) => tags[t].method === "deconv" && tags[t].layer === layer &&
    tags[t].map !== null).sort();
}

function evolutionSection(v, maps, steps, stepper) {
  const section = el("section", {class: "cv-section cv-layer-evolution"},
    el("h3", {text: "Evolution of the followed maps across training (probe 0)"}));
  if (!maps.length) {
    section.append(el("p", {class: "cv-not-logged", text: "no followed maps at this layer: deconv follows each " +
      "block's last layer by default (ConvVizCallback layers= picks others)"}));
    return section;
  }
  for (const {tag, s} of maps) {
    const strip = el("div", {class: "cv-evolution"});
    const current = stepIndex(s.steps, v.step === undefined ? Infinity : v.step);
    evolutionStrip(strip, s.steps.map((t) => ({step: t.step, url: t.blobs[0]})), current, (i) => {
      const at = steps.findIndex((x) => x === s.steps[i].step);
      if (at >= 0) stepper.set(at);
    });
    const map = s.content.map;
    section.append(el("div", {class: "cv-layer-map", "data-tag": tag},
      el("div", {class: "cv-row-label"}, `map ${map} `, el("button", {type: "button", class: "cv-unit-link",
        text: "unit page \u203a", onclick: () => state.navigate({name: "unit", run: v.run, layer: v.layer, map,
          probe: 0, step: v.step})})), strip));
  }
  return section;
}

export async function renderLayer(root, v) {
  const tag = filtersTag(v.run, v.layer), deconv = mapTags(v.run, v.layer);
  const [docs, sheet, ...maps] = await Promise.all([runDocs(v.run), tag ? series(v.run, tag) : null,
    ...deconv.map((t) => series(v.run, t))]);
  const all = [sheet, ...maps].filter(Boolean).flatMap((s) => s.steps.map((x) => x.step));
  const steps = [...new Set(all)].sort((a, b) => a - b);
  const entry = layerEntry(docs.walk, v.layer);
  const body = el("div", {class: "cv-layer-body"});
  const draw = () => body.replaceChildren(
    tag ? filterSection(v.run, tag, v.step, null, (i) => stepper.set(steps.indexOf(sheet.steps[i].step)))
      : el("section", {class: "cv-section cv-missing"}, el("h3", {text: "Filters"}),
        el("p", {class: "cv-not-logged", text: 'not logged (enable "filters" in ConvVizCallback methods)'})),
    evolutionSection(v, deconv.map((t, i) => ({tag: t, s: maps[i]})), steps, stepper));
  const stepper = stepControl(() => steps.length, (i) => `step ${steps[i]}`, (i) => {
    v.step = steps[i];
    v.follow = i === steps.length - 1;
    draw();
  });
  const sub = entry ? `output ${entry.output_shape.join("\u00d7")}` + (entry.rf_size ? ` \u00b7 receptive field ` +
    `${entry.rf_size.join("\u00d7")} px, stride ${entry.rf_stride[0]}` : "") : "";
  root.replaceChildren(el("div", {class: "cv-page cv-layer-page", "data-layer": v.layer},
    el("div", {class: "cv-page-head"},
      el("button", {type: "button", class: "cv-back", text: "\u2039 all cards", onclick: () => state.navigate({name: "cards"})}),
      el("h2", {text: `Layer ${v.layer}`}), el("span", {class: "cv-page-sub", text: sub})),
    el("div", {class: "cv-controls"}, stepper.element), body));
  if (steps.length) stepper.set(v.follow || v.step === undefined ? steps.length - 1 : stepIndex(steps.map((s) => ({step: s})), v.step));
  else draw();
  return {refresh: () => renderLayer(root, v)};
}
