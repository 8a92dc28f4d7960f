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

The input gradients are taken with ``tf.gradients`` inside the traced
function (the graph-mode twin of ``tf.GradientTape``, same numbers) because
it honours a gradient override: for stride-1, undilated, ungrouped
``Conv2D`` with an odd kernel, the gradient with respect to the conv input
is computed as a plain forward convolution of the incoming gradient with the
spatially flipped, in/out-transposed kernel instead of TensorFlow's
``Conv2DBackpropInput``. The two are equal (up to float rounding), but the
forward convolution is the faster kernel on CPU (about 1.9x on VGG16's
layers), which makes a saliency map cost about two forward passes instead of
2.6. Other convolutions keep TensorFlow's own gradient.
"""

from __future__ import annotations

import contextlib
import math
import numbers

import numpy as np
import tensorflow as tf

from ..graph import walk
from ..probe import as_batch, compiled, run
from ..select import resolve_targets, score_step, target_scores

__all__ = ["saliency", "smoothgrad", "guided_backprop", "integrated_gradients"]


# ---------------------------------------------------------------- shared helpers
def positive_int(value, what):
    """``value`` as an int >= 1, or a ``ValueError`` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"{what} must be a positive integer, got {value!r}")
    if int(value) <= 0:
        raise ValueError(f"{what} must be >= 1, got {value}")
    return int(value)


def prepare(model, inputs, target, output):
    """Validate ``inputs`` and ``target``: ``(graph, x, score_step, targets)``.

    ``targets`` is an int64 array with one entry per image; ``-1`` stands for
    the predicted class, which the compiled functions resolve in the graph.
    """
    graph = walk(model)
    step = score_step(graph, output)
    x = as_batch(graph, inputs)
    classes = int(step.output_shape[-1]) if step.output_shape and step.output_shape[-1] else 1
    if len(step.output_shape) != 1:
        raise ValueError(
            f"output layer {step.name!r} has shape {step.output_shape}; gradient methods explain "
            f"a class score vector (N, classes). Pick a classification output with output=."
        )
    if target is None:
        targets = np.full((x.shape[0],), -1, np.int64)
    else:
        targets = resolve_targets(target, x.shape[0], classes)
    return graph, x, step, targets


def pick_scores(scores, targets):
    """Each image's target score; targets ``< 0`` take the predicted class (traceable)."""
    targets = tf.convert_to_tensor(targets, tf.int64)
    if scores.shape[-1] == 1:
        predicted = tf.cast(scores[:, 0] > 0, tf.int64)
    else:
        predicted = tf.argmax(scores, axis=-1, output_type=tf.int64)
    return target_scores(scores, tf.where(targets < 0, predicted, targets))


def predicted_classes(graph, step, x, batch_size=64):
    """Argmax classes ``(N,)`` (single unit: logit > 0), compiled and batched."""
    spec = tf.TensorSpec((None,) + tuple(graph.input_shape), tf.float32)

    def build():
        @tf.function(input_signature=[spec], autograph=False)
        def predict(x):
            scores = run(graph, x, [], linear=[step.name])[step.name]
            if scores.shape[-1] == 1:
                return tf.cast(scores[:, 0] > 0, tf.int64)
            return tf.argmax(scores, axis=-1, output_type=tf.int64)

        return predict

    fn = compiled(graph, ("predicted", step.name), build)
    return np.concatenate([fn(tf.constant(x[i:i + batch_size])).numpy()
                           for i in range(0, x.shape[0], batch_size)])


def fill_predicted(graph, step, x, targets, batch_size=64):
    """Replace ``-1`` entries of ``targets`` by the predicted classes of ``x``."""
    if np.any(targets < 0):
        targets = np.where(targets < 0, predicted_classes(graph, step, x, batch_size), targets)
    return targets


