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

``kind`` tells the dashboard how to draw a tag: map kinds (``OVERLAY_KINDS``)
can be blended over the ``input`` tag of the same run; ``patches`` tags are
shown as a top-k grid.

Version 2 (``CONTENT_VERSION``) adds, all optional so that version-1 logdirs
still load:

* ``"scale"`` on map tags: ``{"colormap": one of COLORMAPS, "encoding":
  how values become colours, "meaning": what bright (or red) means}``; the
  value range of every image at every step is in the step document.
* two JSON tags per run, each a blob sequence holding one UTF-8 JSON
  document per step (``make_walk`` / ``make_step_info`` build them):
  ``WALK_TAG`` (kind ``walk``, written once): the model walk (layers in
  network order with type, output shape and receptive field size, stride and
  padding; see ``keras_convviz.fields``), the input size and the class names;
  ``STEP_TAG`` (kind ``stepinfo``, every logged step): each probe's top
  predictions with probabilities, the explained class, the followed units'
  strongest positions and the value range of every map image.
"""

from __future__ import annotations

import json
import re

from keras_convviz.registry import method_order

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
    "WALK_TAG",
    "STEP_TAG",
    "JSON_KINDS",
    "COLORMAPS",
    "make_scale",
    "make_walk",
    "make_step_info",
    "parse_document",
]

PLUGIN_NAME = "convviz"

# Version of the JSON content stored in each tag's SummaryMetadata.plugin_data
# (2: map scales and the walk / step JSON documents; 1 still reads).
CONTENT_VERSION = 2

# Kinds of artifact a tag can hold, and so how the dashboard draws it:
#   input       the probe images themselves (the base of overlays)
#   projection  deconv / guided backprop images in input space (grey = 0)
#   heatmap     a colour-mapped 2-D map at input size (saliency, Grad-CAM, occlusion)
#   ratio       box-filter ratio map; fraction: box-filter fraction map
#   patches     top-k image patches of one feature map (a grid per step)
#   grid        a pre-composed grid; image: any other picture (class model)
#   walk, stepinfo  JSON documents for the dashboard (JSON_KINDS), not pictures
KINDS = ("input", "projection", "heatmap", "ratio", "fraction", "patches", "grid", "image", "walk", "stepinfo")
JSON_KINDS = ("walk", "stepinfo")

# The run's JSON documents (see the module docstring).
WALK_TAG = "meta/model/walk"
STEP_TAG = "meta/probe/step"

# Colour maps as anchor colours, interpolated linearly from the low end (first)
# to the high end (last): the writer's pictures (keras_convviz.render) and the
# dashboard's colour bars both use these. inferno: matplotlib's perceptually
# uniform map (public data); diverging: blue - white - red for signed maps
# (zero white); grey: deconv projections (zero mid-grey, Zeiler & Fergus).
COLORMAPS = {
    "inferno": [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
                [250, 193, 39], [252, 255, 164]],
    "diverging": [[33, 102, 172], [103, 169, 207], [209, 229, 240], [247, 247, 247], [253, 219, 199],
                  [239, 138, 98], [178, 24, 43]],
    "grey": [[0, 0, 0], [255, 255, 255]],
}

# The tag of the probe images, logged by the callback for overlays.
INPUT_TAG = "input/probe/image"

# How the dashboard draws some kinds: blended over the run's INPUT_TAG images
# on request, and as a grid of every image of a step by default.
OVERLAY_KINDS = ("heatmap", "projection", "ratio", "fraction")
GRID_KINDS = ("patches",)

# The dashboard's card order: the probe images, then the methods in the order
# of the pipeline (the methods' records, keras_convviz/registry.py; aliases
# follow their method, so older logs' tags such as "integrated" sort too).
METHOD_ORDER = ("input",) + method_order()

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
        "walk_tag": WALK_TAG,
        "step_tag": STEP_TAG,
        "json_kinds": list(JSON_KINDS),
        "colormaps": COLORMAPS,
    }


def _jsonable(value, where):
    try:
        return json.loads(json.dumps(value, allow_nan=False, sort_keys=True))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where} must be plain JSON values (numbers, strings, lists, dicts): {err}") from None


def make_scale(colormap, encoding, meaning=""):
    """The ``scale`` of a map tag: its colour map, how values become colours and what bright means."""
    if colormap not in COLORMAPS:
        raise ValueError(f"colormap {colormap!r} is not one of {', '.join(COLORMAPS)}")
    return {"colormap": colormap, "encoding": str(encoding), "meaning": str(meaning)}


def make_content(method, layer, detail, kind, map=None, params=None, labels=None, scale=None):  # noqa: A002
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
    if scale is not None:
        content["scale"] = make_scale(scale.get("colormap"), scale.get("encoding", ""), scale.get("meaning", ""))
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
    scale = raw.get("scale")
    if isinstance(scale, dict) and scale.get("colormap") in COLORMAPS:
        out["scale"] = {k: str(scale.get(k, "")) for k in ("colormap", "encoding", "meaning")}
    return out


# ------------------------------------------------------------ JSON documents
def _pair_list(value, what):
    pair = [int(v) for v in value]
    if len(pair) != 2:
        raise ValueError(f"{what} must be a (height, width) pair, got {value!r}")
    return pair


def make_walk(layers, input_size, class_names=None):
    """The ``WALK_TAG`` document: the model walk in network order, the input size, the class names.

    ``layers``: dicts with ``name``, ``type``, ``output_shape`` and, for
    spatial layers, ``rf_size``, ``rf_stride``, ``rf_padding`` (pairs) as
    ``keras_convviz.fields.ReceptiveField`` defines them: unit ``(i, j)``
    sees input rows ``i * stride - padding`` .. ``+ size - 1``.
    """
    out = []
    for layer in layers:
        entry = {"name": str(layer["name"]), "type": str(layer.get("type", "")),
                 "output_shape": [int(d) if d is not None else None for d in layer.get("output_shape", ())]}
        if layer.get("rf_size") is not None:
            for key in ("rf_size", "rf_stride", "rf_padding"):
                entry[key] = _pair_list(layer[key], f"layer {entry['name']!r} {key}")
            entry["aligned"] = bool(layer.get("aligned", True))
        out.append(entry)
    names = None if class_names is None else [str(c) for c in class_names]
    return {"version": CONTENT_VERSION, "layers": out, "input_size": _pair_list(input_size, "input_size"),
            "class_names": names}


def make_step_info(predictions, explained, units=None, ranges=None, topk=None):
    """The ``STEP_TAG`` document of one step.

    ``predictions``: per probe image, its top classes as ``[class, probability]``
    pairs, most probable first; ``explained``: per probe image, the class the
    score-based maps explain; ``units``: ``{layer: {map: [[y, x, activation]
    per probe image]}}``, the strongest position of each followed map (the
    activation a top-1 deconv projection keeps); ``ranges``: ``{tag: [[low,
    high] per image]}``, the values the colour map's ends stand for;
    ``topk``: ``{tag: [[activation, held-out image, y, x] per patch]}``, what
    each top-k patch of a ``patches`` tag shows (optional).
    """
    preds = [[[int(c), float(p)] for c, p in top] for top in predictions]
    units = {str(layer): {str(int(m)): [[int(y), int(x), float(a)] for y, x, a in rows] for m, rows in maps.items()}
             for layer, maps in (units or {}).items()}
    ranges = {str(tag): [[float(lo), float(hi)] for lo, hi in pairs] for tag, pairs in (ranges or {}).items()}
    doc = {"version": CONTENT_VERSION, "predictions": preds, "explained": [int(c) for c in explained],
           "units": units, "ranges": ranges}
    if topk:
        doc["topk"] = {str(tag): [[float(a), int(i), int(y), int(x)] for a, i, y, x in rows]
                       for tag, rows in topk.items()}
    return _jsonable(doc, "step info")


def parse_document(data):
    """Bytes of a walk or step document -> dict (``ValueError`` when it is not one)."""
    try:
        doc = json.loads(bytes(data).decode("utf-8"))
    except (TypeError, ValueError, UnicodeDecodeError):
        raise ValueError("document is not UTF-8 JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("version"), int):
        raise ValueError("document is not a versioned JSON object")
    return doc
