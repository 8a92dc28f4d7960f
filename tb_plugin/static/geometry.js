// Receptive fields from the logged model walk, in the browser (no request per hover).
// A layer entry has rf_size, rf_stride, rf_padding as (height, width) pairs
// (keras_convviz.fields): unit (i, j) sees input rows i*stride - padding .. + size - 1.

import {el} from "./common.js";

export function layerEntry(walk, name) {
  if (!walk || !walk.layers) return null;
  const entry = walk.layers.find((l) => l.name === name);
  return entry && entry.rf_size ? entry : null;
}

// The unit of `entry` whose field is centred nearest input pixel (y, x), clamped to the map.
export function unitAt(entry, y, x) {
  const pick = (p, axis) => {
    const centre = (p + entry.rf_padding[axis] - (entry.rf_size[axis] - 1) / 2) / entry.rf_stride[axis];
    const limit = entry.output_shape[axis] - 1;
    return Math.max(0, Math.min(limit, Math.round(centre)));
  };
  return [pick(y, 0), pick(x, 1)];
}

// The input window [y0, y1, x0, x1) of unit (i, j), clipped to the image `size` = [H, W].
export function unitWindow(entry, i, j, size) {
  const y0 = i * entry.rf_stride[0] - entry.rf_padding[0];
  const x0 = j * entry.rf_stride[1] - entry.rf_padding[1];
  return [Math.max(0, y0), Math.min(size[0], y0 + entry.rf_size[0]),
    Math.max(0, x0), Math.min(size[1], x0 + entry.rf_size[1])];
}

// Where an image of the input size is drawn inside its element (object-fit: contain).
function contentBox(img, size) {
  const w = img.clientWidth, h = img.clientHeight;
  const scale = Math.min(w / size[1], h / size[0]);
  return {scale, left: img.offsetLeft + (w - size[1] * scale) / 2, top: img.offsetTop + (h - size[0] * scale) / 2};
}

// Draw (or move) the box of window `win` over `img` inside `frame` (position: relative).
export function drawBox(frame, img, win, size, cls = "cv-rf-box") {
  let box = frame.querySelector(`:scope > .${cls}`);
  if (!box) {
    box = el("div", {class: cls});
    frame.append(box);
  }
  const {scale, left, top} = contentBox(img, size);
  const [y0, y1, x0, x1] = win;
  Object.assign(box.style, {left: `${left + x0 * scale}px`, top: `${top + y0 * scale}px`,
    width: `${(x1 - x0) * scale}px`, height: `${(y1 - y0) * scale}px`});
  box.dataset.window = win.join(",");
  box.hidden = false;
  return box;
}

// Hovering `img` (a map at input size) highlights the input window the position sees, for the
// layer `getLayer()` names; `onWindow(win, unit, entry)` mirrors it elsewhere (e.g. on the probe).
export function attachHover(frame, img, walk, getLayer, onWindow) {
  const size = walk && walk.input_size;
  if (!size) return;
  const readout = el("div", {class: "cv-rf-readout", hidden: true});
  frame.append(readout);
  img.addEventListener("mousemove", (event) => {
    const entry = layerEntry(walk, getLayer());
    if (!entry) return;
    const {scale, left, top} = contentBox(img, size);
    const y = (event.offsetY + img.offsetTop - top) / scale, x = (event.offsetX + img.offsetLeft - left) / scale;
    const unit = unitAt(entry, y, x);
    const win = unitWindow(entry, unit[0], unit[1], size);
    drawBox(frame, img, win, size);
    readout.hidden = false;
    readout.textContent = `${entry.name} unit (${unit[0]}, ${unit[1]}) sees rows ${win[0]}\u2013${win[1] - 1}, ` +
      `cols ${win[2]}\u2013${win[3] - 1}`;
    if (onWindow) onWindow(win, unit, entry);
  });
  img.addEventListener("mouseleave", () => {
    const box = frame.querySelector(":scope > .cv-rf-box");
    if (box) box.hidden = true;
    readout.hidden = true;
    if (onWindow) onWindow(null);
  });
}

// A crop of an image of the input size to window `win`, drawn `px` wide (pure CSS, nearest pixels).
export function cropEl(url, win, size, px, cls = "cv-crop") {
  const [y0, y1, x0, x1] = win;
  const scale = px / Math.max(1, x1 - x0, y1 - y0);
  const img = el("img", {src: url, alt: "", style: `width:${size[1] * scale}px;height:${size[0] * scale}px;` +
    `margin-left:${-x0 * scale}px;margin-top:${-y0 * scale}px`});
  return el("div", {class: cls, "data-window": win.join(","),
    style: `width:${(x1 - x0) * scale}px;height:${(y1 - y0) * scale}px`}, img);
}
