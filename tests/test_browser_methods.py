"""The methods added through the registry reach the dashboard: a card each, in pipeline order, with its colour bar.

A real demo-model run logs every map method with ``ConvVizCallback``; the
image page (Zeiler & Fergus's side-by-side view of one probe image) then
shows each method's panel with the colour bar of its record's drawing. The
screenshot is saved like test_browser's (``CONVVIZ_SCREENSHOT_DIR``).
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_browser import Dashboard, browser  # noqa: E402,F401 - the shared chromium fixture
from tb_helpers import tensorboard  # noqa: E402

from keras_convviz import registry  # noqa: E402

OPTIONS = {"scorecam": {"max_channels": 8}, "rise": {"masks": 64}, "smoothgrad": {"samples": 4},
           "ig": {"steps": 4}}


@pytest.fixture(scope="module")
def method_server(browser, tmp_path_factory):  # noqa: F811 - the fixture above
    import keras

    from keras_convviz import ConvVizCallback, demo

    logdir = tmp_path_factory.mktemp("method_logs")
    keras.utils.set_random_seed(0)
    model = demo.build_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y, _ = demo.shapes(64, seed=0)
    methods = {m.name: OPTIONS.get(m.name, {}) for m in registry.map_methods()}
    cb = ConvVizCallback(logdir / "demo", x[:2], methods=methods, class_names=demo.CLASS_NAMES)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[cb])
    assert not cb.failed, cb.failed
    with tensorboard(logdir, load_fast=False) as base:
        yield base


@pytest.mark.slow
def test_every_map_method_has_a_card_with_its_colour_bar(browser, method_server, tmp_path):  # noqa: F811
    d = Dashboard(browser, method_server, tmp_path)
    tags = d.frame.locator('.cv-card[data-run="demo/convviz"]').evaluate_all("cs => cs.map(c => c.dataset.tag)")
    shown = [t.split("/")[0] for t in tags]
    names = [m.name for m in registry.map_methods()]
    assert set(names) <= set(shown), sorted(set(names) - set(shown))
    firsts = [shown.index(n) for n in names]
    assert firsts == sorted(firsts)  # the registry's pipeline order
    d.frame.locator("#cv-image-view").click()
    panels = d.frame.locator(".cv-panel")
    panels.first.wait_for()
    bars = dict(panels.evaluate_all("ps => ps.map(p => [p.dataset.tag.split('/')[0], "
                                    "(p.querySelector('.cv-colorbar') || {dataset: {}}).dataset.colormap || null])"))
    for record in registry.map_methods():
        want = {"signed": "diverging", "projection": "grey"}.get(record.drawing, "inferno")
        assert bars.get(record.name) == want, (record.name, bars.get(record.name))
    d.shot("every_map_method")
    d.done()
