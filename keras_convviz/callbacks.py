"""``ConvVizCallback``: log visualizations to TensorBoard during ``model.fit``.

    cb = keras_convviz.ConvVizCallback("runs/exp", probe_inputs=x_val[:4],
                                       methods=("deconv", "saliency", "gradcam"))
    model.fit(x, y, validation_data=(x_val, y_val), callbacks=[cb])

then ``tensorboard --logdir runs/exp`` and open the ConvViz tab.

Every method is an *adapter* in a small registry (``METHODS``): it checks its
configuration against the model in ``on_train_begin`` (unknown method or
layer, probe shape, a method missing from this install: ``ValueError`` before
any epoch is spent), then at each log computes its maps through the public
``keras_convviz.<function>`` (compiled once per model and shape, reused every
epoch) and writes PNG blob sequences through :mod:`keras_convviz.summary`.
Feature maps are chosen once, at the first log, and followed for the rest of
training, as in Zeiler & Fergus fig. 4. A method that fails at run time warns
once, naming it, and is skipped from then on; training continues.
"""

from __future__ import annotations

import importlib
import inspect
import json
import numbers
import os
import time
import warnings

import keras
import numpy as np

from tb_plugin import metadata as md

from . import render
from .fields import receptive_fields
from .graph import walk
from .checks import count, resolve_targets
from .methods.capture import capture
from .request import as_batch
from .select import num_classes, score_step

__all__ = ["ConvVizCallback", "METHODS", "DEFAULT_METHODS", "register_method", "MethodAdapter"]

# Cheap methods, logged by default: one compiled backward pass each per log,
# deconv at the last block only (pass layers= to follow more), so that the
# default costs a few percent of training time (benchmarks/bench_callback.py).
DEFAULT_METHODS = ("deconv", "saliency", "gradcam")

METHODS = {}


def register_method(name):
    """Class decorator adding a :class:`MethodAdapter` to ``METHODS`` under ``name``."""

    def add(cls):
        cls.name = name
        METHODS[name] = cls
        return cls

    return add


def _api(name):
    """``keras_convviz.<name>``, or a ValueError saying it is not available."""
    package = importlib.import_module("keras_convviz")
    try:
        return getattr(package, name)
    except (ImportError, AttributeError) as err:
        raise ValueError(
            f"keras_convviz.{name} is not available in this install ({type(err).__name__}: {err})"
        ) from None


class MethodAdapter:
    """One visualization method as the callback runs it.

    ``api`` names the ``keras_convviz`` functions it calls (checked at
    ``on_train_begin``); ``uses_layers`` says whether ``layers=`` applies;
    ``once`` marks weight-independent maps logged at the first log only.
    """

    name = ""
    api = ()
    uses_layers = False
    once = False
    fixed_args = ("model", "inputs", "target", "layer")  # what the adapter passes itself

    def __init__(self, callback, options):
        self.cb = callback
        self.options = dict(options or {})
        self.functions = {}

    # -- configuration (on_train_begin) ---------------------------------
    consumed = ()  # options the adapter itself reads (the rest go to the function)

    def configure(self, graph):
        for fn in self.api:
            self.functions[fn] = _api(fn)
        if self.api:
            _check_options(self.functions[self.api[0]], self.api[0], self.options, self.fixed_args, self.consumed)
        if self.uses_layers:
            self.layers = [graph.spatial_step(n).name for n in self.cb._layers_for(self.name, self.default_layers(graph))]

    def default_layers(self, graph):
        return graph.block_ends()

    # -- logging ----------------------------------------------------------
    def log(self, step):
        raise NotImplementedError

    def write(self, layer, detail, images, step, kind, map=None, params=None, labels=None):  # noqa: A002
        self.cb._write(self.name, layer, detail, images, step, kind, map=map, params=_json_params(params or {}),
                       labels=labels)


