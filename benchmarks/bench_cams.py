"""CAMs (issue 26): Score-CAM, Grad-CAM++ and Layer-CAM vs tf-keras-vis; Ablation-CAM absolute times.

    python benchmarks/bench_cams.py [--quick]     # or: python benchmarks/run.py --only cams
    python benchmarks/bench_cams.py --gradient-cams   # only Grad-CAM++ / Layer-CAM vs tf-keras-vis

Side by side in one process, steady-state medians of interleaved calls, one
image: VGG16 (``weights=None``) at 224 on a uniform(-100, 100) image
(``bench_gradients.vgg16_case``, layer ``block5_conv3``) and EfficientNet-Lite0
(``presets.load``, offline weights) on scikit-image's chelsea
(``bench_real_classifier.lite0_chelsea``, layer ``top_activation``). Both
sides weigh the same channels of the same layer (``max_channels`` =
tf-keras-vis' ``max_N``: the maps with the largest spatial std), explain the
same target through the same score (softmax of the pre-softmax logits: the
tf-keras-vis side gets a linear head, as in ``bench_gradients``), upsample to
224 and skip normalization. Every forward pass of a masked input runs the
whole network, so the channel counts are kept small enough for the loaded
2-core machine (each run under about five minutes). The ratio reported is the
median of the per-round ratios (drifting load hits a round's two calls
alike), with both medians beside it.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_gradients import paired, vgg16_case  # noqa: E402
from common import median_seconds, row  # noqa: E402


def tf_keras_vis_scorecam(model):
    import keras
    from tf_keras_vis.scorecam import Scorecam

    def linear_head(clone):
        clone.layers[-1].activation = keras.activations.linear

    return Scorecam(model, model_modifier=linear_head, clone=True)


def lite0_case():
    from bench_real_classifier import lite0_chelsea

    model, x, target, label = lite0_chelsea()
    return model, x, target, "top_activation", label


def scorecam_row(case, channels, repeat):
    """Our ``scorecam`` vs tf-keras-vis ``Scorecam``: same layer, channels, target, score; both upsampled."""
    from tf_keras_vis.utils.scores import CategoricalScore

    from keras_convviz.methods.scorecam import scorecam

    model, x, target, layer, label = case
    vis, score = tf_keras_vis_scorecam(model), CategoricalScore([target])
    theirs = lambda expand=True: vis(score, x, penultimate_layer=layer, seek_penultimate_conv_layer=False,  # noqa: E731
                                     max_N=channels, batch_size=32, normalize_cam=False, expand_cam=expand)
    ours = lambda upsample=True: scorecam(model, x, target, layer=layer, max_channels=channels,  # noqa: E731
                                          batch_size=32, upsample=upsample)
    reference = np.asarray(theirs(expand=False))
    agree = float(np.abs(ours(upsample=False) - reference).max() / max(np.abs(reference).max(), 1e-12))
    floor = forward_floor(model, x, channels + 1)
    t_ours, t_floor, floor_ratio = paired(ours, floor, repeat=repeat)
    t_ours, t_vis, ratio = paired(ours, theirs, repeat=repeat)
    return row(f"Score-CAM {label} ({layer}, {channels} channels), 1 image vs tf-keras-vis Scorecam",
               f"{ratio:.2f}x ({t_ours:.2f} s vs {t_vis:.2f} s)", "<= 0.5x", ratio <= 0.5,
               f"median of per-round ratios; same map to {agree:.1e} (rel., before the final resize); "
               f"{floor_ratio:.2f}x the floor: one compiled forward pass of {channels + 1} images, {t_floor:.2f} s")


def forward_floor(model, x, count):
    """The least Score-CAM can cost: one compiled forward pass of ``count`` images (the maps' pass and one
    masked input per channel), in batches of 32 as both sides use."""
    import tensorflow as tf

    forward = tf.function(lambda t: model(t, training=False))
    batch = np.repeat(x, count, axis=0)
    return lambda: [forward(tf.constant(batch[i:i + 32])) for i in range(0, count, 32)]


def ablation_row(case, repeat):
    """Ablation-CAM, every channel of the layer, absolute time (no peer in tf-keras-vis)."""
    from keras_convviz.methods.scorecam import ablationcam

    model, x, target, layer, label = case
    channels = int(model.get_layer(layer).output.shape[-1])
    seconds = median_seconds(lambda: ablationcam(model, x, target, layer=layer, batch_size=64),
                             repeat=repeat, warmup=1)
    return row(f"Ablation-CAM {label} ({layer}, all {channels} channels), 1 image", f"{seconds:.2f} s",
               "-", None, f"{channels / seconds:.0f} channels/s through the tail, batch_size=64")


def gradient_cam_row(case, name, repeat):
    """Our Grad-CAM++ or Layer-CAM vs tf-keras-vis ``GradcamPlusPlus`` / ``Layercam``: same layer, target, logit,
    both upsampled to the input and not normalized."""
    import keras
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.layercam import Layercam
    from tf_keras_vis.utils.scores import CategoricalScore

    import keras_convviz as kc

    model, x, target, layer, label = case
    peer = {"gradcam_plus_plus": GradcamPlusPlus, "layercam": Layercam}[name]

    def linear_head(clone):
        clone.layers[-1].activation = keras.activations.linear

    vis, score, fn = peer(model, model_modifier=linear_head, clone=True), CategoricalScore([target]), getattr(kc, name)
    theirs = lambda: vis(score, x, penultimate_layer=layer, seek_penultimate_conv_layer=False,  # noqa: E731
                         normalize_cam=False)
    ours = lambda: fn(model, x, target, layer=layer)  # noqa: E731
    t_ours, t_vis, ratio = paired(ours, theirs, repeat=repeat)
    return row(f"{name} {label} ({layer}), 1 image vs tf-keras-vis {peer.__name__}",
               f"{ratio:.2f}x ({t_ours * 1000:.0f} ms vs {t_vis * 1000:.0f} ms)", "<= 0.8x", ratio <= 0.8,
               "median of per-round ratios")


def other_cam_rows(quick=False):
    """Grad-CAM++ and Layer-CAM against tf-keras-vis on VGG16 and Lite0 (target <= 0.8x)."""
    repeat = 5 if quick else 15
    return [gradient_cam_row(case, name, repeat) for case in (vgg16_case(), lite0_case())
            for name in ("gradcam_plus_plus", "layercam")]


def scorecam_rows(quick=False, vgg=None, lite=None):
    """Score-CAM vs tf-keras-vis on VGG16 and Lite0, and on Lite0 with every channel (the default)."""
    repeat = 2 if quick else 3
    vgg, lite = vgg or vgg16_case(), lite or lite0_case()
    out = [scorecam_row(vgg, 4 if quick else 16, repeat), scorecam_row(lite, 16 if quick else 64, repeat)]
    if not quick:  # the defaults: every channel of Lite0's top_activation (1280)
        out.append(scorecam_row(lite, int(lite[0].get_layer(lite[3]).output.shape[-1]), 2))
    return out


def rows(quick=False):
    import keras

    keras.utils.disable_interactive_logging()  # tf-keras-vis' predict bar: not part of either method
    repeat = 2 if quick else 3
    vgg, lite = vgg16_case(), lite0_case()
    out = scorecam_rows(quick, vgg, lite)
    out += [ablation_row(vgg, repeat), ablation_row(lite, repeat)]
    return out + other_cam_rows(quick)


def main():
    import subprocess

    quick = "--quick" in sys.argv
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    if "--gradient-cams" in sys.argv:
        table = other_cam_rows(quick)
    elif "--scorecam" in sys.argv:  # only the Score-CAM rows
        import keras

        keras.utils.disable_interactive_logging()
        table = scorecam_rows(quick)
    else:
        table = rows(quick)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    for r in table:
        print(f"| {r['benchmark']} | {r['figure']} | {r['target']} | {r['detail']} |")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
