// The ConvViz dashboard: an ES module TensorBoard loads in an iframe and calls
// render() on. Plain DOM, no framework, no CDN. It reads the plugin's JSON
// routes relative to the iframe's <base href="plugin/convviz/">:
//   tags                 {run: {tag: content}}
//   series?run=R&tag=T   {content, steps: [{step, wall_time, blobs: [url]}]}
//   blob?key=K           image bytes
// Cards are created empty and filled when they scroll into view, so a logdir
// with thousands of images stays responsive.

const INPUT_TAG = "input/probe/image";
const PAGE = 48; // cards per page

const state = {
  tags: {},          // run -> tag -> content
  seriesCache: new Map(), // "run\0tag" -> Promise<series>
  filters: {run: "", method: "", layer: "", text: ""},
  page: 0,
  observer: null,
};

function el(tag, attrs = {}, ...children) {
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

async function getJSON(url) {
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

function series(run, tag) {
  const key = `${run}\u0000${tag}`;
  if (!state.seriesCache.has(key)) {
    const url = `series?${new URLSearchParams({run, tag})}`;
    const promise = getJSON(url);
    promise.catch(() => state.seriesCache.delete(key)); // retry on the next view
    state.seriesCache.set(key, promise);
  }
  return state.seriesCache.get(key);
}

function showError(message) {
  const box = document.getElementById("cv-error");
  if (!box) return;
  box.hidden = false;
  box.textContent = message;
}

function clearError() {
  const box = document.getElementById("cv-error");
  if (box) {
    box.hidden = true;
    box.textContent = "";
  }
}

// ------------------------------------------------------------------ toolbar
function options(select, values, allLabel) {
  const current = select.value;
  select.replaceChildren(el("option", {value: "", text: allLabel}));
  for (const v of values) select.append(el("option", {value: v, text: v}));
  select.value = values.includes(current) ? current : "";
}

// Cards in the order of the pipeline: probe images, then method by method.
const METHOD_ORDER = ["input", "deconv", "guided", "saliency", "smoothgrad", "integrated", "gradcam",
  "occlusion", "topk", "classmodel", "boxfilter"];

function rank(content) {
  const i = METHOD_ORDER.indexOf(content.method);
  return i < 0 ? METHOD_ORDER.length : i;
}

function allEntries() {
  const out = [];
  for (const run of Object.keys(state.tags).sort()) {
    const tags = Object.keys(state.tags[run]);
    tags.sort((a, b) => rank(state.tags[run][a]) - rank(state.tags[run][b]) || (a < b ? -1 : a > b ? 1 : 0));
    for (const tag of tags) out.push({run, tag, content: state.tags[run][tag]});
  }
  return out;
}

function filtered() {
  const f = state.filters;
  const text = f.text.toLowerCase();
  return allEntries().filter(({run, tag, content}) =>
    (!f.run || run === f.run) &&
    (!f.method || content.method === f.method) &&
    (!f.layer || content.layer === f.layer) &&
    (!text || `${run} ${tag}`.toLowerCase().includes(text)));
}

function refreshFilters() {
  const entries = allEntries();
  const uniq = (xs) => [...new Set(xs)].sort();
  options(document.getElementById("cv-run"), uniq(entries.map((e) => e.run)), "all runs");
  const inRun = entries.filter((e) => !state.filters.run || e.run === state.filters.run);
  options(document.getElementById("cv-method"), uniq(inRun.map((e) => e.content.method)), "all methods");
  const inMethod = inRun.filter((e) => !state.filters.method || e.content.method === state.filters.method);
  options(document.getElementById("cv-layer"), uniq(inMethod.map((e) => e.content.layer)), "all layers");
  for (const key of ["run", "method", "layer"]) {
    state.filters[key] = document.getElementById(`cv-${key}`).value;
  }
}

function toolbar() {
  const onChange = (key) => (event) => {
    state.filters[key] = event.target.value;
    state.page = 0;
    refreshFilters();
    renderCards();
  };
  return el("div", {class: "cv-toolbar"},
    el("span", {class: "cv-title", text: "ConvViz"}),
    el("label", {}, "Run ", el("select", {id: "cv-run", onchange: onChange("run")})),
    el("label", {}, "Method ", el("select", {id: "cv-method", onchange: onChange("method")})),
    el("label", {}, "Layer ", el("select", {id: "cv-layer", onchange: onChange("layer")})),
    el("input", {id: "cv-filter", type: "search", placeholder: "filter tags", oninput: (event) => {
      state.filters.text = event.target.value;
      state.page = 0;
      renderCards();
    }}),
    el("button", {id: "cv-reload", type: "button", text: "Reload", onclick: () => load()}),
    el("span", {id: "cv-count", class: "cv-count"}));
}

// ------------------------------------------------------------------ cards
function renderCards() {
  const list = filtered();
  const cards = document.getElementById("cv-cards");
  const pager = document.getElementById("cv-pager");
  if (state.observer) state.observer.disconnect();
  cards.replaceChildren();
  pager.replaceChildren();
  const total = Object.values(state.tags).reduce((n, t) => n + Object.keys(t).length, 0);
  document.getElementById("cv-count").textContent = `${list.length} of ${total} tags`;
  if (!total) {
    cards.append(el("div", {class: "cv-empty"},
      el("p", {text: "No ConvViz data was found in this logdir yet."}),
      el("p", {text: "Log some with keras_convviz.ConvVizCallback(log_dir, probe_inputs) in model.fit, " +
        "or run: convviz demo --logdir runs/demo"})));
    return;
  }
  const pages = Math.max(1, Math.ceil(list.length / PAGE));
  state.page = Math.min(state.page, pages - 1);
  const shown = list.slice(state.page * PAGE, (state.page + 1) * PAGE);
  state.observer = new IntersectionObserver((items) => {
    for (const item of items) {
      if (item.isIntersecting) {
        state.observer.unobserve(item.target);
        item.target.cvLoad();
      }
    }
  }, {rootMargin: "300px"});
  for (const entry of shown) {
    const card = makeCard(entry);
    cards.append(card);
    state.observer.observe(card);
  }
  if (pages > 1) {
    const go = (p) => () => { state.page = p; renderCards(); window.scrollTo(0, 0); };
    pager.append(
      el("button", {type: "button", text: "\u2039 previous", disabled: state.page === 0, onclick: go(state.page - 1)}),
      el("span", {text: ` page ${state.page + 1} of ${pages} `}),
      el("button", {type: "button", text: "next \u203a", disabled: state.page >= pages - 1, onclick: go(state.page + 1)}));
  }
}

function describe(content) {
  const bits = [content.kind];
  if (content.map !== null && content.map !== undefined) bits.push(`map ${content.map}`);
  const params = content.params || {};
  for (const [k, v] of Object.entries(params)) {
    bits.push(`${k}=${typeof v === "object" ? JSON.stringify(v) : v}`);
  }
  return bits.join(" \u00b7 ");
}

function makeCard({run, tag, content}) {
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

function imageEl(url, cls, alt) {
  const img = el("img", {class: cls, src: url, alt: alt || "", loading: "lazy", decoding: "async"});
  img.addEventListener("error", () => {
    img.classList.add("cv-broken");
    img.title = `could not load ${url}`;
  });
  return img;
}

async function fillCard(card, run, tag, content) {
  const data = await series(run, tag);
  const body = card.querySelector(".cv-body");
  const steps = data.steps || [];
  if (!steps.length) {
    body.replaceChildren(el("div", {class: "cv-empty", text: "no steps logged yet"}));
    return;
  }
  const labels = content.labels || [];
  const maxLength = Math.max(...steps.map((s) => s.blobs.length));
  const view = {step: steps.length - 1, index: 0, overlay: false, opacity: 0.6, grid: content.kind === "patches"};

  const stage = el("div", {class: "cv-stage"});
  const stepLabel = el("span", {class: "cv-step-label"});
  const slider = el("input", {class: "cv-step", type: "range", min: 0, max: steps.length - 1,
    value: view.step, "aria-label": "step", disabled: steps.length < 2});
  const controls = el("div", {class: "cv-controls"},
    el("label", {class: "cv-slider"}, stepLabel, slider));

  let indexSelect = null;
  if (maxLength > 1) {
    indexSelect = el("select", {class: "cv-index", "aria-label": "image"});
    for (let i = 0; i < maxLength; i++) {
      indexSelect.append(el("option", {value: i, text: labels[i] || `image ${i}`}));
    }
    indexSelect.addEventListener("change", () => { view.index = Number(indexSelect.value); draw(); });
    controls.append(indexSelect);
    const gridBox = el("input", {type: "checkbox", class: "cv-grid-toggle", checked: view.grid});
    gridBox.addEventListener("change", () => { view.grid = gridBox.checked; draw(); });
    controls.append(el("label", {class: "cv-check"}, gridBox,
      content.kind === "patches" ? " top-k grid" : " all images"));
  }

  // Overlay: blend this heatmap over the logged probe image of the same run.
  let inputSeries = null;
  const canOverlay = content.kind === "heatmap" && Boolean(state.tags[run] && state.tags[run][INPUT_TAG]);
  if (canOverlay) {
    const box = el("input", {type: "checkbox", class: "cv-overlay-toggle"});
    const opacity = el("input", {type: "range", class: "cv-opacity", min: 0, max: 100,
      value: Math.round(view.opacity * 100), "aria-label": "overlay opacity"});
    box.addEventListener("change", async () => {
      view.overlay = box.checked;
      if (view.overlay && !inputSeries) {
        try {
          inputSeries = await series(run, INPUT_TAG);
        } catch (err) {
          view.overlay = false;
          box.checked = false;
          showError(`overlay: ${err.message}`);
        }
      }
      draw();
    });
    opacity.addEventListener("input", () => {
      view.opacity = Number(opacity.value) / 100;
      const top = stage.querySelector(".cv-heat");
      if (top) top.style.opacity = String(view.opacity);
    });
    controls.append(el("label", {class: "cv-check"}, box, " overlay"),
      el("label", {class: "cv-slider"}, "opacity ", opacity));
  }

  const evoButton = el("button", {type: "button", class: "cv-evolution-button", text: "evolution",
    title: "this image across all logged steps", disabled: steps.length < 2});
  const strip = el("div", {class: "cv-evolution", hidden: true});
  evoButton.addEventListener("click", () => {
    strip.hidden = !strip.hidden;
    if (!strip.hidden) drawStrip();
  });
  controls.append(evoButton);

  function inputFor(index) {
    const s = inputSeries && inputSeries.steps;
    if (!s || !s.length) return null;
    const last = s[s.length - 1];
    return last.blobs[Math.min(index, last.blobs.length - 1)];
  }

  function draw() {
    const s = steps[view.step];
    stepLabel.textContent = `step ${s.step} `;
    card.dataset.step = String(s.step);
    if (view.grid && s.blobs.length > 1) {
      stage.replaceChildren(el("div", {class: "cv-grid"}, s.blobs.map((url, i) =>
        el("figure", {}, imageEl(url, "cv-cell"), el("figcaption", {text: labels[i] || `#${i + 1}`})))));
      return;
    }
    const url = s.blobs[Math.min(view.index, s.blobs.length - 1)];
    const base = view.overlay ? inputFor(view.index) : null;
    if (base) {
      const heat = imageEl(url, "cv-main cv-heat");
      heat.style.opacity = String(view.opacity);
      stage.replaceChildren(el("div", {class: "cv-overlay"}, imageEl(base, "cv-base"), heat));
    } else {
      stage.replaceChildren(imageEl(url, "cv-main"));
    }
    if (!strip.hidden) drawStrip();
  }

  function drawStrip() {
    strip.replaceChildren(...steps.map((s, i) => {
      const url = s.blobs[Math.min(view.index, s.blobs.length - 1)];
      const fig = el("figure", {class: i === view.step ? "cv-current" : ""},
        imageEl(url, "cv-thumb", `step ${s.step}`), el("figcaption", {text: String(s.step)}));
      fig.addEventListener("click", () => { view.step = i; slider.value = i; draw(); });
      return fig;
    }));
  }

  slider.addEventListener("input", () => { view.step = Number(slider.value); draw(); });
  body.replaceChildren(stage, controls, strip);
  draw();
}

// ------------------------------------------------------------------ main
async function load() {
  clearError();
  try {
    state.tags = await getJSON("tags");
    state.seriesCache.clear();
  } catch (err) {
    showError(`Could not list ConvViz tags: ${err.message}`);
    return;
  }
  refreshFilters();
  renderCards();
}

export async function render() {
  document.head.append(el("link", {rel: "stylesheet", href: "static/style.css"}));
  document.body.classList.add("cv-root");
  document.body.replaceChildren(
    toolbar(),
    el("div", {id: "cv-error", class: "cv-error", role: "alert", hidden: true}),
    el("div", {id: "cv-cards", class: "cv-cards"}),
    el("div", {id: "cv-pager", class: "cv-pager"}));
  window.addEventListener("unhandledrejection", (event) => {
    showError(`Unexpected error: ${event.reason && event.reason.message || event.reason}`);
  });
  await load();
}
