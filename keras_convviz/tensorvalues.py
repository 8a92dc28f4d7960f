"""Values of a model's tensors by canonical id, and shapes at any input size.

The walk (:mod:`keras_convviz.graph`) gives every tensor of every layer call a
canonical id; these containers let a layer's Keras node read its inputs by
its own tensor ids (``NodeArguments.fill_in``) from values stored by
canonical id.
"""

from __future__ import annotations

import keras

__all__ = ["Aliases", "CallValues", "Values", "infer_shapes"]


class Aliases(dict):
    """tensor id -> canonical tensor id; ``fill_in`` reads values through it."""

    def canon(self, tid):
        while tid in self:
            tid = self[tid]
        return tid


class CallValues:
    """``values`` read through one step's ``arg_ids`` (what ``NodeArguments.fill_in`` looks up)."""

    def __init__(self, values, arg_ids):
        self.values, self.arg_ids = values, arg_ids

    def __getitem__(self, raw):
        return self.values[self.arg_ids.get(raw, raw)]

    def get(self, raw, default=None):
        return self.values.get(self.arg_ids.get(raw, raw), default)


class Values(dict):
    """Values keyed by canonical id, readable by a node's own (aliased) ids."""

    def __init__(self, aliases):
        super().__init__()
        self.aliases = aliases

    def __getitem__(self, tid):
        return dict.__getitem__(self, self.aliases.canon(tid))

    def get(self, tid, default=None):
        return dict.get(self, self.aliases.canon(tid), default)


def infer_shapes(graph, hw=None, dtypes=None):
    """Per step ``(input_shapes, output_shape)`` (batch dimension dropped), in order.

    ``hw`` replaces the spatial size of the first input. Steps that cannot
    be computed at that size, and the steps after them, map to ``None``.
    """
    from keras import tree  # keras.tree: flatten nested structures

    values = Values(graph.aliases)
    dtypes = dtypes or ["float32"] * len(graph.input_ids)
    for i, (tid, shape, dtype) in enumerate(zip(graph.input_ids, graph.input_shapes, dtypes)):
        if i == 0 and hw is not None:
            shape = tuple(hw) + tuple(shape[2:])
        dict.__setitem__(values, tid, keras.KerasTensor((None,) + tuple(shape), dtype=dtype))
    shapes = {}
    for step in graph.steps:
        if any(values.get(t) is None for t in step.input_ids):
            shapes[step.name] = None
            continue
        try:
            args, kwargs = step.fill_in(values)
            kwargs.pop("training", None)
            outs = tree.flatten(step.layer.compute_output_spec(*args, **kwargs))
        except Exception:  # a layer that only works at the model's own size
            shapes[step.name] = None
            continue
        ins = tree.flatten((args, kwargs))
        shapes[step.name] = (tuple(tuple(t.shape[1:]) for t in ins if isinstance(t, keras.KerasTensor)),
                             tuple(outs[0].shape[1:]))
        for oid, value in zip(step.output_ids, outs):
            dict.__setitem__(values, oid, value)
    return shapes


