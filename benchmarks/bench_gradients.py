"""Gradient methods vs tf-keras-vis, side by side in one process; memory vs samples.

VGG16 (``weights=None``) at 224x224, one image, steady-state medians of
interleaved calls. tf-keras-vis 0.8.7 is used the way its README shows for a
softmax model, with one Keras 3 adjustment: its ``ReplaceToLinear`` modifier
reads ``model.output_names``, which Keras 3 models no longer have
(AttributeError), so the modifier is the plain function its docs also accept,
``model.layers[-1].activation = linear`` on the clone (``clone=True``). Both
sides explain the same pre-softmax logit; Grad-CAM uses ``block5_conv3`` on
both sides (tf-keras-vis' own default: the last conv layer), upsampled to
224x224 on both sides.

Memory: the peak resident set (``VmHWM`` from ``/proc/self/status``) of a
fresh process per run, so TensorFlow's import and the model count too; we
report it raw and as the growth during the measured call, and a single batch
of 200 as the contrast. TensorFlow's allocator is invisible to tracemalloc,
``tf.config.experimental.get_memory_info`` is GPU-only, and ``ru_maxrss`` of
a child inherits its parent's high-water mark on Linux, so VmHWM is the
honest CPU measure.

The machines are shared and loaded: SmoothGrad (tens of seconds per call)
reports the median of the per-round ratios of interleaved calls, which
drifting load hits less than a ratio of medians.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from common import interleaved_medians, row


def paired(fa, fb, repeat, warmup=1):
    """Interleaved ``fa``/``fb``: (median a, median b, median of the per-round ratios a/b)."""
    import statistics
    import time

    for _ in range(warmup):
        fa()
        fb()
    ta, tb = [], []
    for _ in range(repeat):
        for fn, acc in ((fa, ta), (fb, tb)):
            start = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - start)
    return statistics.median(ta), statistics.median(tb), statistics.median(a / b for a, b in zip(ta, tb))


def tf_keras_vis_explainers(model):
    import tensorflow as tf
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.saliency import Saliency

    def linear_head(clone):
        clone.layers[-1].activation = tf.keras.activations.linear

    return Saliency(model, model_modifier=linear_head, clone=True), Gradcam(model, model_modifier=linear_head,
                                                                             clone=True)


def vgg16_case():
    """VGG16 (weights=None) at 224 on a random image: ``(model, x, target, grad-cam layer, label)``."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.VGG16(weights=None)
    x = np.random.default_rng(0).uniform(-100, 100, (1, 224, 224, 3)).astype(np.float32)
    return model, x, 281, "block5_conv3", "VGG16@224"


def speed_rows(quick=False, case=vgg16_case):
    """Saliency, Grad-CAM and SmoothGrad-20 against tf-keras-vis on ``case()``'s model and image."""
    import tensorflow as tf
    from tf_keras_vis.utils.scores import CategoricalScore

    from keras_convviz import gradcam, saliency, smoothgrad

    model, x, target, layer, label = case()
    xt = tf.constant(x)
    vis_saliency, vis_gradcam = tf_keras_vis_explainers(model)
    score = CategoricalScore([target])
    plain = tf.function(lambda t: model(t, training=False))

    # the same numbers on both sides (a sanity check, not a timing)
    ours = saliency(model, x, target)
    theirs = vis_saliency(score, x, normalize_map=False)
    agree = float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-12))

    rows = []
    repeat = 3 if quick else 7
    s_ours, s_vis, fwd = interleaved_medians(
        [lambda: saliency(model, x, target), lambda: vis_saliency(score, x, normalize_map=False),
         lambda: plain(xt).numpy()], repeat=repeat)
    rows.append(row(f"saliency {label}, 1 image vs tf-keras-vis Saliency", f"{s_ours / s_vis:.2f}x "
                    f"({s_ours * 1e3:.0f} ms vs {s_vis * 1e3:.0f} ms)", "<= 0.8x", s_ours / s_vis <= 0.8,
                    f"max rel. diff {agree:.1e}"))
    rows.append(row(f"saliency {label}, 1 image vs one plain forward pass", f"{s_ours / fwd:.2f}x "
                    f"({s_ours * 1e3:.0f} ms vs {fwd * 1e3:.0f} ms)", "<= 2.5x", s_ours / fwd <= 2.5))

    g_ours, g_vis = interleaved_medians(
        [lambda: gradcam(model, x, target, layer=layer),
         lambda: vis_gradcam(score, x, penultimate_layer=layer, normalize_cam=False)], repeat=repeat)
    rows.append(row(f"Grad-CAM {label} ({layer}), 1 image vs tf-keras-vis Gradcam",
                    f"{g_ours / g_vis:.2f}x ({g_ours * 1e3:.0f} ms vs {g_vis * 1e3:.0f} ms)", "<= 0.8x",
                    g_ours / g_vis <= 0.8))

    sg_ours, sg_vis, sg_ratio = paired(
        lambda: smoothgrad(model, x, target, samples=20, noise=0.15, batch_size=20),
        lambda: vis_saliency(score, x, smooth_samples=20, smooth_noise=0.15, normalize_map=False),
        repeat=2 if quick else 5)
    rows.append(row(f"SmoothGrad 20 samples {label}, 1 image vs tf-keras-vis", f"{sg_ratio:.2f}x "
                    f"({sg_ours:.2f} s vs {sg_vis:.2f} s)", "<= 0.7x", sg_ratio <= 0.7,
                    "median of per-round ratios"))
    return rows


PEAK_MEMORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peak_memory.py")


def peak_memory(method, count, batch_size=20):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, PEAK_MEMORY, method, str(count), "--batch-size", str(batch_size),
                          "--size", "128"], capture_output=True, text=True, env=env, timeout=900, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_rows(quick=False):
    rows = []
    for method in ("smoothgrad", "ig"):
        small, large = peak_memory(method, 20), peak_memory(method, 200)
        unbatched = peak_memory(method, 200, batch_size=200)
        mb = lambda r: r["peak_kb"] / 1024
        grow = lambda r: (r["peak_kb"] - r["before_kb"]) / 1024
        ratio = large["peak_kb"] / small["peak_kb"]
        rows.append(row(f"{method} peak RSS, 200 vs 20 samples (128x128, 2x conv32, batch_size=20)",
                        f"{ratio:.2f}x ({mb(large):.0f} MB vs {mb(small):.0f} MB)", "<= 1.2x", ratio <= 1.2,
                        f"growth in call {grow(large):.0f} vs {grow(small):.0f} MB; one batch of 200: "
                        f"{mb(unbatched):.0f} MB"))
    return rows


def rows(quick=False):
    return speed_rows(quick) + memory_rows(quick)
