// The ConvViz dashboard: an ES module TensorBoard loads in an iframe and calls
// render() on. Plain DOM, no framework, no CDN. It reads the plugin's JSON
// routes relative to the iframe's <base href="plugin/convviz/">:
//   tags                 {runs: {run: {tag: {kind, method, layer, map, max_step}}}, input_tag, kinds,
//                         overlay_kinds, grid_kinds, method_order, walk_tag, step_tag, json_kinds, colormaps}
//   series?run=R&tag=T   {content (all of it: params, labels, scale), steps: [{step, wall_time, blobs: [url]}]}
//   run?run=R            {walk, steps: {step: {predictions, explained, units, ranges}}}
//   blob?key=K           image bytes
// The tag kinds, method order and colour maps come from the tags route
// (tb_plugin/metadata.py is their one source), never from copies here.
//
// Views: the cards (filtered by run, method, layer and text; in pipeline and
// network order; filled lazily as they scroll into view), a unit page
// (static/unit.js), an image page (static/imagepage.js) and a layer page (static/layerpage.js). TensorBoard's reload
// (static/host.js) and the Reload button add new tags and steps in place: the
// view, the selected layer, unit, step and the scroll position stay.

import {clearError, el, getJSON, runDocs, showError, state} from "./static/common.js";
import {makeCard} from "./static/card.js";
import {onHostReload} from "./static/host.js";
import {renderImage} from "./static/imagepage.js";
import {renderLayer} from "./static/layerpage.js";
import {renderLayerStrip} from "./static/layers.js";
import {renderUnit} from "./static/unit.js";

const PAGE = 48; // cards per page
const cardCache = new Map(); // "run\0tag" -> card element (keeps a card's state across reloads)
let page = null;             // the unit or image page shown, {refresh}
let cardsScroll = 0;

// ------------------------------------------------------------------ toolbar
function options(select, values, allLabel) {
  const current = select.value;
  select.replaceChildren(el("option", {value: "", text: allLabel}));
  for (const v of values) select.append(el("option", {value: v, text: v}));
  select.value = values.includes(current) ? current : "";
}

function layerRank(name) {
  const walk = state.walk;
  const i = walk ? walk.layers.findIndex((l) => l.name === name) : -1;
  return i < 0 ? 1e6 : i;
}

// Cards in the order of the pipeline (probe images, then method by method), layers in network order.
function compare(a, b) {
  const order = state.schema.method_order;
  const rank = (c) => (order.indexOf(c.method) < 0 ? order.length : order.indexOf(c.method));
  return a.run.localeCompare(b.run) || rank(a.content) - rank(b.content) ||
    layerRank(a.content.layer) - layerRank(b.content.layer) || (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0);
}

// Every method gets its share of each page: a run's cards go in blocks of `quota` per method (pipeline
// order inside a block), so 40 deconv maps do not push the class models and feature visualizations to page 2.
function balanced(entries) {
  const perRun = {}, rank = new Map();
  for (const e of entries) {
    const methods = (perRun[e.run] = perRun[e.run] || {});
    methods[e.content.method] = (methods[e.content.method] || 0) + 1;
    rank.set(e, methods[e.content.method] - 1);
  }
  const quota = (run) => Math.max(1, Math.floor(PAGE / Object.keys(perRun[run]).length));
  const block = (e) => Math.floor(rank.get(e) / quota(e.run));
  return entries.sort((a, b) => a.run.localeCompare(b.run) || block(a) - block(b) || compare(a, b));
}

function allEntries() {
  const out = [];
  const hidden = state.schema.json_kinds || [];
  for (const run of Object.keys(state.tags)) {
    for (const [tag, content] of Object.entries(state.tags[run])) {
      if (!hidden.includes(content.kind)) out.push({run, tag, content});
    }
  }
  return balanced(out.sort(compare));
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
  const uniq = (xs) => [...new Set(xs)];
  options(document.getElementById("cv-run"), uniq(entries.map((e) => e.run)).sort(), "all runs");
  const inRun = entries.filter((e) => !state.filters.run || e.run === state.filters.run);
  options(document.getElementById("cv-method"), uniq(inRun.map((e) => e.content.method)), "all methods");
  const inMethod = inRun.filter((e) => !state.filters.method || e.content.method === state.filters.method);
  const layers = uniq(inMethod.map((e) => e.content.layer)).sort((a, b) => layerRank(a) - layerRank(b));
  options(document.getElementById("cv-layer"), layers, "all layers");
  for (const key of ["run", "method", "layer"]) {
    state.filters[key] = document.getElementById(`cv-${key}`).value || (key === "layer" ? state.filters.layer : "");
  }
  const counts = {};
  for (const e of inRun) counts[e.content.layer] = (counts[e.content.layer] || 0) + 1;
  renderLayerStrip(document.getElementById("cv-layers"), state.walk, counts, pickLayer);
}

