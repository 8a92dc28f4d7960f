"""Occlusion on VGG16 (weights=None) at 224, patch 32, stride 32 (7x7 = 49 occluders, 1 image).

Side by side in one process:
* tf-explain's ``OcclusionSensitivity.get_sensitivity_map`` (numpy-patched
  images + ``model.predict``; its compute core, without the cv2 heatmap);
* 49 plain batched forward passes of the pre-occluded images (the floor for
  any method that runs the full network per occluder);
* ours, default (incremental recomputation of the conv/pool chain);
* ours with ``incremental=False`` (full forward per occluder).
"""

from __future__ import annotations

import numpy as np

from common import interleaved_medians, row


def vgg16_case():
    """VGG16 (weights=None) at 224 on a random image: ``(model, x, target, label)``."""
    import keras

    model = keras.applications.VGG16(weights=None)
    x = np.random.default_rng(0).uniform(-100, 100, (1, 224, 224, 3)).astype(np.float32)
    return model, x, 3, "VGG16@224"


def rows(quick=False, case=vgg16_case):
    import tensorflow as tf

    from keras_convviz.methods.occlusion import grid_origins, occlusion

    model, x, target, label = case()
    patch = stride = 32
    oys = grid_origins(224, patch, stride)
    occluded = []
    mean = x[0].reshape(-1, 3).mean(0)
    for y0 in oys:
        for x0 in oys:
            img = x[0].copy()
            img[y0:y0 + patch, x0:x0 + patch] = mean
            occluded.append(img)
    occluded = np.stack(occluded)  # 49 images, built outside the timed region
    plain_fn = tf.function(lambda t: model(t, training=False), reduce_retracing=True)
    batches = [occluded[:25], occluded[25:]]  # the same even split our batching uses (batch_size=32)

    def plain():
        for b in batches:
            plain_fn(tf.constant(b)).numpy()

    def ours():
        return occlusion(model, x, target, patch, stride)

    def ours_full():
        return occlusion(model, x, target, patch, stride, incremental=False)

    fns, names = [ours, ours_full, plain], ["ours", "ours_full", "plain"]
    tfx_error = None
    try:
        from tf_explain.core.occlusion_sensitivity import OcclusionSensitivity

        explainer = OcclusionSensitivity()

        def tfx():
            explainer.get_sensitivity_map(model, x[0], target, patch)

        fns.append(tfx)
        names.append("tfx")
    except Exception as err:  # not installed / incompatible with Keras 3
        tfx_error = f"{type(err).__name__}: {err}"
    # agreement first (also the warm-up of both): incremental must give the full path's numbers
    a, b = ours(), ours_full()
    diff = float(np.max(np.abs(a.probability - b.probability)))
    for fn in fns[2:]:
        fn()  # compile / warm up the references
    times = dict(zip(names, interleaved_medians(fns, repeat=1 if quick else 3, warmup=0)))
    out = []
    if "tfx" in times:
        r = times["ours"] / times["tfx"]
        out.append(row(f"occlusion {label} p32 s32 vs tf-explain OcclusionSensitivity",
                       f"{r:.2f}x ({times['ours']:.1f} s vs {times['tfx']:.1f} s)", "<= 0.8x", r <= 0.8,
                       f"tf-explain / plain forwards = {times['tfx'] / times['plain']:.2f}x"))
    else:
        out.append(row(f"occlusion {label} vs tf-explain", "not run", "<= 0.8x", None, tfx_error[:80]))
    r = times["ours"] / times["plain"]
    out.append(row(f"occlusion {label} p32 s32 (incremental) vs 49 plain batched forwards",
                   f"{r:.2f}x ({times['ours']:.1f} s vs {times['plain']:.1f} s)", "<= 1.15x", r <= 1.15,
                   f"max |p - p_full| = {diff:.1e}"))
    r = times["ours_full"] / times["plain"]
    out.append(row(f"occlusion {label} p32 s32 (incremental=False) vs 49 plain batched forwards",
                   f"{r:.2f}x ({times['ours_full']:.1f} s vs {times['plain']:.1f} s)", "<= 1.15x", r <= 1.15,
                   "includes the 1 unoccluded pass"))
    return out
