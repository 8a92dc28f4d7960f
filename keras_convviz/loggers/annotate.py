"""Numbers that travel inside the logged PNGs: a ``tEXt`` chunk ``convviz`` holding JSON.

A tag's content (params, labels) is fixed at its first write, so values that
change at every logged step (a class model's objective and probability, the
filter statistics, the invariance curves of fig. 5) cannot go there. They are
written into each picture itself, as a standard PNG text chunk (keyword
:data:`KEYWORD`, JSON value, ASCII): any PNG reader shows them
(``PIL.Image.open(f).text["convviz"]``), and the dashboard reads them from the
same ``/blob`` bytes it shows (``tb_plugin/static/common.js``'s ``pngData``).

``class_model_images`` is what ``ClassModelLogger`` calls; the feature
visualization, filters and invariance loggers build their own dicts.
"""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np

from ..media import png_bytes

__all__ = ["KEYWORD", "png_with_data", "png_data", "class_model_images", "optimized_data"]

KEYWORD = "convviz"
_MAGIC = b"\x89PNG\r\n\x1a\n"


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _clean(value):
    """Plain JSON values: numpy scalars and arrays to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_clean(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    return value


def _chunks(png):
    """``(kind, body, raw bytes)`` of each chunk of a PNG, up to and including IEND."""
    pos = len(_MAGIC)
    while pos + 8 <= len(png):
        length, kind = struct.unpack(">I", png[pos:pos + 4])[0], png[pos + 4:pos + 8]
        yield kind, png[pos + 8:pos + 8 + length], png[pos:pos + 12 + length]
        if kind == b"IEND":
            return
        pos += 12 + length


def _ours(kind, body):
    return kind == b"tEXt" and body.startswith(KEYWORD.encode("ascii") + b"\0")


def png_with_data(image, data) -> bytes:
    """PNG bytes of ``image`` (an array, or PNG bytes) with ``data`` as JSON in a ``tEXt`` chunk (replacing one
    there already)."""
    png = bytes(image) if isinstance(image, (bytes, bytearray)) else png_bytes(image)
    if not png.startswith(_MAGIC):
        raise ValueError("png_with_data: the image bytes are not a PNG")
    text = json.dumps(_clean(data), separators=(",", ":"), allow_nan=False, ensure_ascii=True).encode("ascii")
    kept = [(kind, raw) for kind, body, raw in _chunks(png) if not _ours(kind, body)]
    mine = _chunk(b"tEXt", KEYWORD.encode("ascii") + b"\0" + text)
    return _MAGIC + b"".join(raw for kind, raw in kept if kind != b"IEND") + mine + _chunk(b"IEND", b"")


def png_data(png):
    """The JSON of a PNG's ``convviz`` text chunk, or None (no chunk, not a PNG)."""
    png = bytes(png)
    if not png.startswith(_MAGIC):
        return None
    for kind, body, _ in _chunks(png):
        if _ours(kind, body):
            return json.loads(body[len(KEYWORD) + 1:].decode("latin-1"))
    return None


def optimized_data(objective, random, probability, target=None, top=None, objective_name=""):
    """One optimized image's numbers: its objective, a random image's, the model's probability, failure.

    ``probability``: of ``target`` (a class model) or, with ``target=None``,
    of the model's top class ``top`` on the image (a channel's visualization).
    ``failed``: the objective is not above the random image's (the
    optimization did not work).
    """
    failed = None if random is None else not float(objective) > float(random)
    return {"objective": objective, "objective_name": objective_name, "random": random, "failed": failed,
            "probability": probability, "target": target, "top": top}


def class_model_images(images, result) -> list:
    """``ClassModelLogger``'s pictures as PNG bytes carrying each class model's objective (the maximized
    score), a random image's, the model's probability of the class and whether the optimization failed."""
    out = []
    random = result.random_scores
    for i, image in enumerate(images):
        target = int(np.asarray(result.targets).reshape(-1)[i])
        p = float(np.asarray(result.probabilities)[i, target])
        data = optimized_data(float(result.scores[i]), None if random is None else float(random[i]), p,
                              target=target, objective_name="class score")
        out.append(png_with_data(image, data))
    return out
