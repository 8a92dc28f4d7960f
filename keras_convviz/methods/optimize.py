"""Images found by gradient optimization: class models and representation inversion.

* :func:`class_model` (Simonyan et al. 2014): from the zero image, climb
  ``S_c(x) - l2 * R_2(x - centre)``, where ``S_c`` is the pre-softmax class
  score, with the regularizers of Yosinski et al. (2015): random jitter,
  a Gaussian blur every few steps, total variation and clipping to the valid
  input range. With ``layer=`` it maximizes the mean of one feature map
  instead of a class.
* :func:`invert` (Mahendran & Vedaldi 2015): from random noise, descend
  ``||Phi(x) - Phi0||^2 / ||Phi0||^2 + l_alpha * R_alpha(x - centre)
  + tv * TV_beta(x)`` with optional jitter, and report the normalized
  feature error per image.

Both work in **model input space** (the preprocessed values the model
takes); turn results into pictures with ``result.rgb(preset.deprocess)``.

The regularizers are per-pixel means in units of ``scale`` so that their
weights mean the same at any image size and input range::

    R_a(x)     = mean(|x / scale| ** a)                  over H, W, C
    TV_b(x)    = mean(((dx ** 2 + dy ** 2) / scale ** 2 + eps) ** (b / 2))
                 with dx, dy the right / down neighbour differences per channel
                 (over the (H-1) x (W-1) x C pixels that have both; eps = 0
                 for b = 2, 1e-8 otherwise)

so ``l2 * R_2`` is Simonyan's ``lambda * ||x||^2`` with
``lambda = l2 / (H * W * C * scale ** 2)``. ``scale`` defaults to half the
width of ``value_range`` (0.5 for the demo's [0, 1], 127.5 for [0, 255]).

Each optimization step is one compiled ``tf.function`` (gradient, Adam or
SGD update, blur, clip), traced once per model and mode and reused for every
step and every later call with the same image shape: no retracing.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np
import tensorflow as tf

from ..graph import walk
from ..checks import resolve_targets
from ..probe import compiled, run
from ..request import as_batch
from ..select import num_classes, score_step

__all__ = [
    "class_model",
    "invert",
    "ClassModel",
    "Inversion",
    "input_range",
    "total_variation",
    "norm_penalty",
]

_OPTIMIZERS = ("adam", "sgd")
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


# ---------------------------------------------------------------- results
@dataclasses.dataclass
class _Result:
    images: np.ndarray  # (N, H, W, C) in model input space
    history: np.ndarray  # (steps, N): the objective per step

    def rgb(self, deprocess=None):
        """The images as RGB ``uint8`` ``(N, H, W, 3)``.

        ``deprocess`` is the preset's (model inputs -> uint8 RGB). Without it
        each image is min-max stretched to the full range (grey stays grey
        only for one channel; other counts show their first three channels).
        """
        if deprocess is not None:
            out = np.asarray(deprocess(self.images.copy()))
            if out.dtype != np.uint8:
                out = np.clip(np.asarray(out, np.float64) + 0.5, 0, 255).astype(np.uint8)
            return out
        x = self.images.astype(np.float64)
        lo = x.min(axis=(1, 2, 3), keepdims=True)
        hi = x.max(axis=(1, 2, 3), keepdims=True)
        x = (x - lo) / np.maximum(hi - lo, 1e-12)
        if x.shape[-1] == 1:
            x = np.repeat(x, 3, -1)
        elif x.shape[-1] != 3:  # show the first three channels (zero-filled)
            x = np.concatenate([x, np.zeros(x.shape[:-1] + (3,), x.dtype)], -1)[..., :3]
        return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def __array__(self, dtype=None, copy=None):
        return self.images if dtype is None else self.images.astype(dtype)

    def __len__(self):
        return len(self.images)


@dataclasses.dataclass
class ClassModel(_Result):
    """What :func:`class_model` found.

    ``images``: ``(N, H, W, C)`` model inputs; ``np.asarray(result)`` gives
    them too. ``targets``: the class (or feature map) each image maximizes.
    ``scores``: the final maximized value per image (the pre-softmax logit,
    or the feature map's mean). ``logits`` / ``probabilities``: the model's
    pre-activation scores and its actual output (softmax...) ``(N, K)`` for
    the final images. ``history``: ``(steps, N)`` regularized objective.
    """

    targets: np.ndarray = None
    scores: np.ndarray = None
    logits: np.ndarray = None
    probabilities: np.ndarray = None


@dataclasses.dataclass
class Inversion(_Result):
    """What :func:`invert` found: ``images, errors = invert(...)`` unpacks it.

    ``errors``: the normalized feature error ``||Phi(x) - Phi0||^2 / ||Phi0||^2``
    per image, for the final (unjittered) images. ``history``: ``(steps, N)``
    total loss per step (feature error of the jittered image plus penalties).
    """

    errors: np.ndarray = None
    layer: str = None

    def __iter__(self):
        return iter((self.images, self.errors))


# ---------------------------------------------------------------- penalties
def norm_penalty(x, alpha, scale=1.0):
    """``mean(|x / scale| ** alpha)`` per image (traceable): ``(N,)``."""
    alpha = tf.cast(alpha, x.dtype)
    return tf.reduce_mean(tf.pow(tf.abs(x / scale), alpha), axis=[1, 2, 3])


def total_variation(x, beta=2.0, scale=1.0):
    """``TV_beta`` per image (traceable): the mean over pixels of
    ``((dx^2 + dy^2) / scale^2 + eps) ** (beta / 2)``, ``eps = 0`` for beta = 2."""
    x = x / scale
    dy = x[:, 1:, :-1, :] - x[:, :-1, :-1, :]
    dx = x[:, :-1, 1:, :] - x[:, :-1, :-1, :]
    sq = dx * dx + dy * dy
    beta = tf.cast(beta, x.dtype)
    eps = tf.where(tf.equal(beta, 2.0), tf.cast(0.0, x.dtype), tf.cast(1e-8, x.dtype))
    return tf.reduce_mean(tf.pow(sq + eps, beta / 2.0), axis=[1, 2, 3])


def _gaussian(sigma):
    radius = max(1, int(math.ceil(3.0 * float(sigma))))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / float(sigma)) ** 2)
    return (k / k.sum()).astype(np.float32)


def _blur(x, kernel):
    """Separable Gaussian blur with reflected borders (kernel: odd length, dynamic)."""
    channels = x.shape[-1]
    r = (tf.shape(kernel)[0] - 1) // 2
    r = tf.minimum(r, tf.minimum(tf.shape(x)[1], tf.shape(x)[2]) - 1)
    kernel = kernel[(tf.shape(kernel)[0] - 1) // 2 - r: (tf.shape(kernel)[0] - 1) // 2 + r + 1]
    kernel = kernel / tf.reduce_sum(kernel)
    k = tf.tile(kernel[:, None, None, None], [1, 1, channels, 1])
    x = tf.pad(x, [[0, 0], [r, r], [r, r], [0, 0]], mode="REFLECT")
    x = tf.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], "VALID")
    x = tf.nn.depthwise_conv2d(x, tf.transpose(k, [1, 0, 2, 3]), [1, 1, 1, 1], "VALID")
    return x


# ---------------------------------------------------------------- checks
def _check_steps(steps):
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps <= 0:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    return int(steps)


def _check_float(value, name, low=0.0, allow_equal=True):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < low or (v == low and not allow_equal):
        bound = ">=" if allow_equal else ">"
        raise ValueError(f"{name} must be a finite number {bound} {low}, got {value!r}")
    return v


def _check_int(value, name, low=0):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _ranges(value_range, channels):
    """``value_range`` -> (lo, hi) float32 ``(C,)`` arrays, or (None, None)."""
    if value_range is None:
        return None, None
    try:
        lo, hi = value_range
        lo = np.broadcast_to(np.asarray(lo, np.float32).reshape(-1), (channels,)).copy()
        hi = np.broadcast_to(np.asarray(hi, np.float32).reshape(-1), (channels,)).copy()
    except (TypeError, ValueError):
        raise ValueError(
            f"value_range must be (low, high) with scalars or one value per channel "
            f"({channels}), got {value_range!r}"
        ) from None
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
        raise ValueError(f"value_range must have finite low < high, got {value_range!r}")
    return lo, hi


def input_range(preprocess, channels=3):
    """The valid model-input range of a preset: ``preprocess`` of black and white.

    Returns ``(low, high)`` per channel, for ``value_range=``.
    """
    black = np.asarray(preprocess(np.zeros((1, 1, 1, channels), np.float32)), np.float32).reshape(-1)
    white = np.asarray(preprocess(np.full((1, 1, 1, channels), 255.0, np.float32)), np.float32).reshape(-1)
    return np.minimum(black, white), np.maximum(black, white)


def _centre(centre, lo, hi, channels):
    """The "zero image" ``(C,)``: input-space 0, or mid-range when 0 is not inside the range."""
    if centre is not None:
        try:
            out = np.broadcast_to(np.asarray(centre, np.float32).reshape(-1), (channels,)).copy()
        except ValueError:
            raise ValueError(f"centre must be a scalar or one value per channel ({channels}), "
                             f"got {centre!r}") from None
        if not np.all(np.isfinite(out)):
            raise ValueError(f"centre must be finite, got {centre!r}")
        return out
    if lo is None or np.all((lo < 0) & (hi > 0)):
        return np.zeros((channels,), np.float32)
    return ((lo + hi) / 2.0).astype(np.float32)


def _single_input(graph):
    if len(graph.input_ids) != 1:
        raise ValueError(
            f"model {graph.model.name!r} has {len(graph.input_ids)} inputs; class_model and "
            f"invert need a single-input image model."
        )
    if len(graph.input_shape) != 3 or any(d is None for d in graph.input_shape):
        raise ValueError(
            f"model {graph.model.name!r} takes inputs of shape {graph.input_shape}; class_model "
            f"needs a fixed (H, W, C) image input (build it with keras.Input(shape=(H, W, C)))."
        )


class _Setup:
    """Shared, validated optimizer settings."""

    def __init__(self, graph, steps, lr, optimizer, jitter, blur_every, blur_sigma, clip,
                 value_range, scale, seed, centre=None):
        self.steps = _check_steps(steps)
        if optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(_OPTIMIZERS)}, got {optimizer!r}")
        self.optimizer = optimizer
        self.lr = _check_float(lr, "lr", 0.0, allow_equal=False)
        self.jitter = _check_int(jitter, "jitter")
        self.blur_every = _check_int(blur_every, "blur_every")
        self.blur_sigma = _check_float(blur_sigma, "blur_sigma", 0.0, allow_equal=False)
        channels = graph.input_shape[-1]
        self.lo, self.hi = _ranges(value_range, channels)
        if clip is None:
            clip = self.lo is not None
        if clip and self.lo is None:
            raise ValueError("clip=True needs value_range=(low, high), the valid model-input range")
        self.clip = bool(clip)
        if scale is None:
            scale = float(np.mean(self.hi - self.lo)) / 2.0 if self.lo is not None else 1.0
        self.scale = _check_float(scale, "scale", 0.0, allow_equal=False)
        self.centre = _centre(centre, self.lo, self.hi, channels)
        self.rng = np.random.default_rng(seed)
        h, w = graph.input_shape[:2]
        if self.jitter >= min(h, w):
            raise ValueError(f"jitter={jitter} must be smaller than the image ({h}x{w})")

    def clip_bounds(self):
        if self.clip:
            return tf.constant(self.lo), tf.constant(self.hi)
        c = self.lo.shape[0] if self.lo is not None else None
        inf = np.full((c or 1,), np.inf, np.float32)
        return tf.constant(-inf), tf.constant(inf)

    def blur_kernel(self):
        return tf.constant(_gaussian(self.blur_sigma))

    def shifts(self):
        j = self.jitter
        return self.rng.integers(-j, j + 1, size=(self.steps, 2)).astype(np.int32) if j else np.zeros(
            (self.steps, 2), np.int32)


def _update(optimizer, x, g, m, v, t, lr, scale, ascend):
    """One Adam or SGD step on ``x`` along ``g`` (ascent or descent)."""
    sign = 1.0 if ascend else -1.0
    if optimizer == "sgd":
        return x + sign * lr * scale * g, m, v
    m = _BETA1 * m + (1.0 - _BETA1) * g
    v = _BETA2 * v + (1.0 - _BETA2) * g * g
    mhat = m / (1.0 - tf.pow(_BETA1, t))
    vhat = v / (1.0 - tf.pow(_BETA2, t))
    return x + sign * lr * scale * mhat / (tf.sqrt(vhat) + _EPS * scale), m, v


def _finish(x, lo, hi, kernel, do_blur):
    x = tf.cond(do_blur, lambda: _blur(x, kernel), lambda: x)
    return tf.clip_by_value(x, lo, hi)


def _loop(setup, step_fn, x, extra, progress, label):
    """Run ``steps`` calls of the compiled step; returns final x and history."""
    import keras

    m = tf.zeros_like(x)
    v = tf.zeros_like(x)
    lo, hi = setup.clip_bounds()
    kernel = setup.blur_kernel()
    shifts = setup.shifts()
    bar = keras.utils.Progbar(setup.steps, stateful_metrics=[label]) if progress else None
    history = []
    lr = tf.constant(setup.lr, tf.float32)
    centre = tf.constant(setup.centre)
    scale = tf.constant(setup.scale, tf.float32)
    for i in range(setup.steps):
        do_blur = bool(setup.blur_every) and (i + 1) % setup.blur_every == 0
        x, m, v, value = step_fn(
            x, m, v, tf.constant(float(i + 1)), tf.constant(shifts[i]), lr, scale, lo, hi, kernel,
            tf.constant(do_blur), centre, *extra,
        )
        history.append(value)
        if bar is not None:
            bar.update(i + 1, values=[(label, float(tf.reduce_mean(value)))])
    return x, np.stack([h.numpy() for h in history])


def _step_signature(graph, extra):
    h, w, c = graph.input_shape
    image = tf.TensorSpec((None, h, w, c), tf.float32)
    scalar = tf.TensorSpec((), tf.float32)
    return [
        image, image, image,  # x, m, v
        scalar,  # t
        tf.TensorSpec((2,), tf.int32),  # jitter shift
        scalar, scalar,  # lr, scale
        tf.TensorSpec((None,), tf.float32), tf.TensorSpec((None,), tf.float32),  # lo, hi
        tf.TensorSpec((None,), tf.float32),  # blur kernel
        tf.TensorSpec((), tf.bool),  # blur now
        tf.TensorSpec((None,), tf.float32),  # centre: the "zero image" per channel
    ] + list(extra)


# ---------------------------------------------------------------- class model
_SCORES = ("logit", "log_probability")


def _class_objective(graph, name, linear, feature, score="logit"):
    """``x, index -> (N,)`` the maximized value: a class logit (or log probability)
    or a feature map's mean."""
    activation = graph.step(name).activation

    def value(x, index):
        if linear:
            out = run(graph, x, [], linear=[name])[name]
        else:
            out = run(graph, x, [name])[name]
        if feature:
            if len(out.shape) > 2:
                out = tf.reduce_mean(out, axis=list(range(1, len(out.shape) - 1)))
            return tf.gather(out, index, axis=1, batch_dims=1)
        if out.shape[-1] == 1:  # single-unit sigmoid: class 1 is the logit, class 0 its negation
            logit = out[:, 0] * tf.where(index > 0, 1.0, -1.0)
            return tf.math.log_sigmoid(logit) if score == "log_probability" else logit
        if score == "log_probability":
            out = tf.nn.log_softmax(out) if activation == "softmax" else tf.math.log_sigmoid(out)
        return tf.gather(out, index, axis=1, batch_dims=1)

    return value


def _class_step(graph, name, linear, feature, score, optimizer):
    value_fn = _class_objective(graph, name, linear, feature, score)
    spec = _step_signature(graph, [
        tf.TensorSpec((None,), tf.int64),  # target class / map per image
        tf.TensorSpec((), tf.float32),  # l2
        tf.TensorSpec((), tf.float32),  # tv
        tf.TensorSpec((), tf.float32),  # tv beta
    ])

    @tf.function(input_signature=spec)
    def step(x, m, v, t, shift, lr, scale, lo, hi, kernel, do_blur, centre, index, l2, tv, beta):
        with tf.GradientTape() as tape:
            tape.watch(x)
            jittered = tf.roll(x, shift, axis=[1, 2])
            objective = (value_fn(jittered, index)
                         - l2 * norm_penalty(x - centre, 2.0, scale)
                         - tv * total_variation(x, beta, scale))
            total = tf.reduce_sum(objective)
        g = tape.gradient(total, x)
        x, m, v = _update(optimizer, x, g, m, v, t, lr, scale, ascend=True)
        return _finish(x, lo, hi, kernel, do_blur), m, v, objective

    return step


def class_model(model, target=None, steps=100, lr=0.05, l2=0.01, jitter=4, blur_every=0,
                blur_sigma=0.5, tv=0.0, clip=None, layer=None, map=None, value_range=None,
                seed=0, progress=False, optimizer="adam", init=None, tv_beta=2.0, scale=None,
                centre=None, noise=0.0, score="logit", output=None):
    """Images that maximize a class score (Simonyan et al. 2014) or a feature map.

    Starting from the zero image (in model input space; see ``centre``),
    gradient ascent on ``S(x) - l2 * R_2(x - centre) - tv * TV_beta(x)``
    (see the module docstring), with
    Yosinski et al.'s (2015) regularizers: the score is taken on the image
    rolled by a random shift of up to ``jitter`` pixels, the image is
    Gaussian-blurred (``blur_sigma`` pixels) every ``blur_every`` steps and
    clipped to ``value_range`` after every step.

    Args:
      model: a Keras image model (single input, fixed ``(H, W, C)``).
      target: the class to maximize, an int or a list (one image each).
        ``None`` is an error (there is no image to predict from).
      score: ``"logit"`` (default): ``S`` is the pre-softmax logit
        (Simonyan), also for a fused or standalone softmax/sigmoid.
        ``"log_probability"``: ``S`` is the log of the model's own output
        probability (log-softmax / log-sigmoid of the logits), which also
        pushes the other classes down; use it when the logit alone drifts
        into features shared with other classes (see the README, "Class models and representation inversion").
      steps: optimization steps (> 0).
      lr: step size in units of ``scale`` (Adam: about the per-pixel change
        per step; SGD: ``x += lr * scale * grad``).
      l2, tv, tv_beta: weights of the L2 and total-variation penalties.
      jitter: the largest random shift in pixels (0: none).
      blur_every, blur_sigma: blur every k steps (0: never).
      clip: clip to ``value_range`` after each step; default True when a
        ``value_range`` is given.
      layer, map: maximize the mean of feature map ``map`` (an int or one
        per image) of ``layer`` instead of a class; the layer's
        pre-activation output is used, like the class logit.
      value_range: ``(low, high)`` valid model inputs (scalars or per channel),
        e.g. ``(0, 1)`` for the demo model or ``input_range(preset.preprocess)``.
      seed: the jitter's random seed.
      progress: show a ``keras.utils.Progbar`` over the steps.
      optimizer: ``"adam"`` (default) or ``"sgd"`` (plain gradient ascent).
      init: a starting batch in input space instead of the zero image.
      centre: the "zero image" (scalar or per channel) where the ascent
        starts and which the L2 penalty pulls toward. Default: input-space
        0 when it lies strictly inside ``value_range`` (zero-centred
        preprocessing: Simonyan's mean image), else the middle of the range
        (inputs in [0, 1] or [0, 255], where 0 is the black corner).
      noise: Gaussian noise (times ``scale``) added to the start.
      scale: the unit of the penalties and of ``lr``; default half the width
        of ``value_range``, or 1 without one.
      output: the output of a multi-output model to take the class from.

    Returns a :class:`ClassModel`: ``.images`` in input space (also
    ``np.asarray(result)``), ``.rgb(preset.deprocess)`` for pictures, and the
    final ``.scores``, ``.logits``, ``.probabilities``, ``.history``.
    """
    graph = walk(model)
    _single_input(graph)
    setup = _Setup(graph, steps, lr, optimizer, jitter, blur_every, blur_sigma, clip, value_range,
                   scale, seed, centre)
    l2 = _check_float(l2, "l2")
    tv = _check_float(tv, "tv")
    noise = _check_float(noise, "noise")
    tv_beta = _check_float(tv_beta, "tv_beta", 0.0, allow_equal=False)
    head = score_step(graph, output)
    if layer is not None:
        step = graph.step(layer)
        name, linear, feature, score = step.name, step.activation != "linear", True, "logit"
        units = int(step.output_shape[-1])
        if map is None:
            raise ValueError(f"layer={step.name!r} needs map=INDEX (0..{units - 1}), the feature map to maximize")
        index = _indices(map, units, "map")
        n = len(index)
    else:
        if map is not None:
            raise ValueError("map= selects a feature map of layer=; pass layer=NAME too, or target=CLASS alone")
        if target is None:
            raise ValueError("class_model needs target=CLASS (an int or a list, one image each)")
        if isinstance(target, bool) or not (isinstance(target, numbers.Integral)
                                            or isinstance(target, (list, tuple, np.ndarray))):
            raise ValueError(f"target must be a class index or a list of them, got {target!r}")
        n = 1 if isinstance(target, numbers.Integral) else len(target)
        if n == 0:
            raise ValueError("target is an empty list; give at least one class")
        index = resolve_targets(target, n, num_classes(graph, output))
        name, linear, feature = head.name, True, False
        if score not in _SCORES:
            raise ValueError(f"score must be one of {', '.join(_SCORES)}, got {score!r}")
        if score == "log_probability" and head.activation not in ("softmax", "sigmoid"):
            raise ValueError(
                f"score='log_probability' needs a softmax or sigmoid output, but {head.name!r} "
                f"has activation {head.activation!r}; use score='logit'."
            )
    h, w, c = graph.input_shape
    if init is None:
        x = np.broadcast_to(setup.centre, (n, h, w, c)).astype(np.float32)
        if noise:
            x = x + float(noise) * setup.scale * setup.rng.standard_normal(x.shape).astype(np.float32)
        if setup.clip:
            x = np.clip(x, setup.lo, setup.hi)
    else:
        x = as_batch(graph, init)
        if len(x) == 1 and n > 1:
            x = np.repeat(x, n, axis=0)
        if len(x) != n:
            raise ValueError(f"init has {len(x)} images for {n} targets; give one, or one per target")
    key = ("optimize.class_model", name, linear, feature, score, setup.optimizer)
    fn = compiled(graph, key, lambda: _class_step(graph, name, linear, feature, score, setup.optimizer))
    x, history = _loop(
        setup, fn, tf.constant(x),
        [tf.constant(index, tf.int64), tf.constant(l2, tf.float32), tf.constant(tv, tf.float32),
         tf.constant(tv_beta, tf.float32)],
        progress, "score",
    )
    final = _final_scores(graph, head.name, name, linear, feature, score)(x, tf.constant(index, tf.int64))
    scores, logits, probs = (t.numpy() for t in final)
    return ClassModel(images=x.numpy(), history=history, targets=np.asarray(index), scores=scores,
                      logits=logits, probabilities=probs)


def _final_scores(graph, head, name, linear, feature, score):
    value_fn = _class_objective(graph, name, linear, feature, score)
    h, w, c = graph.input_shape

    def build():
        @tf.function(input_signature=[tf.TensorSpec((None, h, w, c), tf.float32),
                                      tf.TensorSpec((None,), tf.int64)])
        def final(x, index):
            logits = run(graph, x, [], linear=[head])[head]
            output = run(graph, x, [head])[head]
            return value_fn(x, index), logits, output

        return final

    return compiled(graph, ("optimize.final", head, name, linear, feature, score), build)


def _indices(spec, units, what):
    if isinstance(spec, bool):
        raise ValueError(f"{what} must be an index or a list of indices, got {spec!r}")
    if isinstance(spec, numbers.Integral):
        idx = np.asarray([int(spec)], np.int64)
    else:
        try:
            idx = np.asarray(list(spec), np.int64).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be an index or a list of indices, got {spec!r}") from None
        if idx.size == 0:
            raise ValueError(f"{what} is empty; give at least one index")
    bad = idx[(idx < 0) | (idx >= units)]
    if bad.size:
        raise ValueError(f"{what} {int(bad[0])} is outside 0..{units - 1}")
    return idx


# ---------------------------------------------------------------- inversion
def _invert_step(graph, name, optimizer):
    spec = _step_signature(graph, [
        tf.TensorSpec(None, tf.float32),  # Phi0 (the layer's output shape)
        tf.TensorSpec((None,), tf.float32),  # ||Phi0||^2 per image
        tf.TensorSpec((), tf.float32),  # alpha weight
        tf.TensorSpec((), tf.float32),  # alpha
        tf.TensorSpec((), tf.float32),  # tv weight
        tf.TensorSpec((), tf.float32),  # tv beta
    ])

    @tf.function(input_signature=spec)
    def step(x, m, v, t, shift, lr, scale, lo, hi, kernel, do_blur, centre, target, norm, l_alpha, alpha, l_tv,
             beta):
        with tf.GradientTape() as tape:
            tape.watch(x)
            jittered = tf.roll(x, shift, axis=[1, 2])
            loss = (_feature_error(graph, name, jittered, target, norm)
                    + l_alpha * norm_penalty(x - centre, alpha, scale)
                    + l_tv * total_variation(x, beta, scale))
            total = tf.reduce_sum(loss)
        g = tape.gradient(total, x)
        x, m, v = _update(optimizer, x, g, m, v, t, lr, scale, ascend=False)
        return _finish(x, lo, hi, kernel, do_blur), m, v, loss

    return step


def _feature_error(graph, name, x, target, norm):
    phi = run(graph, x, [name])[name]
    diff = tf.reshape(phi - target, [tf.shape(phi)[0], -1])
    return tf.reduce_sum(diff * diff, axis=1) / norm


def _features_fn(graph, name):
    h, w, c = graph.input_shape

    def build():
        @tf.function(input_signature=[tf.TensorSpec((None, h, w, c), tf.float32)])
        def features(x):
            return run(graph, x, [name])[name]

        return features

    return compiled(graph, ("optimize.features", name), build)


def _error_fn(graph, name):
    h, w, c = graph.input_shape

    def build():
        @tf.function(input_signature=[tf.TensorSpec((None, h, w, c), tf.float32),
                                      tf.TensorSpec(None, tf.float32),
                                      tf.TensorSpec((None,), tf.float32)])
        def error(x, target, norm):
            return _feature_error(graph, name, x, target, norm)

        return error

    return compiled(graph, ("optimize.error", name), build)


def invert(model, inputs, layer, steps=300, lr=0.05, alpha=6.0, l_alpha=1e-4, tv=1e-3, tv_beta=2.0,
           jitter=0, blur_every=0, blur_sigma=0.5, clip=None, value_range=None, seed=0,
           progress=False, optimizer="adam", init=None, scale=None, centre=None, noise=0.3):
    """Reconstruct inputs from one layer's representation (Mahendran & Vedaldi 2015).

    From random noise, descend ``||Phi(x) - Phi0||^2 / ||Phi0||^2
    + l_alpha * R_alpha(x) + tv * TV_beta(x)`` (see the module docstring),
    where ``Phi`` is the output of ``layer`` and ``Phi0 = Phi(inputs)``. With
    ``jitter`` the feature term is taken on the image rolled by a random shift
    of up to that many pixels (the paper's jitter for deeper layers).

    Args:
      model: a Keras image model (single input).
      inputs: a preprocessed batch ``(N, H, W, C)``.
      layer: the layer whose representation is inverted.
      steps: optimization steps (> 0).
      lr: step size in units of ``scale``.
      alpha, l_alpha: the alpha-norm penalty (the paper uses alpha = 6).
      tv, tv_beta: the total-variation penalty ``TV_beta``.
      jitter, blur_every, blur_sigma, clip, value_range, seed, optimizer,
      centre: as in :func:`class_model` (the alpha-norm is of ``x - centre``).
      init: the starting batch; default Gaussian noise (``noise * scale``)
        around ``centre``. The noise matters: a flat grey image can leave
        every ReLU of a deep layer off, with no gradient to follow.
      scale: the unit of the penalties and of ``lr``; default half the width
        of ``value_range``, else the largest absolute input value.

    Returns an :class:`Inversion`; ``images, errors = invert(...)`` gives the
    reconstructions in input space and the normalized feature error
    ``||Phi(x) - Phi0||^2 / ||Phi0||^2`` per image.
    """
    graph = walk(model)
    _single_input(graph)
    x0 = as_batch(graph, inputs)
    step = graph.step(layer)
    if scale is None and value_range is None:
        scale = max(float(np.abs(x0).max()), 1e-6)
    setup = _Setup(graph, steps, lr, optimizer, jitter, blur_every, blur_sigma, clip, value_range,
                   scale, seed, centre)
    l_alpha = _check_float(l_alpha, "l_alpha")
    noise = _check_float(noise, "noise")
    alpha = _check_float(alpha, "alpha", 1.0)
    tv = _check_float(tv, "tv")
    tv_beta = _check_float(tv_beta, "tv_beta", 1.0)
    target = _features_fn(graph, step.name)(tf.constant(x0))
    norm = tf.reduce_sum(tf.reshape(target * target, [tf.shape(target)[0], -1]), axis=1)
    dead = np.flatnonzero(norm.numpy() <= 0)
    if dead.size:
        raise ValueError(
            f"layer {step.name!r} outputs all zeros for image {int(dead[0])}; there is no "
            f"representation to invert, pick an earlier layer."
        )
    if init is None:
        x = setup.centre + float(noise) * setup.scale * setup.rng.standard_normal(x0.shape)
        x = x.astype(np.float32)
        if setup.clip:
            x = np.clip(x, setup.lo, setup.hi)
    else:
        x = as_batch(graph, init)
        if x.shape != x0.shape:
            raise ValueError(f"init has shape {x.shape}; it must match inputs {x0.shape}")
    key = ("optimize.invert", step.name, setup.optimizer)
    fn = compiled(graph, key, lambda: _invert_step(graph, step.name, setup.optimizer))
    x, history = _loop(
        setup, fn, tf.constant(x),
        [target, norm, tf.constant(l_alpha, tf.float32), tf.constant(alpha, tf.float32),
         tf.constant(tv, tf.float32), tf.constant(tv_beta, tf.float32)],
        progress, "loss",
    )
    errors = _error_fn(graph, step.name)(x, target, norm).numpy()
    return Inversion(images=x.numpy(), history=history, errors=errors, layer=step.name)
