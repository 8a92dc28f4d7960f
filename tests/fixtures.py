"""Fixture models and the CLI runner shared by the test modules (like Captum's ``basic_models``).

Each builder makes a small Keras model with a known structure; the tests
compute their expectations on it by hand or with an independent oracle.
"""

import importlib.util
import os
import subprocess
import sys

import keras
import numpy as np
from keras import layers


def convviz(*args, cwd=None, timeout=300):
    """Run the ``convviz`` command in a fresh process (quiet TensorFlow, no GPU)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", "keras_convviz.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout)


def small_cnn(nested=False):
    x = inp = keras.Input((20, 18, 3))
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(x)       # fused ReLU
    x = layers.MaxPooling2D(2, name="p1")(x)
    x = layers.Conv2D(5, 3, padding="valid", name="c2")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU(max_value=6.0, name="relu6")(x)                               # standalone ReLU6
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="p2")(x)
    base = keras.Model(inp, x, name="base")
    if not nested:
        return base
    return keras.Sequential([keras.Input((20, 18, 3)), base, layers.Flatten(name="flat"),
                             layers.Dense(3, activation="softmax", name="head")], name="outer")


def chain_model(seed=0):
    """A small VGG-like chain (exercises the incremental path) with a softmax head."""
    keras.utils.set_random_seed(seed)
    x = inp = keras.Input((20, 18, 3))
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(x)
    x = layers.MaxPooling2D(2, name="p1")(x)
    x = layers.Conv2D(6, 3, padding="same", use_bias=False, name="c2")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU(name="r2")(x)
    x = layers.ZeroPadding2D(((1, 0), (0, 1)), name="zp")(x)
    x = layers.DepthwiseConv2D(3, strides=2, padding="valid", activation="relu", name="dw")(x)
    x = layers.Conv2D(5, 3, padding="same", activation="relu", name="c3")(x)
    x = layers.Flatten()(x)
    out = layers.Dense(3, activation="softmax", name="predictions")(x)
    model = keras.Model(inp, out)
    bn = model.get_layer("bn")
    bn.set_weights([w + np.random.default_rng(1).uniform(0.1, 0.5, w.shape).astype(np.float32)
                    for w in bn.get_weights()])
    return model


def branch_model():
    """A model with a residual Add (takes the plain path)."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((16, 16, 3))
    a = layers.Conv2D(4, 3, padding="same", activation="relu", name="a")(inp)
    b = layers.Conv2D(4, 3, padding="same", name="b")(a)
    x = layers.Add(name="add")([a, b])
    x = layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="c")(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(4, name="logits")(x)  # a logits head: probabilities are its softmax
    return keras.Model(inp, out)


def randomize_bn(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, c).astype(np.float32))
            layer.beta.assign(rng.normal(0, 0.2, c).astype(np.float32))
            layer.moving_mean.assign(rng.normal(0, 0.2, c).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, c).astype(np.float32))


def branched():
    L = layers
    keras.utils.set_random_seed(3)
    inp = keras.Input((30, 30, 3))
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    x = L.ZeroPadding2D(((1, 2), (2, 1)), name="pad")(x)
    x = L.Conv2D(6, 3, name="c2")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="r1")(x)
    a = L.SeparableConv2D(6, 3, padding="same", activation="relu", name="sep")(x)
    b = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    b = L.ReLU(6.0, name="r6")(b)
    s = L.Add(name="add")([a, b])
    x = L.Concatenate(name="cat")([s, b])
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.Cropping2D(((1, 0), (0, 1)), name="crop")(x)
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="c3")(x)
    x = L.MaxPooling2D(2, padding="same", name="pool2")(x)
    x = L.Conv2D(5, 3, padding="same", activation="relu", name="c4")(x)
    model = keras.Model(inp, x)
    randomize_bn(model, 3)
    return model


def dilated_model(merge=layers.Add, pool=layers.AveragePooling2D, size=(42, 37)):
    """Dilation, TF 'same' on odd sizes, a valid stride-2 conv, ZeroPadding, Add, Concatenate."""
    x = keras.Input(size + (3,))
    a = layers.Conv2D(4, 3, dilation_rate=2, padding="same", activation="relu", name="dil2")(x)
    b = layers.Conv2D(4, 3, strides=2, padding="valid", activation="relu", name="down")(a)
    c = layers.Conv2D(4, 3, dilation_rate=3, padding="same", activation="relu", name="dil3")(b)
    d = layers.Conv2D(4, 1, activation="relu", name="point")(b)
    e = merge(name="merge")([c, d])
    f = pool(2, padding="same", name="pool")(e)
    f = layers.ZeroPadding2D(((1, 0), (0, 2)), name="zpad")(f)
    g = layers.Conv2D(4, 3, dilation_rate=2, padding="valid", name="dil2b")(f)
    h = layers.Conv2D(2, 5, padding="valid", activation="relu", name="five")(f)
    out = layers.Concatenate(name="cat")([g, h])
    out = layers.Conv2D(3, 3, strides=2, padding="same", name="last")(out)
    return keras.Model(x, out, name="dilated")


