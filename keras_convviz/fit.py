"""Fit a photograph to the model input without distortion, and map results back onto it.

One piece of geometry serves both directions: :func:`place` decides where the
photo goes in the model input (a :class:`Placement`: scale, offsets, the
visible region), :func:`fit_input` builds the model input from it, and
:func:`map_to_photo` / :func:`photo_view` cut any map (at the model-input
resolution or coarser: Grad-CAM cells, occlusion grids) back to the photo's
region and draw it at the photo's own resolution, capped at ``max_side``.

Policies (``fit=``):

* ``"pad"`` (default): letterbox. The whole photo, scaled to fit, aspect kept;
  the margins hold the model-input value of a neutral pixel (the preset's
  mean pixel after its preprocessing: 0 for VGG's caffe and MobileNet's
  [-1, 1] inputs), so the padding carries no signal of its own.
* ``"crop"``: scale to cover the input, aspect kept, centre crop (the photo's
  margins are not seen; maps are drawn on the visible part).
* ``"stretch"``: resize to the input square, aspect lost (the old behaviour).

A model with a flexible input size (``(None, None, C)``) runs at the photo's
own size, scaled down so its longer side is at most ``max_input_side``; no
padding, no distortion, whatever the policy.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

__all__ = ["POLICIES", "DEFAULT_FIT", "MAX_DISPLAY_SIDE", "MAX_INPUT_SIDE", "Placement", "place",
           "fit_input", "neutral_fill", "map_to_photo", "photo_view", "box_on_view", "window_on_view",
           "check_policy", "describe", "to_channels"]

POLICIES = ("pad", "crop", "stretch")
DEFAULT_FIT = "pad"
MAX_DISPLAY_SIDE = 1024  # pictures are drawn at the photo's resolution, at most this long a side
MAX_INPUT_SIDE = 512  # a flexible-size model runs at the photo's size, at most this long a side


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a ``photo = (h, w)`` image sits in a ``size = (H, W)`` model input.

    A model-input coordinate (pixel edges, continuous) is ``photo * scale +
    offset`` per axis: ``scale = (scale_y, scale_x)`` input pixels per photo
    pixel and ``offset = (offset_y, offset_x)`` the input position of the
    photo's top-left corner (negative when cropped). ``resized`` is the size
    the photo is resampled to before it is pasted at ``offset``.
    """

    policy: str
    photo: tuple
    size: tuple
    resized: tuple
    scale: tuple
    offset: tuple

    @property
    def region(self) -> tuple:
        """The photo's visible part in model-input pixels: ``(y0, y1, x0, x1)`` ints."""
        (H, W), (oy, ox), (rh, rw) = self.size, self.offset, self.resized
        return max(oy, 0), min(oy + rh, H), max(ox, 0), min(ox + rw, W)

    @property
    def visible(self) -> tuple:
        """The same region in photo coordinates (floats, pixel edges): ``(y0, y1, x0, x1)``."""
        y0, y1, x0, x1 = self.region
        (py0, px0), (py1, px1) = self.to_photo(y0, x0, centre=False), self.to_photo(y1, x1, centre=False)
        return py0, py1, px0, px1

    def to_input(self, y, x, centre=True) -> tuple:
        """Photo coordinates -> model-input coordinates (pixel centres by default)."""
        half = 0.5 if centre else 0.0
        (sy, sx), (oy, ox) = self.scale, self.offset
        return ((np.asarray(y, np.float64) + half) * sy + oy - half,
                (np.asarray(x, np.float64) + half) * sx + ox - half)

    def box_to_input(self, box) -> tuple:
        """A photo box ``(x, y, w, h)`` -> the model-input box covering it, ints, clipped to the region.

        Every input pixel the photo box overlaps is included, and the box is
        at least one pixel wide and high; a box outside the visible region
        (``fit="crop"``) is a ``ValueError``.
        """
        x, y, w, h = box
        (ty0, tx0), (ty1, tx1) = self.to_input(y, x, centre=False), self.to_input(y + h, x + w, centre=False)
        ry0, ry1, rx0, rx1 = self.region
        y0, x0 = max(int(np.floor(ty0 + 1e-9)), ry0), max(int(np.floor(tx0 + 1e-9)), rx0)
        y1, x1 = min(int(np.ceil(ty1 - 1e-9)), ry1), min(int(np.ceil(tx1 - 1e-9)), rx1)
        if y0 >= ry1 or x0 >= rx1 or y1 <= ry0 or x1 <= rx0:
            raise ValueError(f"the box {tuple(box)} lies outside the part of the photo the model sees "
                             f"with fit={self.policy!r}; use --fit pad to see the whole photo")
        y1, x1 = max(y1, y0 + 1), max(x1, x0 + 1)
        return x0, y0, x1 - x0, y1 - y0

    def to_photo(self, y, x, centre=True) -> tuple:
        """Model-input coordinates -> photo coordinates (the inverse of :meth:`to_input`)."""
        half = 0.5 if centre else 0.0
        (sy, sx), (oy, ox) = self.scale, self.offset
        return ((np.asarray(y, np.float64) + half - oy) / sy - half,
                (np.asarray(x, np.float64) + half - ox) / sx - half)


