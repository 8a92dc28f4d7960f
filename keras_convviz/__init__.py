"""keras-convviz: see inside convolutional networks (Keras 3, TensorFlow backend).

The public API (see DESIGN.md). Names are imported on first use, so
``import keras_convviz`` stays cheap and each method lives in its own module.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "receptive_fields": "fields",
    "ReceptiveField": "fields",
    "walk": "graph",
    "capture": "methods.capture",
    "Capture": "methods.capture",
    "deconv": "methods.deconv",
    "deconv_units": "methods.deconv",
    "box_filter": "methods.boxfilter",
    "saliency": "methods.gradients",
    "smoothgrad": "methods.gradients",
    "guided_backprop": "methods.gradients",
    "integrated_gradients": "methods.gradients",
    "gradcam": "methods.gradcam",
    "occlusion": "methods.occlusion",
    "invariance": "methods.invariance",
    "Invariance": "methods.invariance",
    "filters": "methods.filters",
    "Filters": "methods.filters",
    "correspondence": "methods.correspondence",
    "Correspondence": "methods.correspondence",
    "class_model": "methods.classmodel",
    "invert": "methods.inversion",
    "featurevis": "methods.featurevis",
    "FeatureVis": "methods.featurevis",
    "top_activations": "methods.topk",
    "ConvVizCallback": "callbacks",
    "show": "notebook",
    "Figure": "notebook",
}
_MODULES = ("demo", "presets", "render", "media", "metrics", "summary", "select", "graph", "fields", "probe",
            "request", "fit", "hed", "beam")  # beam needs the [beam] extra (apache-beam)

__all__ = sorted(_API) + list(_MODULES)


def __getattr__(name):
    if name in _API:
        module = importlib.import_module(f"{__name__}.{_API[name]}")
        return getattr(module, name)
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
