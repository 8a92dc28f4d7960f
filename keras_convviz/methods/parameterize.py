"""Image parameterizations and transformations for feature visualization.

Olah et al. 2017 ("Feature Visualization", Distill) and Mordvintsev et al.
2018 ("Differentiable Image Parameterizations", Distill) show that gradient
ascent reads much better when the optimized variable is not the pixels:

* ``"fourier"``: the image is the inverse real FFT of a spectrum whose
  coefficients are scaled by ``1 / max(f, 1 / max(H, W))`` (a 1/f spectrum,
  Lucid's ``fft_image``), so that every frequency moves about equally fast
  under Adam and high frequencies no longer dominate;
* colour decorrelation: the per-pixel channel values are ``M y`` with ``M``
  the square root of the channel covariance of natural images (ImageNet's
  published matrix, or one estimated from the user's own images with
  :func:`colour_matrix`), normalized by its largest column norm;
* ``"decorrelated"``: the same colour decorrelation on a pixel-space
  variable (no Fourier basis);
* ``"maco"`` (Fel et al. 2023, :mod:`.maco`): only the phase of the
  spectrum is optimized, its magnitude is fixed to natural images'.

The decorrelated value ``z`` becomes a model input inside the valid range
``(low, high)`` by ``low + (high - low) * sigmoid(z)``, or ``centre + scale
* z`` when there is no range. ``"pixel"`` (Simonyan et al. 2014,
arXiv:1312.6034) is the plain loop of :mod:`.optimize` and is not built here.

Transparency (Mordvintsev et al. 2018, "Semi-transparent patterns"): with
``alpha=share`` the variable has one more channel, an opacity. Every step
the image is laid over a fresh random pink-noise background, so only the
opaque part can carry the objective, and a penalty ``ALPHA_WEIGHT * (mean
opacity - share)^2`` keeps about ``share`` of the image opaque: the result
is a compact object, not a texture filling the frame. The final image is
the object over the "zero image" (the preset's neutral fill). With
``solid=True`` the object has one colour (the spatial mean of the colour
channels), so only its silhouette can carry the objective: a shape, not a
pattern, which is what datasets of single objects (the demo's) are made of.
With ``compact=True`` the object is also kept in one piece: its
:func:`spread` above :data:`SPREAD_LIMIT` costs :data:`SPREAD_WEIGHT` per
unit. Nets that pool globally sum evidence over the frame, so without it a
class model tiles the most telling part of its class (a cross drawn as a
scatter of small squares); any single compact shape costs nothing.

Transformation robustness (Olah et al. 2017; Mordvintsev et al. 2015): the
model sees each step's image rotated, scaled and shifted by random amounts,
one affine warp per image (bilinear, filled with the "zero image" outside,
which is the padding), so every transformed image stays in the valid range.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Optional

import numpy as np
import tensorflow as tf

from . import maco

__all__ = ["PARAMS", "IMAGENET_COLORS", "Parameterization", "colour_matrix", "colors_for", "normalized_colors",
           "preset_colors", "fourier_scale", "transform", "TRANSFORM_SLOTS", "ALPHA_WEIGHT", "random_backgrounds",
           "spread", "SPREAD_LIMIT", "SPREAD_WEIGHT"]

PARAMS = ("pixel", "decorrelated", "fourier", "maco")

# Lucid's colour_correlation_svd_sqrt: the square root of ImageNet's RGB covariance (columns are the
# principal colour directions scaled by the square root of their variance).
IMAGENET_COLORS = np.asarray([[0.26, 0.09, 0.02],
                              [0.27, 0.00, -0.05],
                              [0.27, -0.09, 0.03]], np.float32)

TRANSFORM_SLOTS = 3  # seed, scale amount, rotation in degrees
# The variable is GAIN times Lucid's (Fourier: Lucid divides the inverse FFT by 4; we do not), so that
# Adam's step lr = 0.05 here moves the image like Lucid's lr = 0.2: small nets such as the demo's need
# that to leave the nearly flat start, where their bias-free first block barely responds.
GAIN = 4.0
# Lucid starts from sd 0.01 (a nearly flat image). Small nets with bias-free first blocks (the demo's) barely
# respond there and some images never leave it; 0.3 (about 0.1 of the range in pixel contrast) always did.
START_SD = 0.3
# The opacity penalty's weight: 10 (mean opacity - share)^2 costs 0.1 at 10 % of the image off the share,
# a small fraction of a class log-probability's range, so the share is a soft target.
ALPHA_WEIGHT = 10.0
# One object: the spread (see spread()) is 1 for a disc (its minimum), pi / 3 for a square and 1.2-1.3 for the
# demo's triangles and crosses; pieces scattered over the frame measure several times more, so 1.5 leaves every
# single shape free. The weight is the smallest of a sweep (0.1, 0.15, 0.3 per unit, 12 seeds, two twins) that
# gathered the demo's crosses into one clump; 0.3 bent squares into trapezoids a twin took for circles.
SPREAD_LIMIT = 1.5
SPREAD_WEIGHT = 0.1
BACKGROUND_DECAY = 1.5  # random backgrounds: pink noise, smoother than the 1/f spectrum of the images
BACKGROUND_CONTRAST = 0.8  # their standard deviation before the sigmoid: mid-range, rarely saturated


# ---------------------------------------------------------------- colour matrices
def colour_matrix(images) -> np.ndarray:
    """The square root ``U diag(sqrt(l))`` of the channel covariance of ``images`` ``(N, H, W, C)``.

    Its columns are the principal colour directions, each scaled by the
    square root of its variance, so ``M @ M.T`` is the covariance and
    ``M.T @ M`` is diagonal (orthogonal up to scale), like Lucid's ImageNet
    matrix. Columns are ordered by decreasing variance, each with a
    non-negative sum (a deterministic sign).
    """
    x = np.asarray(images, np.float64)
    if x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"colour_matrix needs a batch of images (N, H, W, C), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("colour_matrix: the images contain NaN or Inf values")
    flat = x.reshape(-1, x.shape[-1])
    cov = np.cov(flat, rowvar=False).reshape(x.shape[-1], x.shape[-1])
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    values, vectors = np.clip(values[order], 1e-12, None), vectors[:, order]
    vectors = vectors * np.where(vectors.sum(0) < 0, -1.0, 1.0)
    return (vectors * np.sqrt(values)).astype(np.float32)


def normalized_colors(colors, channels) -> np.ndarray:
    """``colors`` divided by its largest column norm; None: ImageNet's for 3 channels, else identity."""
    if colors is None:
        colors = IMAGENET_COLORS if channels == 3 else np.eye(channels, dtype=np.float32)
    m = np.asarray(colors, np.float32)
    if m.shape != (channels, channels) or not np.all(np.isfinite(m)):
        raise ValueError(f"colors must be a finite ({channels}, {channels}) matrix (model input channels), "
                         f"got shape {m.shape}; see featurevis.colour_matrix(images)")
    if abs(np.linalg.det(m)) < 1e-12 * max(1.0, float(np.abs(m).max())) ** channels:
        raise ValueError("colors must be an invertible matrix (a singular one loses colours)")
    return m / np.linalg.norm(m, axis=0).max()


