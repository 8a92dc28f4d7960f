"""The method registry is the one source of every method's identity, and one drawing serves every surface.

Each place that used to keep its own list (the API map, the callback's
``METHODS``, the dashboard's order, the CLI's subcommands, the randomization
check, the demo) is compared with the records; the callback's picture of a map
is compared pixel for pixel with the CLI's and the notebook's.
"""

import inspect

import numpy as np
import pytest

import keras_convviz as kc
from keras_convviz import registry
from keras_convviz.figures.maps import PALETTES, map_picture, normalize_map
from keras_convviz.loggers.base import heatmap_images


def test_names_and_aliases_are_unique_and_resolve_to_their_method():
    names = [n for m in registry.METHODS for n in m.names]
    assert len(names) == len(set(names))
    assert registry.resolve("integrated_gradients") == registry.resolve("integrated") == "ig"
    assert registry.resolve("Guided-Backprop") == "guided"
    assert registry.resolve("gradcam++") == registry.resolve("gradcam-plus-plus") == "gradcam_plus_plus"
    with pytest.raises(ValueError, match="choose from deconv, guided"):
        registry.lookup("gradcam3000")


@pytest.mark.parametrize("record", registry.METHODS, ids=lambda m: m.name)
def test_every_record_names_a_public_function_with_the_api_shape(record):
    fn = getattr(kc, record.function)
    assert fn is record.load()
    assert record.drawing in registry.DRAWINGS and record.paper and record.summary
    if record in registry.map_methods():
        params = list(inspect.signature(fn).parameters)
        assert params[:3] == ["model", "inputs", "target"], params
        assert "batch_size" in params, f"{record.name}: batched methods take batch_size"
        assert ("layer" in params) == record.takes_layer


def test_the_callback_dashboard_cli_randomization_and_demo_derive_from_the_records():
    from keras_convviz import callbacks, cli
    from keras_convviz.commands.demo import DEMO_METHODS
    from tb_plugin import metadata as md

    assert list(callbacks.METHODS) == [m.name for m in registry.callback_methods()]
    assert md.METHOD_ORDER == ("input",) + registry.method_order()
    assert DEMO_METHODS == registry.demo_options()
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for record in registry.map_methods():
        for name in record.names:
            assert sub.choices[name] is sub.choices[record.name], name
        args = parser.parse_args([record.aliases[0] if record.aliases else record.name, "x.png"])
        assert args.method == record.name  # files and titles use the one name
    cb = callbacks.ConvVizCallback("/tmp/unused", np.zeros((1, 8, 8, 3)), methods={"integrated_gradients": {}})
    assert list(cb.method_options) == ["ig"]


def test_randomization_takes_every_map_method_by_any_name():
    from keras_convviz import randomization

    for record in registry.map_methods():
        for name in record.names:
            assert randomization.method_function(name) is record.load()
    with pytest.raises(ValueError, match="use one of saliency|use one of guided"):
        randomization.method_function("occlusion")


@pytest.mark.parametrize("drawing", sorted(PALETTES))
def test_the_dashboard_draws_a_map_as_the_cli_does(drawing):
    """The callback's picture of a map is the CLI's picture of the same map (one normalization)."""
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(2, 12, 12, 3)) if drawing == "projection" else rng.normal(size=(2, 12, 12))
    if drawing in ("cam", "probability"):
        maps = np.abs(maps) / 4
    logged = heatmap_images(maps, (24, 24), drawing)
    for i, m in enumerate(maps):
        drawn = normalize_map(drawing, m)
        assert np.array_equal(logged.images[i], map_picture(drawn, (24, 24), original=m))
        assert list(logged.ranges[i]) == [drawn.low, drawn.high]


def test_each_drawing_puts_its_scale_where_the_values_are():
    m = np.array([[-2.0, 0.0], [1.0, 4.0]])
    signed = normalize_map("signed", m)
    assert signed.unit[0, 1] == 0.5 and signed.low == -signed.high  # white = 0, symmetric
    assert signed.unit[1, 1] == 1.0 and signed.unit[0, 0] < 0.5
    cam = normalize_map("cam", np.abs(m))
    assert cam.unit.max() == 1.0 and cam.high == 4.0
    ranged = normalize_map("range", m + 10)
    assert (ranged.low, ranged.high) == (8.0, 14.0) and ranged.unit.min() == 0.0
    stretched = normalize_map("stretched", np.arange(200.0).reshape(10, 20))
    assert stretched.high == pytest.approx(np.percentile(np.arange(200.0), 99)) and stretched.unit.max() == 1.0
    rgb = np.stack([m, -m], -1)
    assert normalize_map("signed", rgb).high == 0.0  # channels summed before the scale: they cancel here


NEW_METHODS = {"lrp": {}, "gradcam_plus_plus": {}, "layercam": {}, "xgradcam": {}, "hirescam": {}, "eigencam": {},
               "scorecam": {"max_channels": 8}, "ablationcam": {}, "rise": {"masks": 64}}


def test_the_new_methods_log_through_the_callback_as_the_api_computes_and_the_cli_draws(tmp_path):
    """Each new method, added as one module and one record, logs end to end: the callback's tags come from the
    record's logger, the maps from the public function, the value ranges on the dashboard's colour bars from the
    one drawing (``figures.maps``), compiled once (no retracing after the first log)."""
    import json
    import os

    import keras
    import tensorflow as tf

    from keras_convviz import ConvVizCallback, demo
    from tb_plugin import metadata as md

    keras.utils.set_random_seed(0)
    model = demo.build_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y, _ = demo.shapes(32, seed=0)
    probe = x[:2]
    cb = ConvVizCallback(tmp_path, probe, methods=NEW_METHODS, targets=[0, 1])
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[cb])
    assert not cb.failed, cb.failed
    ranges = {}
    run_dir = tmp_path / "convviz"
    for name in sorted(os.listdir(run_dir)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(run_dir, name)):
            for value in event.summary.value:
                if value.tag == md.STEP_TAG and event.step == 1:
                    ranges = json.loads(tf.make_ndarray(value.tensor)[0])["ranges"]
    for method, options in NEW_METHODS.items():
        record = registry.lookup(method)
        layer = "predictions" if not record.takes_layer else "block3_conv2"
        tag = f"{method}/{layer}/heatmap"
        assert tag in ranges, (tag, sorted(ranges))
        maps = np.asarray(record.load()(model, probe, [0, 1], **options))
        want = [[normalize_map(record.drawing, m).low, normalize_map(record.drawing, m).high] for m in maps]
        np.testing.assert_allclose(ranges[tag], want, rtol=1e-4, atol=1e-6, err_msg=tag)


def test_per_method_layers_may_be_keyed_by_any_name_of_the_method():
    from keras_convviz.loggers.base import LogContext

    ctx = LogContext(graph=None, probe=None, targets=None, image_size=None, write=None, fixed_maps=None,
                     follow=None, layer_spec={"gradcam++": ["block2_conv2"], "deconv": "block1_conv1"})
    assert ctx.layers_for("gradcam_plus_plus", ["default"]) == ["block2_conv2"]
    assert ctx.layers_for("deconv", []) == ["block1_conv1"]
    assert ctx.layers_for("gradcam", ["default"]) == ["default"]
