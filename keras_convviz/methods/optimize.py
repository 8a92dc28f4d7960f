"""The optimization loop shared by class models and representation inversion.

:mod:`~keras_convviz.methods.classmodel` (Simonyan et al. 2014,
arXiv:1312.6034, with the regularizers of Yosinski et al. 2015,
arXiv:1506.06579) and :mod:`~keras_convviz.methods.inversion` (Mahendran &
Vedaldi 2015, arXiv:1412.0035) both optimize an image in **model input
space** (the preprocessed values the model takes). What they share lives
here: the validated :class:`Settings`, the Adam / SGD update, jitter, blur and
clipping, the regularizers, value ranges, and the loop that calls one
compiled iteration fn per optimizer iteration, with a progress bar.

The regularizers are per-pixel means in units of ``scale`` so that their
weights mean the same at any image size and input range::

    R_a(x)     = mean(|x / scale| ** a)                  over H, W, C
    TV_b(x)    = mean(((dx ** 2 + dy ** 2) / scale ** 2 + eps) ** (b / 2))
                 with dx, dy the right / down neighbour differences per channel
                 (over the (H-1) x (W-1) x C pixels that have both; eps = 0
                 for b = 2, 1e-8 otherwise)

so ``l2 * R_2`` is Simonyan's ``lambda * ||x||^2`` with
``lambda = l2 / (H * W * C * scale ** 2)``.

The options both methods take (validated once by :func:`check_settings`):

* ``steps``: the number of optimizer iterations (> 0).
* ``lr``: step size in units of ``scale`` (Adam: about the per-pixel change
  per iteration; SGD: ``x += lr * scale * grad``); ``optimizer``:
  ``"adam"`` (default) or ``"sgd"`` (plain gradient ascent / descent).
* ``jitter``: the largest random shift in pixels (0: none); the model term
  of the objective is taken on the image rolled by a random shift.
* ``blur_every``, ``blur_sigma``: Gaussian-blur the image (``blur_sigma``
  pixels) every ``blur_every`` iterations (0: never).
* ``value_range``: ``(low, high)`` valid model inputs (scalars or per
  channel), e.g. ``(0, 1)`` for the demo model or
  ``input_range(preset.preprocess)``; ``clip``: clip to it after each
  iteration (default: True when it is given).
* ``scale``: the unit of the penalties and of ``lr``; default half the
  width of ``value_range`` (0.5 for [0, 1], 127.5 for [0, 255]).
* ``centre``: the "zero image" (scalar or per channel) the penalties pull
  toward. Default: input-space 0 when it lies strictly inside
  ``value_range`` (zero-centred preprocessing: Simonyan's mean image), else
  the middle of the range (inputs in [0, 1] or [0, 255], where 0 is the
  black corner).
* ``seed``: the random seed of the starting noise and of the jitter;
  ``progress``: show a ``keras.utils.Progbar`` over the iterations.

Each iteration is one compiled ``tf.function`` (input gradient with the
engine's fast exact conv rule, update, blur, clip), traced once per model,
objective and optimizer and reused for every iteration and every later call
with the same image shape: no retracing.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np
import tensorflow as tf

from ..checks import finite_float, non_negative_int, positive_int
from ..probe import compiled, fast_conv_gradients, input_gradient, input_spec
from ..progress import tracker
from ..render import normalize, to_uint8
from ..request import check_model

__all__ = ["Settings", "check_settings", "check_iterations", "check_image_model", "input_range",
           "norm_penalty", "total_variation", "gaussian_kernel", "blur", "iteration_fn",
           "run_iterations", "rgb_images", "SCALAR"]

OPTIMIZERS = ("adam", "sgd")
SCALAR = tf.TensorSpec((), tf.float32)
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


# ---------------------------------------------------------------- settings
@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated optimizer settings (the options of the module docstring).

    ``low``/``high``: the valid input range ``(C,)``, or None without one;
    ``centre``: the zero image ``(C,)``. The random generator is made from
    ``seed`` per call, so a call's start noise and jitter depend on it alone.
    """

    iterations: int
    optimizer: str
    lr: float
    jitter: int
    blur_every: int
    blur_sigma: float
    clip: bool
    low: Optional[np.ndarray]
    high: Optional[np.ndarray]
    scale: float
    centre: np.ndarray
    seed: object = None

    def start(self, rng, shape, noise):
        """The zero image plus ``noise * scale`` Gaussian noise, clipped: ``shape`` float32."""
        x = np.broadcast_to(self.centre, shape).astype(np.float32)
        if noise:
            x = x + noise * self.scale * rng.standard_normal(shape).astype(np.float32)
        return np.clip(x, self.low, self.high) if self.clip else x

    def random_image(self, shape):
        """Uniform noise over the valid range (``centre +- scale`` without one), from ``seed``: the
        reference an optimized image must beat (else the optimization failed)."""
        rng = np.random.default_rng([0 if self.seed is None else int(self.seed), 3])
        low = self.centre - self.scale if self.low is None else self.low
        high = self.centre + self.scale if self.high is None else self.high
        return rng.uniform(low, high, shape).astype(np.float32)

    def shifts(self, rng):
        """One random jitter shift ``(dy, dx)`` per iteration (zeros without jitter)."""
        if not self.jitter:
            return np.zeros((self.iterations, 2), np.int32)
        return rng.integers(-self.jitter, self.jitter + 1, size=(self.iterations, 2)).astype(np.int32)

    def clip_bounds(self):
        """``(low, high)`` tensors for ``tf.clip_by_value``; infinite when not clipping."""
        if self.clip:
            return tf.constant(self.low), tf.constant(self.high)
        inf = np.full((len(self.centre),), np.inf, np.float32)
        return tf.constant(-inf), tf.constant(inf)