def preset_colors(preprocess, images=None, channels=3) -> np.ndarray:
    """The colour matrix in model-input channel order for a preset.

    With ``images`` (model inputs), it is estimated from them; without,
    ImageNet's published matrix with its rows put in the channel order
    ``preprocess`` produces (RGB, or BGR for Caffe-style models).
    """
    if images is not None:
        return colour_matrix(images)
    if channels != 3:
        return np.eye(channels, dtype=np.float32)
    black = np.asarray(preprocess(np.zeros((1, 1, 1, 3), np.float32)), np.float32).reshape(3)
    order = []
    for c in range(3):
        rgb = np.zeros((1, 1, 1, 3), np.float32)
        rgb[..., c] = 255.0
        order.append(int(np.argmax(np.abs(np.asarray(preprocess(rgb), np.float32).reshape(3) - black))))
    if sorted(order) != [0, 1, 2]:
        return IMAGENET_COLORS.copy()
    out = np.empty_like(IMAGENET_COLORS)
    out[order] = IMAGENET_COLORS  # model channel order[c] holds RGB channel c
    return out


def colors_for(preset) -> np.ndarray:
    """A preset's colour matrix: the demo's estimated from 256 ``demo.shapes`` images, else ImageNet's."""
    channels = int(preset.model.inputs[0].shape[-1])
    if preset.name == "demo":
        from .. import demo

        return colour_matrix(demo.shapes(256, seed=0)[0])
    return preset_colors(preset.preprocess, None, channels)


