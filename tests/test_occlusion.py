"""Occlusion sensitivity: a numpy/loop reference, the demo-model localization
property, the fig. 7 panel and bad input."""

import numpy as np
import pytest

import keras

from keras_convviz.figures.occlusion import figure
from keras_convviz.methods.occlusion import grid_origins, occlusion

from fixtures import branch_model, chain_model, convviz


def _reference(model, x, target, patch, stride, fill, layer):
    """Loop over positions, paint the square in numpy, run the model."""
    n, h, w, c = x.shape
    probe = keras.Model(model.inputs, [model.get_layer(layer).output, model.output])
    oys, oxs = grid_origins(h, patch, stride), grid_origins(w, patch, stride)
    acts0, out0 = (np.asarray(t) for t in probe(x, training=False))
    probs0 = out0 if model.layers[-1].activation.__name__ == "softmax" else _softmax(out0)
    tgt = probs0.argmax(1) if target is None else np.broadcast_to(np.asarray(target), (n,))
    maps = acts0.reshape(n, -1, acts0.shape[-1]).max(1).argmax(1)
    fills = x.reshape(n, -1, c).mean(1) if fill is None else np.broadcast_to(fill, (n, c))
    batch = []
    for i in range(n):
        for y0 in oys:
            for x0 in oxs:
                img = x[i].copy()
                img[y0:y0 + patch, x0:x0 + patch] = fills[i]
                batch.append(img)
    acts, out = (np.asarray(t) for t in probe(np.stack(batch), training=False))
    p = out if model.layers[-1].activation.__name__ == "softmax" else _softmax(out)
    shape = (n, len(oys), len(oxs))
    owner = np.repeat(np.arange(n), len(oys) * len(oxs))
    prob = p[np.arange(len(p)), tgt[owner]].reshape(shape)
    top = p.argmax(1).reshape(shape)
    act = acts[np.arange(len(p)), ..., maps[owner]].reshape(len(p), -1).sum(1).reshape(shape)
    return prob, top, act, tgt, maps


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("incremental", [True, False])
@pytest.mark.parametrize("layer", ["c3", "c2", "r2"])
def test_matches_loop_reference(incremental, layer):
    model = chain_model()
    x = np.random.default_rng(0).uniform(0, 1, (2, 20, 18, 3)).astype(np.float32)
    # patch 7, stride 5: the last occluder hangs over both edges
    got = occlusion(model, x, None, 7, 5, layer=layer, batch_size=7, incremental=incremental)
    prob, top, act, tgt, maps = _reference(model, x, None, 7, 5, None, layer)
    assert got.probability.shape == (2, 4, 4) == prob.shape
    np.testing.assert_array_equal(got.target, tgt)
    np.testing.assert_array_equal(got.map_index, maps)
    np.testing.assert_allclose(got.probability, prob, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.activation, act, rtol=1e-4, atol=1e-4)
    assert (got.top_class == top).mean() > 0.97


def test_incremental_engine_is_used_on_a_chain():
    from keras_convviz.graph import walk
    from keras_convviz.methods.incremental import engine

    model = chain_model()
    graph = walk(model)
    eng = engine(graph, "c3", "predictions", (7, 7), (grid_origins(20, 7, 5), grid_origins(18, 7, 5)))
    assert eng is not None and [g.step.name for g in eng.windowed_layers][:2] == ["c1", "p1"]


def test_branchy_model_fixed_target_and_fill():
    model = branch_model()
    x = np.random.default_rng(1).normal(size=(2, 16, 16, 3)).astype(np.float32)
    got = occlusion(model, x, [1, 2], 6, 4, fill=0.0, layer="c", batch_size=5)
    prob, top, act, tgt, maps = _reference(model, x, [1, 2], 6, 4, np.zeros(3, np.float32), "c")
    np.testing.assert_allclose(got.probability, prob, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.activation, act, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(got.target, [1, 2])
    assert got.fill.shape == (2, 3) and np.all(got.fill == 0)


def test_grid_covers_the_image():
    assert list(grid_origins(224, 32, 32)) == [0, 32, 64, 96, 128, 160, 192]
    assert list(grid_origins(20, 7, 5)) == [0, 5, 10, 15]  # 15 + 7 > 20: reaches the edge
    assert list(grid_origins(8, 8, 3)) == [0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(patch=40, stride=4), "larger than"),
    (dict(patch=4, stride=0), "stride must be >= 1"),
    (dict(patch=4, stride=-2), "stride must be >= 1"),
    (dict(patch=0, stride=2), "patch must be"),
    (dict(patch=4, stride=2, fill=[1.0, 2.0]), "fill must be"),
    (dict(patch=4, stride=2, layer="predictions"), "not a spatial"),
    (dict(patch=4, stride=2, layer="c33"), "unknown layer"),
    (dict(patch=4, stride=2, batch_size=0), "batch_size"),
])
def test_bad_input(kwargs, message):
    model = chain_model()
    x = np.zeros((1, 20, 18, 3), np.float32)
    with pytest.raises(ValueError, match=message):
        occlusion(model, x, None, **kwargs)


