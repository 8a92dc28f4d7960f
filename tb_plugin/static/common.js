// Shared by the dashboard's modules: the state, DOM and fetch helpers.

export const state = {
  tags: {},          // run -> tag -> content
  schema: {input_tag: "", kinds: [], overlay_kinds: [], grid_kinds: [], method_order: []},
  seriesCache: new Map(), // "run\0tag" -> Promise<series>
  filters: {run: "", method: "", layer: "", text: ""},
  page: 0,
  observer: null,
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

export function series(run, tag) {
  const key = `${run}\u0000${tag}`;
  if (!state.seriesCache.has(key)) {
    const url = `series?${new URLSearchParams({run, tag})}`;
    const promise = getJSON(url);
    promise.catch(() => state.seriesCache.delete(key)); // retry on the next view
    state.seriesCache.set(key, promise);
  }
  return state.seriesCache.get(key);
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
  const img = el("img", {class: cls, src: url, alt: alt || "", loading: "lazy", decoding: "async"});
  img.addEventListener("error", () => {
    img.classList.add("cv-broken");
    img.title = `could not load ${url}`;
  });
  return img;
}
