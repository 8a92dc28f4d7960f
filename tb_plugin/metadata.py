"""The plugin name and summary content schema: the one source both sides use.

The writer (``keras_convviz.summary``) and the dashboard (``tb_plugin.plugin``)
import these names; nothing else spells them. This module imports only the
standard library, so the dashboard loads without TensorFlow.

Every ConvViz summary is a TensorBoard *blob sequence*: at each step a rank-1
string tensor of PNG images (one per probe image, or one per top-k patch).
Its tag is ``method/layer/detail`` and its ``SummaryMetadata.plugin_data``
carries ``plugin_name = PLUGIN_NAME`` and a JSON *content* object that is fixed
per tag (TensorBoard keeps only the first metadata it sees for a tag)::

    {
      "version": 1,                  # CONTENT_VERSION
      "method": "deconv",            # what produced the images
      "layer": "block3_conv2",       # the layer explained (or the output layer)
      "detail": "map12",             # the third part of the tag
      "kind": "projection",          # one of KINDS: how the dashboard shows it
      "map": 12,                     # the feature map followed, or null
      "params": {...},               # the method's settings, JSON values only
      "labels": ["probe 0", ...]     # optional caption per image of a step
    }

``kind`` tells the dashboard how to draw a tag: ``heatmap`` tags can be
blended over the ``input`` tag of the same run; ``patches`` tags are shown as
a top-k grid.
"""

from __future__ import annotations

import json
import re

__all__ = [
    "PLUGIN_NAME",
    "CONTENT_VERSION",
    "KINDS",
    "INPUT_TAG",
    "OVERLAY_KINDS",
    "GRID_KINDS",
    "METHOD_ORDER",
    "dashboard_schema",
    "make_content",
    "encode_content",
    "parse_content",
    "make_tag",
    "split_tag",
]

PLUGIN_NAME = "convviz"

# Version of the JSON content stored in each tag's SummaryMetadata.plugin_data.
CONTENT_VERSION = 1

# Kinds of artifact a tag can hold, and so how the dashboard draws it:
#   input       the probe images themselves (the base of overlays)
#   projection  deconv / guided backprop images in input space (grey = 0)
#   heatmap     a colour-mapped 2-D map at input size (saliency, Grad-CAM, occlusion)
#   ratio       box-filter ratio map; fraction: box-filter fraction map
#   patches     top-k image patches of one feature map (a grid per step)
#   grid        a pre-composed grid; image: any other picture (class model)
KINDS = ("input", "projection", "heatmap", "ratio", "fraction", "patches", "grid", "image")

# The tag of the probe images, logged by the callback for overlays.
INPUT_TAG = "input/probe/image"

# How the dashboard draws some kinds: blended over the run's INPUT_TAG images
# on request, and as a grid of every image of a step by default.
OVERLAY_KINDS = ("heatmap",)
GRID_KINDS = ("patches",)

# The dashboard's card order: the probe images, then the methods in the order
# of the pipeline (the callback's method names).
METHOD_ORDER = ("input", "deconv", "guided", "saliency", "smoothgrad", "integrated", "gradcam", "occlusion",
                "topk", "classmodel", "boxfilter")

_PART = re.compile(r"[^A-Za-z0-9_.:\-]+")
_MAX_LABELS = 1024


def _clean_part(part, what):
    text = _PART.sub("_", str(part)).strip("_")
    if not text:
        raise ValueError(f"tag {what} {part!r} is empty once cleaned; use letters, digits, '_', '-', '.'")
    return text


def make_tag(method, layer, detail):
    """The tag ``method/layer/detail``; characters other than ``[A-Za-z0-9_.:-]`` become ``_``."""
    return "/".join(_clean_part(p, w) for p, w in ((method, "method"), (layer, "layer"), (detail, "detail")))


def split_tag(tag):
    """``(method, layer, detail)`` of a tag; tags of other shapes give ``(tag, "", "")``."""
    parts = str(tag).split("/")
    if len(parts) == 3 and all(parts):
        return tuple(parts)
    return str(tag), "", ""


def dashboard_schema():
    """The names the dashboard needs, sent with its tag listing (it keeps no copy of them)."""
    return {
        "input_tag": INPUT_TAG,
        "kinds": list(KINDS),
        "overlay_kinds": list(OVERLAY_KINDS),
        "grid_kinds": list(GRID_KINDS),
        "method_order": list(METHOD_ORDER),
    }


def _jsonable(value, where):
    try:
        return json.loads(json.dumps(value, allow_nan=False, sort_keys=True))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where} must be plain JSON values (numbers, strings, lists, dicts): {err}") from None


def make_content(method, layer, detail, kind, map=None, params=None, labels=None):  # noqa: A002 - schema field
    """The content dict of one tag, validated (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if map is not None:
        if isinstance(map, bool) or int(map) != map or int(map) < 0:
            raise ValueError(f"map must be a feature-map index >= 0 or None, got {map!r}")
        map = int(map)
    content = {
        "version": CONTENT_VERSION,
        "method": str(method),
        "layer": str(layer),
        "detail": str(detail),
        "kind": kind,
        "map": map,
        "params": _jsonable(dict(params or {}), "params"),
    }
    if labels is not None:
        content["labels"] = [str(x) for x in labels][:_MAX_LABELS]
    return content


def encode_content(content):
    """Content dict -> the bytes stored in ``plugin_data.content`` (compact, sorted JSON)."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def parse_content(data):
    """Bytes (or str) from ``plugin_data.content`` -> a normalized content dict.

    Raises ``ValueError`` for anything that is not a ConvViz content object of a
    version this code reads, so callers can skip tags from other writers.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("content is not UTF-8") from None
    try:
        raw = json.loads(data)
    except (TypeError, ValueError):
        raise ValueError("content is not JSON") from None
    if not isinstance(raw, dict):
        raise ValueError("content is not a JSON object")
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= CONTENT_VERSION:
        raise ValueError(f"content version {version!r} is not one this dashboard reads (1..{CONTENT_VERSION})")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ValueError(f"content kind {kind!r} is unknown")
    out = {"version": version, "kind": kind}
    for key in ("method", "layer", "detail"):
        value = raw.get(key, "")
        if not isinstance(value, str):
            raise ValueError(f"content {key} must be a string")
        out[key] = value
    m = raw.get("map")
    out["map"] = m if isinstance(m, int) and not isinstance(m, bool) and m >= 0 else None
    params = raw.get("params")
    out["params"] = params if isinstance(params, dict) else {}
    labels = raw.get("labels")
    if isinstance(labels, list):
        out["labels"] = [str(x) for x in labels][:_MAX_LABELS]
    return out
