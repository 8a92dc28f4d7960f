"""A figure's frame: a title above it and a colour bar under it saying what the colours mean.

Every picture the library draws (``figures/*``) can be framed here; the
colour bar is drawn from the same palettes as the maps (``render.colormap``,
``tb_plugin.metadata.COLORMAPS``), so its colours are the picture's colours.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageDraw

from .. import render

__all__ = ["Scale", "colour_bar", "titled", "title_lines", "BAR_HEIGHT", "TITLE_HEIGHT"]

BAR_HEIGHT = 12  # the gradient strip, in pixels
TITLE_HEIGHT = 22
_TEXT_HEIGHT = 16  # one line of labels under the strip
_MARGIN = 8


@dataclasses.dataclass(frozen=True)
class Scale:
    """What a picture's colours mean: ``colormap`` (a ``COLORMAPS`` name) from ``low`` to ``high``.

    ``low`` / ``high`` are the labels at the ends of the bar (``"0"``,
    ``"max 3.1e-02"``); ``meaning`` is said in the middle (``"|d logit / d
    pixel|"``).
    """

    colormap: str = "inferno"
    low: str = "0"
    high: str = "max"
    meaning: str = ""


def colour_bar(scale: Scale, width) -> np.ndarray:
    """An RGB uint8 strip ``width`` wide: the palette from low to high, labelled under it."""
    width = max(int(width), 2 * _MARGIN + 2)
    strip = render.colormap(np.tile(np.linspace(0.0, 1.0, width - 2 * _MARGIN), (BAR_HEIGHT, 1)), scale.colormap)
    canvas = Image.new("RGB", (width, BAR_HEIGHT + _TEXT_HEIGHT + 4), (255, 255, 255))
    canvas.paste(Image.fromarray(strip), (_MARGIN, 2))
    draw = ImageDraw.Draw(canvas)
    font = render.font(11)
    y = BAR_HEIGHT + 4
    draw.text((_MARGIN, y), scale.low, fill=(20, 20, 20), font=font)
    right = draw.textlength(scale.high, font=font)
    draw.text((width - _MARGIN - right, y), scale.high, fill=(20, 20, 20), font=font)
    if scale.meaning:
        middle = draw.textlength(scale.meaning, font=font)
        ends = 2 * max(draw.textlength(scale.low, font=font), right) + 2 * _MARGIN + 8
        if middle + ends <= width:  # between the end labels
            draw.text(((width - middle) / 2, y), scale.meaning, fill=(60, 60, 60), font=font)
        else:  # a line of its own below them, rather than over them
            canvas = _with_line(canvas, scale.meaning, font)
    return np.asarray(canvas)


def _with_line(canvas, text, font):
    """``canvas`` with one more centred line of ``text`` below it."""
    taller = Image.new("RGB", (canvas.width, canvas.height + _TEXT_HEIGHT), (255, 255, 255))
    taller.paste(canvas, (0, 0))
    draw = ImageDraw.Draw(taller)
    draw.text(((canvas.width - draw.textlength(text, font=font)) / 2, canvas.height - 2), text,
              fill=(60, 60, 60), font=font)
    return taller


def title_lines(title, width, size=14) -> list:
    """``title`` broken at spaces into lines that fit ``width`` pixels (a word longer than that stays whole)."""
    font = render.font(size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength
    lines = []
    for word in str(title).split(" "):
        if lines and measure(lines[-1] + " " + word, font=font) <= width - 6:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def titled(picture, title, scale=None) -> np.ndarray:
    """``picture`` (RGB uint8) with ``title`` above it and, given a ``scale`` (or a list of them, for a
    figure with several colour maps), its colour bar(s) under it.

    The picture itself is kept pixel for pixel (it sits at row
    :data:`TITLE_HEIGHT` times the title's lines, column 0: a title wider than
    the picture wraps rather than being cut), so a framed figure contains
    exactly the picture the CLI writes.
    """
    picture = render.as_rgb(np.asarray(picture))
    framed = picture
    for line in reversed(title_lines(title, picture.shape[1])):
        framed = render.label(framed, line, height=TITLE_HEIGHT, size=14)
    scales = [] if scale is None else [scale] if isinstance(scale, Scale) else list(scale)
    bars = [colour_bar(s, picture.shape[1]) for s in scales]
    width = max([framed.shape[1]] + [b.shape[1] for b in bars])  # a bar has a least width: a 2 px strip is padded
    return np.concatenate([_padded(p, width) for p in [framed] + bars], axis=0)


def _padded(picture, width):
    """``picture`` widened to ``width`` with white on the right."""
    extra = width - picture.shape[1]
    return picture if extra <= 0 else np.pad(picture, ((0, 0), (0, extra), (0, 0)), constant_values=255)
