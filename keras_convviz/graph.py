"""The model walk: one flat, ordered list of steps for any Keras CNN.

Sequential, Functional and nested models (a ``keras.applications`` base used
as a layer inside a Sequential) are flattened into ``Step`` objects that keep
the model's own layer objects, so every method shares the model's weights and
copies no variables. Each step knows its spatial geometry; ``receptive_fields``
folds that geometry into effective receptive fields with the definitions of
google-research/receptive_field (size, effective stride, effective padding).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections import OrderedDict

import keras

__all__ = [
    "Graph",
    "Step",
    "ReceptiveField",
    "walk",
    "receptive_fields",
]


# Layer kinds with a kernel that moves over the image.
_CONV = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")
_POOL = ("MaxPooling2D", "AveragePooling2D")
_MERGE = ("Add", "Concatenate", "Multiply", "Subtract", "Average", "Maximum", "Minimum")


@dataclasses.dataclass(eq=False)
class Step:
    """One call of one layer in the flattened model.

    ``input_ids``/``output_ids`` are canonical tensor ids: a nested model's
    inputs and outputs are aliased to the outer tensors they stand for.
    """

    name: str
    layer: keras.layers.Layer
    node: object
    input_ids: tuple
    output_ids: tuple
    input_shapes: tuple  # static shapes without the batch dimension
    output_shape: tuple
    kind: str  # conv | maxpool | avgpool | zeropad | crop | merge | other
    activation: str  # linear | relu | relu6 | softmax | sigmoid | other
    fused: bool  # activation applied inside the layer (Conv2D(..., activation=...))

    @property
    def type_name(self):
        return type(self.layer).__name__

    @property
    def is_spatial(self):
        return len(self.output_shape) == 3

    @property
    def relu_max(self):
        return 6.0 if self.activation == "relu6" else None


@dataclasses.dataclass(frozen=True)
class ReceptiveField:
    """Geometry of one spatial layer, all pairs as ``(height, width)``.

    ``kernel``, ``layer_stride`` and ``layer_padding`` are the layer's own
    (effective kernel with dilation; padding is the top/left padding it adds,
    negative for cropping). ``size``, ``stride`` and ``padding`` are the
    effective receptive field in input pixels: unit ``(i, j)`` sees input rows
    ``i * stride[0] - padding[0]`` .. ``+ size[0] - 1``, likewise columns.
    ``aligned`` is False where a merge joins branches whose fields differ;
    ``size``/``padding`` then cover every branch and ``note`` says so.
    """

    name: str
    layer_type: str
    output_shape: tuple
    kernel: tuple
    layer_stride: tuple
    layer_padding: tuple
    dilation: tuple
    size: tuple
    stride: tuple
    padding: tuple
    aligned: bool = True
    note: str = ""

    def window(self, y, x, clip_to=None):
        """Input window ``(y0, y1, x0, x1)`` (end exclusive) seen by unit ``(y, x)``.

        With ``clip_to=(H, W)`` the window is clipped to the image.
        """
        y0 = y * self.stride[0] - self.padding[0]
        x0 = x * self.stride[1] - self.padding[1]
        y1, x1 = y0 + self.size[0], x0 + self.size[1]
        if clip_to is not None:
            y0, x0 = max(y0, 0), max(x0, 0)
            y1, x1 = min(y1, clip_to[0]), min(x1, clip_to[1])
        return y0, y1, x0, x1


class Graph:
    """A flattened model: ordered steps, lookups and geometry."""

    def __init__(self, model, steps, input_ids, output_ids, input_shapes):
        self.model = model
        self.steps = steps
        self.input_ids = input_ids
        self.output_ids = output_ids
        self.input_shapes = input_shapes
        self._by_name = {s.name: s for s in steps}
        self._producer = {oid: s for s in steps for oid in s.output_ids}
        self.cache = {}  # compiled functions, keyed by their users

    # -- lookups --------------------------------------------------------
    @property
    def names(self):
        return [s.name for s in self.steps]

    @property
    def input_shape(self):
        """Static ``(H, W, C)`` of the (first) model input."""
        return self.input_shapes[0]

    @property
    def output_steps(self):
        return [self._producer[oid] for oid in self.output_ids if oid in self._producer]

    def step(self, name):
        """The step called ``name``; a ``ValueError`` lists the closest names."""
        if isinstance(name, Step):
            return name
        if name in self._by_name:
            return self._by_name[name]
        close = difflib.get_close_matches(str(name), self.names, n=5, cutoff=0.4)
        hint = f" Closest: {', '.join(close)}." if close else ""
        raise ValueError(
            f"unknown layer {name!r} in model {self.model.name!r}.{hint} "
            f"Run `convviz layers` or keras_convviz.receptive_fields(model) to list them."
        )

    def spatial_step(self, name):
        """Like ``step`` but the layer must have a spatial (H, W, C) output."""
        step = self.step(name)
        if not step.is_spatial:
            spatial = [s.name for s in self.steps if s.is_spatial]
            hint = f"pick a spatial layer such as {spatial[-1]!r}" if spatial else "this model has none"
            raise ValueError(
                f"layer {step.name!r} ({step.type_name}) has output shape "
                f"{step.output_shape}, not a spatial (H, W, C) map; {hint}."
            )
        return step

    def producer(self, tensor_id):
        return self._producer.get(tensor_id)

    def ancestors(self, names):
        """Indices of the steps needed to compute ``names``, in order."""
        needed = set()
        frontier = [self.step(n) for n in names]
        index = {id(s): i for i, s in enumerate(self.steps)}
        while frontier:
            step = frontier.pop()
            i = index[id(step)]
            if i in needed:
                continue
            needed.add(i)
            frontier.extend(p for p in map(self.producer, step.input_ids) if p is not None)
        return sorted(needed)

    def conv_steps(self):
        return [s for s in self.steps if s.kind == "conv" and s.is_spatial]

    def block_ends(self):
        """The last conv layer of each block: before every downsampling and at the end.

        These are the default layers for deconv projections (the convs whose
        output feeds a pooling or strided layer, plus the last conv).
        """
        convs = self.conv_steps()
        ends = []
        for a, b in zip(convs, convs[1:]):
            if b.output_shape[:2] != a.output_shape[:2]:
                ends.append(a.name)
        if convs:
            ends.append(convs[-1].name)
        return ends


# ---------------------------------------------------------------- walking
_CACHE_ATTR = "_convviz_graph"


def walk(model):
    """Flatten ``model`` into a :class:`Graph` (cached on the model object).

    The graph (and the functions compiled on it) lives as long as the model:
    a weak-keyed table would never let go, since the graph refers to its model.
    """
    if isinstance(model, Graph):
        return model
    graph = getattr(model, _CACHE_ATTR, None)
    if graph is None:
        graph = _walk(model)
        object.__setattr__(model, _CACHE_ATTR, graph)
    return graph


def _functional(model):
    if isinstance(model, keras.Sequential):
        fn = getattr(model, "_functional", None)
        if fn is None:
            raise ValueError(
                f"Sequential model {model.name!r} is not built with a known input "
                f"shape; start it with keras.Input(shape=(H, W, C)) or call "
                f"model.build((None, H, W, C))."
            )
        return fn
    if not hasattr(model, "_nodes_by_depth") or not getattr(model, "inputs", None):
        raise ValueError(
            f"model {model.name!r} ({type(model).__name__}) is a subclassed model "
            f"without a layer graph; keras-convviz needs a Functional or Sequential "
            f"model built from keras.Input(shape=(H, W, C))."
        )
    return model


class _Aliases(dict):
    """tensor id -> canonical tensor id; ``fill_in`` reads values through it."""

    def canon(self, tid):
        while tid in self:
            tid = self[tid]
        return tid


class _Values(dict):
    """Values keyed by canonical id, readable by a node's own (aliased) ids."""

    def __init__(self, aliases):
        super().__init__()
        self.aliases = aliases

    def __getitem__(self, tid):
        return dict.__getitem__(self, self.aliases.canon(tid))

    def get(self, tid, default=None):
        return dict.get(self, self.aliases.canon(tid), default)


