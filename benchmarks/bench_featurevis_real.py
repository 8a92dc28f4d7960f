"""Feature visualization on a real ImageNet network (issue 24): EfficientNet-Lite0 judged by Lite1.

Every image lives in Lite0's model-input space, ``(x - 127) / 128``, valid
range [-127/128, 1]; all methods are clipped to it before they are judged.

* Transfer: class models of :data:`CLASSES` (16 ImageNet classes: animals,
  objects, food, scenes) made on Lite0 at 224, resized to 240 and
  classified by Lite1: the share of class x seed in Lite1's top 5 (target
  >= 90 %), and Lite0's own mean probability of its class (target >= 0.9).
* Side by side, same classes, steps, network and process: ours
  (``class_model`` with its default recipe, ``featurevis.CLASS_RECIPE``),
  tf-keras-vis ``ActivationMaximization`` with its defaults (its documented
  ``ReplaceToLinear`` logit, ``input_range`` the valid range), and Lucid's
  published class-visualization settings re-implemented here only
  (:func:`lucid`).
* Channels: 16 channels (0-15) of three depths of Lite0; the
  visualization's channel value (the objective: the mean over positions of
  the layer's pre-activation map) against the best over every 224 x 224
  crop (stride 32, at 1x and 0.5x scale) of scikit-image's photographs.
* Plausibility: cosine similarity of Lite0's pooled ``top_activation``
  features between each class model and the photograph of its class
  (:data:`PHOTO_CLASSES`), for ours and the peers.
* Speed: seconds per step on Lite0 and VGG16 (weights=None) at 224 against
  tf-keras-vis (target <= 0.5x); 16 channels in one batch against 16 runs.

Images are cached (``--cache``) per method and seed, so the figure script
(:mod:`featurevis_real_figures`) and reruns reuse them. CPU budgets: ``--seeds``,
``--steps`` and ``--classes`` shrink the run; the README numbers say which.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import time

import numpy as np
import tensorflow as tf

from common import row

# 16 ImageNet classes: animals, objects, food and scenes (index: name), ordered so that any first 8 span all four.
CLASSES = {1: "goldfish", 340: "zebra", 285: "Egyptian cat", 812: "space shuttle", 967: "espresso", 951: "lemon",
           980: "volcano", 130: "flamingo",
           107: "jellyfish", 323: "monarch", 779: "school bus", 849: "teapot", 985: "daisy", 949: "strawberry",
           963: "pizza", 975: "lakeside"}
# scikit-image photographs of a class of CLASSES (plausibility).
PHOTO_CLASSES = {"chelsea": 285, "coffee": 967, "rocket": 812}
LAYERS = ("block3a_expand_activation", "block5c_add", "top_activation")
METHODS = ("ours", "tf-keras-vis", "lucid")


def lite(name="efficientnet-lite0"):
    """``(preset, low, high)`` of a Lite preset (the valid model-input range)."""
    from keras_convviz import presets
    from keras_convviz.methods.optimize import input_range

    preset = presets.load(name)
    low, high = input_range(preset.preprocess)
    return preset, float(low.min()), float(high.max())


# ---------------------------------------------------------------- the three class-model makers
def ours(model, classes, seed, steps, low, high, **options):
    """Our default class models (``class_model``, ``featurevis.CLASS_RECIPE``)."""
    from keras_convviz import class_model

    return class_model(model, list(classes), steps=steps, seed=seed, value_range=(low, high), **options).images


def keras_vis(model, classes, seed, steps, low, high):
    """tf-keras-vis ``ActivationMaximization`` with its defaults on the logit (``ReplaceToLinear``)."""
    from tf_keras_vis.activation_maximization import ActivationMaximization
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    tf.random.set_seed(seed)  # its start is tf.random.uniform over input_range
    am = ActivationMaximization(model, model_modifier=ReplaceToLinear(), clone=True)
    return np.asarray(am(CategoricalScore(list(classes)), steps=steps, input_range=(low, high),
                         seed_input=tf.random.uniform((len(classes),) + tuple(model.input_shape[1:]), low, high)))


LUCID_COLORS = np.asarray([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)


def _lucid_image(spectrum, h, w):
    """Lucid's ``fft_image`` (decay 1, / 4) + ``to_valid_rgb`` (decorrelate, sigmoid): [0, 1] images."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    scale = (1.0 / np.maximum(np.sqrt(fx ** 2 + fy ** 2), 1.0 / max(h, w))) * math.sqrt(h * w)
    image = tf.signal.irfft2d(tf.complex(spectrum[0], spectrum[1]) * tf.cast(scale, tf.complex64), [h, w])
    image = tf.transpose(image, [0, 2, 3, 1]) / 4.0
    colors = LUCID_COLORS / np.linalg.norm(LUCID_COLORS, axis=0).max()
    return tf.sigmoid(tf.einsum("nhwc,dc->nhwd", image, colors))