def check_iterations(steps, what="steps"):
    """The iteration count: a positive integer.

    Every bad value gets the one message this API has always given (the
    shared ``positive_int`` words zero and negatives as ``>= 1``).
    """
    try:
        return positive_int(steps, what)
    except ValueError:
        raise ValueError(f"{what} must be a positive integer, got {steps!r}") from None


def check_settings(graph, steps, lr, optimizer, jitter, blur_every, blur_sigma, clip, value_range,
                   scale, seed, centre) -> Settings:
    """Validate the shared options once (see the module docstring)."""
    iterations = check_iterations(steps)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    lr = finite_float(lr, "lr", 0.0, allow_equal=False)
    jitter = non_negative_int(jitter, "jitter")
    blur_every = non_negative_int(blur_every, "blur_every")
    blur_sigma = finite_float(blur_sigma, "blur_sigma", 0.0, allow_equal=False)
    height, width, channels = graph.input_shape
    low, high = _value_range(value_range, channels)
    if clip is None:
        clip = low is not None
    if clip and low is None:
        raise ValueError("clip=True needs value_range=(low, high), the valid model-input range")
    if scale is None:
        scale = float(np.mean(high - low)) / 2.0 if low is not None else 1.0
    scale = finite_float(scale, "scale", 0.0, allow_equal=False)
    centre = _centre(centre, low, high, channels)
    if jitter >= min(height, width):
        raise ValueError(f"jitter={jitter} must be smaller than the image ({height}x{width})")
    return Settings(iterations, optimizer, lr, jitter, blur_every, blur_sigma, bool(clip), low, high,
                    scale, centre, seed)


def check_image_model(graph):
    """Class models and inversion need one fixed-size ``(H, W, C)`` image input."""
    if len(graph.input_ids) != 1:
        raise ValueError(
            f"model {graph.model.name!r} has {len(graph.input_ids)} inputs; class_model and "
            f"invert need a single-input image model."
        )
    check_model(graph, scores=False)  # the one capability check: a fixed (H, W, C) input


