"""keras-convviz: see inside convolutional networks (Keras 3, TensorFlow backend).

The public API (see DESIGN.md). Names are imported on first use, so
``import keras_convviz`` stays cheap and each method lives in its own module.
"""

from __future__ import annotations

import importlib

from . import registry

__version__ = "0.1.0"

# Methods come from their records (registry.py); the rest of the API is listed here.
_API = {
    **registry.api_map(),
    "receptive_fields": "fields",
    "ReceptiveField": "fields",
    "walk": "graph",
    "capture": "methods.capture",
    "Capture": "methods.capture",
    "ConvVizCallback": "callbacks",
    "show": "notebook",
    "Figure": "notebook",
}
_MODULES = ("demo", "presets", "render", "media", "metrics", "summary", "select", "graph", "fields", "probe",
            "request", "fit", "hed", "beam", "registry")  # beam needs the [beam] extra (apache-beam)

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
