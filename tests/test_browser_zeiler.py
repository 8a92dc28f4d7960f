"""The dashboard's Zeiler & Fergus views and optimized-picture numbers, in a real browser (see test_browser.py).

Fig. 5 invariance charts on the image page, the fig. 6 filter sheet on the
first conv layer's page (and on its units' pages) beside the evolution strips,
and the objective and probability on class-model and feature-visualization
cards, read back from the DOM. The numbers come inside the logged PNGs
(keras_convviz.loggers.annotate); the route test checks the plugin serves them.
"""

import json
import os
import sys
import types

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tb_helpers import CLASS_NAMES, PROBE_LABELS, WALK_LAYERS, predictions, tensorboard  # noqa: E402
from test_browser import Dashboard, browser  # noqa: E402,F401 - the module's browser fixture

from tb_plugin import metadata as md  # noqa: E402

STEPS = 3
VALUES = {"translate": np.linspace(-8, 8, 7), "scale": np.linspace(1, 1.8, 5), "rotate": np.linspace(0, 360, 9)}
LAYERS = ("block1_conv1", "block3_conv2")
FILTERS = 9  # block1_conv1's kernels; filter 4 is dead, filter 7 a checkerboard


def curves(step):
    """A fake fig. 5 result: distances grow with the transform, and shrink (more invariance) with the step."""
    rel, dist, prob = {}, {}, {}
    for t, v in VALUES.items():
        amount = np.abs(v - v[0 if t != "translate" else 3]) / np.abs(v).max()
        rel[t] = np.stack([np.stack([amount * (1.0 + i), amount * (0.8 - 0.2 * step)]) for i in range(2)])
        dist[t] = rel[t] * 10.0
        prob[t] = np.stack([0.9 - 0.5 * amount, 0.7 - 0.3 * amount])
    return types.SimpleNamespace(transforms=tuple(VALUES), values=VALUES, layers=LAYERS, relative=rel, distance=dist,
                                 probability=prob, target=np.array([2, 0]), base_probability=np.array([0.9, 0.7]),
                                 units={"translate": "px", "scale": "x", "rotate": "deg"})


def filter_result(step):
    """A real filters() result on a small model named like the walk's first conv."""
    import keras

    from keras_convviz import filters

    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(FILTERS, 3, name="block1_conv1")(inputs))
    rng = np.random.default_rng(step)
    k = np.stack([np.outer(np.hanning(5)[1:4], np.hanning(5)[1:4])] * 3, -1)[..., None] * rng.uniform(0.5, 1.5, FILTERS)
    k[..., 4] = 0.0
    k[..., 7] = np.indices((3, 3)).sum(0)[..., None] % 2 * 2.0 - 1.0
    model.get_layer("block1_conv1").set_weights([k.astype(np.float32), np.zeros(FILTERS, np.float32)])
    return filters(model)


def write_logdir(root):
    from keras_convviz import summary
    from keras_convviz.loggers.annotate import class_model_images, optimized_data, png_with_data
    from keras_convviz.loggers.base import projection_images, probe_labels
    from keras_convviz.loggers.zeiler import filter_statistics, invariance_curves

    rng = np.random.default_rng(0)
    with summary.Writer(os.path.join(str(root), "demo", "convviz")) as w:
        w.images(*md.split_tag(md.INPUT_TAG), rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8), 0, "input",
                 labels=PROBE_LABELS)
        w.document(md.WALK_TAG, "walk", md.make_walk(WALK_LAYERS, (32, 32), CLASS_NAMES), 0)
        for step in range(STEPS):
            res = curves(step)
            pictures = rng.integers(0, 255, (2, 60, 20, 3), dtype=np.uint8)
            w.images("invariance", "predictions", "curves", [png_with_data(p, invariance_curves(res, i))
                                                             for i, p in enumerate(pictures)], step, "image",
                     params={"steps": 7}, labels=probe_labels(2))
            f = filter_result(step)
            w.images("filters", f.layer, "kernels", [png_with_data(f.grid, filter_statistics(f))], step, "image",
                     labels=[f"{f.layer}: {FILTERS} filters"])
            for m in (2, 5):
                w.images("deconv", "block1_conv1", f"map{m:04d}",
                         projection_images(rng.normal(0, 1, (2, 32, 32, 3))).images, step, "projection", map=m)
            ok = types.SimpleNamespace(targets=np.array([2]), scores=np.array([12.5 + step]),
                                       random_scores=np.array([0.4]),
                                       probabilities=np.array([[0.01, 0.01, 0.97, 0.01]]))
            bad = types.SimpleNamespace(targets=np.array([3]), scores=np.array([-1.25]), random_scores=np.array([0.4]),
                                        probabilities=np.array([[0.4, 0.3, 0.2, 0.1]]))
            for c, result in ((2, ok), (3, bad)):
                w.images("classmodel", "predictions", f"class{c:04d}",
                         class_model_images(rng.integers(0, 255, (1, 32, 32, 3), dtype=np.uint8), result), step,
                         "image", params={"target": c})
            vis = png_with_data(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8),
                                optimized_data(1.5, 0.25, 0.4, top=0, objective_name="channel mean"))
            w.images("featurevis", "block1_conv1", "map0002", [vis], step, "image", map=2,
                     params={"objective": "channel mean"}, labels=["map 2"])
            w.document(md.STEP_TAG, "stepinfo", md.make_step_info(predictions(step), [0, 2]), step)
    return str(root)


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory):  # noqa: F811
    logdir = tmp_path_factory.mktemp("zeiler_logs")
    write_logdir(logdir)
    with tensorboard(logdir, load_fast=False) as base:
        yield base


