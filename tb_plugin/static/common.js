// Shared by the dashboard's modules: the state, DOM and fetch helpers, and the
// run documents (model walk, per-step predictions, units and value ranges).

export const state = {
  tags: {},          // run -> tag -> {kind, method, layer, map, max_step} (the full content is the series')
  schema: {input_tag: "", kinds: [], overlay_kinds: [], grid_kinds: [], method_order: [], json_kinds: [],
    walk_tag: "", step_tag: "", colormaps: {}},
  seriesCache: new Map(), // "run\0tag" -> Promise<series>
  runCache: new Map(),    // run -> Promise<{walk, steps}>
  filters: {run: "", method: "", layer: "", text: ""},
  page: 0,
  observer: null,
  view: {name: "cards"}, // or {name: "unit", run, layer, map, probe, step} / {name: "image", run, probe, step}
  overlay: {on: false, opacity: 0.6}, // the image page's overlay, kept across reloads
};

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

export async function getJSON(url) {
  let response;
  try {
    response = await fetch(url, {credentials: "same-origin"});
  } catch (err) {
    throw new Error(`cannot reach TensorBoard (${url}): ${err.message}`);
  }
  if (!response.ok) {
    const body = (await response.text()).trim().split("\n")[0];
    throw new Error(`${url} answered ${response.status}: ${body}`);
  }
  return response.json();
}

function cached(cache, key, url) {
  if (!cache.has(key)) {
    const promise = getJSON(url);
    promise.catch(() => cache.delete(key)); // retry on the next view
    cache.set(key, promise);
  }
  return cache.get(key);
}

export function series(run, tag) {
  return cached(state.seriesCache, `${run}\u0000${tag}`, `series?${new URLSearchParams({run, tag})}`);
}

// The run's documents: {walk: {layers, input_size, class_names} | null, steps: {step: {predictions,
// explained, units, ranges}}}. Runs logged before schema 2 have none: every helper copes with null.
export function runDocs(run) {
  return cached(state.runCache, run, `run?${new URLSearchParams({run})}`).catch(() => ({walk: null, steps: {}}));
}

export function forget(run, tag) {
  state.seriesCache.delete(`${run}\u0000${tag}`);
}

export function showError(message) {
  const box = document.getElementById("cv-error");
  if (!box) return;
  box.hidden = false;
  box.textContent = message;
}

export function clearError() {
  const box = document.getElementById("cv-error");
  if (box) {
    box.hidden = true;
    box.textContent = "";
  }
}

export function imageEl(url, cls, alt) {
  const img = el("img", {class: cls, src: url, alt: alt || "", decoding: "async"});
  img.addEventListener("error", () => {
    img.classList.add("cv-broken");
    img.title = `could not load ${url}`;
  });
  return img;
}

// ------------------------------------------------------------ class names and numbers
export function className(docs, index) {
  const names = docs && docs.walk && docs.walk.class_names;
  if (index === null || index === undefined || index < 0) return "?";
  return names && names[index] !== undefined ? names[index] : `class ${index}`;
}

export function fmt(value) {
  if (!Number.isFinite(value)) return String(value);
  if (value === 0) return "0";
  const a = Math.abs(value);
  return a >= 1e4 || a < 1e-3 ? value.toExponential(2) : value.toPrecision(3).replace(/\.?0+$/, "");
}

export function percent(p) {
  return `${(100 * p).toFixed(p >= 0.995 || p < 0.1 ? 1 : 0)}%`;
}

// The step document at `step`, or the last one before it (methods logged once, e.g. box filters).
export function stepDoc(docs, step) {
  if (!docs || !docs.steps) return null;
  if (docs.steps[step]) return docs.steps[step];
  const before = Object.keys(docs.steps).map(Number).filter((s) => s <= step).sort((a, b) => b - a);
  return before.length ? docs.steps[before[0]] : null;
}

// "circle 93% (explains square)": the prediction and explained class of probe `index` at `step`.
export function probeCaption(docs, step, index) {
  const doc = stepDoc(docs, step);
  if (!doc || !doc.predictions || !doc.predictions[index]) return "";
  const [top, p] = doc.predictions[index][0];
  const explained = doc.explained ? doc.explained[index] : top;
  const tail = explained === top ? "" : ` \u00b7 explains ${className(docs, explained)}`;
  return `predicted ${className(docs, top)} ${percent(p)}${tail}`;
}

export function probeName(docs, labels, index) {
  return (labels && labels[index]) || `image ${index}`;
}

// The index of the last step <= `step` in a series' steps (or 0).
export function stepIndex(steps, step) {
  let best = 0;
  steps.forEach((s, i) => { if (s.step <= step) best = i; });
  return best;
}

// ------------------------------------------------------------ numbers inside the pictures
// Values that change every step (a class model's objective and probability, the filter
// statistics, the invariance curves) travel in each logged PNG as a tEXt chunk "convviz"
// holding JSON (keras_convviz/loggers/annotate.py): read from the same blob URL the picture uses.
const pngCache = new Map();

export function parsePngText(buffer, keyword = "convviz") {
  const bytes = new Uint8Array(buffer), view = new DataView(buffer), latin = new TextDecoder("latin1");
  let pos = 8;
  while (pos + 8 <= bytes.length) {
    const length = view.getUint32(pos), type = latin.decode(bytes.subarray(pos + 4, pos + 8));
    if (type === "tEXt") {
      const body = bytes.subarray(pos + 8, pos + 8 + length), zero = body.indexOf(0);
      if (zero > 0 && latin.decode(body.subarray(0, zero)) === keyword) return JSON.parse(latin.decode(body.subarray(zero + 1)));
    }
    if (type === "IEND") break;
    pos += 12 + length;
  }
  return null;
}

// The JSON a picture carries (null when none), cached per URL.
export function pngData(url) {
  if (!pngCache.has(url)) {
    const promise = fetch(url, {credentials: "same-origin"}).then((response) => {
      if (!response.ok) throw new Error(`${url} answered ${response.status}`);
      return response.arrayBuffer();
    }).then((buffer) => parsePngText(buffer));
    promise.catch(() => pngCache.delete(url));
    pngCache.set(url, promise);
  }
  return pngCache.get(url);
}

// "objective 12.3 (random image 0.41) · p(triangle) 97%": an optimized picture's numbers, and a
// warning when the optimization did not beat a random image. Returns [text, warning or null].
export function optimizedText(data, docs) {
  if (!data || data.objective === undefined) return ["", null];
  const name = data.objective_name ? `${data.objective_name} ` : "objective ";
  const random = data.random === null || data.random === undefined ? "" : ` (random image ${fmt(data.random)})`;
  let prob = "";
  if (data.probability !== null && data.probability !== undefined) {
    prob = data.target !== null && data.target !== undefined ? ` \u00b7 p(${className(docs, data.target)}) ${percent(data.probability)}`
      : ` \u00b7 model sees ${className(docs, data.top)} ${percent(data.probability)}`;
  }
  const warning = data.failed ? `optimization failed: the objective ${fmt(data.objective)} is not above a random ` +
    `image's ${fmt(data.random)}` : null;
  return [`${name}${fmt(data.objective)}${random}${prob}`, warning];
}
