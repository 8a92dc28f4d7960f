// The ConvViz dashboard: an ES module TensorBoard loads in an iframe and calls
// render() on. Plain DOM, no framework, no CDN. It reads the plugin's JSON
// routes relative to the iframe's <base href="plugin/convviz/">:
//   tags                 {runs: {run: {tag: content}}, input_tag, kinds, overlay_kinds,
//                         grid_kinds, method_order}
//   series?run=R&tag=T   {content, steps: [{step, wall_time, blobs: [url]}]}
//   blob?key=K           image bytes
// The tag kinds and the method order come from the tags route (tb_plugin/metadata.py
// is their one source), never from copies here.
// Cards are created empty and filled when they scroll into view, so a logdir
// with thousands of images stays responsive.
//
// Modules: this one (toolbar, filters, the list of cards, loading), static/card.js
// (one card), static/common.js (state, DOM and fetch helpers).

import {clearError, el, getJSON, showError, state} from "./static/common.js";
import {makeCard} from "./static/card.js";

const PAGE = 48; // cards per page

// ------------------------------------------------------------------ toolbar
function options(select, values, allLabel) {
  const current = select.value;
  select.replaceChildren(el("option", {value: "", text: allLabel}));
  for (const v of values) select.append(el("option", {value: v, text: v}));
  select.value = values.includes(current) ? current : "";
}

// Cards in the order of the pipeline: probe images, then method by method.
function rank(content) {
  const order = state.schema.method_order;
  const i = order.indexOf(content.method);
  return i < 0 ? order.length : i;
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
  if (pages > 1) pager.append(...pagerButtons(pages));
}

function pagerButtons(pages) {
  const go = (p) => () => { state.page = p; renderCards(); window.scrollTo(0, 0); };
  return [
    el("button", {type: "button", text: "\u2039 previous", disabled: state.page === 0, onclick: go(state.page - 1)}),
    el("span", {text: ` page ${state.page + 1} of ${pages} `}),
    el("button", {type: "button", text: "next \u203a", disabled: state.page >= pages - 1, onclick: go(state.page + 1)})];
}

// ------------------------------------------------------------------ main
async function load() {
  clearError();
  try {
    const listing = await getJSON("tags");
    const {runs, ...schema} = listing;
    state.tags = runs || {};
    state.schema = schema;
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