# ---------------------------------------------------------------- helpers
def _check_options(fn, name, options, fixed, consumed):
    """Unknown options, or ones the callback sets itself, are configuration errors."""
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
        raise ValueError(f"unknown option(s) {', '.join(bad)} for keras_convviz.{name}; it takes "
                         f"{', '.join(sorted(allowed)) or 'none'}")


def _json_params(params):
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


def _numpy(x):
    return np.asarray(x.numpy() if hasattr(x, "numpy") else x)


def _heatmaps(maps, size):
    """``(N, h, w)`` maps -> list of inferno RGB images at ``size``, each min-max normalized."""
    maps = _numpy(maps)
    if maps.ndim == 4 and maps.shape[-1] == 1:
        maps = maps[..., 0]
    return [render.heatmap(render.upsample(m, size)) for m in maps]


def _projections(images):
    return [render.projection_image(p) for p in _numpy(images)]


def _probe_labels(n):
    return [f"probe {i}" for i in range(n)]


def _target_param(targets):
    if targets is None:
        return "predicted"
    if isinstance(targets, numbers.Integral):
        return int(targets)
    return [int(t) for t in targets]


# ---------------------------------------------------------------- adapters
@register_method("deconv")
class Deconv(MethodAdapter):
    """Zeiler–Fergus projections of fixed feature maps (fig. 4), one tag per map."""

    api = ("deconv",)
    uses_layers = True
    fixed_args = ("model", "inputs", "layer", "maps", "joint")

    def default_layers(self, graph):
        return graph.block_ends()[-1:]

    def configure(self, graph):
        super().configure(graph)
        self.cb._map_layers.update(self.layers)
        for layer in self.layers:
            channels = graph.step(layer).output_shape[-1]
            spec = self.cb.maps
            if isinstance(spec, (list, tuple)):
                bad = [m for m in spec if not 0 <= int(m) < channels]
                if bad:
                    raise ValueError(f"maps {bad} are outside layer {layer!r}'s maps 0..{channels - 1}")
            else:
                count(min(spec, channels) if isinstance(spec, numbers.Integral) else spec, channels, "maps")

    def log(self, step):
        for layer in self.layers:
            maps = self.cb.fixed_maps(layer)
            opts = dict({"activations": 1}, **self.options)
            out = _numpy(self.functions["deconv"](self.cb.model, self.cb.probe, layer, maps=list(maps),
                                                  joint=False, **opts))
            # (N, M, H, W, C): image n, map m
            for j, m in enumerate(maps):
                self.write(layer, f"map{m:04d}", _projections(out[:, j]), step, "projection", map=int(m),
                           params=dict(opts, maps="fixed at first log"),
                           labels=_probe_labels(len(out)))


class _ClassMethod(MethodAdapter):
    """A method explaining the class score, logged under the score layer."""

    kind = "heatmap"
    detail = "heatmap"
    fn = ""

    def configure(self, graph):
        self.api = (self.fn,)
        super().configure(graph)
        self.score_layer = score_step(self.cb.model).name

    def compute(self):
        return self.functions[self.fn](self.cb.model, self.cb.probe, self.cb.targets, **self.options)

    def log(self, step):
        out = self.compute()
        images = _heatmaps(out, self.cb.image_size) if self.kind == "heatmap" else _projections(out)
        params = dict(self.options, target=_target_param(self.cb.targets))
        self.write(self.score_layer, self.detail, images, step, self.kind, params=params,
                   labels=_probe_labels(len(images)))


@register_method("saliency")
class Saliency(_ClassMethod):
    fn = "saliency"


@register_method("smoothgrad")
class SmoothGrad(_ClassMethod):
    fn = "smoothgrad"


@register_method("guided")
class Guided(_ClassMethod):
    fn = "guided_backprop"
    kind = "projection"
    detail = "image"


@register_method("integrated")
class Integrated(_ClassMethod):
    fn = "integrated_gradients"
    kind = "projection"
    detail = "image"