@pytest.mark.slow
def test_routes_serve_the_numbers_inside_the_pictures(tmp_path):
    """/series lists the curves' and the sheet's blobs; /blob gives PNGs whose text chunk holds the numbers."""
    from test_plugin import BASE, _client, _get_json

    from keras_convviz.loggers.annotate import png_data

    write_logdir(tmp_path)
    client = _client(tmp_path)[0]
    run = "demo/convviz"
    listing = _get_json(client, f"{BASE}/tags")["runs"][run]
    assert listing["invariance/predictions/curves"]["kind"] == "image"
    assert listing["filters/block1_conv1/kernels"]["layer"] == "block1_conv1"
    s = _get_json(client, f"{BASE}/series?run={run}&tag=invariance/predictions/curves")
    assert [x["step"] for x in s["steps"]] == list(range(STEPS)) and len(s["steps"][-1]["blobs"]) == 2
    blob = client.get(f"{BASE}/{s['steps'][-1]['blobs'][1]}")
    assert blob.status_code == 200 and blob.headers["Content-Type"] == "image/png"
    data = png_data(blob.data)
    assert data["layers"] == list(LAYERS) and data["target"] == 0
    assert data["transforms"]["rotate"]["values"] == pytest.approx(VALUES["rotate"].tolist())
    late = data["transforms"]["scale"]["relative"]["block3_conv2"]
    assert late == pytest.approx(curves(2).relative["scale"][1, 1].tolist())
    s = _get_json(client, f"{BASE}/series?run={run}&tag=filters/block1_conv1/kernels")
    sheet = png_data(client.get(f"{BASE}/{s['steps'][0]['blobs'][0]}").data)
    assert sheet["dead"] == [4] and 7 in sheet["aliased"] and sheet["count"] == FILTERS
    s = _get_json(client, f"{BASE}/series?run={run}&tag=classmodel/predictions/class0003")
    bad = png_data(client.get(f"{BASE}/{s['steps'][0]['blobs'][0]}").data)
    assert bad["failed"] is True and bad["probability"] == pytest.approx(0.1) and bad["target"] == 3


