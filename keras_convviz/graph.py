"""The model walk: one flat, ordered list of steps for any Keras CNN.

Sequential, Functional and nested models (a ``keras.applications`` base used
as a layer inside a Sequential) are flattened into ``Step`` objects that keep
the model's own layer objects, so every method shares the model's weights and
copies no variables. Each step knows its layer kind, its activation and its
shapes at any input size (``Graph.shapes_at``); ``fields.receptive_fields``
folds the geometry into effective receptive fields.
"""

from __future__ import annotations

import dataclasses
import difflib

import keras

__all__ = ["Graph", "Step", "Values", "walk", "layer_kind", "POINTWISE"]


from .layerkinds import POINTWISE, activation_of, layer_kind  # noqa: F401  (re-exported)
from .tensorvalues import Aliases, CallValues, Values, infer_shapes  # noqa: F401  (re-exported)


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
    arg_ids: dict = dataclasses.field(default_factory=dict)  # the node's tensor ids -> this call's ids

    def fill_in(self, values):
        """The layer call's ``(args, kwargs)`` with this call's values from ``values`` (canonical ids).

        A layer of a nested model called twice has one Keras node for both
        calls; ``arg_ids`` says which call's inputs this step reads.
        """
        return self.node.arguments.fill_in(CallValues(values, self.arg_ids))

    @property
    def type_name(self):
        return type(self.layer).__name__

    @property
    def is_spatial(self):
        return len(self.output_shape) == 3

    @property
    def is_map(self):
        """A spatial output with more than one position (not a ``(1, 1)`` gate or classifier conv)."""
        return self.is_spatial and tuple(self.output_shape[:2]) != (1, 1)

    @property
    def relu_max(self):
        return 6.0 if self.activation == "relu6" else None

    @property
    def is_pointwise(self):
        """A per-pixel layer that keeps its input's shape (runs unchanged on a window)."""
        return self.type_name in POINTWISE and tuple(self.output_shape) == tuple(self.input_shapes[0])


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
        if isinstance(name, keras.layers.Layer):
            name = self.step_of_layer(name)
        if name in self._by_name:
            return self._by_name[name]
        close = difflib.get_close_matches(str(name), self.names, n=5, cutoff=0.4)
        hint = f" Closest: {', '.join(close)}." if close else ""
        raise ValueError(
            f"unknown layer {name!r} in model {self.model.name!r}.{hint} "
            f"Run `convviz layers` or keras_convviz.receptive_fields(model) to list them."
        )

    def step_of_layer(self, layer):
        """The step name of a ``Layer`` object; a layer called more than once must be named by its step."""
        calls = [s.name for s in self.steps if s.layer is layer]
        if len(calls) == 1:
            return calls[0]
        if not calls:
            raise ValueError(f"layer {layer.name!r} is not part of model {self.model.name!r}; pass one of its "
                             f"own layers or a layer name (`convviz layers` lists them).")
        raise ValueError(f"layer {layer.name!r} is called {len(calls)} times in model {self.model.name!r}; "
                         f"name the call instead: {', '.join(calls)}.")

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

    def ancestors(self, names, given=()):
        """Indices of the steps needed to compute ``names``, in order.

        Steps named in ``given`` have known outputs: they and everything only
        they need are left out (running a tail of the network).
        """
        needed = set()
        given = {self.step(n).name for n in given}
        frontier = [self.step(n) for n in names]
        index = {id(s): i for i, s in enumerate(self.steps)}
        while frontier:
            step = frontier.pop()
            i = index[id(step)]
            if i in needed or step.name in given:
                continue
            needed.add(i)
            frontier.extend(p for p in map(self.producer, step.input_ids) if p is not None)
        return sorted(needed)

    def shapes_at(self, hw=None):
        """Per step ``(input_shapes, output_shape)`` for a first input of spatial size ``hw``.

        ``None`` (or the model's own size) gives the static shapes. A step
        whose shape cannot be computed at that size maps to ``None``, as do
        the steps after it. Cached per size.
        """
        hw = tuple(self.input_shape[:2]) if hw is None else tuple(int(v) for v in hw)
        key = ("shapes", hw)
        if key not in self.cache:
            self.cache[key] = infer_shapes(self, hw)
        return self.cache[key]

    def conv_steps(self):
        return [s for s in self.steps if s.kind == "conv" and s.is_spatial]

    def block_ends(self):
        """The last conv layer of each block: before every downsampling and at the end.

        The default layers of deconv, top-k, occlusion and the callback. Only
        maps with more than one position count (not MobileNet's ``conv_preds``),
        and one-channel side outputs (HED's ``dsn1..5`` and ``fuse`` edge logits)
        only when the model has no wider conv.
        """
        convs = [s for s in self.conv_steps() if s.is_map]
        convs = [s for s in convs if s.output_shape[-1] > 1] or convs
        ends = []
        for a, b in zip(convs, convs[1:]):
            if b.output_shape[:2] != a.output_shape[:2]:
                ends.append(a.name)
        if convs:
            ends.append(convs[-1].name)
        return ends

    def last_map_before(self, name):
        """The last map (more than one position) on the path to ``name``: the Grad-CAM default."""
        target = self.step(name)
        maps = [self.steps[i] for i in self.ancestors([target.name]) if self.steps[i].is_map]
        if not maps:
            raise ValueError(f"model {self.model.name!r} has no spatial (H, W, C) layer with more than one "
                             f"position before {target.name!r}; pass layer= (CLI: --layer) explicitly.")
        return maps[-1].name


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