# ---------------------------------------------------------------- value ranges
def _value_range(value_range, channels):
    """``value_range`` -> (low, high) float32 ``(C,)`` arrays, or (None, None)."""
    if value_range is None:
        return None, None
    try:
        low, high = value_range
        low = np.broadcast_to(np.asarray(low, np.float32).reshape(-1), (channels,)).copy()
        high = np.broadcast_to(np.asarray(high, np.float32).reshape(-1), (channels,)).copy()
    except (TypeError, ValueError):
        raise ValueError(
            f"value_range must be (low, high) with scalars or one value per channel "
            f"({channels}), got {value_range!r}"
        ) from None
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)):
        raise ValueError(f"value_range must have finite low < high, got {value_range!r}")
    return low, high


def input_range(preprocess, channels=3):
    """The valid model-input range of a preset: ``preprocess`` of black and white.

    Returns ``(low, high)`` per channel, for ``value_range=``.
    """
    black = np.asarray(preprocess(np.zeros((1, 1, 1, channels), np.float32)), np.float32).reshape(-1)
    white = np.asarray(preprocess(np.full((1, 1, 1, channels), 255.0, np.float32)), np.float32).reshape(-1)
    return np.minimum(black, white), np.maximum(black, white)


def _centre(centre, low, high, channels):
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
    if low is None or np.all((low < 0) & (high > 0)):
        return np.zeros((channels,), np.float32)
    return ((low + high) / 2.0).astype(np.float32)


# ---------------------------------------------------------------- regularizers
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


def gaussian_kernel(sigma):
    """A normalized 1-D Gaussian of radius ``ceil(3 sigma)`` (at least 1), float32."""
    radius = max(1, int(math.ceil(3.0 * float(sigma))))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / float(sigma)) ** 2)
    return (k / k.sum()).astype(np.float32)