@pytest.mark.slow
def test_image_page_draws_the_invariance_curves(browser, server, tmp_path):  # noqa: F811
    d = Dashboard(browser, server, tmp_path)
    d.frame.locator("#cv-image-view").click()
    charts = d.frame.locator(".cv-invariance .cv-inv-chart")
    charts.first.wait_for()
    assert charts.count() == 3
    for t, values in VALUES.items():
        chart = d.frame.locator(f'.cv-inv-chart[data-transform="{t}"]')
        for key in ("early", "late", "probability"):
            assert chart.locator(f'.cv-series[data-series="{key}"] .cv-pt').count() == len(values), (t, key)
        assert chart.locator('.cv-series[data-series="early-first"]').count() == 1  # step 0, dashed
        text = chart.inner_text()
        assert "rel. distance" in text and ("degrees" in text or "px" in text or "scale factor" in text)
    legend = d.frame.locator(".cv-inv-legend").inner_text()
    assert "early layer block1_conv1" in legend and "late layer block3_conv2" in legend
    assert "p(triangle)" in legend and f"solid: step {STEPS - 1}" in legend and "dashed: step 0" in legend
    d.loaded(d.frame.locator(".cv-inv-img"))
    # the late layer's distance at the far end of the translation, as logged at the last step
    last = curves(STEPS - 1).relative["translate"][0, 1]
    pts = d.frame.locator('.cv-inv-chart[data-transform="translate"] .cv-series[data-series="late"] .cv-pt title')
    assert pts.nth(6).text_content().startswith(f"late block3_conv2: {last[6]:.4g}")
    d.shot("invariance_image_page")
    # the page's step slider picks the step: at step 0 there is no earlier step to compare with
    d.frame.locator(".cv-image-page input.cv-step").fill("0")
    d.frame.locator('.cv-invariance[data-step="0"]').wait_for()
    assert d.frame.locator('.cv-series[data-series="early-first"]').count() == 0
    # probe 1 explains circle
    d.frame.locator(".cv-image-page select.cv-index").select_option("1")
    d.frame.locator(".cv-inv-legend").wait_for()
    assert "p(circle)" in d.frame.locator(".cv-inv-legend").inner_text()
    d.done()


@pytest.mark.slow
def test_layer_page_shows_the_filter_sheet_beside_the_evolution_strips(browser, server, tmp_path):  # noqa: F811
    d = Dashboard(browser, server, tmp_path)
    d.card("filters/block1_conv1/kernels").locator(".cv-layer-link").click()
    sheet = d.frame.locator(".cv-layer-page .cv-filter-sheet")
    sheet.wait_for()
    d.page.wait_for_function("img => img.complete && img.naturalWidth > 50", arg=sheet.element_handle())
    stats = d.frame.locator(".cv-filter-stats").inner_text()
    assert f"{FILTERS} filters 3\u00d73\u00d73" in stats and "1 dead" in stats
    assert "dead: 4" in d.frame.locator(".cv-flag-dead").inner_text()
    assert "7" in d.frame.locator(".cv-flag-hf").inner_text()
    assert d.frame.locator(".cv-filter-evolution figure").count() == STEPS
    maps = d.frame.locator(".cv-layer-evolution .cv-layer-map")
    assert maps.count() == 2 and maps.nth(0).locator(".cv-evolution figure").count() == STEPS
    # side by side: the sheet's section left of the evolution strips, on the same row
    box = lambda loc: loc.evaluate(  # noqa: E731
        "e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.width]; }")
    (fx, fy, fw), (ex, ey, _) = box(d.frame.locator(".cv-filters")), box(d.frame.locator(".cv-layer-evolution"))
    assert ex >= fx + fw - 1 and abs(ey - fy) < 2
    d.shot("filters_layer_page")
    # the unit page of map 5 outlines filter 5 on the sheet, beside its evolution
    maps.nth(1).locator(".cv-unit-link").click()
    d.frame.locator('.cv-unit-page[data-map="5"] .cv-filter-box[data-filter="5"]').wait_for()
    assert "filter 5: norm" in d.frame.locator(".cv-filter-unit").inner_text()
    d.shot("filters_unit_page")
    d.done()


@pytest.mark.slow
def test_optimized_cards_show_objective_probability_and_failure(browser, server, tmp_path):  # noqa: F811
    d = Dashboard(browser, server, tmp_path)
    good = d.card("classmodel/predictions/class0002")
    good.locator(".cv-values:not(:empty)").wait_for()
    assert good.locator(".cv-values").inner_text() == \
        f"class score {12.5 + STEPS - 1:g} (random image 0.4) \u00b7 p(triangle) 97%"
    assert not good.locator(".cv-warn").is_visible()
    bad = d.card("classmodel/predictions/class0003")
    bad.locator(".cv-warn").wait_for()
    assert "optimization failed" in bad.locator(".cv-warn").inner_text()
    assert "p(cross) 10%" in bad.locator(".cv-values").inner_text()
    vis = d.card("featurevis/block1_conv1/map0002")
    vis.locator(".cv-values:not(:empty)").wait_for()
    assert vis.locator(".cv-values").inner_text() == \
        "channel mean 1.5 (random image 0.25) \u00b7 model sees circle 40%"
    good.locator("input.cv-step").fill("0")
    good.locator(".cv-values", has_text="class score 12.5 ").wait_for()
    d.shot("optimized_cards")
    d.done()