def describe(placement: Placement) -> str:
    """One line on how the photo met the model input (the CLI prints it)."""
    (h, w), (H, W), (rh, rw) = placement.photo, placement.size, placement.resized
    head = f"fit {placement.policy}: {w}x{h} photo"
    if placement.policy == "pad":
        return (f"{head} scaled to {rw}x{rh} and letterboxed into the {W}x{H} input on the neutral fill "
                f"(margins {placement.offset[1]} px left/right, {placement.offset[0]} px top/bottom)")
    if placement.policy == "crop":
        return f"{head} scaled to {rw}x{rh}, centre {W}x{H} crop seen; maps drawn on that part"
    if (rh, rw) == (H, W) and abs(rh / h - rw / w) < 0.01 * max(rh / h, rw / w):
        return f"{head} run at {W}x{H} (aspect kept)"
    return f"{head} stretched to {W}x{H} (aspect changed by {rw / w / (rh / h):.3g}x); --fit pad keeps it"


def check_policy(fit) -> str:
    if fit not in POLICIES:
        raise ValueError(f"fit must be one of {', '.join(POLICIES)} (pad: letterbox, the whole photo "
                         f"undistorted), got {fit!r}")
    return fit


def _flexible_size(photo, max_input_side):
    h, w = photo
    factor = min(1.0, max_input_side / max(h, w))
    return max(1, round(h * factor)), max(1, round(w * factor))