function pickLayer(name) {
  state.filters.layer = name;
  document.getElementById("cv-layer").value = name;
  state.page = 0;
  refreshFilters();
  if (state.view.name === "cards") renderCards();
}

function toolbar() {
  const onChange = (key) => async (event) => {
    state.filters[key] = event.target.value;
    state.page = 0;
    if (key === "run") await loadWalk();
    refreshFilters();
    navigate({name: "cards"});
  };
  return el("div", {class: "cv-toolbar"},
    el("span", {class: "cv-title", text: "ConvViz"}),
    el("label", {}, "Run ", el("select", {id: "cv-run", onchange: onChange("run")})),
    el("label", {}, "Method ", el("select", {id: "cv-method", onchange: onChange("method")})),
    el("label", {}, "Layer ", el("select", {id: "cv-layer", onchange: onChange("layer")})),
    el("input", {id: "cv-filter", type: "search", placeholder: "filter tags", oninput: (event) => {
      state.filters.text = event.target.value;
      state.page = 0;
      navigate({name: "cards"});
    }}),
    el("button", {id: "cv-image-view", type: "button", text: "Image page", title: "every map of one probe image",
      onclick: () => navigate({name: "image", run: currentRun(), probe: 0})}),
    el("button", {id: "cv-reload", type: "button", text: "Reload", onclick: () => reload()}),
    el("span", {id: "cv-count", class: "cv-count"}));
}

function currentRun() {
  return state.filters.run || Object.keys(state.tags).sort()[0] || "";
}
// ------------------------------------------------------------------ cards
function cardFor(entry) {
  const key = `${entry.run}\u0000${entry.tag}`;
  if (!cardCache.has(key)) cardCache.set(key, makeCard(entry));
  return cardCache.get(key);
}

function emptyMessage() {
  return el("div", {class: "cv-empty"},
    el("p", {text: "No ConvViz data was found in this logdir yet."}),
    el("p", {text: "Log some with keras_convviz.ConvVizCallback(log_dir, probe_inputs) in model.fit, " +
      "or run: convviz demo --logdir runs/demo"}));
}

// Nothing matches the filters: say why, and for a layer without maps which methods log which layers.
function noMatch() {
  const f = state.filters, inRun = allEntries().filter((e) => !f.run || e.run === f.run);
  if (!f.layer || inRun.some((e) => e.content.layer === f.layer)) {
    return el("div", {class: "cv-empty cv-no-match", role: "status", text: "No cards match the filters."});
  }
  const byMethod = {};
  for (const e of inRun) (byMethod[e.content.method] = byMethod[e.content.method] || new Set()).add(e.content.layer);
  const order = state.schema.method_order, rank = (m) => (order.indexOf(m) < 0 ? order.length : order.indexOf(m));
  const methods = Object.keys(byMethod).sort((a, b) => rank(a) - rank(b));
  return el("div", {class: "cv-empty cv-no-maps", role: "status", "data-layer": f.layer},
    el("p", {class: "cv-no-maps-title", text: `No maps were logged for layer ${f.layer}.`}),
    el("p", {text: "ConvVizCallback logs each method at its own layers (the layers= option picks them); " +
      "in this run:"}),
    el("ul", {class: "cv-method-layers"}, methods.map((m) => el("li", {"data-method": m},
      el("b", {text: m}), `: ${[...byMethod[m]].sort((a, b) => layerRank(a) - layerRank(b)).join(", ")}`))),
    el("button", {type: "button", class: "cv-clear-layer", text: "show all layers", onclick: () => pickLayer("")}));
}

function observer() {
  if (state.observer) state.observer.disconnect();
  state.observer = new IntersectionObserver((items) => {
    for (const item of items) {
      if (item.isIntersecting) {
        state.observer.unobserve(item.target);
        item.target.cvLoaded = true;
        item.target.cvLoad();
      }
    }
  }, {rootMargin: "300px"});
  return state.observer;
}

