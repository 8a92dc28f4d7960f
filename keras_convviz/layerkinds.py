"""What kind of layer a step is: its geometry kind and the activation it applies.

The walk (:mod:`keras_convviz.graph`) classifies every layer call once with
these; the backward rules, the receptive fields and the box filter all read
the classification instead of testing layer types themselves.
"""

from __future__ import annotations

__all__ = ["layer_kind", "activation_of", "POINTWISE"]

# Layer kinds with a kernel that moves over the image.
_CONV = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")
_MERGE = ("Add", "Concatenate", "Multiply", "Subtract", "Average", "Maximum", "Minimum")
# Pointwise layers: same shape in and out, each output pixel depends on the
# same input pixel only, so they run unchanged on any window of a map.
POINTWISE = ("BatchNormalization", "ReLU", "Activation", "Dropout", "SpatialDropout2D",
             "GaussianNoise", "GaussianDropout", "AlphaDropout", "LeakyReLU", "ELU",
             "Rescaling", "Normalization", "Identity")


def layer_kind(layer):
    """conv | maxpool | avgpool | zeropad | crop | merge | other."""
    name = type(layer).__name__
    if name in _CONV:
        return "conv"
    if name == "MaxPooling2D":
        return "maxpool"
    if name == "AveragePooling2D":
        return "avgpool"
    if name == "ZeroPadding2D":
        return "zeropad"
    if name == "Cropping2D":
        return "crop"
    if name in _MERGE:
        return "merge"
    return "other"


def _classify_activation(fn):
    name = getattr(fn, "__name__", "") or ""
    if fn is None or name == "linear":
        return "linear"
    if name in ("relu", "relu6", "softmax", "sigmoid"):
        return name
    return "other"


def activation_of(layer):
    """``(kind, fused)``: the activation a layer applies and whether it is fused."""
    cls = type(layer).__name__
    if cls == "ReLU":
        plain = float(layer.negative_slope) == 0.0 and float(layer.threshold) == 0.0
        if not plain:
            return "other", False
        if layer.max_value is None:
            return "relu", False
        return ("relu6" if float(layer.max_value) == 6.0 else "other"), False
    if cls == "Softmax":
        return "softmax", False
    if cls == "Activation":
        return _classify_activation(layer.activation), False
    if hasattr(layer, "activation") and callable(getattr(layer, "activation", None)):
        return _classify_activation(layer.activation), True
    return "linear", False
