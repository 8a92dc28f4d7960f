"""Gradient attributions: saliency, SmoothGrad, guided backprop, integrated gradients.

Every method explains the **pre-softmax logit** of the target class (Simonyan
et al. 2014), whether the softmax/sigmoid is fused into the last layer or is a
layer of its own; for a single-unit sigmoid, target 1 is the logit and target
0 its negation. ``target`` is a class index, a list with one per image, or
``None`` for the predicted class; ``output`` picks one output of a
multi-output model (index or layer name).

The gradients run in one ``tf.function`` per model and method (cached on the
walked graph, batch dimension left open), so repeated calls never retrace.
SmoothGrad noise and integrated-gradients path points are evaluated in chunks
of at most ``batch_size`` model inputs, which bounds memory whatever the
number of samples or steps.

The input gradients use the engine's exact fast rule for stride-1
convolutions (``probe.fast_conv_gradients``): a saliency map costs about two
forward passes instead of 2.6.

Papers: Simonyan et al. 2014 (arXiv:1312.6034), Smilkov et al. 2017
(arXiv:1706.03825), Springenberg et al. 2015 (arXiv:1412.6806), Sundararajan
et al. 2017 (arXiv:1703.01365).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import tensorflow as tf

from ..checks import positive_int
from ..probe import compiled, fast_conv_gradients, input_gradient, input_spec, run
from ..progress import tracker
from ..request import accumulate, chunks, prepare
from ..select import pick_scores

__all__ = ["saliency", "smoothgrad", "guided_backprop", "integrated_gradients", "per_image"]


_TARGETS = tf.TensorSpec((None,), tf.int64)


def _gradient_fn(graph, step, key, rule=None, reduce=None, extra_specs=(), make_point=None):
    """Compiled ``(x, targets, *extra) -> d score / d point`` with ``point = make_point(x, *extra)``.

    ``make_point`` moves the input before the gradient is taken (noise for
    SmoothGrad, a point on the path for integrated gradients); ``reduce='absmax'``
    returns ``max_c |.|``. Targets ``< 0`` take the predicted class.
    """

    def build():
        @tf.function(input_signature=[input_spec(graph), _TARGETS, *extra_specs], autograph=False)
        def gradient(x, targets, *extra):
            point = x if make_point is None else make_point(x, *extra)
            with fast_conv_gradients():
                scores = run(graph, point, [], rule=rule, linear=[step.name])[step.name]
            g = input_gradient(tf.reduce_sum(pick_scores(scores, targets)), point)
            return tf.reduce_max(tf.abs(g), axis=-1) if reduce == "absmax" else g

        return gradient

    return compiled(graph, (key, step.name, rule, reduce), build)


def _add_noise(x, sigma, seed):
    return x + tf.random.stateless_normal(tf.shape(x), seed) * tf.reshape(sigma, (-1, 1, 1, 1))


def _path_point(x, baseline, alpha):
    return baseline + tf.reshape(alpha, (-1, 1, 1, 1)) * (x - baseline)


def _mean_gradient(request, key, make_point, extra_specs, points, extras, progress=False):
    """Mean target-logit gradient over ``points`` moved copies of each image.

    ``make_point`` moves the copies inside the compiled function and
    ``extras(idx, a, b)`` gives its extra arguments for copies ``a:b`` (``idx``:
    their images). At most ``batch_size`` copies go through the model at once
    and sums go per image, so memory does not grow with ``points``.
    """
    x, targets = request.x, request.with_predicted().targets
    fn = _gradient_fn(request.graph, request.score, key, make_point=make_point, extra_specs=extra_specs)
    owner = np.repeat(np.arange(x.shape[0]), points)  # copy -> image
    total = np.zeros(x.shape, np.float32)
    bar = tracker(progress, owner.size, "sample" if key == "smoothgrad" else "point")
    for a, b in chunks(owner.size, request.batch_size):
        idx = owner[a:b]
        args = [x[idx], targets[idx], *extras(idx, a, b)]
        accumulate(total, idx, fn(*map(tf.constant, args)).numpy())
        bar.update(b)
    bar.close()
    return total / np.float32(points)


def per_image(fn, request):
    """Run a compiled ``(x, targets)`` function over the request in slices; numpy out."""
    x, targets = request.x, request.targets
    return np.concatenate([fn(tf.constant(x[a:b]), tf.constant(targets[a:b])).numpy()
                           for a, b in request.slices()])


# ---------------------------------------------------------------- methods
def saliency(model, inputs, target=None, output=None, batch_size=32):
    """Simonyan et al. (2014) saliency: ``max_c |d S_target / d x|``.

    Args:
      model: a Keras model (Sequential, Functional or nested).
      inputs: a preprocessed batch ``(N, H, W, C)``.
      target: class index, list of one per image, or None (predicted class).
      output: index or name of the output to explain (multi-output models).
      batch_size: images per compiled call.

    Returns float32 ``(N, H, W)``.
    """
    request = prepare(model, inputs, target, output, batch_size)
    return per_image(_gradient_fn(request.graph, request.score, "gradient", reduce="absmax"), request)


def guided_backprop(model, inputs, target=None, output=None, batch_size=32):
    """Guided backpropagation (Springenberg et al. 2015) of the target logit.

    Every ReLU/ReLU6 passes ``relu(g) * (x > 0)`` backwards (the deconv
    engine's ``"guided"`` rule). Returns float32 ``(N, H, W, C)``: the plain
    values, or, where they would leave float32's range (deep untrained
    networks), the plain values times a positive power of two per image
    (``probe.RESCALE_EXPONENT``).
    """
    request = prepare(model, inputs, target, output, batch_size)
    return per_image(_gradient_fn(request.graph, request.score, "gradient", rule="guided"), request)


def _noise_sigma(x, noise):
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite fraction >= 0 of the input range, got {noise!r}")
    span = x.reshape(x.shape[0], -1)
    return (float(noise) * (span.max(axis=1) - span.min(axis=1))).astype(np.float32)


def smoothgrad(model, inputs, target=None, samples=25, noise=0.15, output=None, batch_size=32,
               seed=None, reduce=True, progress=False):
    """SmoothGrad (Smilkov et al. 2017): saliency of gradients averaged over noisy copies.

    Each image gets ``samples`` copies with Gaussian noise of standard
    deviation ``noise * (max(x) - min(x))`` (a fraction of the image's own
    input range); the gradients of the target logit are averaged, then shown
    as ``max_c |mean gradient|`` like :func:`saliency`. At most ``batch_size``
    noisy copies go through the model at once, so memory does not grow with
    ``samples``. ``target=None`` explains the class predicted on the clean
    image. ``seed`` makes the noise reproducible; ``reduce=False`` returns the
    mean gradient ``(N, H, W, C)`` instead. ``progress``: see
    :mod:`keras_convviz.progress` (quiet by default).

    Returns float32 ``(N, H, W)``.
    """
    samples = positive_int(samples, "samples")
    request = prepare(model, inputs, target, output, batch_size)
    sigma = _noise_sigma(request.x, noise)
    rng = np.random.default_rng(seed)
    specs = [tf.TensorSpec((None,), tf.float32), tf.TensorSpec((2,), tf.int32)]
    mean = _mean_gradient(request, "smoothgrad", _add_noise, specs, samples,
                          lambda idx, a, b: (sigma[idx], rng.integers(0, 2**31 - 1, size=2, dtype=np.int32)),
                          progress)
    return np.abs(mean).max(axis=-1) if reduce else mean


def _baseline(x, baseline):
    if baseline is None:
        return np.zeros_like(x)
    base = np.asarray(baseline, np.float32)
    try:
        base = np.broadcast_to(base, x.shape)
    except ValueError:
        raise ValueError(
            f"baseline of shape {base.shape} does not broadcast to the inputs {x.shape}; pass a "
            f"scalar, one image {x.shape[1:]} or one per image."
        ) from None
    if not np.all(np.isfinite(base)):
        raise ValueError("baseline contains NaN or Inf values.")
    return np.ascontiguousarray(base, np.float32)


def integrated_gradients(model, inputs, target=None, steps=50, baseline=None, output=None,
                         batch_size=32, progress=False):
    """Integrated gradients (Sundararajan et al. 2017), right Riemann sum.

    ``(x - x0) * mean_{k=1..steps} dS/dx (x0 + k/steps (x - x0))`` with the
    baseline ``x0`` zeros by default (or a scalar, one image, one per image).
    As ``steps`` grows, the attributions of each image sum to
    ``S(x) - S(x0)`` (completeness). At most ``batch_size`` path points go
    through the model at once. ``target=None`` explains the class predicted on
    the input; ``progress`` as for :func:`smoothgrad`. Returns float32 ``(N, H, W, C)``.
    """
    steps = positive_int(steps, "steps")
    request = prepare(model, inputs, target, output, batch_size)
    base = _baseline(request.x, baseline)
    alphas = np.tile(np.arange(1, steps + 1, dtype=np.float32) / np.float32(steps), request.n)
    specs = [input_spec(request.graph), tf.TensorSpec((None,), tf.float32)]
    mean = _mean_gradient(request, "path", _path_point, specs, steps, lambda idx, a, b: (base[idx], alphas[a:b]),
                          progress)
    return (request.x - base) * mean