function renderCards() {
  const list = filtered();
  const main = document.getElementById("cv-main");
  const total = allEntries().length;
  document.getElementById("cv-count").textContent = `${list.length} of ${total} tags`;
  if (!total) {
    main.replaceChildren(emptyMessage());
    return;
  }
  if (!list.length) {
    main.replaceChildren(noMatch());
    return;
  }
  const pages = Math.max(1, Math.ceil(list.length / PAGE));
  state.page = Math.min(state.page, pages - 1);
  const watch = observer();
  const cards = list.slice(state.page * PAGE, (state.page + 1) * PAGE).map(cardFor);
  for (const card of cards) if (!card.cvLoaded) watch.observe(card);
  main.replaceChildren(el("div", {id: "cv-cards", class: "cv-cards"}, cards),
    el("div", {id: "cv-pager", class: "cv-pager"}, pages > 1 ? pagerButtons(pages) : []));
}

function pagerButtons(pages) {
  const go = (p) => () => { state.page = p; renderCards(); window.scrollTo(0, 0); };
  return [
    el("button", {type: "button", text: "\u2039 previous", disabled: state.page === 0, onclick: go(state.page - 1)}),
    el("span", {text: ` page ${state.page + 1} of ${pages} `}),
    el("button", {type: "button", text: "next \u203a", disabled: state.page >= pages - 1, onclick: go(state.page + 1)})];
}

// ------------------------------------------------------------------ views
async function showPage(view) {
  const main = document.getElementById("cv-main");
  main.replaceChildren(el("div", {class: "cv-loading", text: "loading\u2026"}));
  try {
    const pages = {unit: renderUnit, image: renderImage, layer: renderLayer};
    page = await (pages[view.name] || renderImage)(main, view);
  } catch (err) {
    main.replaceChildren(el("div", {class: "cv-card-error", role: "alert", text: String(err.message || err)}));
  }
}

async function navigate(view) {
  if (state.view.name === "cards" && view.name !== "cards") cardsScroll = window.scrollY;
  state.view = view;
  document.body.dataset.view = view.name;
  page = null;
  if (view.name === "cards") {
    renderCards();
    window.scrollTo(0, cardsScroll);
  } else {
    window.scrollTo(0, 0);
    await showPage(view);
  }
}

async function loadWalk() {
  const run = currentRun();
  state.walk = run ? (await runDocs(run)).walk : null;
}

// ------------------------------------------------------------------ loading and reloading
async function fetchTags() {
  const {runs, ...schema} = await getJSON("tags");
  return {runs: runs || {}, schema};
}

// What changed since the last listing: tags that are new or have new steps, per run.
function changes(before, after) {
  const out = [];
  for (const [run, tags] of Object.entries(after)) {
    for (const [tag, content] of Object.entries(tags)) {
      const old = before[run] && before[run][tag];
      if (!old || old.max_step !== content.max_step) out.push({run, tag, isNew: !old});
    }
  }
  return out;
}

async function reload() {
  clearError();
  let listing;
  try {
    listing = await fetchTags();
  } catch (err) {
    showError(`Could not list ConvViz tags: ${err.message}`);
    return;
  }
  const changed = changes(state.tags, listing.runs);
  state.tags = listing.runs;
  state.schema = listing.schema;
  for (const run of new Set(changed.map((c) => c.run))) state.runCache.delete(run);
  if (!changed.length) return;
  await loadWalk();
  refreshFilters();
  if (state.view.name === "cards") {
    const scroll = window.scrollY;
    if (changed.some((c) => c.isNew)) renderCards();
    window.scrollTo(0, scroll);
  } else if (page) {
    page = await page.refresh();
  }
  for (const c of changed) {
    const card = cardCache.get(`${c.run}\u0000${c.tag}`);
    if (card && card.cvRefresh) card.cvRefresh().catch((err) => showError(`reload ${c.tag}: ${err.message}`));
  }
}

async function load() {
  clearError();
  try {
    const listing = await fetchTags();
    state.tags = listing.runs;
    state.schema = listing.schema;
  } catch (err) {
    showError(`Could not list ConvViz tags: ${err.message}`);
    return;
  }
  await loadWalk();
  refreshFilters();
  renderCards();
}

export async function render() {
  document.head.append(el("link", {rel: "stylesheet", href: "static/style.css"}));
  document.body.classList.add("cv-root");
  document.body.dataset.view = "cards";
  document.body.replaceChildren(
    toolbar(),
    el("div", {id: "cv-error", class: "cv-error", role: "alert", hidden: true}),
    el("div", {id: "cv-layers", class: "cv-layers", hidden: true}),
    el("div", {id: "cv-main"}));
  state.navigate = navigate;
  window.addEventListener("unhandledrejection", (event) => {
    showError(`Unexpected error: ${event.reason && event.reason.message || event.reason}`);
  });
  onHostReload(() => reload());
  await load();
}