def test_bad_target():
    model = chain_model()
    with pytest.raises(ValueError, match="outside the model's classes"):
        occlusion(model, np.zeros((1, 20, 18, 3), np.float32), 7, 4, 4)


@pytest.mark.slow
def test_demo_minimum_lies_on_the_object():
    from keras_convviz import demo

    model = demo.load_model()
    images, labels, boxes = demo.shapes(40, seed=123)
    patch = 16
    res = occlusion(model, images, labels, patch, 8, batch_size=64)
    hits = 0
    for i in range(len(images)):
        a, b = np.unravel_index(np.argmin(res.probability[i]), res.grid_shape)
        y0, y1, x0, x1 = res.window(a, b)
        cy, cx = (y0 + y1) / 2, (x0 + x1) / 2  # the occluder's centre
        by0, bx0, by1, bx1 = boxes[i]
        half = patch / 2
        hits += (by0 - half <= cy <= by1 + half) and (bx0 - half <= cx <= bx1 + half)
    assert hits / len(images) >= 0.9, hits
    assert res.probability.shape == (40, 7, 7)


def test_figure_panel():
    model = chain_model()
    x = np.random.default_rng(0).uniform(0, 1, (1, 20, 18, 3)).astype(np.float32)
    res = occlusion(model, x, None, 7, 5)
    panel = figure((x[0] * 255).astype(np.uint8), res, 0, class_names=["cat", "dog", "eel"], cell=64)
    assert panel.dtype == np.uint8 and panel.ndim == 3 and panel.shape[1] > 4 * 64


@pytest.mark.slow
def test_cli_occlusion(tmp_path):
    from keras_convviz import demo, media

    images, labels, _ = demo.shapes(1, seed=7)
    src = media.save_png(tmp_path / "shape.png", (images[0] * 255).astype(np.uint8))
    out = tmp_path / "out"
    proc = convviz("occlusion", src, "--model", "demo", "--target", demo.CLASS_NAMES[labels[0]],
                "--patch", "16", "--stride", "8", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (out / "shape_occlusion.png").is_file()
    saved = np.load(out / "shape_occlusion.npz")
    assert saved["probability"].shape == (7, 7) and int(saved["target"]) == labels[0]
    assert demo.CLASS_NAMES[labels[0]] in proc.stdout

    bad = convviz("occlusion", src, "--model", "demo", "--patch", "100", "--stride", "8", "--out", str(out))
    assert bad.returncode == 2 and "larger than the 64x64 image" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    bad = convviz("occlusion", src, "--model", "demo", "--patch", "8", "--stride", "0", "--out", str(out))
    assert bad.returncode == 2 and "stride must be >= 1" in bad.stderr
    bad = convviz("occlusion", src, "--model", "demo", "--target", "hexagon", "--out", str(out))
    assert bad.returncode == 2 and "nor a class name" in bad.stderr


@pytest.mark.parametrize("incremental", [True, False])
def test_batching_does_not_change_the_maps(incremental):
    model = chain_model()
    x = np.random.default_rng(5).uniform(0, 1, (3, 20, 18, 3)).astype(np.float32)
    # 16 positions: batch_size 40 packs two images per chunk, 3 splits every image
    a = occlusion(model, x, 1, 7, 5, batch_size=40, incremental=incremental)
    b = occlusion(model, x, 1, 7, 5, batch_size=3, incremental=incremental)
    np.testing.assert_allclose(a.probability, b.probability, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a.activation, b.activation, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(a.top_class, b.top_class)
    np.testing.assert_array_equal(a.target, [1, 1, 1])
    up = a.upsampled("probability")
    assert up.shape == (3, 20, 18)
    # the top-left pixel is covered by the first occluder only
    assert up[0, 0, 0] == pytest.approx(a.probability[0, 0, 0])
