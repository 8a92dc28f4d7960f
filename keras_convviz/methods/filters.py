"""First-layer filters and their health (Zeiler & Fergus 2014, arXiv:1311.2901, fig. 6).

Zeiler & Fergus read the first layer's kernels directly: "dead" filters
(near-zero weights that never respond) and filters dominated by high
frequencies (the aliasing that a large stride causes) told them to shrink the
first layer's stride and kernel. ``filters`` returns the kernels as an image
grid (each filter normalized on its own, zero at mid-grey, with its scale)
and per filter: the L2 norm, a dead flag, and the high-frequency share of its
spectral power.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..graph import walk

__all__ = ["filters", "Filters", "filter_images", "high_frequency_share", "NOISE_SHARE"]

# The share of a white-noise kernel's power above half the Nyquist frequency (radius 0.25 cycles/px in the
# [-0.5, 0.5]^2 frequency square): 1 - pi / 16. A filter well above this is dominated by high frequencies.
NOISE_SHARE = 1.0 - np.pi / 16.0


@dataclasses.dataclass(frozen=True)
class Filters:
    """Fig. 6 of Zeiler & Fergus 2014 (arXiv:1311.2901): a convolution's kernels and their health.

    ``kernels`` ``(kh, kw, cin, F)``; ``images`` ``(F, kh, kw, 3)`` uint8, each
    filter at mid-grey for 0 and black/white for -/+ ``scale[f]`` (its max
    |weight|); ``grid`` the images enlarged on one sheet; ``norm`` ``(F,)``;
    ``dead``: norm below ``dead_fraction`` times the median norm;
    ``high_frequency``: share of spectral power above half the Nyquist
    frequency; ``aliased``: share above ``aliasing_threshold``.
    """

    layer: str
    kernels: np.ndarray
    images: np.ndarray
    grid: np.ndarray
    scale: np.ndarray
    norm: np.ndarray
    dead: np.ndarray
    high_frequency: np.ndarray
    aliased: np.ndarray
    dead_fraction: float
    aliasing_threshold: float

    def summary(self) -> str:
        f = len(self.norm)
        return (f"{self.layer}: {f} filters {self.kernels.shape[0]}x{self.kernels.shape[1]}x{self.kernels.shape[2]}: "
                f"{int(self.dead.sum())} dead (norm < {self.dead_fraction:g} x median), {int(self.aliased.sum())} "
                f"high-frequency (share > {self.aliasing_threshold:.2f}; white noise {NOISE_SHARE:.2f}); "
                f"median share {np.median(self.high_frequency):.2f}")


def _first_conv(graph, layer):
    if layer is not None:
        step = graph.step(layer)
    else:
        step = next((s for s in graph.steps if s.kind == "conv"), None)
        if step is None:
            raise ValueError(f"model {graph.model.name!r} has no convolution; pass layer= naming one")
    kernel = getattr(step.layer, "kernel", None)
    if kernel is None or len(kernel.shape) != 4:
        raise ValueError(f"layer {step.name!r} ({step.type_name}) has no 4-D convolution kernel; pass the name of "
                         f"a Conv2D / DepthwiseConv2D layer (the first one by default)")
    weights = np.asarray(kernel.numpy() if hasattr(kernel, "numpy") else kernel, np.float64)
    if step.type_name == "DepthwiseConv2D":  # (kh, kw, cin, mult): one single-channel filter per output
        weights = weights.reshape(weights.shape[0], weights.shape[1], 1, -1)
    return step.name, weights


def filter_images(kernels) -> tuple:
    """``(images (F, kh, kw, 3) uint8, scale (F,))``: each filter normalized on its own, 0 at mid-grey.

    Three input channels are drawn as RGB, one as grey; any other count as
    the mean over input channels (grey).
    """
    k = np.asarray(kernels, np.float64)
    k = np.moveaxis(k, -1, 0)  # (F, kh, kw, cin)
    if k.shape[-1] not in (1, 3):
        k = k.mean(axis=-1, keepdims=True)
    scale = np.abs(k).reshape(len(k), -1).max(axis=1)
    safe = np.where(scale > 0, scale, 1.0)[:, None, None, None]
    img = np.clip(np.round((0.5 + 0.5 * k / safe) * 255.0), 0, 255).astype(np.uint8)
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    return img, scale


def high_frequency_share(kernels, size=32) -> np.ndarray:
    """``(F,)``: each kernel's spectral power above half the Nyquist frequency, as a share of the total.

    The spectrum is the kernel's DFT zero-padded to ``size`` (samples of its
    continuous spectrum), summed over input channels; "high" is a radial
    frequency above 0.25 cycles per pixel. White noise gives about
    :data:`NOISE_SHARE`, a checkerboard about 1, a smooth blob near 0.
    """
    k = np.moveaxis(np.asarray(kernels, np.float64), -1, 0)  # (F, kh, kw, cin)
    size = max(size, k.shape[1], k.shape[2])
    power = (np.abs(np.fft.fft2(k, s=(size, size), axes=(1, 2))) ** 2).sum(axis=-1)
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    high = np.sqrt(fx ** 2 + fy ** 2) > 0.25
    total = power.reshape(len(k), -1).sum(axis=1)
    return np.where(total > 0, power[:, high].sum(axis=1) / np.where(total > 0, total, 1.0), 0.0)


def _sheet(images, dead, aliased, cell=24, columns=None):
    """The filter images enlarged (nearest) on a grey sheet; dead filters framed blue, high-frequency red."""
    f = len(images)
    columns = columns or int(np.ceil(np.sqrt(f)))
    rows = int(np.ceil(f / columns))
    pad = 3
    sheet = np.full((pad + rows * (cell + pad), pad + columns * (cell + pad), 3), 200, np.uint8)
    reps = (cell // images.shape[1], cell // images.shape[2])
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        y, x = pad + r * (cell + pad), pad + c * (cell + pad)
        big = np.repeat(np.repeat(im, reps[0], 0), reps[1], 1)
        sheet[y:y + big.shape[0], x:x + big.shape[1]] = big
        frame = (40, 90, 255) if dead[i] else (230, 30, 30) if aliased[i] else None
        if frame is not None:
            sheet[y - 2:y, x - 2:x + cell + 2] = frame
            sheet[y + cell:y + cell + 2, x - 2:x + cell + 2] = frame
            sheet[y - 2:y + cell + 2, x - 2:x] = frame
            sheet[y - 2:y + cell + 2, x + cell:x + cell + 2] = frame
    return sheet


def filters(model, layer=None, dead_fraction=0.05, aliasing_threshold=0.9, cell=None) -> Filters:
    """Fig. 6 of Zeiler & Fergus 2014 (arXiv:1311.2901): the first convolution's kernels as images, with flags.

    Args:
      model: a Keras model.
      layer: a convolution (default: the first one).
      dead_fraction: a filter whose L2 norm is below this share of the
        median norm is dead.
      aliasing_threshold: a filter whose high-frequency share
        (:func:`high_frequency_share`) is above this is flagged (white noise
        gives :data:`NOISE_SHARE` = 0.80).
      cell: pixels per filter in ``grid`` (default: the kernel side times an
        integer, about 36).
    """
    if not 0 <= float(dead_fraction) < 1:
        raise ValueError(f"dead_fraction must be in [0, 1), got {dead_fraction!r}")
    if not 0 < float(aliasing_threshold) <= 1:
        raise ValueError(f"aliasing_threshold must be in (0, 1], got {aliasing_threshold!r}")
    name, k = _first_conv(walk(model), layer)
    images, scale = filter_images(k)
    norm = np.sqrt((k ** 2).reshape(-1, k.shape[-1]).sum(axis=0))
    dead = norm < dead_fraction * np.median(norm)
    share = high_frequency_share(k)
    aliased = (share > aliasing_threshold) & ~dead
    side = max(k.shape[0], k.shape[1])
    cell = cell or side * max(1, round(36 / side))
    grid = _sheet(images, dead, aliased, cell=cell)
    return Filters(layer=name, kernels=k.astype(np.float32), images=images, grid=grid, scale=scale, norm=norm,
                   dead=dead, high_frequency=share, aliased=aliased, dead_fraction=float(dead_fraction),
                   aliasing_threshold=float(aliasing_threshold))