def _walk(model):
    fn = _functional(model)
    aliases = _Aliases()
    steps = []
    input_ids = tuple(id(t) for t in fn.inputs)
    _walk_function(fn, list(input_ids), aliases, steps, set(input_ids))
    output_ids = tuple(aliases.canon(id(t)) for t in fn.outputs)
    input_shapes = tuple(tuple(t.shape[1:]) for t in fn.inputs)
    graph = Graph(model, steps, input_ids, output_ids, input_shapes)
    graph.aliases = aliases
    _infer_shapes(graph, fn.inputs)
    return graph


def _infer_shapes(graph, inputs):
    """Static shapes as the outer model sees them.

    A nested base built with ``input_shape=(None, None, 3)`` records unknown
    sizes in its own graph; re-deriving every shape from the outer inputs
    gives each step its real spatial size.
    """
    from keras import tree  # keras.tree: flatten nested structures

    values = _Values(graph.aliases)
    for tid, kt in zip(graph.input_ids, inputs):
        dict.__setitem__(values, tid, keras.KerasTensor(kt.shape, dtype=kt.dtype))
    for step in graph.steps:
        args, kwargs = step.node.arguments.fill_in(values)
        kwargs.pop("training", None)
        out = step.layer.compute_output_spec(*args, **kwargs)
        outs = tree.flatten(out)
        step.input_shapes = tuple(tuple(t.shape[1:]) for t in tree.flatten((args, kwargs)) if isinstance(t, keras.KerasTensor))
        step.output_shape = tuple(outs[0].shape[1:])
        for oid, value in zip(step.output_ids, outs):
            dict.__setitem__(values, oid, value)


