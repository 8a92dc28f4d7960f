"""End to end in a real browser: Debian's chromium, driven by Playwright, on a real tensorboard.

Playwright never downloads a browser here: chromium is launched through
``executable_path``. Where no chromium is installed the test skips and says so
(``.ci/run`` installs it with apt-get). Every test saves a screenshot of the
view it checks under its temporary folder (``CONVVIZ_SCREENSHOT_DIR`` copies
them elsewhere).
"""

import json
import os
import shutil
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tb_helpers import (CLASS_NAMES, STEPS, WALK_LAYERS, append_step, predictions, tensorboard,  # noqa: E402
                        unit_position, write_logdir, write_old_logdir)

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SIZE = 32  # the helper's pictures are 32 x 32
GEOMETRY = {layer["name"]: layer for layer in WALK_LAYERS}


def _chromium():
    for candidate in (os.environ.get("CONVVIZ_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                      shutil.which("chromium-browser")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _skip(reason):
    print(f"SKIPPED test_browser: {reason}", file=sys.stderr)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    executable = _chromium()
    if executable is None:
        _skip("no chromium found (apt-get install chromium, or set CONVVIZ_CHROMIUM=/path/to/chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        _skip(f"playwright is not installed ({err}); pip install -e '.[test]'")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True, timeout=60000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory):
    logdir = tmp_path_factory.mktemp("browser_logs")
    write_logdir(logdir)
    write_old_logdir(logdir)  # a run from content version 1 loads beside it
    with tensorboard(logdir, load_fast=False) as base:
        yield base


class Dashboard:
    """One page on the ConvViz tab, collecting page errors."""

    def __init__(self, browser, base, tmp_path, init_script=None):
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.page.set_default_timeout(30000)
        self.errors = []
        self.page.on("pageerror", lambda err: self.errors.append(str(err)))
        if init_script:
            self.page.add_init_script(init_script)
        self.page.goto(base + "/#convviz", wait_until="domcontentloaded")
        self.frame = self.page.frame_locator("iframe")  # dynamic plugins live in an iframe
        self.frame.locator(".cv-card").first.wait_for()
        self.tmp_path = tmp_path

    def card(self, tag, run="demo/convviz"):
        card = self.frame.locator(f'.cv-card[data-run="{run}"][data-tag="{tag}"]')
        card.scroll_into_view_if_needed()
        card.locator(".cv-controls").wait_for()
        return card

    def loaded(self, img):
        self.page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())

    def shot(self, name):
        path = self.tmp_path / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10000
        if os.environ.get("CONVVIZ_SCREENSHOT_DIR"):
            shutil.copyfile(path, os.path.join(os.environ["CONVVIZ_SCREENSHOT_DIR"], path.name))

    def done(self):
        assert not self.errors, self.errors
        assert not self.frame.locator("#cv-error").is_visible()
        self.page.close()


def expected_window(layer, y, x):
    """The input window of the unit whose field is centred nearest pixel (y, x), from the walk alone."""
    g = GEOMETRY[layer]
    unit = [min(g["output_shape"][a] - 1, max(0, round((p + g["rf_padding"][a] - (g["rf_size"][a] - 1) / 2)
                                                       / g["rf_stride"][a]))) for a, p in ((0, y), (1, x))]
    return window_of(layer, *unit)


def window_of(layer, i, j):
    g = GEOMETRY[layer]
    y0, x0 = i * g["rf_stride"][0] - g["rf_padding"][0], j * g["rf_stride"][1] - g["rf_padding"][1]
    return [max(0, y0), min(SIZE, y0 + g["rf_size"][0]), max(0, x0), min(SIZE, x0 + g["rf_size"][1])]


def rect(locator):
    return locator.evaluate("e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; }")


@pytest.mark.slow
def test_cards_filters_overlay_grid(browser, server, tmp_path):
    d = Dashboard(browser, server, tmp_path)
    # layers in network order in the strip, with their receptive fields
    chips = d.frame.locator(".cv-layer-chip")
    names = [chips.nth(i).get_attribute("data-layer") for i in range(chips.count())]
    order = [layer["name"] for layer in WALK_LAYERS]
    assert names == [n for n in order if n in names] and "block3_conv2" in names
    assert "RF 14px" in d.frame.locator('.cv-layer-chip[data-layer="block3_conv2"]').inner_text()
    # cards within a method in network order; JSON documents are not cards
    tags = d.frame.locator('.cv-card[data-run="demo/convviz"]').evaluate_all("cs => cs.map(c => c.dataset.tag)")
    assert not any(t.startswith("meta/") for t in tags)
    assert tags.index("deconv/block3_conv2/map0003") < tags.index("gradcam/block3_conv2/heatmap")
    # the layer strip filters the cards
    d.frame.locator('.cv-layer-chip[data-layer="block3_conv2"]').click()
    assert d.frame.locator(".cv-card").count() == 7  # gradcam, 2 deconv, 2 top-k, 2 featurevis
    d.frame.locator('.cv-layer-chip[data-layer="block3_conv2"]').click()
    # overlay on a projection, in grid mode too
    card = d.card("deconv/block3_conv2/map0003")
    card.locator(".cv-zoom-toggle").uncheck()
    card.locator(".cv-overlay-toggle").check()
    card.locator(".cv-overlay img.cv-base").wait_for()
    card.locator(".cv-opacity").fill("25")
    assert card.locator("img.cv-heat").first.evaluate("img => img.style.opacity") == "0.25"
    card.locator(".cv-grid-toggle").check()
    assert card.locator(".cv-grid .cv-overlay img.cv-base").count() == 2
    grid = d.card("topk/block3_conv2/map0003").locator(".cv-grid img")
    assert grid.count() == 4
    # the old (version 1) run's cards load beside the new one
    old = d.card("saliency/predictions/heatmap", run="old/convviz")
    d.loaded(old.locator("img.cv-main"))
    d.shot("cards")
    d.done()


@pytest.mark.slow
def test_class_names_on_cards_and_pages(browser, server, tmp_path):
    d = Dashboard(browser, server, tmp_path)
    last = STEPS - 1
    (c0, p0), (c1, _) = predictions(last)[0][0], predictions(last)[1][0]
    card = d.card("gradcam/block3_conv2/heatmap")
    assert f"predicted {CLASS_NAMES[c0]} {100 * p0:.0f}%" in card.locator(".cv-caption").inner_text()
    card.locator(".cv-grid-toggle").check()
    assert CLASS_NAMES[c1] in card.locator(".cv-grid figcaption").nth(1).inner_text()
    assert "target=circle, triangle" in d.card("ig/predictions/heatmap").locator(".cv-meta").inner_text()
    assert "class model \u00b7 triangle" in d.card("classmodel/predictions/class0002").locator(".cv-tag").inner_text()
    d.frame.locator("#cv-image-view").click()
    preds = d.frame.locator(".cv-predictions li")
    preds.first.wait_for()
    assert [preds.nth(i).locator(".cv-pred-name").inner_text() for i in range(preds.count())] == ["circle", "square"]
    assert preds.nth(0).locator(".cv-pred-p").inner_text() == f"{100 * p0:.0f}%"
    assert "explain: circle" in d.frame.locator(".cv-explains").inner_text()
    d.shot("image_page")
    d.done()


@pytest.mark.slow
def test_unit_page_projection_beside_patch(browser, server, tmp_path):
    d = Dashboard(browser, server, tmp_path)
    d.card("deconv/block3_conv2/map0007").locator(".cv-unit-link").click()
    pairs = d.frame.locator(".cv-unit-pair")
    pairs.first.wait_for()
    assert pairs.count() == 2
    input_urls = json.loads(d.page.evaluate("u => fetch(u).then(r => r.text())", server +
                                            "/data/plugin/convviz/series?run=demo%2Fconvviz&tag=input/probe/image"))
    proj = json.loads(d.page.evaluate("u => fetch(u).then(r => r.text())", server +
                                      "/data/plugin/convviz/series?run=demo%2Fconvviz&tag=deconv/block3_conv2/map0007"))
    for i in range(2):
        y, x, _ = unit_position(STEPS - 1, i, 7)
        win = ",".join(map(str, window_of("block3_conv2", y, x)))
        patch, projection = pairs.nth(i).locator(".cv-patch"), pairs.nth(i).locator(".cv-proj")
        assert patch.get_attribute("data-window") == win == projection.get_attribute("data-window")
        assert patch.locator("img").get_attribute("src") == input_urls["steps"][-1]["blobs"][i]
        assert projection.locator("img").get_attribute("src") == proj["steps"][-1]["blobs"][i]
        # the two sit side by side, the same size
        (px, py, pw, ph), (qx, qy, qw, qh) = rect(patch), rect(projection)
        assert abs(py - qy) < 1 and qx >= px + pw and (pw, ph) == (qw, qh)
        box = pairs.nth(i).locator(".cv-rf-box")
        assert box.get_attribute("data-window") == win
    # top-k patches with their projections, and the evolution strip with step labels
    assert d.frame.locator(".cv-topk-row").count() == 0  # topk follows map 3, not 7
    strip = d.frame.locator(".cv-unit-evolution figure")
    assert [strip.nth(i).locator("figcaption").inner_text() for i in range(strip.count())] == \
        [f"step {s}" for s in range(STEPS)]
    d.shot("unit_page")
    d.frame.locator(".cv-back").click()
    d.card("topk/block3_conv2/map0003").locator(".cv-unit-link").click()
    rows = d.frame.locator(".cv-topk-row")
    rows.first.wait_for()
    assert rows.count() == 2 and rows.nth(1).get_attribute("data-tag").endswith("_projections")
    d.done()


@pytest.mark.slow
def test_unit_page_feature_visualization_beside_topk(browser, server, tmp_path):
    """The callback's featurevis/<layer>/map<k> tag shows on unit k's page (and no other), beside its top-k."""
    d = Dashboard(browser, server, tmp_path)

    def blobs(tag):
        url = f"{server}/data/plugin/convviz/series?run=demo%2Fconvviz&tag={tag}"
        return [s["blobs"][0] for s in json.loads(d.page.evaluate("u => fetch(u).then(r => r.text())", url))["steps"]]

    d.card("topk/block3_conv2/map0003").locator(".cv-unit-link").click()
    vis = d.frame.locator(".cv-vis")
    vis.first.wait_for()
    assert vis.count() == 1 and vis.get_attribute("data-tag") == "featurevis/block3_conv2/map0003"
    img = vis.locator("img")
    assert img.get_attribute("src") == blobs("featurevis/block3_conv2/map0003")[-1]
    d.page.wait_for_function("img => img.complete && img.naturalWidth === 48", arg=img.element_handle())
    assert "map 3 \u00b7 step" in vis.inner_text() and f"step {STEPS - 1}" in vis.inner_text()
    # beside the top-k patches: the same row of the page, to their right
    (tx, ty, tw, th), (vx, vy, _, vh) = rect(d.frame.locator(".cv-topk-row").first), rect(img)
    assert vx >= tx + tw and vy < ty + th and vy + vh > ty
    # the page's step slider moves it with the other pictures
    d.frame.locator(".cv-unit-page input.cv-step").fill("0")
    assert d.frame.locator(".cv-vis img").get_attribute("src") == blobs("featurevis/block3_conv2/map0003")[0]
    d.shot("unit_page_featurevis")
    # map 7's page shows map 7's visualization, not map 3's
    d.frame.locator(".cv-back").click()
    d.card("deconv/block3_conv2/map0007").locator(".cv-unit-link").click()
    d.frame.locator('.cv-unit-page[data-map="7"]').wait_for()
    vis = d.frame.locator(".cv-vis")
    vis.first.wait_for()
    assert vis.count() == 1 and vis.get_attribute("data-tag") == "featurevis/block3_conv2/map0007"
    assert vis.locator("img").get_attribute("src") == blobs("featurevis/block3_conv2/map0007")[-1]
    d.done()


@pytest.mark.slow
def test_hover_draws_the_logged_receptive_field(browser, server, tmp_path):
    d = Dashboard(browser, server, tmp_path)
    card = d.card("gradcam/block3_conv2/heatmap")
    img = card.locator("img.cv-main")
    d.loaded(img)
    left, top, width, height = rect(img)
    scale = width / SIZE
    for hx, hy in ((100, 60), (10, 200), (223, 223)):
        img.hover(position={"x": hx, "y": hy})
        box = card.locator(".cv-rf-box")
        win = expected_window("block3_conv2", hy / scale, hx / scale)
        assert box.get_attribute("data-window") == ",".join(map(str, win))
        bl, bt, bw, bh = rect(box)
        assert abs(bl - (left + win[2] * scale)) < 0.6 and abs(bt - (top + win[0] * scale)) < 0.6
        assert abs(bw - (win[3] - win[2]) * scale) < 0.6 and abs(bh - (win[1] - win[0]) * scale) < 0.6
    assert "block3_conv2 unit" in card.locator(".cv-rf-readout").inner_text()
    d.shot("hover")
    # on the image page, hovering a panel draws the same window on the probe image
    d.frame.locator("#cv-image-view").click()
    panel = d.frame.locator('.cv-panel[data-tag="gradcam/block3_conv2/heatmap"] img.cv-main')
    d.loaded(panel)
    pl, pt, pw, _ = rect(panel)
    panel.hover(position={"x": 50, "y": 120})
    s = pw / SIZE
    win = expected_window("block3_conv2", 120 / s, 50 / s)
    probe_box = d.frame.locator(".cv-image-probe .cv-rf-box")
    assert probe_box.get_attribute("data-window") == ",".join(map(str, win))
    d.done()


@pytest.mark.slow
def test_every_heatmap_has_a_colour_bar(browser, server, tmp_path):
    d = Dashboard(browser, server, tmp_path)
    docs = json.loads(d.page.evaluate("u => fetch(u).then(r => r.text())", server + "/data/plugin/convviz/run?run=demo%2Fconvviz"))
    ranges = docs["steps"][str(STEPS - 1)]["ranges"]
    d.frame.locator("#cv-image-view").click()
    panels = d.frame.locator(".cv-panel")
    panels.first.wait_for()
    kinds = panels.evaluate_all("ps => ps.map(p => [p.dataset.tag, p.dataset.kind, "
                                "(p.querySelector('.cv-colorbar') || {dataset: {}}).dataset.range || null])")
    assert {k for _, k, _ in kinds} >= {"heatmap", "projection"}
    for tag, kind, value_range in kinds:
        assert value_range is not None, f"{tag} has no colour bar"
        assert [float(v) for v in value_range.split(",")] == pytest.approx(ranges[tag][0], rel=1e-6), tag
    ig = d.frame.locator('.cv-panel[data-tag="ig/predictions/heatmap"] .cv-colorbar')
    assert ig.get_attribute("data-colormap") == "diverging"
    lo, hi = (float(v) for v in ig.get_attribute("data-range").split(","))
    assert lo == -hi < 0  # signed maps: symmetric about 0
    for tag in ("gradcam/block3_conv2/heatmap", "ig/predictions/heatmap"):
        d.frame.locator(".cv-back").click()
        assert d.card(tag).locator(".cv-colorbar").count() == 1
        d.frame.locator("#cv-image-view").click()
    d.shot("colour_bars")
    d.done()


@pytest.mark.slow
def test_step_slider_and_play_change_the_image(browser, server, tmp_path):
    d = Dashboard(browser, server, tmp_path)
    card = d.card("deconv/block3_conv2/map0003")
    card.locator(".cv-zoom-toggle").uncheck()
    main = card.locator("img.cv-main")
    d.loaded(main)
    last = main.get_attribute("src")
    assert card.get_attribute("data-step") == str(STEPS - 1)
    card.locator("input.cv-step").fill("0")
    assert card.get_attribute("data-step") == "0"
    first = card.locator("img.cv-main").get_attribute("src")
    assert first != last
    d.page.wait_for_function("img => img.complete && img.naturalWidth === 32",
                             arg=card.locator("img.cv-main").element_handle())
    card.locator(".cv-play").click()
    seen = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and card.get_attribute("data-step") != str(STEPS - 1):
        seen.add(card.get_attribute("data-step"))
        time.sleep(0.1)
    assert card.get_attribute("data-step") == str(STEPS - 1)
    assert card.locator("img.cv-main").get_attribute("src") == last
    assert len(seen | {str(STEPS - 1)}) == STEPS  # every step shown on the way
    card.locator(".cv-evolution-button").click()
    strip = card.locator(".cv-evolution figure")
    assert strip.count() == STEPS and strip.nth(0).locator("figcaption").inner_text() == "step 0"
    d.shot("step_play")
    d.done()


@pytest.mark.slow
def test_auto_reload_shows_a_new_step_in_place(browser, tmp_path):
    logdir = tmp_path / "logs"
    write_logdir(logdir)
    settings = json.dumps({"autoReload": True, "autoReloadPeriodInMs": 30000})
    with tensorboard(logdir, load_fast=False) as base:
        d = Dashboard(browser, base, tmp_path, init_script=f"localStorage.setItem('_tb_global_settings', '{settings}')")
        d.frame.locator('.cv-layer-chip[data-layer="block3_conv2"]').click()
        held = d.card("deconv/block3_conv2/map0003")
        held.locator("input.cv-step").fill("1")  # the user's place: step 1 of this card
        follows = d.card("gradcam/block3_conv2/heatmap")  # shows the newest step
        append_step(logdir, STEPS)
        follows.locator(f'xpath=self::*[@data-step="{STEPS}"]').wait_for(timeout=75000)
        assert held.get_attribute("data-step") == "1"
        assert d.frame.locator(".cv-layer-chip.cv-selected").get_attribute("data-layer") == "block3_conv2"
        assert follows.locator(".cv-step").evaluate("s => s.max") == str(STEPS)
        d.shot("auto_reload")
        d.done()


def test_dashboard_shows_errors(browser, server):
    """A failing request is shown to the user, not swallowed."""
    page = browser.new_page()
    page.set_default_timeout(30000)
    page.route("**/data/plugin/convviz/tags", lambda route: route.fulfill(status=500, body="boom"))
    page.goto(server + "/data/plugin_entry.html?name=convviz", wait_until="domcontentloaded")
    page.locator("#cv-error").wait_for()
    assert "500" in page.locator("#cv-error").inner_text()
    page.close()