def place(photo, size, fit=DEFAULT_FIT, max_input_side=MAX_INPUT_SIDE) -> Placement:
    """The :class:`Placement` of a ``photo = (h, w)`` image in a ``size = (H, W)`` input.

    ``size`` entries of ``None`` (a flexible-size model) take the photo's
    size, scaled down to at most ``max_input_side``; the photo then fills
    the input exactly.
    """
    check_policy(fit)
    h, w = int(photo[0]), int(photo[1])
    if h < 1 or w < 1:
        raise ValueError(f"the photo has no pixels: size {h}x{w}")
    if size[0] is None or size[1] is None:
        H, W = _flexible_size((h, w), max_input_side)
        fit = "stretch"  # the input has the photo's aspect: stretching is a uniform scale
    else:
        H, W = int(size[0]), int(size[1])
    if fit == "stretch":
        rh, rw = H, W
    else:
        factor = (min if fit == "pad" else max)(H / h, W / w)
        rh, rw = max(1, round(h * factor)), max(1, round(w * factor))
    offset = ((H - rh) // 2, (W - rw) // 2)  # negative halves for a crop
    return Placement(fit, (h, w), (H, W), (rh, rw), (rh / h, rw / w), offset)


def neutral_fill(preprocess, mean_pixel=(127.5, 127.5, 127.5)) -> np.ndarray:
    """The model-input value of a neutral pixel: ``preprocess(mean_pixel)``, one value per channel."""
    pixel = np.asarray(mean_pixel, np.float32).reshape(1, 1, 1, -1)
    return np.asarray(preprocess(pixel.copy()), np.float32).reshape(-1)


def to_channels(rgb, channels) -> np.ndarray:
    """RGB pixels ``(..., 3)`` (0..255) as ``channels`` model channels, float32.

    1: ITU-R BT.601 luminance ``0.299 R + 0.587 G + 0.114 B`` (PIL's ``L``);
    3: as they are; 4: RGB plus an opaque alpha of 255 (a photo has no
    transparency: alpha means "fully there"). Anything else is a ``ValueError``.
    """
    rgb = np.asarray(rgb, np.float32)
    if channels == 3:
        return rgb
    if channels == 1:
        return (rgb[..., :3] @ np.asarray(LUMA, np.float32))[..., None]
    if channels == 4:
        return np.concatenate([rgb[..., :3], np.full(rgb.shape[:-1] + (1,), 255.0, np.float32)], axis=-1)
    raise ValueError(f"the model takes {channels}-channel images; convviz feeds photos to models with 1 "
                     f"(grayscale), 3 (RGB) or 4 (RGBA) channels")


LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")


def fit_input(image, placement: Placement, preprocess, fill, channels=3) -> np.ndarray:
    """The model input ``(H, W, C)`` of an RGB uint8 photo: resized, converted to ``channels``
    (:func:`to_channels`), preprocessed, pasted on ``fill``."""
    from .media import resize

    image = np.asarray(image)
    if image.shape[:2] != placement.photo:
        raise ValueError(f"the placement is for a {placement.photo} photo, got one of shape {image.shape[:2]}")
    resized = to_channels(resize(image, placement.resized), channels)
    values = np.asarray(preprocess(resized[None]), np.float32)[0]
    fill = np.asarray(fill, np.float32).reshape(-1)
    canvas = np.empty(tuple(placement.size) + (values.shape[-1],), np.float32)
    canvas[...] = fill if fill.size in (1, values.shape[-1]) else fill.mean()
    oy, ox = placement.offset
    y0, y1, x0, x1 = placement.region
    canvas[y0:y1, x0:x1] = values[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
    return canvas


def _display_size(placement, max_side):
    py0, py1, px0, px1 = placement.visible
    h, w = py1 - py0, px1 - px0
    factor = min(1.0, max_side / max(h, w))
    return max(1, round(h * factor)), max(1, round(w * factor))


def _positions(lo, hi, count, length):
    """Sample positions (pixel-centre units) of ``count`` output pixels over ``[lo, hi)``, kept inside it."""
    centres = lo + (np.arange(count) + 0.5) * (hi - lo) / count - 0.5
    return np.clip(centres, max(min(lo, hi - 1), 0), min(max(hi - 1, lo), length - 1))


def _sample(m, box, size, nearest):
    """``m`` (2-D or 3-D) over ``box = (y0, y1, x0, x1)`` (its own pixel units) at ``size``.

    Bilinear (or nearest) with sample points clamped inside the box, so no
    value from outside it (the letterbox margins) bleeds into the edges.
    """
    m = np.asarray(m, np.float64)
    ys, xs = _positions(box[0], box[1], size[0], m.shape[0]), _positions(box[2], box[3], size[1], m.shape[1])
    if nearest:
        return m[np.rint(ys).astype(int)][:, np.rint(xs).astype(int)]
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, m.shape[0] - 1), np.minimum(x0 + 1, m.shape[1] - 1)
    ty, tx = ys - y0, xs - x0
    shape = (-1, 1) + (1,) * (m.ndim - 2)
    rows = m[y0] * (1 - ty.reshape(shape)) + m[y1] * ty.reshape(shape)
    shape = (1, -1) + (1,) * (m.ndim - 2)
    return rows[:, x0] * (1 - tx.reshape(shape)) + rows[:, x1] * tx.reshape(shape)


def map_to_photo(m, placement: Placement, max_side=MAX_DISPLAY_SIDE, resample="bilinear") -> np.ndarray:
    """A map covering the model input, cut to the photo's visible region, at the photo's resolution.

    ``m`` is ``(mh, mw)`` or ``(mh, mw, C)`` spread evenly over the model
    input (the input's own resolution, or coarser: Grad-CAM cells, an
    occlusion grid); ``resample`` is ``"bilinear"`` or ``"nearest"`` (class
    labels). The result has the visible photo's aspect ratio and its longer
    side is at most ``max_side``; only values inside the region are sampled.
    """
    m = np.asarray(m)
    size = _display_size(placement, max_side)
    (H, W), (mh, mw) = placement.size, m.shape[:2]
    y0, y1, x0, x1 = placement.region
    out = _sample(m, (y0 * mh / H, y1 * mh / H, x0 * mw / W, x1 * mw / W), size, resample == "nearest")
    return out.astype(m.dtype) if m.dtype.kind in "iu" else out.astype(np.float32)


def box_on_view(box, placement: Placement, view_hw) -> tuple:
    """A model-input box ``(x, y, w, h)`` -> its corners ``(x0, y0, x1, y1)`` (pixel edges, floats)
    on a picture of ``view_hw = (h, w)`` showing the photo's visible part (``photo_view``,
    ``map_to_photo``, or those resized): where a ``--region`` box lies on the drawn photo."""
    x, y, w, h = (float(v) for v in box)
    (py0, px0), (py1, px1) = placement.to_photo(y, x, centre=False), placement.to_photo(y + h, x + w, centre=False)
    vy0, vy1, vx0, vx1 = placement.visible
    sy, sx = view_hw[0] / (vy1 - vy0), view_hw[1] / (vx1 - vx0)
    return float((px0 - vx0) * sx), float((py0 - vy0) * sy), float((px1 - vx0) * sx), float((py1 - vy0) * sy)


def window_on_view(window, placement: Placement, view_hw) -> tuple:
    """A model-input window ``(y0, y1, x0, x1)`` (a receptive field, end exclusive) -> the int window
    ``(y0, y1, x0, x1)`` of a ``view_hw`` picture of the photo's visible part that covers it, clipped
    to that picture (so a field reaching into the letterbox margins is cut at the photo's edge).
    At least one pixel each way; the geometry is :func:`box_on_view`'s."""
    y0, y1, x0, x1 = window
    bx0, by0, bx1, by1 = box_on_view((x0, y0, x1 - x0, y1 - y0), placement, view_hw)
    h, w = int(view_hw[0]), int(view_hw[1])
    top, left = min(max(int(np.floor(by0 + 1e-6)), 0), h - 1), min(max(int(np.floor(bx0 + 1e-6)), 0), w - 1)
    bottom, right = min(max(int(np.ceil(by1 - 1e-6)), top + 1), h), min(max(int(np.ceil(bx1 - 1e-6)), left + 1), w)
    return top, bottom, left, right


def photo_view(image, placement: Placement, max_side=MAX_DISPLAY_SIDE) -> np.ndarray:
    """The photo's visible part as RGB uint8 at its own resolution, capped at ``max_side``."""
    image = np.asarray(image)
    size = _display_size(placement, max_side)
    py0, py1, px0, px1 = placement.visible
    if (py0, px0) == (0, 0) and (py1, px1) == image.shape[:2] and size == image.shape[:2]:
        return image
    img = Image.fromarray(np.ascontiguousarray(image, np.uint8))
    out = img.transform((size[1], size[0]), Image.EXTENT, data=(px0, py0, px1, py1), resample=Image.BILINEAR)
    return np.asarray(out)