def chunks(total, batch_size):
    """Near-equal ``(start, stop)`` slices of ``range(total)``, each <= ``batch_size``."""
    count = max(1, math.ceil(total / batch_size))
    bounds = np.linspace(0, total, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def accumulate(total, idx, values):
    """``total[idx] += values`` for sorted ``idx`` (sums each run of equal indices first)."""
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    total[idx[starts]] += np.add.reduceat(values, starts, axis=0)


# ---------------------------------------------------------------- fast conv gradients
_FLIPPED = "ConvvizFlippedConv2D"


def _standard_conv_grad(op, grad):
    try:
        from tensorflow.python.ops import nn_grad

        return nn_grad._Conv2DGrad(op, grad)
    except (ImportError, AttributeError):  # pragma: no cover - older/newer TF layouts
        x, w = op.inputs
        strides, padding = op.get_attr("strides"), op.get_attr("padding").decode()
        dilations, fmt = op.get_attr("dilations"), op.get_attr("data_format").decode()
        if padding == "EXPLICIT":
            flat = op.get_attr("explicit_paddings")
            padding = [flat[i:i + 2] for i in range(0, len(flat), 2)]
        dx = tf.compat.v1.nn.conv2d_backprop_input(tf.shape(x), w, grad, strides, padding,
                                                   data_format=fmt, dilations=dilations)
        dw = tf.compat.v1.nn.conv2d_backprop_filter(x, tf.shape(w), grad, strides, padding,
                                                    data_format=fmt, dilations=dilations)
        return dx, dw


def _flipped_conv_grad(op, grad):
    """Conv2D gradient; the input part as a forward conv with the flipped kernel where exact."""
    x, w = op.inputs
    kh, kw = w.shape[0], w.shape[1]
    padding = op.get_attr("padding")
    eligible = (
        list(op.get_attr("strides")) == [1, 1, 1, 1]
        and list(op.get_attr("dilations")) == [1, 1, 1, 1]
        and op.get_attr("data_format") == b"NHWC"
        and padding in (b"SAME", b"VALID")
        and kh is not None and kw is not None
        and x.shape[-1] is not None and x.shape[-1] == w.shape[2]  # not grouped
        and (padding == b"VALID" or (kh % 2 == 1 and kw % 2 == 1))  # SAME pads symmetrically
    )
    if not eligible:
        return _standard_conv_grad(op, grad)
    flipped = tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2])
    if padding == b"SAME":
        dx = tf.nn.conv2d(grad, flipped, 1, "SAME")
    else:  # the "full" correlation: pad by kernel - 1 on every side
        dx = tf.nn.conv2d(grad, flipped, 1, [[0, 0], [kh - 1, kh - 1], [kw - 1, kw - 1], [0, 0]])
    dw = tf.compat.v1.nn.conv2d_backprop_filter(x, tf.shape(w), grad, [1, 1, 1, 1], padding.decode())
    return dx, dw  # dw is pruned from the graph when only input gradients are fetched


try:
    tf.RegisterGradient(_FLIPPED)(_flipped_conv_grad)
except KeyError:  # already registered (module reloaded)
    pass


@contextlib.contextmanager
def fast_conv_gradients():
    """While tracing: Conv2D ops created here differentiate through ``_flipped_conv_grad``.

    Only ``tf.gradients`` honours the override (``GradientTape`` looks
    gradients up by op type alone).
    """
    with tf.compat.v1.get_default_graph().gradient_override_map({"Conv2D": _FLIPPED}):
        yield


def input_gradient(score, wrt):
    """``d score / d wrt`` in the traced graph (zeros where unconnected)."""
    return tf.gradients(score, wrt, unconnected_gradients=tf.UnconnectedGradients.ZERO)[0]


def _spec(graph):
    return tf.TensorSpec((None,) + tuple(graph.input_shape), tf.float32)


_TARGETS = tf.TensorSpec((None,), tf.int64)


def _grad_fn(graph, step, rule, reduce):
    """Compiled ``(x, targets) -> d score / d x`` (``reduce='absmax'``: max_c |.|)."""

    def build():
        @tf.function(input_signature=[_spec(graph), _TARGETS], autograph=False)
        def gradient(x, targets):
            with fast_conv_gradients():
                scores = run(graph, x, [], rule=rule, linear=[step.name])[step.name]
            g = input_gradient(tf.reduce_sum(pick_scores(scores, targets)), x)
            if reduce == "absmax":
                g = tf.reduce_max(tf.abs(g), axis=-1)
            return g

        return gradient

    return compiled(graph, ("gradient", step.name, rule, reduce), build)


def _noisy_grad_fn(graph, step):
    """Compiled ``(x, targets, sigma, seed) -> d score / d (x + N(0, sigma^2))``."""

    def build():
        @tf.function(input_signature=[_spec(graph), _TARGETS, tf.TensorSpec((None,), tf.float32),
                                      tf.TensorSpec((2,), tf.int32)], autograph=False)
        def noisy_gradient(x, targets, sigma, seed):
            noise = tf.random.stateless_normal(tf.shape(x), seed) * tf.reshape(sigma, (-1, 1, 1, 1))
            noisy = x + noise
            with fast_conv_gradients():
                scores = run(graph, noisy, [], linear=[step.name])[step.name]
            return input_gradient(tf.reduce_sum(target_scores(scores, targets)), noisy)

        return noisy_gradient

    return compiled(graph, ("smoothgrad", step.name), build)


def _path_grad_fn(graph, step):
    """Compiled ``(x, baseline, alpha, targets) -> d score`` at ``baseline + alpha (x - baseline)``."""

    def build():
        @tf.function(input_signature=[_spec(graph), _spec(graph), tf.TensorSpec((None,), tf.float32),
                                      _TARGETS], autograph=False)
        def path_gradient(x, baseline, alpha, targets):
            point = baseline + tf.reshape(alpha, (-1, 1, 1, 1)) * (x - baseline)
            with fast_conv_gradients():
                scores = run(graph, point, [], linear=[step.name])[step.name]
            return input_gradient(tf.reduce_sum(target_scores(scores, targets)), point)

        return path_gradient

    return compiled(graph, ("path", step.name), build)


