"""Turn maps into pictures: normalize, colormap, overlay, labelled grids.

numpy + pillow only. All functions take and return numpy arrays; images are
RGB ``uint8`` ``(H, W, 3)``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tb_plugin.metadata import COLORMAPS

__all__ = [
    "normalize",
    "projection_image",
    "colormap",
    "heatmap",
    "signed_heatmap",
    "overlay",
    "upsample",
    "label",
    "grid",
    "to_uint8",
    "fit_square",
    "outline",
]

# Anchor colours of the colour maps, interpolated linearly (tb_plugin/metadata.py
# is their one source: the dashboard draws its colour bars from the same list).
# inferno (matplotlib's perceptually uniform map): dark = low, bright yellow =
# high; diverging: blue = negative, white = 0, red = positive.
_PALETTES = {name: np.array(anchors, np.float64) for name, anchors in COLORMAPS.items()}
_INFERNO = _PALETTES["inferno"]


def to_uint8(x):
    """[0, 1] floats to uint8 (values outside are clipped)."""
    return np.clip(np.asarray(x, np.float64) * 255.0 + 0.5, 0, 255).astype(np.uint8)


# A map whose spread is below this fraction of its magnitude is flat (float rounding, not structure).
FLAT = 1e-9


def normalize(x, axis=None, eps=None):
    """Min-max normalize to [0, 1] over ``axis``, relative to each map's own scale.

    A map of 1e-19-sized values shows its structure like a map of ones; only
    a map whose spread is zero, or below :data:`FLAT` times its magnitude
    (rounding noise), is flat and gives zeros (see :mod:`keras_convviz.blank`
    for saying so). ``eps``, when given, is an absolute floor on the spread.
    """
    x = np.asarray(x, np.float64)
    lo = x.min(axis=axis, keepdims=True)
    hi = x.max(axis=axis, keepdims=True)
    span = hi - lo
    flat = (span <= FLAT * np.maximum(np.abs(lo), np.abs(hi))) | (span < (eps or 0.0))
    return np.where(flat, 0.0, (x - lo) / np.where(flat, 1.0, span))


def projection_image(p, eps=None):
    """A deconv projection ``(H, W, C)`` as a displayable RGB uint8 image.

    Zeiler–Fergus style per-projection contrast normalization: zero maps to
    mid-grey and the largest absolute value to black or white, so the sign of
    every pixel's contribution stays visible, whatever the projection's
    scale (an exactly-zero projection stays grey; ``eps``: an absolute floor).
    """
    p = np.asarray(p, np.float64)
    if p.ndim == 3 and p.shape[-1] == 4:  # an RGBA model: the RGB part is drawn (alpha has no colour)
        p = p[..., :3]
    top = np.abs(p).max() if p.size else 0.0
    scale = top if top > (eps or 0.0) else np.inf
    img = 0.5 + 0.5 * p / scale
    if img.ndim == 2 or img.shape[-1] == 1:
        img = np.repeat(img.reshape(img.shape[:2] + (1,)), 3, -1)
    return to_uint8(img)


def colormap(x, name="inferno"):
    """Map values in [0, 1] ``(H, W)`` to RGB uint8 with a palette (inferno, diverging, grey)."""
    palette = _PALETTES[name]
    x = np.clip(np.nan_to_num(np.asarray(x, np.float64)), 0, 1) * (len(palette) - 1)
    lo = np.floor(x).astype(int)
    hi = np.minimum(lo + 1, len(palette) - 1)
    t = (x - lo)[..., None]
    return ((1 - t) * palette[lo] + t * palette[hi] + 0.5).astype(np.uint8)


def signed_heatmap(m):
    """A signed 2-D map with the diverging palette, symmetric about 0: white = 0, red > 0, blue < 0."""
    m = np.nan_to_num(np.asarray(m, np.float64))
    top = np.abs(m).max() if m.size else 0.0
    return colormap(0.5 + 0.5 * m / (top if top > 0 else 1.0), "diverging")


def heatmap(m, normalized=False):
    """A 2-D map as a colour image (min-max normalized unless ``normalized``)."""
    return colormap(m if normalized else normalize(m))


def upsample(m, size, resample=Image.BILINEAR):
    """Resize a 2-D float map to ``size = (H, W)``."""
    m = np.asarray(m, np.float32)
    if m.shape[:2] == tuple(size):
        return m
    return np.asarray(Image.fromarray(m, "F").resize((size[1], size[0]), resample))


def overlay(image, m, alpha=0.5, normalized=False):
    """Blend a colormapped 2-D map over an RGB uint8 image (map resized to fit)."""
    heat = heatmap(upsample(m, image.shape[:2]), normalized=normalized)
    out = (1 - alpha) * image.astype(np.float64) + alpha * heat.astype(np.float64)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def outline(image, corners, colour=(0, 200, 255), width=None) -> np.ndarray:
    """An RGB uint8 image with the box ``corners = (x0, y0, x1, y1)`` (pixel edges) outlined.

    ``width`` defaults to about 1/112 of the shorter side (at least 1 px), so
    the box stays visible on large photos and small panels alike.
    """
    img = Image.fromarray(np.ascontiguousarray(as_rgb(image)))
    x0, y0, x1, y1 = corners
    width = width or max(1, min(img.size) // 112)
    ImageDraw.Draw(img).rectangle([x0, y0, max(x1 - 1, x0), max(y1 - 1, y0)], outline=colour, width=width)
    return np.asarray(img)


def fit_square(image, size, background=128):
    """Scale an RGB uint8 image (nearest) into a ``size`` square on grey, aspect kept.

    The geometry is ``fit.place``'s letterbox, the same as a photo's in the
    model input; an image without pixels gives the empty grey square.
    """
    from .fit import place

    image = np.ascontiguousarray(np.asarray(image, np.uint8))
    out = np.full((size, size, 3), background, np.uint8)
    if min(image.shape[:2]) < 1:
        return out
    placement = place(image.shape[:2], (size, size), "pad")
    (nh, nw), (y, x) = placement.resized, placement.offset
    out[y:y + nh, x:x + nw] = np.asarray(Image.fromarray(image).resize((nw, nh), Image.NEAREST))
    return out


def font(size=12):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def label(image, text, height=16, size=12):
    """The image with a line of text above it, on a dark strip."""
    h, w = image.shape[:2]
    canvas = Image.new("RGB", (w, h + height), (24, 24, 24))
    canvas.paste(Image.fromarray(np.ascontiguousarray(image)), (0, height))
    ImageDraw.Draw(canvas).text((3, 1), text, fill=(235, 235, 235), font=font(size))
    return np.asarray(canvas)


def as_rgb(panel):
    panel = np.asarray(panel)
    if panel.dtype != np.uint8:
        panel = to_uint8(panel)
    if panel.ndim == 2:
        panel = np.repeat(panel[..., None], 3, -1)
    return panel


def grid(panels, titles=None, columns=None, pad=4, cell=None, background=(255, 255, 255)):
    """Lay out panels in a grid, each optionally titled, on one RGB canvas.

    ``panels`` is a flat list (``columns`` per row) or a list of rows. Every
    panel is resized to ``cell = (H, W)`` (nearest neighbour, so small feature
    maps stay crisp); the default is the first panel's size.
    """
    if panels and isinstance(panels[0], (list, tuple)):
        rows = [list(r) for r in panels]
        titles = [list(t) for t in titles] if titles is not None else None
    else:
        columns = columns or max(1, int(np.ceil(np.sqrt(len(panels)))))
        rows = [list(panels[i:i + columns]) for i in range(0, len(panels), columns)]
        if titles is not None:
            titles = [list(titles[i:i + columns]) for i in range(0, len(titles), columns)]
    first = as_rgb(rows[0][0])
    ch, cw = cell or first.shape[:2]
    th = 16 if titles is not None else 0
    ncols = max(len(r) for r in rows)
    canvas = Image.new("RGB", (pad + ncols * (cw + pad), pad + len(rows) * (ch + th + pad)), background)
    draw = ImageDraw.Draw(canvas)
    title_font = font(11)
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            x, y = pad + c * (cw + pad), pad + r * (ch + th + pad)
            img = Image.fromarray(as_rgb(panel))
            if img.size != (cw, ch):
                img = img.resize((cw, ch), Image.NEAREST)
            canvas.paste(img, (x, y + th))
            if titles is not None and titles[r][c]:
                draw.text((x + 1, y + 1), str(titles[r][c]), fill=(20, 20, 20), font=title_font)
    return np.asarray(canvas)
