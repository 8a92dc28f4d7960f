"""The dashboard's rough edges (issue 27), in a real chromium on a real tensorboard.

One run with more than a page of cards (50 deconv maps of a long-named
layer), probe images logged once, top-k rows in the step documents and a
layer without maps. Each test saves a screenshot (``CONVVIZ_SCREENSHOT_DIR``
copies them).
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_browser import Dashboard, browser  # noqa: E402,F401  (the module's chromium fixture)
from tb_helpers import CLASS_NAMES, PROBE_LABELS, predictions, tensorboard  # noqa: E402

from tb_plugin import metadata as md  # noqa: E402

pytestmark = pytest.mark.browser

STEPS = 3
LONG = "stage4_block2_depthwise_conv"  # long enough that its card titles wrap
MAPS = 50
LAYERS = [
    {"name": "stem_conv", "type": "Conv2D", "output_shape": [32, 32, 8], "rf_size": [3, 3], "rf_stride": [1, 1],
     "rf_padding": [1, 1]},
    {"name": LONG, "type": "Conv2D", "output_shape": [8, 8, 64], "rf_size": [14, 14], "rf_stride": [4, 4],
     "rf_padding": [5, 5]},
    {"name": "predictions", "type": "Dense", "output_shape": [4]},
]


def topk_rows(step):
    return [[9.5 - j - step, 17 + j, j % 8, (2 * j) % 8] for j in range(4)]


def write_edges(root, run="edges"):
    from keras_convviz import summary

    rng = np.random.default_rng(0)
    with summary.Writer(os.path.join(str(root), run, "convviz")) as w:
        w.images(*md.split_tag(md.INPUT_TAG), rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8), 0, "input",
                 labels=PROBE_LABELS)  # once, at step 0, as the callback logs them
        w.document(md.WALK_TAG, "walk", md.make_walk(LAYERS, (32, 32), CLASS_NAMES), 0)
        for step in range(STEPS):
            for m in range(MAPS):
                w.images("deconv", LONG, f"map{m:04d}", rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8), step,
                         "projection", map=m, labels=PROBE_LABELS)
            topk = w.images("topk", LONG, "map0003", rng.integers(0, 255, (4, 12, 12, 3), dtype=np.uint8), step,
                            "patches", map=3, params={"k": 4}, labels=[f"#{j + 1}" for j in range(4)])
            w.images("featurevis", LONG, "map0003", rng.integers(0, 255, (1, 48, 48, 3), dtype=np.uint8), step,
                     "image", map=3, labels=["map 3"])
            w.images("classmodel", "predictions", "class0002", rng.integers(0, 255, (1, 32, 32, 3), dtype=np.uint8),
                     step, "image", params={"target": 2})
            units = {LONG: {m: [(1, 2, 1.0 + step), (3, 4, 2.0)] for m in (3, 5)}}
            w.document(md.STEP_TAG, "stepinfo",
                       md.make_step_info(predictions(step), [0, 2], units, {}, {topk: topk_rows(step)}), step)


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory):  # noqa: F811
    logdir = tmp_path_factory.mktemp("edge_logs")
    write_edges(logdir)
    with tensorboard(logdir, load_fast=False) as base:
        yield base


def shot(d, name):
    d.shot(name)
    d.page.screenshot(path=f"/tmp/convviz_edges_{name}.png", full_page=True)


def card(d, tag):
    return d.card(tag, run="edges/convviz")


@pytest.mark.slow
def test_the_probe_card_follows_the_steps_and_says_its_image_is_fixed(browser, server, tmp_path):  # noqa: F811
    d = Dashboard(browser, server, tmp_path)
    probe = card(d, md.INPUT_TAG)
    step = probe.locator(".cv-step")
    assert step.get_attribute("max") == str(STEPS - 1)  # one position per logged step, not step 0 only
    last = STEPS - 1
    (c0, p0) = predictions(last)[0][0]
    caption = probe.locator(".cv-caption").inner_text()
    assert f"predicted {CLASS_NAMES[c0]} {100 * p0:.0f}% at step {last}" in caption
    assert "image logged at step 0" in caption
    step.fill("0")
    (c0, p0) = predictions(0)[0][0]
    assert f"predicted {CLASS_NAMES[c0]} {100 * p0:.0f}% at step 0" in probe.locator(".cv-caption").inner_text()
    assert "image logged" not in probe.locator(".cv-caption").inner_text()
    shot(d, "probe_card")
    d.done()


@pytest.mark.slow
def test_a_greyed_layer_says_why_it_is_empty(browser, server, tmp_path):  # noqa: F811
    d = Dashboard(browser, server, tmp_path)
    chip = d.frame.locator('.cv-layer-chip[data-layer="stem_conv"]')
    assert "cv-has-cards" not in chip.get_attribute("class")
    chip.click()
    message = d.frame.locator(".cv-no-maps")
    message.wait_for()
    assert "No maps were logged for layer stem_conv" in message.inner_text()
    assert LONG in message.locator('li[data-method="deconv"]').inner_text()
    assert "predictions" in message.locator('li[data-method="classmodel"]').inner_text()
    shot(d, "greyed_layer")
    d.frame.locator(".cv-clear-layer").click()
    d.frame.locator(".cv-card").first.wait_for()
    d.done()


@pytest.mark.slow
def test_topk_cards_and_the_unit_page_show_values_and_source_images(browser, server, tmp_path):  # noqa: F811
    d = Dashboard(browser, server, tmp_path)
    topk = card(d, f"topk/{LONG}/map0003")
    captions = topk.locator(".cv-grid figcaption")
    value, image = topk_rows(STEPS - 1)[0][:2]
    rank, shown, source = captions.nth(0).inner_text().split(" \u00b7 ")
    assert (rank, source) == ("#1", f"held-out image {image}")
    assert float(shown) == pytest.approx(value, rel=1e-3)
    assert captions.nth(3).inner_text().endswith(f"held-out image {topk_rows(STEPS - 1)[3][1]}")
    shot(d, "topk_card")
    card(d, f"deconv/{LONG}/map0003").locator(".cv-unit-link").click()
    row = d.frame.locator(".cv-topk-row").first
    row.wait_for()
    assert row.locator("figcaption").nth(1).inner_text().endswith(f"image {topk_rows(STEPS - 1)[1][1]}")
    assert d.frame.locator(".cv-missing").count() == 0  # map 3 has every section
    d.done()


@pytest.mark.slow
def test_a_unit_page_names_the_sections_that_were_not_logged(browser, server, tmp_path):  # noqa: F811
    d = Dashboard(browser, server, tmp_path)
    card(d, f"deconv/{LONG}/map0005").locator(".cv-unit-link").click()
    d.frame.locator(".cv-unit-page").wait_for()
    missing = d.frame.locator(".cv-missing")
    missing.first.wait_for()
    methods = sorted(missing.nth(i).get_attribute("data-method") for i in range(missing.count()))
    assert methods == ["featurevis", "topk"]
    text = d.frame.locator('.cv-missing[data-method="topk"]').inner_text()
    assert 'not logged (enable "topk" in ConvVizCallback methods' in text
    shot(d, "unit_placeholders")
    d.done()


_SPLIT_WORDS = """els => els.flatMap((e) => {
  const out = [];
  for (const node of e.childNodes) {
    if (node.nodeType !== 3) continue;
    for (const m of node.data.matchAll(/\\S+/g)) {
      const r = document.createRange();
      r.setStart(node, m.index);
      r.setEnd(node, m.index + m[0].length);
      const lines = new Set([...r.getClientRects()].filter((x) => x.width > 0).map((x) => Math.round(x.top)));
      if (lines.size > 1) out.push(m[0]);
    }
  }
  return out;
})"""


@pytest.mark.slow
def test_titles_wrap_between_words_and_page_one_holds_every_method(browser, server, tmp_path):  # noqa: F811
    d = Dashboard(browser, server, tmp_path)
    cards = d.frame.locator(".cv-card")
    assert cards.count() == 48 and d.frame.locator("#cv-pager button").count() == 2
    methods = set(cards.evaluate_all("cs => cs.map((c) => c.dataset.tag.split('/')[0])"))
    assert {"input", "deconv", "topk", "featurevis", "classmodel"} <= methods
    first = card(d, f"deconv/{LONG}/map0000")
    first.locator(".cv-tag").wait_for()
    d.page.wait_for_function("f => f.querySelector('.cv-tag').textContent.includes('\u00b7')",
                             arg=first.element_handle())
    titles = d.frame.locator(".cv-tag")
    heights = titles.evaluate_all("ts => ts.map((t) => t.getBoundingClientRect().height)")
    assert max(heights) > 1.5 * min(h for h in heights if h > 0)  # some titles do wrap ...
    assert titles.evaluate_all(_SPLIT_WORDS) == []  # ... but never inside a word
    shot(d, "titles_page1")
    d.done()
