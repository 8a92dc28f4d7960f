"""What every logger shares: the narrow context it sees and the base class.

Each logger sees a :class:`LogContext` (the walked model, the probe images,
the targets, ``write()`` and the followed feature maps), never the callback
itself. ``configure()`` runs in ``on_train_begin``: it imports the method (a
method missing from this install is a ``ValueError``, not a crash
mid-training), checks the options against the method's signature and picks
the layers. ``log(step)`` computes the maps through the public method function
(compiled once per model and shape, reused every log) and writes PNG blob
sequences.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import numbers
from typing import Any, Callable, Optional, Sequence

import numpy as np

from tb_plugin import metadata as md

from .. import render
from ..checks import class_index, option_values
from ..graph import Graph

__all__ = ["LogContext", "MethodLogger", "ScaledImages", "check_options", "json_params", "heatmap_images",
           "projection_images",
           "probe_labels", "target_param"]


@dataclasses.dataclass(frozen=True)
class LogContext:
    """What a logger may use: the inputs, where to write, and the followed maps.

    ``write(method, layer, detail, images, step, kind, map=, params=,
    labels=)`` adds one blob sequence; ``fixed_maps(layer)`` gives the maps of
    ``layer`` chosen at the first log; ``follow(layers)`` adds layers whose
    maps are chosen together at that first log. ``deprocess`` is the user's
    display function (None: the callback's default display); ``class_names``
    label the class images.
    """

    graph: Graph
    probe: np.ndarray
    targets: Any
    image_size: tuple
    write: Callable
    fixed_maps: Callable
    follow: Callable
    layer_spec: Any = None
    map_spec: Any = 9
    deprocess: Optional[Callable] = None
    heldout: Any = None
    heldout_display: Optional[np.ndarray] = None
    class_names: Optional[Sequence[str]] = None  # checked, one per class: labels "Egyptian cat (285)"

    def layers_for(self, method, default):
        """The layers chosen for ``method`` (``layers=`` as a list, a dict per method, or the default)."""
        spec = self.layer_spec
        if isinstance(spec, dict):  # keyed by any of the method's names ("gradcam++" for gradcam_plus_plus)
            from ..loggers import requested_methods

            spec = requested_methods(spec).get(method)
        if spec is None:
            return list(default)
        return [spec] if isinstance(spec, str) else list(spec)


def check_options(fn, options, fixed, consumed):
    """Unknown options, ones the callback sets itself, or bad values (``samples=0``) are configuration errors."""
    option_values(options, getattr(fn, "__name__", "method"))
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    taken = sorted(k for k in options if k in fixed and k not in consumed)
    if taken:
        raise ValueError(f"option(s) {', '.join(taken)} are set by the callback itself "
                         f"(use probe_inputs=, targets=, layers=, maps=)")
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    allowed = (set(params) - set(fixed)) | set(consumed)
    bad = sorted(k for k in options if k not in allowed)
    if bad:
        raise ValueError(f"unknown option(s) {', '.join(bad)} for keras_convviz.{fn.__name__}; it takes "
                         f"{', '.join(sorted(allowed)) or 'none'}")


def json_params(params):
    """Options as JSON-able content params (arrays and objects summarized as text)."""
    out = {}
    for key, value in params.items():
        if isinstance(value, np.ndarray):
            value = f"array{tuple(value.shape)}" if value.size > 8 else value.tolist()
        elif isinstance(value, np.generic):
            value = value.item()
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            value = repr(value)[:200]
        out[str(key)] = value
    return out


@dataclasses.dataclass(frozen=True)
class ScaledImages:
    """Pictures of maps with what their colours mean, for the dashboard's colour bars.

    ``images``: RGB uint8 pictures; ``ranges`` ``(N, 2)``: the values the low
    and high ends of the colour map stand for in each picture; ``scale``: the
    tag's ``tb_plugin.metadata.make_scale`` dict. ``MethodLogger.write``
    unpacks it.
    """

    images: list
    ranges: np.ndarray
    scale: dict

    def __len__(self):
        return len(self.images)

    def __iter__(self):
        return iter(self.images)


def heatmap_images(maps, size, drawing="range", meaning=""):
    """``(N, h, w)`` or ``(N, h, w, C)`` maps -> pictures at ``size`` drawn as ``drawing`` says
    (:func:`figures.maps.normalize_map`: the CLI's and notebooks' normalization, so a map looks the same
    everywhere), with the values each picture's palette ends stand for."""
    from ..figures.maps import map_picture, normalize_map

    maps = np.asarray(maps, np.float64)
    if maps.ndim == 4 and maps.shape[-1] == 1 and drawing != "projection":
        maps = maps[..., 0]
    drawn = [normalize_map(drawing, m) for m in maps]
    pictures = [map_picture(d, size, original=m) for d, m in zip(drawn, maps)]
    ranges = np.array([[d.low, d.high] for d in drawn], np.float64).reshape(len(drawn), 2)
    encoding = drawn[0].encoding if drawn else ""
    palette = drawn[0].palette if drawn else "inferno"
    return ScaledImages(pictures, ranges, md.make_scale(palette, encoding, meaning))


def projection_images(images):
    """Input-space projections -> RGB images, zero at mid-grey (Zeiler & Fergus contrast normalization)."""
    images = np.asarray(images, np.float64)
    top = np.abs(images).reshape(len(images), -1).max(axis=1)
    return ScaledImages([render.projection_image(p) for p in images], np.stack([-top, top], 1),
                        md.make_scale("grey", "per image: 0 mid-grey, +-max |value| white / black",
                                      "signed contribution of each input pixel"))


def probe_labels(n):
    return [f"probe {i}" for i in range(n)]


def target_param(targets):
    """The ``targets=`` argument as a JSON param."""
    if targets is None:
        return "predicted"
    if isinstance(targets, (numbers.Number, np.generic)):
        return class_index(targets)  # 2 or 2.0; the callback refused anything else in on_train_begin
    return [class_index(t) for t in np.asarray(targets).reshape(-1)]


class MethodLogger:
    """One visualization method as the callback runs it.

    ``load()`` returns the method function (imported there, so that a method
    missing from the install is reported at configuration); ``fixed_args``
    are the arguments the logger passes itself and ``consumed`` the options it
    reads; ``uses_layers`` says whether ``layers=`` applies; ``once`` marks
    weight-independent maps logged at the first log only.
    """

    fixed_args = ("model", "inputs", "target", "layer")
    consumed = ()
    uses_layers = False
    once = False

    def __init__(self, name, options, context):
        from ..registry import lookup

        self.name = name
        try:
            self.record = lookup(name)
        except ValueError:  # a logger outside the registry (a user's own subclass)
            self.record = None
        self.options = dict(options or {})
        self.ctx = context
        self.fn = None
        self.layers = []

    def load(self):
        """The method function (its record's, imported here so that a method missing from the install is
        reported at configuration), or None for a logger that computes nothing itself."""
        return self.record.load() if self.record is not None else None

    def configure(self):
        """Check the options and layers against the model (``ValueError`` naming the fix)."""
        try:
            self.fn = self.load()
        except ImportError as err:
            raise ValueError(f"method {self.name!r} is not available in this install "
                             f"({type(err).__name__}: {err})") from None
        if self.fn is not None:
            check_options(self.fn, self.options, self.fixed_args, self.consumed)
        if self.uses_layers:
            graph = self.ctx.graph
            self.layers = [graph.spatial_step(n).name
                           for n in self.ctx.layers_for(self.name, self.default_layers())]

    def default_layers(self):
        return self.ctx.graph.block_ends()[-1:]

    def log(self, step):
        raise NotImplementedError

    def check_blank(self, values, layer, kind="gradients", what=None):
        """One ``BlankMapWarning`` line (once per layer) when ``values`` vanish or are exactly zero;
        ``what`` names them in the line (default ``"<method> at <layer>"``)."""
        from ..blank import diagnose, report

        warned = self.__dict__.setdefault("blank_layers", set())
        what = what or f"{self.name} at {layer}"
        if layer not in warned and report(diagnose(values, what, kind), "callback"):
            warned.add(layer)

    def write(self, layer, detail, images, step, kind, map=None, params=None, labels=None, rows=None):  # noqa: A002
        scale = ranges = None
        extra = {} if rows is None else {"rows": rows}  # top-k rows for the step document
        if isinstance(images, ScaledImages):  # colour scale and value ranges for the dashboard's colour bars
            images, ranges, scale = images.images, images.ranges, images.scale
        self.ctx.write(self.name, layer, detail, images, step, kind, map=map, params=json_params(params or {}),
                       labels=labels, scale=scale, ranges=ranges, **extra)

