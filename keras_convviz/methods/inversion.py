"""Representation inversion (Mahendran & Vedaldi 2015, arXiv:1412.0035).

From random noise, descend ``||Phi(x) - Phi0||^2 / ||Phi0||^2 + l_alpha *
R_alpha(x - centre) + tv * TV_beta(x)``, where ``Phi`` is one layer's output
and ``Phi0 = Phi(inputs)``, with optional jitter, and report the normalized
feature error per image. The loop, the penalties and the shared options are
in :mod:`keras_convviz.methods.optimize`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from ..inline import Inline
from ..checks import finite_float
from ..graph import walk
from ..precision import graph_in
from ..probe import compiled, input_spec, run
from ..request import as_batch
from .optimize import (SCALAR, check_image_model, check_settings, iteration_fn, norm_penalty,
                       rgb_images, run_iterations, total_variation)

__all__ = ["invert", "Inversion"]

_FEATURES = tf.TensorSpec(None, tf.float32)  # Phi0, in the layer's output shape
_NORMS = tf.TensorSpec((None,), tf.float32)  # ||Phi0||^2 per image


@dataclasses.dataclass(frozen=True)
class Inversion(Inline):
    """What :func:`invert` found.

    ``images``: the reconstructions ``(N, H, W, C)`` in input space.
    ``errors``: the normalized feature error ``||Phi(x) - Phi0||^2 /
    ||Phi0||^2`` per image, for the final (unjittered) images. ``history``:
    ``(iterations, N)`` total loss (feature error of the jittered image plus
    penalties). ``layer``: the inverted layer.
    """

    images: np.ndarray
    history: np.ndarray
    errors: np.ndarray
    layer: str

    def rgb(self, deprocess=None) -> np.ndarray:
        """The images as RGB ``uint8`` ``(N, H, W, 3)`` (see ``optimize.rgb_images``)."""
        return rgb_images(self.images, deprocess)


def _feature_error(graph, layer, x, target, norm):
    phi = run(graph, x, [layer])[layer]
    diff = tf.reshape(phi - target, [tf.shape(phi)[0], -1])
    return tf.reduce_sum(diff * diff, axis=1) / norm


def _iteration(graph, layer, optimizer):
    """The compiled descent iteration on the feature error plus the two penalties."""

    def objective(x, jittered, centre, scale, extra):
        target, norm, l_alpha, alpha, l_tv, beta = extra
        return (_feature_error(graph, layer, jittered, target, norm)
                + l_alpha * norm_penalty(x - centre, alpha, scale)
                + l_tv * total_variation(x, beta, scale))

    specs = (_FEATURES, _NORMS, SCALAR, SCALAR, SCALAR, SCALAR)  # Phi0, norms, l_alpha, alpha, tv, tv_beta
    return iteration_fn(graph, ("optimize.invert", layer), optimizer, objective, specs, ascend=False)


def _features_fn(graph, layer):
    def build():
        @tf.function(input_signature=[input_spec(graph)], autograph=False)
        def features(x):
            return run(graph, x, [layer])[layer]

        return features

    return compiled(graph, ("optimize.features", layer), build)


def _error_fn(graph, layer):
    def build():
        @tf.function(input_signature=[input_spec(graph), _FEATURES, _NORMS], autograph=False)
        def error(x, target, norm):
            return _feature_error(graph, layer, x, target, norm)

        return error

    return compiled(graph, ("optimize.error", layer), build)


def _representation(graph, layer, x0):
    """``Phi0`` and ``||Phi0||^2`` per image; an all-zero representation is an error."""
    target = _features_fn(graph, layer)(tf.constant(x0))
    norm = tf.reduce_sum(tf.reshape(target * target, [tf.shape(target)[0], -1]), axis=1)
    dead = np.flatnonzero(norm.numpy() <= 0)
    if dead.size:
        raise ValueError(
            f"layer {layer!r} outputs all zeros for image {int(dead[0])}; there is no "
            f"representation to invert (likely cause: untrained weights or dead units, ReLUs that "
            f"never fire on this input); pick an earlier layer or trained weights."
        )
    return target, norm


def invert(model, inputs, layer, steps=300, lr=0.05, alpha=6.0, l_alpha=1e-4, tv=1e-3, tv_beta=2.0,
           jitter=0, blur_every=0, blur_sigma=0.5, clip=None, value_range=None, seed=0,
           progress=False, optimizer="adam", init=None, scale=None, centre=None, noise=0.3,
           precision="float32") -> Inversion:
    """Reconstruct inputs from one layer's representation (Mahendran & Vedaldi 2015).

    From random noise, ``steps`` iterations descend ``||Phi(x) - Phi0||^2 /
    ||Phi0||^2 + l_alpha * R_alpha(x - centre) + tv * TV_beta(x)`` (see
    :mod:`keras_convviz.methods.optimize`), where ``Phi`` is the output of
    ``layer`` and ``Phi0 = Phi(inputs)``. With ``jitter`` the feature term is
    taken on the image rolled by a random shift of up to that many pixels
    (the paper's jitter for deeper layers).

    Args:
      model: a Keras image model (single input).
      inputs: a preprocessed batch ``(N, H, W, C)``.
      layer: the layer whose representation is inverted.
      alpha, l_alpha: the alpha-norm penalty (the paper uses alpha = 6).
      tv, tv_beta: the total-variation penalty ``TV_beta``.
      init: the starting batch; default Gaussian noise (``noise * scale``)
        around ``centre``. The noise matters: a flat grey image can leave
        every ReLU of a deep layer off, with no gradient to follow.
      scale: as in the shared options, but without ``value_range`` the
        default is the largest absolute input value.
      precision: ``"float32"`` (default), ``"bfloat16"`` or ``"float16"``: the iterations run on a
        mixed-precision twin (:mod:`keras_convviz.precision`); ``Phi0`` and the errors are float32's.
      steps, lr, jitter, blur_every, blur_sigma, clip, value_range, seed,
        progress, optimizer, centre: the shared options.

    Returns an :class:`Inversion`: ``.images`` (the reconstructions in input
    space) and ``.errors`` (the normalized feature error per image).
    """
    graph = walk(model)
    check_image_model(graph)
    x0 = as_batch(graph, inputs)
    name = graph.step(layer).name
    if scale is None and value_range is None:
        scale = max(float(np.abs(x0).max()), 1e-6)
    settings = check_settings(graph, steps, lr, optimizer, jitter, blur_every, blur_sigma, clip,
                              value_range, scale, seed, centre)
    weights = [finite_float(l_alpha, "l_alpha"), finite_float(alpha, "alpha", 1.0),
               finite_float(tv, "tv"), finite_float(tv_beta, "tv_beta", 1.0)]
    noise = finite_float(noise, "noise")
    target, norm = _representation(graph, name, x0)
    rng = np.random.default_rng(settings.seed)
    if init is None:
        x = settings.start(rng, x0.shape, noise)
    else:
        x = as_batch(graph, init)
        if x.shape != x0.shape:
            raise ValueError(f"init has shape {x.shape}; it must match inputs {x0.shape}")
    extra = (target, norm) + tuple(tf.constant(w, tf.float32) for w in weights)
    iteration = _iteration(graph_in(graph, precision), name, settings.optimizer)
    x, history = run_iterations(settings, iteration, x, extra, rng, progress, "loss")
    errors = _error_fn(graph, name)(x, target, norm).numpy()
    return Inversion(x.numpy(), history, errors, name)