def _walk_function(fn, input_ids, aliases, steps, known):
    for kt, cid in zip(fn.inputs, input_ids):
        if id(kt) != cid:
            aliases[id(kt)] = cid
    for depth in sorted(fn._nodes_by_depth, reverse=True):
        for node in fn._nodes_by_depth[depth]:
            op = node.operation
            if not op or node.is_input:
                continue
            in_ids = [aliases.canon(id(t)) for t in node.input_tensors]
            if any(i not in known for i in in_ids):
                continue  # belongs to another model sharing this layer
            if isinstance(op, keras.Model):
                inner = _functional(op)
                _walk_function(inner, in_ids, aliases, steps, known)
                for outer, inner_out in zip(node.outputs, inner.outputs):
                    aliases[id(outer)] = aliases.canon(id(inner_out))
                continue
            out_ids = tuple(id(t) for t in node.outputs)
            known.update(out_ids)
            steps.append(_make_step(op, node, tuple(in_ids), out_ids, steps))


def _unique_name(layer, steps):
    taken = {s.name for s in steps}
    name = layer.name
    k = 1
    while name in taken:
        name = f"{layer.name}_{k}"
        k += 1
    return name


def _make_step(layer, node, in_ids, out_ids, steps):
    activation, fused = _activation_of(layer)
    return Step(
        name=_unique_name(layer, steps),
        layer=layer,
        node=node,
        input_ids=in_ids,
        output_ids=out_ids,
        input_shapes=tuple(tuple(t.shape[1:]) for t in node.input_tensors),
        output_shape=tuple(node.outputs[0].shape[1:]),
        kind=_kind_of(layer),
        activation=activation,
        fused=fused,
    )


def _kind_of(layer):
    name = type(layer).__name__
    if name in _CONV:
        return "conv"
    if name == "MaxPooling2D":
        return "maxpool"
    if name == "AveragePooling2D":
        return "avgpool"
    if name == "ZeroPadding2D":
        return "zeropad"
    if name == "Cropping2D":
        return "crop"
    if name in _MERGE:
        return "merge"
    return "other"


def _classify_activation(fn):
    name = getattr(fn, "__name__", "") or ""
    if fn is None or name == "linear":
        return "linear"
    if name in ("relu", "relu6", "softmax", "sigmoid"):
        return name
    return "other"


def _activation_of(layer):
    """``(kind, fused)``: the activation a layer applies and whether it is fused."""
    cls = type(layer).__name__
    if cls == "ReLU":
        plain = float(layer.negative_slope) == 0.0 and float(layer.threshold) == 0.0
        if not plain:
            return "other", False
        if layer.max_value is None:
            return "relu", False
        return ("relu6" if float(layer.max_value) == 6.0 else "other"), False
    if cls == "Softmax":
        return "softmax", False
    if cls == "Activation":
        return _classify_activation(layer.activation), False
    if hasattr(layer, "activation") and callable(getattr(layer, "activation", None)):
        return _classify_activation(layer.activation), True
    return "linear", False


# ---------------------------------------------------------------- geometry
def _pair(v):
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _same_padding(n, k, s):
    """TF 'SAME' padding before the first element, for input size ``n``."""
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2