def _lucid_transforms(x, h, w):
    """Lucid's ``standard_transforms``: pad 12 (0.5), jitter 8, scale 1 +- 0.1 in 0.02 steps, rotate
    -10..10 degrees (0 weighted 6x), jitter 4; then resized to the fixed input (Lite0 takes only 224)."""
    x = tf.pad(x - 0.5, [[0, 0], [12, 12], [12, 12], [0, 0]]) + 0.5
    n, size = tf.shape(x)[0], h + 24
    x = tf.image.random_crop(x, tf.stack([n, size - 8, size - 8, 3]))
    scale = tf.random.shuffle(tf.constant([1 + (i - 5) / 50.0 for i in range(11)]))[0]
    side = tf.cast(tf.cast(size - 8, tf.float32) * scale, tf.int32)
    x = tf.image.resize(x, tf.stack([side, side]))
    angle = tf.random.shuffle(tf.constant(list(range(-10, 11)) + 5 * [0], tf.float32))[0] * math.pi / 180
    c, s = tf.cos(angle), tf.sin(angle)
    half = (tf.cast(side, tf.float32) - 1) / 2
    rows = tf.stack([c, -s, half - c * half + s * half, s, c, half - s * half - c * half, 0.0, 0.0])
    x = tf.raw_ops.ImageProjectiveTransformV3(images=x, transforms=tf.tile(rows[None], [n, 1]),
                                              output_shape=tf.stack([side, side]), fill_value=0.0,
                                              interpolation="BILINEAR", fill_mode="REFLECT")
    x = tf.image.random_crop(x, tf.stack([n, side - 4, side - 4, 3]))
    return tf.image.resize(x, (h, w))