def blur(x, kernel):
    """Separable Gaussian blur with reflected borders (kernel: odd length, dynamic).

    The kernel is cut to fit images smaller than it (reflection needs a
    radius below the image side).
    """
    channels = x.shape[-1]
    centre = (tf.shape(kernel)[0] - 1) // 2
    radius = tf.minimum(centre, tf.minimum(tf.shape(x)[1], tf.shape(x)[2]) - 1)
    kernel = kernel[centre - radius: centre + radius + 1]
    kernel = kernel / tf.reduce_sum(kernel)
    k = tf.tile(kernel[:, None, None, None], [1, 1, channels, 1])
    x = tf.pad(x, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    x = tf.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(x, tf.transpose(k, [1, 0, 2, 3]), [1, 1, 1, 1], "VALID")


# ---------------------------------------------------------------- one iteration
def _update(optimizer, x, g, m, v, t, lr, scale, ascend):
    """One Adam or SGD update of ``x`` along ``g`` (ascent or descent)."""
    sign = 1.0 if ascend else -1.0
    if optimizer == "sgd":
        return x + sign * lr * scale * g, m, v
    m = _BETA1 * m + (1.0 - _BETA1) * g
    v = _BETA2 * v + (1.0 - _BETA2) * g * g
    mhat = m / (1.0 - tf.pow(_BETA1, t))
    vhat = v / (1.0 - tf.pow(_BETA2, t))
    return x + sign * lr * scale * mhat / (tf.sqrt(vhat) + _EPS * scale), m, v


def _signature(graph, extra_specs, variable=None):
    image = input_spec(graph) if variable is None else variable
    channel = tf.TensorSpec((None,), tf.float32)
    return [
        image, image, image,  # x (or a parameterization's variable), Adam's m and v
        SCALAR,  # t: the iteration number from 1 (Adam's bias correction)
        tf.TensorSpec((2,), tf.int32),  # jitter shift
        tf.TensorSpec((), tf.bool),  # blur this iteration
        SCALAR, SCALAR,  # lr, scale
        channel, channel,  # clip low, high per channel
        tf.TensorSpec((None,), tf.float32),  # blur kernel
        channel,  # centre: the "zero image" per channel
        tuple(extra_specs),  # the objective's own arguments
    ]


def iteration_fn(graph, key, optimizer, objective, extra_specs, ascend, image=None):
    """The compiled optimizer iteration for ``objective``, cached on the graph.

    ``objective(x, jittered, centre, scale, extra) -> (N,)`` is traced under
    the engine's fast conv-gradient rule; ``extra`` is a tuple matching
    ``extra_specs``. ``key`` names the objective (with the optimizer added).
    The fn returns the updated, blurred and clipped ``x``, Adam's moments and
    the objective per image.

    ``image`` (feature visualization, :mod:`.parameterize`): the optimized
    variable is then a parameterization's (``image.spec``), ``image.view(p,
    shift, t, low, high, centre, scale, extra) -> (x, seen, cost)`` gives the
    image, the transformed image the objective sees and the
    parameterization's own cost (subtracted), the update is in the
    variable's own units (``lr`` alone) and there is no blur or clip (the
    parameterization stays in range).
    """

    def build():
        @tf.function(input_signature=_signature(graph, extra_specs, image and image.spec), autograph=False)
        def iteration(x, m, v, t, shift, do_blur, lr, scale, low, high, kernel, centre, extra):
            with fast_conv_gradients():
                if image is None:
                    value = objective(x, tf.roll(x, shift, axis=[1, 2]), centre, scale, extra)
                else:
                    shown, seen, cost = image.view(x, shift, t, low, high, centre, scale, extra)
                    value = objective(shown, seen, centre, scale, extra) - cost
            g = input_gradient(tf.reduce_sum(value), x)
            if image is not None:  # each image's gradient at unit RMS: Adam's epsilon cannot stall tiny ones
                g = g / (tf.sqrt(tf.reduce_mean(g * g, axis=list(range(1, g.shape.rank)), keepdims=True)) + 1e-30)
                return (*_update(optimizer, x, g, m, v, t, lr, 1.0, ascend), value)
            x, m, v = _update(optimizer, x, g, m, v, t, lr, scale, ascend)
            x = tf.cond(do_blur, lambda: blur(x, kernel), lambda: x)
            return tf.clip_by_value(x, low, high), m, v, value

        return iteration

    return compiled(graph, tuple(key) + (optimizer,), build)


def run_iterations(settings, fn, x, extra, rng, progress=False, label="score"):
    """Call the compiled iteration ``fn`` ``settings.iterations`` times from ``x``.

    Returns the final images (a tensor) and the objective per iteration and
    image, ``(iterations, N)``. ``progress``: see :mod:`keras_convviz.progress`.
    """
    x = tf.constant(x)
    m = v = tf.zeros_like(x)
    shifts = settings.shifts(rng)
    constants = (tf.constant(settings.lr, tf.float32), tf.constant(settings.scale, tf.float32),
                 *settings.clip_bounds(), tf.constant(gaussian_kernel(settings.blur_sigma)),
                 tf.constant(settings.centre))
    bar = tracker(progress, settings.iterations, "iteration")
    history = []
    for i in range(settings.iterations):
        do_blur = bool(settings.blur_every) and (i + 1) % settings.blur_every == 0
        x, m, v, value = fn(x, m, v, tf.constant(float(i + 1)), tf.constant(shifts[i]), tf.constant(do_blur),
                            *constants, tuple(extra))
        history.append(value)
        if progress:
            bar.update(i + 1, values=[(label, float(tf.reduce_mean(value)))])
    bar.close()
    return x, np.stack([h.numpy() for h in history])


# ---------------------------------------------------------------- pictures of the results
def rgb_images(images, deprocess=None):
    """Optimized model inputs ``(N, H, W, C)`` as RGB ``uint8`` ``(N, H, W, 3)``.

    ``deprocess`` is the preset's (model inputs -> uint8 RGB). Without it
    each image is min-max stretched to the full range (grey stays grey only
    for one channel; other counts show their first three channels).
    """
    if deprocess is not None:
        out = np.asarray(deprocess(images.copy()))
        if out.dtype != np.uint8:
            out = np.clip(np.asarray(out, np.float64) + 0.5, 0, 255).astype(np.uint8)
        return out
    x = normalize(images, axis=(1, 2, 3))
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, -1)
    elif x.shape[-1] != 3:  # show the first three channels (zero-filled)
        x = np.concatenate([x, np.zeros(x.shape[:-1] + (3,), x.dtype)], -1)[..., :3]
    return to_uint8(x)