def _batched(fn, x, targets, batch_size):
    return np.concatenate([fn(tf.constant(x[a:b]), tf.constant(targets[a:b])).numpy()
                           for a, b in chunks(x.shape[0], batch_size)])


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
    positive_int(batch_size, "batch_size")
    graph, x, step, targets = prepare(model, inputs, target, output)
    return _batched(_grad_fn(graph, step, None, "absmax"), x, targets, batch_size)


def guided_backprop(model, inputs, target=None, output=None, batch_size=32):
    """Guided backpropagation (Springenberg et al. 2015) of the target logit.

    Every ReLU/ReLU6 passes ``relu(g) * (x > 0)`` backwards (the deconv
    engine's ``"guided"`` rule). Returns float32 ``(N, H, W, C)``.
    """
    positive_int(batch_size, "batch_size")
    graph, x, step, targets = prepare(model, inputs, target, output)
    return _batched(_grad_fn(graph, step, "guided", None), x, targets, batch_size)


def _noise_sigma(x, noise):
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite fraction >= 0 of the input range, got {noise!r}")
    span = x.reshape(x.shape[0], -1)
    return (float(noise) * (span.max(axis=1) - span.min(axis=1))).astype(np.float32)


def smoothgrad(model, inputs, target=None, samples=25, noise=0.15, output=None, batch_size=32,
               seed=None, reduce=True):
    """SmoothGrad (Smilkov et al. 2017): saliency of gradients averaged over noisy copies.

    Each image gets ``samples`` copies with Gaussian noise of standard
    deviation ``noise * (max(x) - min(x))`` (a fraction of the image's own
    input range); the gradients of the target logit are averaged, then shown
    as ``max_c |mean gradient|`` like :func:`saliency`. At most ``batch_size``
    noisy copies go through the model at once, so memory does not grow with
    ``samples``. ``target=None`` explains the class predicted on the clean
    image. ``seed`` makes the noise reproducible; ``reduce=False`` returns the
    mean gradient ``(N, H, W, C)`` instead.

    Returns float32 ``(N, H, W)``.
    """
    samples = positive_int(samples, "samples")
    batch_size = positive_int(batch_size, "batch_size")
    graph, x, step, targets = prepare(model, inputs, target, output)
    sigma = _noise_sigma(x, noise)
    targets = fill_predicted(graph, step, x, targets, batch_size)
    fn = _noisy_grad_fn(graph, step)
    rng = np.random.default_rng(seed)
    total = np.zeros(x.shape, np.float32)
    owner = np.repeat(np.arange(x.shape[0]), samples)  # sample -> image
    for a, b in chunks(owner.size, batch_size):
        idx = owner[a:b]
        seed_pair = rng.integers(0, 2**31 - 1, size=2, dtype=np.int32)
        grads = fn(tf.constant(x[idx]), tf.constant(targets[idx]), tf.constant(sigma[idx]),
                   tf.constant(seed_pair)).numpy()
        accumulate(total, idx, grads)
    mean = total / np.float32(samples)
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
                         batch_size=32):
    """Integrated gradients (Sundararajan et al. 2017), right Riemann sum.

    ``(x - x0) * mean_{k=1..steps} dS/dx (x0 + k/steps (x - x0))`` with the
    baseline ``x0`` zeros by default (or a scalar, one image, one per image).
    As ``steps`` grows, the attributions of each image sum to
    ``S(x) - S(x0)`` (completeness). At most ``batch_size`` path points go
    through the model at once. ``target=None`` explains the class predicted on
    the input. Returns float32 ``(N, H, W, C)``.
    """
    steps = positive_int(steps, "steps")
    batch_size = positive_int(batch_size, "batch_size")
    graph, x, step, targets = prepare(model, inputs, target, output)
    base = _baseline(x, baseline)
    targets = fill_predicted(graph, step, x, targets, batch_size)
    fn = _path_grad_fn(graph, step)
    alphas = np.tile(np.arange(1, steps + 1, dtype=np.float32) / np.float32(steps), x.shape[0])
    owner = np.repeat(np.arange(x.shape[0]), steps)
    total = np.zeros(x.shape, np.float32)
    for a, b in chunks(owner.size, batch_size):
        idx = owner[a:b]
        grads = fn(tf.constant(x[idx]), tf.constant(base[idx]), tf.constant(alphas[a:b]),
                   tf.constant(targets[idx])).numpy()
        accumulate(total, idx, grads)
    return (x - base) * (total / np.float32(steps))