def lucid(model, classes, seed, steps, low, high):
    """Lucid's published class visualization (``render_vis`` defaults: ``param.image(fft=True,
    decorrelate=True)``, sd 0.01, ``standard_transforms``, Adam 0.05) on the logit, re-implemented."""
    h, w = model.input_shape[1:3]
    tf.random.set_seed(seed)
    spectrum = tf.Variable(tf.random.normal((2, len(classes), 3, h, w // 2 + 1), stddev=0.01, seed=seed))
    optimizer = tf.keras.optimizers.Adam(0.05)
    logits = tf.keras.Model(model.inputs, model.get_layer("logits").output)
    index = tf.constant(list(classes))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            x = _lucid_transforms(_lucid_image(spectrum, h, w), h, w)
            out = logits(low + (high - low) * x)
            loss = -tf.reduce_sum(tf.gather(out, index, axis=1, batch_dims=1))
        optimizer.apply_gradients([(tape.gradient(loss, spectrum), spectrum)])

    for _ in range(steps):
        step()
    return (low + (high - low) * _lucid_image(spectrum, h, w)).numpy()


# MaCo at the step it was measured with (lr 0.05; the recipe's 0.0125 is the Fourier image's)
# "ours-bfloat16": the same recipe with its iterations on a bfloat16 twin (keras_convviz.precision).
MAKERS = {"ours": ours, "tf-keras-vis": keras_vis, "lucid": lucid,
          "maco": functools.partial(ours, param="maco", lr=0.05),
          "ours-bfloat16": functools.partial(ours, precision="bfloat16")}


# ---------------------------------------------------------------- making and judging
def class_images(method, lite0, seed, steps, low, high, classes, cache=None):
    """The class models of ``method`` for ``classes`` at ``seed``: ``(N, 224, 224, 3)``, cached one .npy per
    class (a subset of an earlier run's classes is read back, not remade)."""
    def path(c):
        return cache and os.path.join(cache, f"{method}_s{seed}_n{steps}_c{c}.npy")

    missing = [c for c in classes if not (cache and os.path.exists(path(c)))]
    if missing:
        start = time.perf_counter()
        images = np.clip(MAKERS[method](lite0.model, missing, seed, steps, low, high), low, high)
        print(f"  {method} seed {seed}, {len(missing)} classes: {time.perf_counter() - start:.0f} s", flush=True)
        made = dict(zip(missing, images.astype(np.float32)))
        if not cache:
            return np.stack([made[c] for c in classes])
        os.makedirs(cache, exist_ok=True)
        for c, image in made.items():
            np.save(path(c), image)
    return np.stack([np.load(path(c)) for c in classes])


def judge(lite0, lite1, images, classes, low, high):
    """``(Lite0's probability of each class, Lite1's rank of it (0: top-1), Lite1's probability of it)``
    for clipped images."""
    x = np.clip(images, low, high)
    own = lite0.model.predict(x, verbose=0)[np.arange(len(classes)), classes]
    size = lite1.model.input_shape[1:3]
    resized = np.clip(tf.image.resize(x, size, method="bilinear").numpy(), low, high)
    out = lite1.model.predict(resized, verbose=0)
    ranks = np.array([int((out[i] > out[i, c]).sum()) for i, c in enumerate(classes)])
    return own, ranks, out[np.arange(len(classes)), classes]


def side_by_side(lite0, lite1, low, high, classes, seeds, steps, cache, methods=METHODS):
    """Transfer and own-probability rows for each method; returns ``(rows, {method: [images per seed]})``."""
    rows, made = [], {}
    for method in methods:
        own, ranks, other = [], [], []
        made[method] = []
        for seed in seeds:
            images = class_images(method, lite0, seed, steps, low, high, classes, cache)
            made[method].append(images)
            p, r, p1 = judge(lite0, lite1, images, classes, low, high)
            own.append(p)
            ranks.append(r)
            other.append(p1)
        own, ranks, other = np.stack(own), np.stack(ranks), np.stack(other)
        top5 = float(np.mean(ranks < 5))
        missed = sorted({CLASSES[classes[j]] for i, j in zip(*np.nonzero(ranks >= 5))})
        detail = (f"top-1 {np.mean(ranks == 0):.2f}, Lite1's mean probability {other.mean():.2f} (lowest "
                  f"{CLASSES[classes[int(np.argmin(other.mean(0)))]]} {other.mean(0).min():.2f}); misses: "
                  f"{', '.join(missed) or 'none'}")
        rows.append(row(f"{method}: Lite0 class models in Lite1's top 5 ({len(classes)} classes x "
                        f"{len(seeds)} seeds, {steps} steps)", f"{top5:.2f}", ">= 0.90", top5 >= 0.9, detail))
        per_class = ", ".join(f"{CLASSES[c]} {v:.2f}" for c, v in zip(classes, own.mean(0)))
        rows.append(row(f"{method}: Lite0's own probability of its class", f"{own.mean():.3f}", ">= 0.9",
                        own.mean() >= 0.9, per_class))
    return rows, made


# ---------------------------------------------------------------- channels
def photo_crops(preprocess, size=224, stride=32, scales=(1.0, 0.5)):
    """Every ``size`` crop (``stride`` apart) of scikit-image's photographs at each scale, model inputs."""
    import skimage.data
    import skimage.transform

    from keras_convviz.methods.maco import PHOTOS

    crops = []
    for name in PHOTOS:
        photo = getattr(skimage.data, name)()
        photo = (photo[0] if isinstance(photo, tuple) else photo)[..., :3]
        for scale in scales:
            image = skimage.transform.rescale(photo, scale, channel_axis=-1, anti_aliasing=True,
                                              preserve_range=True) if scale != 1 else photo.astype(np.float64)
            h, w = image.shape[:2]
            crops += [image[y:y + size, x:x + size] for y in range(0, h - size + 1, stride)
                      for x in range(0, w - size + 1, stride)]
    return np.asarray(preprocess(np.stack(crops).astype(np.float32)), np.float32)


def channel_values(model, layer, x, batch=32):
    """The channel objective (mean over positions of ``layer``'s pre-activation map) ``(N, C)``."""
    from keras_convviz.graph import walk
    from keras_convviz.probe import run

    graph = walk(model)
    fn = tf.function(lambda v: tf.reduce_mean(run(graph, v, [], linear=[layer])[layer], axis=[1, 2]))
    return np.concatenate([fn(tf.constant(x[i:i + batch])).numpy() for i in range(0, len(x), batch)])


def channel_rows(lite0, low, high, steps, units=16, cache=None):
    """Per layer: the share of channels 0..15 whose visualization beats the best photo crop (the images are
    cached as ``channels_fourier_<layer>_n<steps>.npy`` for the figure script)."""
    from keras_convviz import featurevis
    from keras_convviz.methods.featurevis import channel

    crops = photo_crops(lite0.preprocess)
    out = []
    for layer in LAYERS:
        best = channel_values(lite0.model, layer, crops)[:, :units].max(0)
        start = time.perf_counter()
        vis = featurevis(lite0.model, channel(layer, list(range(units))), steps=steps, value_range=(low, high))
        if cache:
            os.makedirs(cache, exist_ok=True)
            np.save(os.path.join(cache, f"channels_fourier_{layer}_n{steps}.npy"), vis.images)
        mine = channel_values(lite0.model, layer, np.clip(vis.images, low, high))[np.arange(units), np.arange(units)]
        share = float(np.mean(mine > best))
        out.append(row(f"{layer}: channels 0-{units - 1} above the best of {len(crops)} photo crops",
                       f"{share:.2f}", ">= 0.90", share >= 0.9,
                       f"median ratio {np.median(mine / np.maximum(best, 1e-6)):.1f}x, {steps} steps, "
                       f"{time.perf_counter() - start:.0f} s"))
    return out


# ---------------------------------------------------------------- plausibility
def pooled_features(model, x):
    """Lite0's globally pooled ``top_activation`` (the penultimate features) ``(N, 1280)``."""
    import keras

    head = keras.Model(model.inputs, model.get_layer("top_activation").output)
    return head.predict(x, verbose=0).mean(axis=(1, 2))


def plausibility_rows(lite0, made, classes):
    """Mean cosine similarity of each method's class model with the photo of its class, and with the
    photos of the other classes (the control), over seeds."""
    from keras_convviz.methods.maco import photo_inputs

    names = [n for n, c in PHOTO_CLASSES.items() if c in classes]
    if not names:
        return []
    from keras_convviz.methods import maco

    keep = [maco.PHOTOS.index(n) for n in names]
    photos = pooled_features(lite0.model, lite0.preprocess(255.0 * photo_inputs(224)[keep]))
    photos /= np.linalg.norm(photos, axis=1, keepdims=True)
    out = []
    for method, seeds in made.items():
        sims = []
        for images in seeds:
            pick = np.asarray([classes.index(PHOTO_CLASSES[n]) for n in names])
            f = pooled_features(lite0.model, images[pick])
            sims.append((f / np.linalg.norm(f, axis=1, keepdims=True)) @ photos.T)
        sims = np.mean(sims, 0)
        own = np.diag(sims)
        other = (sims.sum() - own.sum()) / max(1, sims.size - len(own))
        detail = ", ".join(f"{CLASSES[PHOTO_CLASSES[n]]}/{n} {v:.2f}" for n, v in zip(names, own))
        out.append(row(f"{method}: cosine(class model, photo of its class), Lite0 pooled features",
                       f"{own.mean():.2f}", "above the peers'", None, f"{detail}; other classes' photos {other:.2f}"))
    return out


# ---------------------------------------------------------------- speed
def _per_step(fns, short, long, repeat=3):
    """Seconds per step of each ``fn(steps)``: the difference of a ``long`` and a ``short`` run (compilation
    and set-up cancel out), the median of ``repeat`` rounds that alternate the fns (the machine is shared:
    its load drifts, and alternation lets the drift hit every fn alike)."""
    for fn in fns:
        fn(short)
    rounds = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn(short)
            middle = time.perf_counter()
            fn(long)
            rounds[i].append((time.perf_counter() - 2 * middle + start) / (long - short))
    return [float(np.median(r)) for r in rounds]


def speed_rows(lite0, low, high, short=4, long=16):
    """Our step against tf-keras-vis's on Lite0 and VGG16 at 224, and 16 channels batched vs 16 runs."""
    import keras

    from keras_convviz import class_model, featurevis
    from keras_convviz.methods.featurevis import channel

    vgg = keras.applications.VGG16(weights=None, input_shape=(224, 224, 3))
    vgg_range = (np.array([-103.939, -116.779, -123.68]), np.array([151.061, 138.221, 131.32]))
    out = []
    for name, model, (lo, hi) in (("Lite0", lite0.model, (low, high)), ("VGG16", vgg, vgg_range)):
        mine, theirs = _per_step([lambda s: class_model(model, 20, steps=s, value_range=(lo, hi)),
                                  lambda s: keras_vis(model, [20], 0, s, float(np.min(lo)), float(np.max(hi)))],
                                 short, long)
        out.append(row(f"class-model step vs tf-keras-vis ActivationMaximization, {name}@224",
                       f"{mine / theirs:.2f}x", "<= 0.5x", mine / theirs <= 0.5,
                       f"{mine:.3f} s vs {theirs:.3f} s per step"))
    layer, steps = "block5c_add", 2
    featurevis(lite0.model, channel(layer, list(range(16))), steps=1, value_range=(low, high))
    featurevis(lite0.model, channel(layer, 0), steps=1, value_range=(low, high))
    start = time.perf_counter()
    featurevis(lite0.model, channel(layer, list(range(16))), steps=steps, value_range=(low, high))
    batched = time.perf_counter() - start
    start = time.perf_counter()
    for k in range(16):
        featurevis(lite0.model, channel(layer, k), steps=steps, value_range=(low, high))
    sequential = time.perf_counter() - start
    out.append(row(f"16 channels of {layer} in one batch vs 16 runs, Lite0@224", f"{batched / sequential:.2f}x",
                   "< 1x", batched < sequential, f"{batched:.1f} s vs {sequential:.1f} s, {steps} steps"))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=len(CLASSES), help="the first N of CLASSES")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--channel-steps", type=int, default=256)
    parser.add_argument("--cache", default="/tmp/convviz_featurevis_real")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--parts", default="transfer,plausibility,channels,speed")
    args = parser.parse_args(argv)
    if args.classes < 1 or args.seeds < 1 or args.steps < 1:
        parser.error("--classes, --seeds and --steps must be >= 1")
    parts = args.parts.split(",")
    lite0, low, high = lite()
    lite1 = lite("efficientnet-lite1")[0]
    classes = list(CLASSES)[:args.classes]
    rows, made = [], {}
    if "transfer" in parts or "plausibility" in parts:
        got, made = side_by_side(lite0, lite1, low, high, classes, range(args.seeds), args.steps, args.cache,
                                 args.methods.split(","))
        rows += got if "transfer" in parts else []
    if "plausibility" in parts:
        rows += plausibility_rows(lite0, made, classes)
    if "channels" in parts:
        rows += channel_rows(lite0, low, high, args.channel_steps, cache=args.cache)
    if "speed" in parts:
        rows += speed_rows(lite0, low, high)
    for r in rows:
        verdict = "" if r["ok"] is None else (" ok" if r["ok"] else " MISSED")
        print(f"{r['benchmark']}: {r['figure']} (target {r['target']}{verdict}) {r['detail']}", flush=True)


if __name__ == "__main__":
    main()