@register_method("gradcam")
class GradCAM(_ClassMethod):
    fn = "gradcam"
    uses_layers = True

    def default_layers(self, graph):
        convs = graph.conv_steps()
        return [convs[-1].name] if convs else []

    def configure(self, graph):
        super().configure(graph)
        self.score_layer = None

    def log(self, step):
        for layer in self.layers:
            out = self.functions["gradcam"](self.cb.model, self.cb.probe, self.cb.targets, layer=layer,
                                            **self.options)
            params = dict(self.options, target=_target_param(self.cb.targets))
            self.write(layer, "heatmap", _heatmaps(out, self.cb.image_size), step, "heatmap", params=params,
                       labels=_probe_labels(len(self.cb.probe)))


@register_method("occlusion")
class Occlusion(MethodAdapter):
    """Fig. 7: probability of the target and strongest-map activity under a sliding grey square."""

    api = ("occlusion",)
    uses_layers = True

    def default_layers(self, graph):
        return graph.block_ends()[-1:]

    def log(self, step):
        h, w = self.cb.image_size
        opts = dict(self.options)
        opts.setdefault("patch", max(4, min(h, w) // 4))
        opts.setdefault("stride", max(2, min(h, w) // 16))
        for layer in self.layers:
            res = self.functions["occlusion"](self.cb.model, self.cb.probe, self.cb.targets, layer=layer, **opts)
            params = dict(opts, target=_target_param(self.cb.targets))
            labels = _probe_labels(len(self.cb.probe))
            # Low probability where the occluder hides what matters: show 1 - p, so bright = important
            # (min-max per image, like every heatmap: a robust model's drops can be small).
            prob = _numpy(res.probability)
            self.write(layer, "probability", _heatmaps(1.0 - prob, (h, w)), step, "heatmap",
                       params=dict(params, shown="1 - probability of the target, min-max scaled"), labels=labels)
            self.write(layer, "activation", _heatmaps(res.activation, (h, w)), step, "heatmap",
                       params=dict(params, shown="total activation of the strongest map"), labels=labels)


@register_method("boxfilter")
class BoxFilter(MethodAdapter):
    """Receptive-field box filters of a centre crop (geometry only: logged once)."""

    api = ("box_filter",)
    uses_layers = True
    once = True
    fixed_args = ("model", "layer", "crop", "mode", "input_shape", "every_layer", "batch_size")
    consumed = ("crop",)

    def default_layers(self, graph):
        return graph.block_ends()[-1:]

    def log(self, step):
        h, w = self.cb.image_size
        crop = tuple(int(c) for c in (self.options.get("crop") or (w // 4, h // 4, w // 2, h // 2)))
        for layer in self.layers:
            res = self.functions["box_filter"](self.cb.model, layer, crop, mode="forward")
            maps = res[getattr(res, "layer", None) or layer]
            for kind in ("ratio", "fraction"):
                m = np.asarray(getattr(maps, kind), np.float64)
                self.write(layer, kind, [render.heatmap(render.upsample(m, (h, w)), normalized=True)], step, kind,
                           params={"crop_xywh": list(crop), "mode": "forward"}, labels=[f"crop x,y,w,h={crop}"])


@register_method("topk")
class TopK(MethodAdapter):
    """Fig. 2: the k strongest activations of fixed maps over a held-out set, as image patches."""

    api = ("top_activations",)
    uses_layers = True
    fixed_args = ("model", "dataset", "layer", "k", "strategy", "batch_size", "callback")
    consumed = ("k",)

    def default_layers(self, graph):
        return graph.block_ends()[-1:]

    def configure(self, graph):
        super().configure(graph)
        if self.cb.heldout is None:
            raise ValueError("method 'topk' needs a held-out set: pass heldout=images (N, H, W, C)")
        self.k = int(self.options.get("k", 9))
        self.cb._map_layers.update(self.layers)
        self.fields = receptive_fields(self.cb.model)

    def log(self, step):
        data = self.cb.heldout
        h, w = self.cb.image_size
        for layer in self.layers:
            res = self.functions["top_activations"](self.cb.model, data, layer, k=self.k)
            values, ids, pos = _numpy(res.values), _numpy(res.image_ids), _numpy(res.positions)
            field = self.fields[layer]
            size = field.size
            for m in self.cb.fixed_maps(layer):
                patches = []
                for v, i, p in zip(values[m], ids[m], pos[m]):
                    if int(i) < 0:
                        continue
                    y0, y1, x0, x1 = field.window(int(p[0]), int(p[1]), clip_to=(h, w))
                    img = self.cb.heldout_display[int(i)]
                    patch = np.zeros((min(size[0], h), min(size[1], w), 3), np.uint8)
                    piece = img[y0:y1, x0:x1]
                    patch[:piece.shape[0], :piece.shape[1]] = piece
                    patches.append(patch)
                if not patches:
                    continue
                self.write(layer, f"map{m:04d}", patches, step, "patches", map=int(m),
                           params={"k": self.k, "heldout": int(len(data))},
                           labels=[f"#{j + 1}" for j in range(self.k)])


@register_method("classmodel")
class ClassModel(MethodAdapter):
    """Simonyan et al.: an image maximizing each class logit (an optimization: the costliest method)."""

    api = ("class_model",)
    fixed_args = ("model", "target", "progress")
    consumed = ("classes",)

    def configure(self, graph):
        super().configure(graph)
        self.score_layer = score_step(self.cb.model).name
        self.options.setdefault("steps", 50)
        classes = self.options.pop("classes", None)
        n = num_classes(self.cb.model)
        self.classes = list(range(min(max(n, 2), 10))) if classes is None else [int(c) for c in classes]
        bad = [c for c in self.classes if not 0 <= c < max(n, 2)]
        if bad:
            raise ValueError(f"classmodel classes {bad} are outside 0..{max(n, 2) - 1}")

    def log(self, step):
        res = self.functions["class_model"](self.cb.model, list(self.classes), **self.options)
        if hasattr(res, "rgb"):
            images = res.rgb(self.cb.user_display) if self.cb.user_display else res.rgb()
        else:
            images = self.cb.display(_numpy(res))
        params = {k: v for k, v in self.options.items() if isinstance(v, (int, float, str, bool, list, tuple))}
        for c, img in zip(self.classes, images):
            self.write(self.score_layer, f"class{c:04d}", [img], step, "image",
                       params=dict(params, target=c), labels=[f"class {c}"])


# ---------------------------------------------------------------- callback
def _default_display(x):
    """Model inputs -> RGB uint8 for display: [0, 1] or [0, 255] as is, else min-max per image."""
    x = np.asarray(x, np.float64)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, -1)
    x = x[..., :3]
    lo, hi = x.min(), x.max()
    if lo >= 0 and hi <= 1:
        return render.to_uint8(x)
    if lo >= 0 and hi <= 255:
        return np.clip(x + 0.5, 0, 255).astype(np.uint8)
    return np.stack([render.to_uint8(render.normalize(im)) for im in x])


class ConvVizCallback(keras.callbacks.Callback):
    """Log ConvViz visualizations of fixed probe inputs to TensorBoard during training.

    Args:
      log_dir: the TensorBoard log directory (the same one as
        ``keras.callbacks.TensorBoard`` is fine); summaries go to
        ``log_dir/<run>``.
      probe_inputs: model inputs ``(N, H, W, C)`` (already preprocessed) to
        explain at every log; a few images keep the overhead low.
      methods: names from ``METHODS`` (deconv, boxfilter, saliency,
        smoothgrad, guided, integrated, gradcam, occlusion, topk, classmodel),
        or a dict ``{name: {option: value}}`` passing options to the method
        (e.g. ``{"smoothgrad": {"samples": 10}}``). Default: the cheap ones,
        ``DEFAULT_METHODS``.
      layers: layer names for the layer-based methods (default: each
        method's own: the last block's last conv for deconv, gradcam,
        occlusion, boxfilter and topk), or a dict ``{method: [layers]}``,
        e.g. ``{"deconv": walk(model).block_ends()}`` for every block.
      every_n_epochs: log after every n-th epoch (and after the last one);
        the step is the epoch index, as in ``keras.callbacks.TensorBoard``.
      every_n_batches: log every n training batches instead; the step is the
        global batch count.
      targets: class index, one per probe image, or None for the predicted
        class (explained as the pre-softmax logit).
      maps: feature maps followed per layer: a count of the strongest maps at
        the first log (fixed afterwards), a fraction, or explicit indices.
      heldout: images for ``topk`` (the strongest activations over this set).
      display: function mapping model inputs to RGB uint8 for display
        (a preset's ``deprocess``); default: inputs in [0, 1] or [0, 255] as
        they are, anything else min-max scaled per image.
      run: the run (sub-folder of ``log_dir``) to write to.
      log_at_train_end: also log after the last epoch when it was skipped.
    """

    def __init__(self, log_dir, probe_inputs, methods=DEFAULT_METHODS, layers=None, every_n_epochs=1,
                 every_n_batches=None, targets=None, maps=9, heldout=None, display=None, run="convviz",
                 log_at_train_end=True):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        self.run = run
        self.probe_inputs = probe_inputs
        if isinstance(methods, str):
            methods = (methods,)
        self.method_options = dict(methods) if isinstance(methods, dict) else {m: {} for m in methods}
        self.layers = layers
        self.every_n_epochs = every_n_epochs
        self.every_n_batches = every_n_batches
        self.targets = targets
        self.maps = maps
        self.heldout = heldout
        self.user_display = display
        self.display = display or _default_display
        self.log_at_train_end = log_at_train_end
        self.adapters = {}
        self.failed = {}
        self.timings = {}
        self._writer = None
        self._fixed = {}
        self._map_layers = set()
        self._logged_once = set()
        self._last_logged = None
        self._last_epoch = None
        self._global_batch = 0
        self._configured = False

    # -- configuration ------------------------------------------------------
    def _layers_for(self, method, default):
        spec = self.layers
        if isinstance(spec, dict):
            spec = spec.get(method)
        if spec is None:
            return list(default)
        return [spec] if isinstance(spec, str) else list(spec)

    def _check_schedule(self):
        for name in ("every_n_epochs", "every_n_batches"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)
                                      or value < 1):
                raise ValueError(f"{name} must be an int >= 1 or None, got {value!r}")
        if self.every_n_epochs is None and self.every_n_batches is None:
            raise ValueError("set every_n_epochs or every_n_batches: with neither the callback never logs")

    def configure(self):
        """Check everything against the model; raises ``ValueError`` naming the fix."""
        unknown = [m for m in self.method_options if m not in METHODS]
        if unknown:
            raise ValueError(
                f"unknown ConvViz method(s) {', '.join(map(repr, unknown))}; choose from {', '.join(sorted(METHODS))}"
            )
        if not self.method_options:
            raise ValueError("methods is empty; choose from " + ", ".join(sorted(METHODS)))
        for name, opts in self.method_options.items():
            if opts is not None and not isinstance(opts, dict):
                raise ValueError(f"options of method {name!r} must be a dict, got {opts!r}")
        self._check_schedule()
        model = self.model
        graph = walk(model)
        try:
            self.probe = as_batch(graph, self.probe_inputs)
        except ValueError as err:
            raise ValueError(f"probe_inputs: {err}") from None
        self.image_size = tuple(self.probe.shape[1:3])
        if self.targets is not None:
            resolve_targets(self.targets, len(self.probe), num_classes(model))
        if self.heldout is not None and not hasattr(self.heldout, "element_spec"):
            try:
                self.heldout = as_batch(graph, self.heldout)
            except ValueError as err:
                raise ValueError(f"heldout: {err}") from None
            self.heldout_display = self.display(self.heldout)
        if isinstance(self.maps, (list, tuple)):
            if not self.maps or any(isinstance(m, bool) or not isinstance(m, numbers.Integral) for m in self.maps):
                raise ValueError(f"maps must be a count, a fraction or a non-empty list of map indices, got {self.maps!r}")
        elif isinstance(self.maps, bool) or not isinstance(self.maps, numbers.Real):
            raise ValueError(f"maps must be a count, a fraction or a list of map indices, got {self.maps!r}")
        adapters = {}
        for name, opts in self.method_options.items():
            adapter = METHODS[name](self, opts)
            try:
                adapter.configure(graph)
            except ValueError as err:
                raise ValueError(f"ConvVizCallback method {name!r}: {err}") from None
            adapters[name] = adapter
        self.adapters = adapters
        self.probe_display = self.display(self.probe)
        self._configured = True

    def fixed_maps(self, layer):
        """The maps of ``layer`` followed across logs, chosen at the first log.

        A count picks the maps with the largest activation over all probe
        images (the strongest maps of the network at that point).
        """
        if layer not in self._fixed:
            spec = self.maps
            # one forward pass for every layer whose maps are followed
            layers = sorted(self._map_layers | {layer})
            acts = None if isinstance(spec, (list, tuple)) else capture(self.model, self.probe, layers).activations
            for name in layers:
                if name in self._fixed:
                    continue
                channels = walk(self.model).step(name).output_shape[-1]
                if acts is None:
                    maps = [int(m) for m in spec]
                else:
                    n = count(min(spec, channels) if isinstance(spec, numbers.Integral) else spec, channels)
                    peaks = acts[name].reshape(-1, channels).max(axis=0)
                    maps = sorted(int(m) for m in np.argsort(-peaks, kind="stable")[:n])
                self._fixed[name] = maps
        return self._fixed[layer]

    # -- writing -------------------------------------------------------------
    def _write(self, method, layer, detail, images, step, kind, map=None, params=None, labels=None):  # noqa: A002
        self._writer.images(method, layer, detail, images, step, kind, map=map, params=params, labels=labels)

    def log(self, step):
        """Compute and write every configured method at ``step`` (failures warn once)."""
        if self._writer is None:
            from .summary import Writer

            self._writer = Writer(os.path.join(self.log_dir, self.run) if self.run else self.log_dir)
        if md.INPUT_TAG not in self._writer.contents:
            method, layer, detail = md.split_tag(md.INPUT_TAG)
            self._write(method, layer, detail, list(self.probe_display), step, "input",
                        labels=_probe_labels(len(self.probe)))
        for name, adapter in self.adapters.items():
            if name in self.failed or (adapter.once and name in self._logged_once):
                continue
            start = time.perf_counter()
            try:
                adapter.log(step)
            except Exception as err:  # a visualization must never stop training
                self.failed[name] = f"{type(err).__name__}: {err}"
                warnings.warn(
                    f"ConvVizCallback: method {name!r} failed at step {step} and is skipped for the rest of "
                    f"training: {type(err).__name__}: {err}",
                    RuntimeWarning,
                    stacklevel=2,
                )
                continue
            finally:
                self.timings.setdefault(name, []).append(time.perf_counter() - start)
            self._logged_once.add(name)
        self._writer.flush()
        self._last_logged = step

    # -- keras hooks ---------------------------------------------------------
    def on_train_begin(self, logs=None):
        self.configure()
        self._global_batch = int(_numpy(self.model.optimizer.iterations)) if getattr(self.model, "optimizer", None) \
            is not None else 0

    def on_train_batch_end(self, batch, logs=None):
        if self.every_n_batches is None:
            return
        self._global_batch += 1
        if self._global_batch % self.every_n_batches == 0:
            self.log(self._global_batch)

    def on_epoch_end(self, epoch, logs=None):
        self._last_epoch = epoch
        if self.every_n_batches is None and (epoch + 1) % self.every_n_epochs == 0:
            self.log(epoch)

    def on_train_end(self, logs=None):
        try:
            if self.log_at_train_end and self._configured:
                last = self._global_batch if self.every_n_batches is not None else self._last_epoch
                if last is not None and last != self._last_logged:
                    self.log(last)
        finally:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
                # a later fit() continues the same tags with the same content
