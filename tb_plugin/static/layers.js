// The network's layers in forward order (from the run's logged walk), each with its
// output size and receptive field; layers with cards are marked. Picking one filters the
// cards to it and makes it the layer whose receptive fields hover shows on input-size maps.

import {el, state} from "./common.js";

function chip(layer, count, selected, onPick) {
  const rf = layer.rf_size ? `RF ${layer.rf_size[0]}px \u00b7 /${layer.rf_stride[0]}` : "";
  const shape = (layer.output_shape || []).join("\u00d7");
  const cls = ["cv-layer-chip", count ? "cv-has-cards" : "", selected ? "cv-selected" : ""].filter(Boolean).join(" ");
  return el("button", {type: "button", class: cls, "data-layer": layer.name,
    title: `${layer.name} (${layer.type}) \u00b7 output ${shape}${rf ? ` \u00b7 receptive field ${layer.rf_size.join("\u00d7")} px, ` +
      `stride ${layer.rf_stride.join("\u00d7")}, padding ${layer.rf_padding.join("\u00d7")}` : ""}`,
    onclick: () => onPick(selected ? "" : layer.name)},
  el("span", {class: "cv-layer-name", text: layer.name}),
  el("span", {class: "cv-layer-info", text: [shape, rf].filter(Boolean).join(" \u00b7 ")}),
  count ? el("span", {class: "cv-layer-count", text: `${count} cards`}) : null);
}

// Spatial layers with cards, every conv and pool, and the logged non-spatial ones (the class scores).
function shown(walk, counts) {
  return walk.layers.filter((l) => counts[l.name] ||
    (l.rf_size && /Conv|Pool/.test(l.type)));
}

export function renderLayerStrip(container, walk, counts, onPick) {
  if (!walk || !walk.layers) {
    container.replaceChildren();
    container.hidden = true;
    return;
  }
  container.hidden = false;
  const chips = shown(walk, counts).map((l) => chip(l, counts[l.name] || 0, state.filters.layer === l.name, onPick));
  container.replaceChildren(el("span", {class: "cv-strip-title", text: "Layers, input \u2192 output"}), ...chips);
}