def layer_geometry(step):
    """``(kernel, stride, pad_before, dilation)`` per dim, or None if not geometric.

    ``kernel`` is the effective kernel (dilated); identity layers give 1, 1, 0.
    """
    layer, kind = step.layer, step.kind
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        raise ValueError(
            f"layer {step.name!r} uses data_format='channels_first'; keras-convviz "
            f"supports channels_last (the TensorFlow default)."
        )
    if kind in ("conv", "maxpool", "avgpool"):
        if kind == "conv":
            k, s = _pair(layer.kernel_size), _pair(layer.strides)
            d = _pair(layer.dilation_rate)
        else:
            k, s, d = _pair(layer.pool_size), _pair(layer.strides), (1, 1)
        k = tuple(dd * (kk - 1) + 1 for kk, dd in zip(k, d))
        if layer.padding == "same":
            hw = step.input_shapes[0][:2]
            p = tuple(_same_padding(n, kk, ss) for n, kk, ss in zip(hw, k, s))
        else:
            p = (0, 0)
        return k, s, p, d
    if kind == "zeropad":
        (t, _), (l, _) = layer.padding
        return (1, 1), (1, 1), (int(t), int(l)), (1, 1)
    if kind == "crop":
        (t, _), (l, _) = layer.cropping
        return (1, 1), (1, 1), (-int(t), -int(l)), (1, 1)
    # Anything else is an identity for geometry when it keeps the spatial size
    # (BatchNormalization, activations, Dropout, merges, 1x1 Dense on maps).
    if all(len(sh) == 3 and sh[:2] == step.output_shape[:2] for sh in step.input_shapes):
        return (1, 1), (1, 1), (0, 0), (1, 1)
    # A global pooling with keepdims=True: one window over the whole map.
    if step.output_shape[:2] == (1, 1) and len(step.input_shapes[0]) == 3:
        hw = tuple(step.input_shapes[0][:2])
        return hw, hw, (0, 0), (1, 1)
    return None


def receptive_fields(model):
    """Per spatial layer, in model order: its geometry and effective receptive field.

    Returns an ``OrderedDict`` ``{layer_name: ReceptiveField}`` with the
    definitions of google-research/receptive_field: ``size`` is the effective
    receptive field, ``stride`` the effective stride (jump) and ``padding`` the
    effective padding, each in input pixels as ``(height, width)``. Layers are
    named as inside nested models.
    """
    graph = walk(model)
    rf = {tid: ((1, 1), (1, 1), (0, 0)) for tid in graph.input_ids}  # size, jump, pad
    for tid, shape in zip(graph.input_ids, graph.input_shapes):
        _check_static(shape, model)
    result = OrderedDict()
    for step in graph.steps:
        if not step.is_spatial:
            continue
        branches = [rf.get(t) for t in step.input_ids]
        if any(b is None for b in branches):
            continue  # fed by a non-spatial tensor (e.g. a Reshape of a vector)
        geom = layer_geometry(step)
        if geom is None:
            raise ValueError(
                f"cannot derive the receptive field through layer {step.name!r} "
                f"({step.type_name}): it changes the spatial size {step.input_shapes[0][:2]}"
                f" -> {step.output_shape[:2]} in a way keras-convviz does not model."
            )
        k, s, p, d = geom
        (r, j, q), aligned = _merge(branches)
        size = tuple(rr + (kk - 1) * jj for rr, kk, jj in zip(r, k, j))
        jump = tuple(jj * ss for jj, ss in zip(j, s))
        pad = tuple(qq + pp * jj for qq, pp, jj in zip(q, p, j))
        for oid in step.output_ids:
            rf[oid] = (size, jump, pad)
        note = "" if aligned else (
            "merge of branches with different receptive fields: size and padding "
            "cover every branch" + ("; strides differ" if len({b[1] for b in branches}) > 1 else "")
        )
        result[step.name] = ReceptiveField(
            name=step.name,
            layer_type=step.type_name,
            output_shape=step.output_shape,
            kernel=k,
            layer_stride=s,
            layer_padding=p,
            dilation=d,
            size=size,
            stride=jump,
            padding=pad,
            aligned=aligned,
            note=note,
        )
    return result


def _merge(branches):
    """Union of branch receptive fields; ``aligned`` when they are all equal."""
    if len(set(branches)) == 1:
        return branches[0], True
    size, pad = [], []
    for dim in range(2):
        start = min(-b[2][dim] for b in branches)
        end = max(-b[2][dim] + b[0][dim] - 1 for b in branches)
        size.append(end - start + 1)
        pad.append(-start)
    jump = tuple(max(b[1][dim] for b in branches) for dim in range(2))
    return (tuple(size), jump, tuple(pad)), False


def _check_static(shape, model):
    if len(shape) != 3 or shape[0] is None or shape[1] is None:
        raise ValueError(
            f"model {model.name!r} has input shape {shape} without a static height "
            f"and width; rebuild it with keras.Input(shape=(H, W, C)) or, for "
            f"keras.applications, pass input_shape=(H, W, 3)."
        )
