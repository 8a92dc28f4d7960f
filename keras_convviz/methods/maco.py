"""MaCo: phase-only feature visualization with a natural magnitude spectrum.

Fel et al. 2023 ("Unlocking Feature Visualization for Deeper Networks with
MAgnitude Constrained Optimization", NeurIPS, arXiv:2306.06805) optimize
only the **phase** of the image's Fourier spectrum and keep its
**magnitude** fixed to that of natural images. Every image of the
optimization therefore has the power spectrum of a photograph: it cannot
drift into the high-frequency patterns that plain or 1/f-preconditioned
ascent finds on deep networks, and the network's evidence has to come from
where edges and blobs are (the phase), which is what the eye reads.

Here the phase lives in the decorrelated colour space of
:mod:`.parameterize` (one phase map per colour channel), and the fixed
magnitude is either

* :data:`NATURAL_SPECTRUM`: a power law ``A_c / f ** a_c`` per decorrelated
  colour channel fitted once to scikit-image's colour photographs
  (:data:`PHOTOS`, see :func:`fit_spectrum`; a few numbers, so nothing is
  downloaded or read at run time), or
* the mean magnitude of the user's own images (:func:`image_magnitude`).

The spectrum's DC term is 0 (the image's mean is the mid-range, as for the
other parameterizations), and the phase is made Hermitian on the columns the
real inverse FFT reads twice (:func:`hermitian`), so the image's magnitude
spectrum is **exactly** the fixed one at every step (a test checks it).

MaCo's second output is its importance (transparency) map: where the
objective's gradient on the image was large. Fel et al. accumulate
``|d objective / d image|`` over the optimization; :func:`importance`
averages it over randomly transformed views of the final image (the same
transformations the optimization saw), so it needs no state in the step.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from ..probe import compiled, fast_conv_gradients, input_gradient, input_spec
from . import objectives as obj

__all__ = ["NATURAL_SPECTRUM", "PHOTOS", "fit_spectrum", "natural_magnitude", "image_magnitude", "hermitian",
           "phase_image", "initial_phase", "photo_inputs", "decorrelated_logits", "resolve_magnitude", "importance",
           "IMPORTANCE_VIEWS"]

# scikit-image's colour photographs of everyday scenes (offline, shipped with the package).
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle")
# (A_c, a_c) per decorrelated colour channel (IMAGENET_COLORS' principal directions): the magnitude
# |rfft2(y)| / sqrt(H W) ~ A_c / f ** a_c (f in cycles per pixel) of PHOTOS at 224 x 224, through the
# sigmoid's inverse of the [0, 1] range. Recomputed by fit_spectrum(); tests/test_featurevis.py checks it.
NATURAL_SPECTRUM = ((0.10825, 1.2713), (0.10779, 1.2994), (0.10553, 1.2431))
IMPORTANCE_VIEWS = 8  # shifted views averaged into the importance map: about 3 % of a 256-step run
LOGIT_CLIP = 0.02  # photo pixels at 0 or 255 would have infinite sigmoid preimages: clip to [0.02, 0.98]


def photo_inputs(size=224):
    """:data:`PHOTOS` as ``(N, size, size, 3)`` floats in [0, 1], centre-cropped squares, resized."""
    import skimage.data
    import skimage.transform

    out = []
    for name in PHOTOS:
        image = getattr(skimage.data, name)()
        image = image[0] if isinstance(image, tuple) else image  # stereo_motorcycle: (left, right, disparity)
        h, w = image.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        crop = image[top:top + side, left:left + side, :3].astype(np.float64) / 255.0
        out.append(skimage.transform.resize(crop, (size, size), anti_aliasing=True))
    return np.stack(out).astype(np.float32)


def decorrelated_logits(units, colors):
    """Images in [0, 1] ``(N, H, W, C)`` -> the decorrelated values ``y`` the parameterizations render
    (the inverse of ``sigmoid(y @ colors.T)``), with pixels clipped by :data:`LOGIT_CLIP`."""
    u = np.clip(np.asarray(units, np.float64), LOGIT_CLIP, 1.0 - LOGIT_CLIP)
    z = np.log(u) - np.log1p(-u)
    return z @ np.linalg.inv(np.asarray(colors, np.float64)).T


def _frequencies(height, width):
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    return np.sqrt(fx * fx + fy * fy)


def image_magnitude(y) -> np.ndarray:
    """The mean magnitude spectrum ``(C, H, W // 2 + 1)`` of decorrelated images ``y`` ``(N, H, W, C)``,
    with a zero DC term (MaCo's magnitude estimated from the user's images)."""
    y = np.asarray(y, np.float64)
    if y.ndim != 4 or len(y) == 0:
        raise ValueError(f"magnitude images must be a batch (N, H, W, C), got shape {y.shape}")
    spectrum = np.abs(np.fft.rfft2(np.transpose(y, (0, 3, 1, 2)), axes=(2, 3))).mean(0)
    spectrum[:, 0, 0] = 0.0
    return spectrum.astype(np.float32)


def fit_spectrum(y) -> tuple:
    """``((A_c, a_c), ...)``: the power law ``A_c / f ** a_c`` fitted (least squares in log-log, equal
    weight per frequency octave) to the magnitude of decorrelated images ``y`` ``(N, H, W, C)``."""
    y = np.asarray(y, np.float64)
    h, w = y.shape[1:3]
    magnitude = image_magnitude(y) / math.sqrt(h * w)
    f = _frequencies(h, w)
    keep = f > 0
    log_f = np.log(f[keep])
    weights = 1.0 / f[keep] ** 2  # rings hold ~f points: this weighs each octave about equally
    out = []
    for channel in magnitude:
        slope, intercept = np.polyfit(log_f, np.log(channel[keep] + 1e-12), 1, w=np.sqrt(weights))
        out.append((round(float(math.exp(intercept)), 5), round(float(-slope), 4)))
    return tuple(out)


def natural_magnitude(height, width, channels=3, spectrum=None) -> np.ndarray:
    """The fixed magnitude ``(C, H, W // 2 + 1)`` of a power-law ``spectrum`` (default
    :data:`NATURAL_SPECTRUM`) at ``height`` x ``width``, zero at DC. Other channel counts than the
    spectrum's (grey or multispectral inputs) take its mean law in every channel."""
    spectrum = NATURAL_SPECTRUM if spectrum is None else spectrum
    if channels != len(spectrum):
        spectrum = (tuple(np.mean(np.asarray(spectrum, np.float64), axis=0)),) * channels
    f = np.maximum(_frequencies(height, width), 1.0 / max(height, width))
    out = np.stack([a * math.sqrt(height * width) / f ** e for a, e in spectrum])
    out[:, 0, 0] = 0.0
    return out.astype(np.float32)


def hermitian(phase, width):
    """``phase`` ``(N, C, H, W // 2 + 1)`` made odd, ``p(-k) = -p(k)``, on the columns the real inverse
    FFT folds (0, and W / 2 for an even width), so that ``irfft2d`` keeps every magnitude (traceable)."""
    def odd(col):  # row r pairs with row -r mod H: keep the odd part of the column
        return 0.5 * (col - tf.roll(tf.reverse(col, axis=[-2]), shift=1, axis=-2))

    if width % 2:
        return tf.concat([odd(phase[..., :1]), phase[..., 1:]], axis=-1)
    return tf.concat([odd(phase[..., :1]), phase[..., 1:-1], odd(phase[..., -1:])], axis=-1)


def phase_image(phase, magnitude, width):
    """``irfft2d(magnitude * exp(i phase))`` as ``width``-wide images ``(N, H, W, C)`` (traceable).

    ``phase`` ``(N, C, H, W // 2 + 1)`` and ``magnitude`` ``(C, H, W // 2 + 1)``;
    the image's own magnitude spectrum is ``magnitude`` exactly (see :func:`hermitian`)."""
    height = int(magnitude.shape[1])
    phase = hermitian(phase, width)
    m = tf.cast(magnitude, tf.float32)
    spectrum = tf.complex(m * tf.cos(phase), m * tf.sin(phase))
    image = tf.signal.irfft2d(spectrum, fft_length=[height, width])
    return tf.transpose(image, [0, 2, 3, 1])


def initial_phase(rng, shape) -> np.ndarray:
    """A uniformly random phase in ``[-pi, pi)`` of ``shape`` (MaCo's start: a random natural image)."""
    return rng.uniform(-math.pi, math.pi, shape).astype(np.float32)


def resolve_magnitude(magnitude, param, shape, colors, low, high):
    """``magnitude=`` of ``featurevis`` as a spectrum ``(C, H, W // 2 + 1)``, or None (natural photographs').

    ``magnitude`` may be the user's images ``(N, H, W, C)`` (model inputs inside ``(low, high)``, through
    the normalized colour matrix ``colors``) or a spectrum already."""
    if magnitude is None:
        return None
    if param != "maco":
        raise ValueError(f"magnitude= is MaCo's fixed spectrum; pass param='maco' too (not {param!r})")
    h, w, c = (int(v) for v in shape)
    m = np.asarray(magnitude, np.float32)
    if not np.all(np.isfinite(m)):
        raise ValueError("magnitude contains NaN or Inf values")
    if m.shape == (c, h, w // 2 + 1):
        if np.any(m < 0):
            raise ValueError("a magnitude spectrum cannot be negative; pass images to estimate it from")
        return m
    if m.ndim == 4 and m.shape[1:] == (h, w, c) and len(m):
        if low is None:
            raise ValueError("magnitude=images needs value_range=(low, high), the images' valid range")
        return image_magnitude(decorrelated_logits((m - low) / (high - low), colors))
    raise ValueError(f"magnitude must be images (N, {h}, {w}, {c}) in model-input space or a spectrum "
                     f"({c}, {h}, {w // 2 + 1}), got shape {m.shape}")


def _importance_fn(graph, family):
    def build():
        specs = [input_spec(graph), tf.TensorSpec((IMPORTANCE_VIEWS, 2), tf.int32), obj.arg_specs(family),
                 tf.TensorSpec((None,), tf.float32)]

        @tf.function(input_signature=specs, autograph=False)
        def importance_map(x, shifts, args, weights):
            total = tf.zeros_like(x)
            for k in range(IMPORTANCE_VIEWS):
                with fast_conv_gradients():
                    seen = tf.roll(x, shifts[k], axis=[1, 2])
                    value = tf.reduce_sum(tf.stack(obj.values(graph, family, seen, args), axis=1) * weights)
                total += tf.abs(input_gradient(value, x))
            m = tf.reduce_sum(total, axis=-1)
            return m / (tf.reduce_max(m, axis=[1, 2], keepdims=True) + 1e-12)

        return importance_map

    return compiled(graph, ("optimize.featurevis.importance", family), build)


def importance(graph, plan, x, settings, seed=0) -> np.ndarray:
    """MaCo's transparency map ``(N, H, W)`` in [0, 1]: ``|d objective / d image|`` summed over channels and
    averaged over :data:`IMPORTANCE_VIEWS` randomly shifted views of the final images ``x`` (the run's
    jitter), each image's map divided by its maximum."""
    rng = np.random.default_rng([0 if seed is None else int(seed), 7])
    shifts = rng.integers(-settings.jitter, settings.jitter + 1, (IMPORTANCE_VIEWS, 2)).astype(np.int32)
    fn = _importance_fn(graph, plan.family)
    weights = tf.constant(np.asarray(plan.weights, np.float32).reshape(-1))
    return fn(tf.constant(x), tf.constant(shifts), obj.arg_tensors(plan.args), weights).numpy()