# ---------------------------------------------------------------- the Fourier basis
def fourier_scale(height, width, decay=1.0) -> np.ndarray:
    """Lucid's spectrum scale ``sqrt(H W) / max(f, 1 / max(H, W)) ** decay``, ``(H, W // 2 + 1)``."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    freqs = np.sqrt(fx * fx + fy * fy)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(height, width)) ** decay
    return (scale * math.sqrt(height * width)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Parameterization:
    """How the optimized variable becomes a model input (see the module docstring).

    ``kind``: ``"fourier"`` or ``"decorrelated"``; ``shape``: the image
    ``(H, W, C)``; ``bounded``: map into ``(low, high)`` by a sigmoid (else
    ``centre + scale * z``); ``decay``: the exponent of the Fourier
    spectrum's ``1 / f`` scale (larger: smoother images); ``alpha``: the
    target opaque share of a transparent image (None: opaque); ``solid``:
    one colour per transparent image; ``compact``: a transparent image in
    one piece (a cost on its :func:`spread`); ``magnitude``: MaCo's fixed
    spectrum ``(C, H, W // 2 + 1)`` (None: :func:`maco.natural_magnitude`).
    Static per compiled step: part of its key.
    """

    kind: str
    shape: tuple
    bounded: bool
    decay: float = 1.0
    alpha: Optional[float] = None
    solid: bool = False
    compact: bool = False
    magnitude: Optional[np.ndarray] = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def key(self):
        digest = None if self.magnitude is None else hashlib.sha1(self.fixed_magnitude.tobytes()).hexdigest()
        return self.kind, self.shape, self.bounded, self.decay, self.alpha, self.solid, self.compact, digest

    @property
    def fixed_magnitude(self) -> np.ndarray:
        """MaCo's magnitude spectrum ``(C, H, W // 2 + 1)`` float32."""
        if self.magnitude is None:
            return maco.natural_magnitude(*self.shape)
        return np.asarray(self.magnitude, np.float32)

    @property
    def variable_shape(self):
        h, w, c = self.shape
        c += self.alpha is not None  # the opacity channel
        if self.kind == "maco":  # the phase alone
            return (c, h, w // 2 + 1)
        return (2, c, h, w // 2 + 1) if self.kind == "fourier" else (h, w, c)

    @property
    def spec(self):
        return tf.TensorSpec((None,) + self.variable_shape, tf.float32)

    def initial(self, rng, n, sd=START_SD) -> np.ndarray:
        """The start: Gaussian noise in the variable (pink noise for ``"fourier"``) around mid-range;
        a random phase for ``"maco"`` (a random image with natural images' spectrum)."""
        if self.kind == "maco":
            return maco.initial_phase(rng, (n,) + self.variable_shape)
        return (sd * rng.standard_normal((n,) + self.variable_shape)).astype(np.float32)

    def decorrelated(self, p):
        """The variable -> the decorrelated image ``y`` ``(N, H, W, C)`` (traceable)."""
        h, w, _ = self.shape
        if self.kind == "maco":
            return maco.phase_image(p, self.fixed_magnitude, w)
        if self.kind != "fourier":
            return GAIN * p
        spectrum = tf.complex(p[:, 0], p[:, 1]) * tf.cast(fourier_scale(h, w, self.decay), tf.complex64)
        image = tf.signal.irfft2d(spectrum, fft_length=[h, w])  # (N, C, H, W)
        return tf.transpose(image, [0, 2, 3, 1]) * (GAIN / 4.0)

    def layers(self, p, colors, low, high, centre, scale):
        """The variable -> ``(image, opacity)`` (traceable); opacity ``(N, H, W, 1)`` or None."""
        y = self.decorrelated(p)
        channels = self.shape[-1]
        colour = y[..., :channels]
        if self.solid:  # one colour: the mean, at every pixel
            colour = tf.reduce_mean(colour, axis=[1, 2], keepdims=True) + tf.zeros_like(colour)
        z = tf.einsum("nhwc,dc->nhwd", colour, colors)
        image = low + (high - low) * tf.sigmoid(z) if self.bounded else centre + scale * z
        return image, (None if self.alpha is None else tf.sigmoid(y[..., channels:]))

    def render(self, p, colors, low, high, centre, scale):
        """The variable -> model inputs (traceable); ``colors``: the normalized matrix.

        A transparent image is shown over the zero image ``centre``."""
        image, opacity = self.layers(p, colors, low, high, centre, scale)
        return image if opacity is None else opacity * image + (1.0 - opacity) * centre

    def view(self, p, shift, t, low, high, centre, scale, extra):
        """For ``optimize.iteration_fn``: ``(image, transformed image, cost)`` (traceable).

        ``extra`` starts with the normalized colour matrix and the
        transformation arguments (see :func:`transform`). A transparent
        image is laid over random backgrounds and costs the opacity
        penalty, plus the spread penalty when compact (``(N,)``; zeros for
        an opaque one).
        """
        image, opacity = self.layers(p, extra[0], low, high, centre, scale)
        if opacity is None:
            cost = tf.zeros(tf.shape(image)[:1])
        else:
            seed = tf.stack([tf.cast(extra[1][0], tf.int64) + 1, tf.cast(t, tf.int64)])
            background = random_backgrounds(tf.shape(image)[0], self.shape, seed, low, high, centre, scale,
                                            self.bounded)
            image = opacity * image + (1.0 - opacity) * background
            cost = ALPHA_WEIGHT * tf.square(tf.reduce_mean(opacity, axis=[1, 2, 3]) - self.alpha)
            if self.compact:
                cost += SPREAD_WEIGHT * tf.nn.relu(spread(opacity) - SPREAD_LIMIT)
        return image, transform(image, shift, t, centre, extra[1]), cost

    def encode(self, x, colors, low, high, centre, scale) -> np.ndarray:
        """The inverse of :meth:`render` in numpy: model inputs -> the variable.

        Bounded images must lie strictly inside the range (clipped to 1e-4
        of its width from the edges). Transparent images have no inverse.
        """
        if self.alpha is not None:
            raise ValueError("init= starts from opaque images; it cannot be combined with alpha= (transparency)")
        x = np.asarray(x, np.float64)
        if self.bounded:
            u = np.clip((x - low) / (high - low), 1e-4, 1 - 1e-4)
            z = np.log(u) - np.log1p(-u)
        else:
            z = (x - centre) / scale
        y = z @ np.linalg.inv(np.asarray(colors, np.float64)).T
        h, w, _ = self.shape
        if self.kind == "maco":  # the closest phase: the magnitude stays the fixed one
            return np.angle(np.fft.rfft2(np.transpose(y, (0, 3, 1, 2)), axes=(2, 3))).astype(np.float32)
        y = y / GAIN
        if self.kind != "fourier":
            return y.astype(np.float32)
        spectrum = np.fft.rfft2(4.0 * np.transpose(y, (0, 3, 1, 2)), axes=(2, 3)) / fourier_scale(h, w, self.decay)
        return np.stack([spectrum.real, spectrum.imag], axis=1).astype(np.float32)


def random_backgrounds(n, shape, seed, low, high, centre, scale, bounded):
    """``n`` random pink-noise images ``(n, H, W, C)`` inside the valid range (traceable).

    Each is 1/f^1.5 noise at a fixed contrast per image, through the same
    sigmoid (or ``centre + scale * z``) as the images, so backgrounds span
    the range about as real photographs do.
    """
    h, w, c = shape
    parts = tf.random.stateless_normal(tf.stack([2, n, c, h, w // 2 + 1]), seed)
    spectrum = tf.complex(parts[0], parts[1]) * tf.cast(fourier_scale(h, w, BACKGROUND_DECAY), tf.complex64)
    noise = tf.transpose(tf.signal.irfft2d(spectrum, fft_length=[h, w]), [0, 2, 3, 1])
    z = BACKGROUND_CONTRAST * noise / (tf.math.reduce_std(noise, axis=[1, 2, 3], keepdims=True) + 1e-12)
    return low + (high - low) * tf.sigmoid(z) if bounded else centre + scale * z


def spread(opacity):
    """How far an opacity map ``(N, H, W, 1)`` lies from one round piece, ``(N,)`` (traceable).

    ``2 pi`` times its second moment about its centroid, over its area
    squared: 1 for a disc (the least any shape has), ``pi / 3`` for a
    square; pieces scattered over the frame measure several times more.
    Invariant to the shape's scale and position.
    """
    a = opacity[..., 0]
    height, width = int(a.shape[1]), int(a.shape[2])
    rows = tf.range(height, dtype=tf.float32)[None, :, None]
    cols = tf.range(width, dtype=tf.float32)[None, None, :]
    area = tf.reduce_sum(a, axis=[1, 2]) + 1e-3  # an all-transparent image measures 0, not NaN
    cy = tf.reduce_sum(a * rows, axis=[1, 2]) / area
    cx = tf.reduce_sum(a * cols, axis=[1, 2]) / area
    squared = tf.square(rows - cy[:, None, None]) + tf.square(cols - cx[:, None, None])
    moment = tf.reduce_sum(a * squared, axis=[1, 2])
    return 2.0 * math.pi * moment / tf.square(area)


# ---------------------------------------------------------------- transformations
def _warp_matrices(n, height, width, shift, angle, zoom):
    """Per-image ``ImageProjectiveTransformV3`` rows: rotate by ``angle`` and scale by ``zoom``
    about the centre, then move by ``shift = (dy, dx)`` (output -> input coordinates)."""
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    dy, dx = tf.cast(shift[0], tf.float32), tf.cast(shift[1], tf.float32)
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    ox, oy = cx + dx, cy + dy
    a2 = cx - cos * ox - sin * oy
    b2 = cy + sin * ox - cos * oy
    zeros = tf.zeros([n])
    return tf.stack([cos, sin, a2, -sin, cos, b2, zeros, zeros], axis=1)


def transform(x, shift, t, centre, args):
    """Random rotation, scale and shift of each image (traceable), filled with ``centre``.

    ``shift``: this step's ``(dy, dx)`` jitter in pixels; ``t``: the step
    number; ``args``: ``(seed, scale amount, rotation in degrees)``: each
    image gets a zoom in ``1 +- amount`` and an angle in ``+- degrees`` drawn
    from a stateless generator seeded by ``(seed, t)``. A convex
    (bilinear) combination of in-range pixels and the in-range fill, so the
    result stays in the valid range.
    """
    n = tf.shape(x)[0]
    height, width = int(x.shape[1]), int(x.shape[2])
    seed = tf.stack([tf.cast(args[0], tf.int64), tf.cast(t, tf.int64)])
    u = tf.random.stateless_uniform(tf.stack([n, 2]), seed, minval=-1.0, maxval=1.0)
    zoom = 1.0 + args[1] * u[:, 0]
    angle = args[2] * (math.pi / 180.0) * u[:, 1]
    rows = _warp_matrices(n, height, width, shift, angle, zoom)
    moved = tf.raw_ops.ImageProjectiveTransformV3(
        images=x - centre, transforms=rows, output_shape=tf.constant([height, width]),
        fill_value=tf.constant(0.0), interpolation="BILINEAR", fill_mode="CONSTANT")
    return moved + centre
