"""Small line plots and tables drawn with PIL (no matplotlib dependency).

Used by the Zeiler & Fergus 2014 (arXiv:1311.2901) fig. 5 invariance panel
and the table 1 correspondence figure: axes with tick labels, axis labels, a
title and one coloured line per series.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw

from .. import render

__all__ = ["nice_ticks", "line_plot", "series_colour", "table", "legend"]


def series_colour(k) -> tuple:
    """A distinct, dark-enough colour per series (golden-ratio hues)."""
    r, g, b = colorsys.hsv_to_rgb((k * 0.61803398875 + 0.58) % 1.0, 0.85, 0.8)
    return int(r * 255), int(g * 255), int(b * 255)


def nice_ticks(lo, hi, count=5) -> np.ndarray:
    """Round tick values (1, 2, 5 x 10^k steps) covering ``[lo, hi]``."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, count - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return np.arange(math.floor(lo / step) * step, hi + step * 0.5, step)


def _fmt(v, step):
    """A tick label with as many decimals as the step needs."""
    decimals = max(0, -int(math.floor(math.log10(step)))) if step > 0 else 0
    return f"{v:.{min(decimals, 4)}f}"


def _vertical_text(text, font, colour=(20, 20, 20)):
    box = font.getbbox(text)
    img = Image.new("RGB", (box[2] + 2, box[3] + 2), (255, 255, 255))
    ImageDraw.Draw(img).text((1, 0), text, fill=colour, font=font)
    return img.rotate(90, expand=True)


def line_plot(x, series, title="", xlabel="", ylabel="", size=(300, 210), ylim=None) -> np.ndarray:
    """An RGB uint8 line plot: ``series`` is a list of ``y`` arrays (one line each, same ``x``).

    Axes carry round tick values; ``ylim`` fixes the y range (e.g. (0, 1) for
    probabilities), else it spans the data from 0 or its minimum.
    """
    x = np.asarray(x, np.float64)
    ys = [np.asarray(y, np.float64) for y in series]
    w, h = size
    left, right, top, bottom = 52, 10, 20, 34
    img = Image.new("RGB", (w, h), (255, 255, 255))
    draw, font = ImageDraw.Draw(img), render.font(10)
    if ylim is None:
        finite = np.concatenate([y[np.isfinite(y)] for y in ys] + [np.zeros(1)])
        ylim = (min(0.0, finite.min()), finite.max() if finite.max() > min(0.0, finite.min()) else 1.0)
    yt = nice_ticks(*ylim)
    xt = nice_ticks(x.min(), x.max()) if len(x) > 1 else np.array([x[0]])
    y0, y1 = min(yt[0], ylim[0]), max(yt[-1], ylim[1])
    x0, x1 = (x.min(), x.max()) if len(x) > 1 and x.max() > x.min() else (x[0] - 1, x[0] + 1)
    xt = xt[(xt >= x0 - 1e-9) & (xt <= x1 + 1e-9)]

    def px(xv, yv):
        return (left + (xv - x0) / (x1 - x0) * (w - left - right),
                h - bottom - (yv - y0) / (y1 - y0) * (h - top - bottom))

    draw.rectangle([left, top, w - right, h - bottom], outline=(90, 90, 90))
    for t in yt:
        _, yy = px(x0, t)
        draw.line([left - 3, yy, left, yy], fill=(90, 90, 90))
        draw.line([left + 1, yy, w - right - 1, yy], fill=(232, 232, 232))
        label = _fmt(t, yt[1] - yt[0] if len(yt) > 1 else 1)
        draw.text((left - 5 - font.getlength(label), yy - 6), label, fill=(40, 40, 40), font=font)
    for t in xt:
        xx, _ = px(t, y0)
        draw.line([xx, h - bottom, xx, h - bottom + 3], fill=(90, 90, 90))
        label = _fmt(t, xt[1] - xt[0] if len(xt) > 1 else 1)
        draw.text((xx - font.getlength(label) / 2, h - bottom + 4), label, fill=(40, 40, 40), font=font)
    for k, y in enumerate(ys):
        pts = [px(a, b) for a, b in zip(x, y) if np.isfinite(b)]
        if len(pts) > 1:
            draw.line(pts, fill=series_colour(k), width=2)
        for p in pts:
            draw.ellipse([p[0] - 1.5, p[1] - 1.5, p[0] + 1.5, p[1] + 1.5], fill=series_colour(k))
    draw.text((left, 3), title, fill=(10, 10, 10), font=render.font(11))
    draw.text((left + (w - left - right - font.getlength(xlabel)) / 2, h - 16), xlabel, fill=(20, 20, 20), font=font)
    if ylabel:
        vert = _vertical_text(ylabel, font)
        img.paste(vert, (2, int(top + (h - top - bottom - vert.size[1]) / 2)))
    return np.asarray(img)


def legend(labels, width, line_h=14) -> np.ndarray:
    """Colour swatches and labels of the series, several per line."""
    font = render.font(11)
    rows, x = [[]], 6
    for k, text in enumerate(labels):
        item_w = 22 + font.getlength(text) + 14
        if x + item_w > width and rows[-1]:
            rows.append([])
            x = 6
        rows[-1].append((k, text, x))
        x += item_w
    img = Image.new("RGB", (width, 6 + line_h * len(rows)), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for r, row in enumerate(rows):
        for k, text, x0 in row:
            y = 3 + r * line_h
            draw.line([x0, y + 6, x0 + 16, y + 6], fill=series_colour(k), width=3)
            draw.text((x0 + 20, y), text, fill=(20, 20, 20), font=font)
    return np.asarray(img)


def table(header, rows, title="") -> np.ndarray:
    """A plain text table as an RGB uint8 image: ``header`` and ``rows`` are lists of strings."""
    font = render.font(12)
    cells = [list(map(str, header))] + [list(map(str, r)) for r in rows]
    widths = [max(font.getlength(r[c]) for r in cells) + 16 for c in range(len(header))]
    line_h, top = 20, 24 if title else 4
    w = int(max(sum(widths) + 12, render.font(13).getlength(title) + 14))
    h = top + line_h * len(cells) + 8
    img = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    if title:
        draw.text((6, 4), title, fill=(10, 10, 10), font=render.font(13))
    for r, row in enumerate(cells):
        y, x = top + r * line_h, 6
        if r == 0:
            draw.rectangle([2, y - 1, w - 3, y + line_h - 3], fill=(230, 236, 245))
        for c, text in enumerate(row):
            draw.text((x + 4, y + 2), text, fill=(15, 15, 15), font=font)
            x += widths[c]
    draw.line([2, top + line_h - 2, w - 3, top + line_h - 2], fill=(120, 120, 120))
    return np.asarray(img)