def _walk(model):
    fn = _functional(model)
    steps, scope = [], {}
    input_ids = tuple(id(t) for t in fn.inputs)
    _walk_function(fn, list(input_ids), _Ids(), steps, scope)
    check_channels_last(steps)
    output_ids = tuple(scope[id(t)] for t in fn.outputs)
    input_shapes = tuple(tuple(t.shape[1:]) for t in fn.inputs)
    graph = Graph(model, steps, input_ids, output_ids, input_shapes)
    graph.aliases = Aliases()  # every step resolves its own arguments (Step.arg_ids): nothing to alias
    # A nested base built with input_shape=(None, None, 3) records unknown
    # sizes in its own graph; re-deriving every shape from the outer inputs
    # gives each step its real spatial size.
    dtypes = [kt.dtype for kt in fn.inputs]
    for step, shapes in zip(steps, infer_shapes(graph, None, dtypes).values()):
        if shapes is not None:
            step.input_shapes, step.output_shape = shapes
    return graph


def check_channels_last(steps):
    """Refuse a ``channels_first`` layer, for every method alike (their maps would be the wrong shape)."""
    for step in steps:
        if getattr(step.layer, "data_format", "channels_last") == "channels_first":
            raise ValueError(
                f"layer {step.name!r} uses data_format='channels_first'; keras-convviz supports channels_last "
                f"(the TensorFlow default): rebuild the model with data_format='channels_last'.")


class _Ids:
    """Canonical tensor ids: a tensor's own id the first time, a fresh one for each further call.

    A nested model called twice (a siamese net, a backbone shared by two
    inputs) has one set of inner tensors for both calls; each call must be
    its own steps with its own values, or both calls would read one result.
    """

    def __init__(self):
        self.seen, self.calls = set(), 0

    def fresh(self, tensor):
        raw = id(tensor)
        if raw not in self.seen:
            self.seen.add(raw)
            return raw
        self.calls += 1
        return ("call", self.calls, raw)


def _walk_function(fn, input_ids, ids, steps, scope):
    """Append the steps of one call of ``fn``; ``scope`` maps this call's tensors to canonical ids."""
    for kt, cid in zip(fn.inputs, input_ids):
        scope[id(kt)] = cid
    for depth in sorted(fn._nodes_by_depth, reverse=True):
        for node in fn._nodes_by_depth[depth]:
            op = node.operation
            if not op or node.is_input:
                continue
            if any(id(t) not in scope for t in node.input_tensors):
                continue  # belongs to another model sharing this layer
            in_ids = [scope[id(t)] for t in node.input_tensors]
            if isinstance(op, keras.Model):
                inner, inner_scope = _functional(op), {}
                _walk_function(inner, in_ids, ids, steps, inner_scope)
                for outer, inner_out in zip(node.outputs, inner.outputs):
                    scope[id(outer)] = inner_scope[id(inner_out)]
                continue
            out_ids = tuple(ids.fresh(t) for t in node.outputs)
            scope.update(zip(map(id, node.outputs), out_ids))
            arg_ids = {id(t): cid for t, cid in zip(node.input_tensors, in_ids)}
            steps.append(_make_step(op, node, tuple(in_ids), out_ids, steps, arg_ids))


def _unique_name(layer, steps):
    taken = {s.name for s in steps}
    name = layer.name
    k = 1
    while name in taken:
        name = f"{layer.name}_{k}"
        k += 1
    return name


def _make_step(layer, node, in_ids, out_ids, steps, arg_ids):
    activation, fused = activation_of(layer)
    return Step(
        arg_ids=arg_ids,
        name=_unique_name(layer, steps),
        layer=layer,
        node=node,
        input_ids=in_ids,
        output_ids=out_ids,
        input_shapes=tuple(tuple(t.shape[1:]) for t in node.input_tensors),
        output_shape=tuple(node.outputs[0].shape[1:]),
        kind=layer_kind(layer),
        activation=activation,
        fused=fused,
    )