def random_model(seed, pool):
    """A random small CNN; ``pool`` picks max or average pooling (same geometry)."""
    rng = np.random.default_rng(seed)
    size = int(rng.integers(20, 34))
    x = inp = keras.Input((size, size + int(rng.integers(0, 5)), 1))
    for i in range(int(rng.integers(3, 6))):
        if x.shape[1] < 6 or x.shape[2] < 6:
            break  # a valid dilated conv would leave nothing
        choice = rng.integers(0, 6)
        if choice == 0:
            x = layers.Conv2D(2, int(rng.integers(1, 5)), strides=int(rng.integers(1, 3)),
                              padding=str(rng.choice(["same", "valid"])))(x)
        elif choice == 1:
            x = layers.Conv2D(2, 3, dilation_rate=2, padding=str(rng.choice(["same", "valid"])))(x)
        elif choice == 2:
            x = layers.DepthwiseConv2D(int(rng.integers(2, 4)), strides=int(rng.integers(1, 3)),
                                       padding=str(rng.choice(["same", "valid"])))(x)
        elif choice == 3:
            cls = layers.MaxPooling2D if pool == "max" else layers.AveragePooling2D
            x = cls(int(rng.integers(2, 4)), strides=int(rng.integers(1, 3)),
                    padding=str(rng.choice(["same", "valid"])))(x)
        elif choice == 4:
            t, l = (int(v) for v in rng.integers(0, 3, size=2))
            x = layers.ZeroPadding2D(((t, 1), (l, 0)))(x)
        else:
            x = layers.SeparableConv2D(2, 3, padding="same")(x)
    model = keras.Model(inp, x)
    # positive weights and no ReLU: every path adds, so the gradient support
    # is the full dependence set of a unit
    for w in model.weights:
        w.assign(np.abs(np.random.default_rng(seed + 1).normal(size=w.shape)).astype("float32") + 0.1)
    return model


# ------------------------------------------------ keras.applications, built once per session
# name -> (builder name, smallest input side the family accepts)
APPLICATIONS = {
    "VGG16": ("VGG16", 32), "VGG19": ("VGG19", 32), "ResNet50": ("ResNet50", 32),
    "ResNet50V2": ("ResNet50V2", 32), "InceptionV3": ("InceptionV3", 75), "Xception": ("Xception", 71),
    "DenseNet121": ("DenseNet121", 32), "MobileNet": ("MobileNet", 32), "MobileNetV2": ("MobileNetV2", 32),
    "MobileNetV3Small": ("MobileNetV3Small", 32), "MobileNetV3Large": ("MobileNetV3Large", 32),
    "EfficientNetB0": ("EfficientNetB0", 32), "EfficientNetV2B0": ("EfficientNetV2B0", 32),
    "ConvNeXtTiny": ("ConvNeXtTiny", 32), "NASNetMobile": ("NASNetMobile", 32),
}
_APPLICATION_CACHE = {}


def application(name, size=None, classes=10):
    """``keras.applications.<name>(weights=None)`` at a small square input, built once per session."""
    builder, smallest = APPLICATIONS[name]
    side = max(int(size or smallest), smallest)
    key = (name, side, classes)
    if key not in _APPLICATION_CACHE:
        keras.utils.set_random_seed(0)
        _APPLICATION_CACHE[key] = getattr(keras.applications, builder)(
            weights=None, input_shape=(side, side, 3), classes=classes)
    return _APPLICATION_CACHE[key]


def unframe(figure):
    """The picture inside a CLI figure framed by ``figures.panel.titled``: without the title strip above it
    (rows whose right-most pixel is the strip's (24, 24, 24)) and the colour bars below it (rows whose left
    margin is white)."""
    figure = np.asarray(figure)
    top = 0
    while top < len(figure) and (figure[top, -1] == (24, 24, 24)).all():
        top += 1
    bottom = len(figure)
    while bottom > top and (figure[bottom - 1, :8] == 255).all():
        bottom -= 1
    return figure[top:bottom]


def benchmark_module(name):
    """``benchmarks/<name>.py`` loaded as a module (the benchmarks are scripts, not a package)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
