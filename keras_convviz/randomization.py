"""The cascading model-parameter randomization sanity check (Adebayo et al. 2018, arXiv:1810.03292).

A map that explains the model should change when the model's weights do.
:func:`randomization` re-initializes the layers from the top (the logits)
down, one stage at a time, keeping the earlier stages randomized (the
cascade), and reports the Spearman rank correlation between each image's map
of the trained model and its map at every stage. A map that depends on the
model decorrelates quickly; one that does not (an edge detector) stays close
to 1. The model's weights are restored afterwards, also on error.
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np

from .graph import walk
from .metrics import to_2d
from .request import prepare
from .select import score_step

__all__ = ["randomization", "Randomization", "randomization_layers", "spearman", "rankdata"]


def rankdata(a):
    """Ranks 1..n with ties given their average rank (scipy's ``rankdata``)."""
    a = np.asarray(a).reshape(-1)
    order = np.argsort(a, kind="mergesort")
    ordered = a[order]
    new = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(new) - 1
    sizes = np.bincount(group)
    ends = np.cumsum(sizes)
    average = (2 * ends - sizes + 1) / 2.0  # mean of ranks ends-sizes+1 .. ends
    ranks = np.empty(a.size, np.float64)
    ranks[order] = average[group]
    return ranks


def spearman(a, b):
    """Spearman rank correlation of two arrays (NaN when either is constant)."""
    ra, rb = rankdata(a), rankdata(b)
    if ra.size != rb.size:
        raise ValueError(f"arrays differ in size: {ra.size} vs {rb.size}")
    ra -= ra.mean()
    rb -= rb.mean()
    denom = math.sqrt(float((ra * ra).sum()) * float((rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def randomization_layers(model, output=None):
    """The layers with weights the class score depends on, from the top down."""
    graph = walk(model)
    step = score_step(graph, output)
    chain = [graph.steps[i] for i in graph.ancestors([step.name])]
    seen, layers = set(), []
    for s in reversed(chain):
        if s.layer.weights and id(s.layer) not in seen:
            seen.add(id(s.layer))
            layers.append(s.name)
    return layers


_INITIALIZER_NAMES = {
    "kernel": "kernel_initializer",
    "bias": "bias_initializer",
    "gamma": "gamma_initializer",
    "beta": "beta_initializer",
    "moving_mean": "moving_mean_initializer",
    "moving_variance": "moving_variance_initializer",
    "depthwise_kernel": "depthwise_initializer",
    "pointwise_kernel": "pointwise_initializer",
    "embeddings": "embeddings_initializer",
}


def _seeded(initializer, seed):
    config = initializer.get_config()
    if "seed" in config:
        config["seed"] = int(seed)
        return type(initializer).from_config(config)
    return initializer


def _reinitialize(layer, seed):
    """Draw fresh values for every weight of ``layer`` from its own initializers."""
    for k, variable in enumerate(layer.weights):
        short = variable.path.split("/")[-1] if hasattr(variable, "path") else variable.name
        short = short.split(":")[0]
        attr = _INITIALIZER_NAMES.get(short)
        init = getattr(layer, attr, None) if attr else None
        if init is None:
            init = (keras.initializers.GlorotUniform() if len(variable.shape) >= 2
                    else keras.initializers.Zeros())
        init = _seeded(keras.initializers.get(init), seed * 1009 + k)
        variable.assign(np.asarray(init(tuple(variable.shape), dtype=variable.dtype)))


@dataclasses.dataclass(frozen=True)
class Randomization:
    """Result of :func:`randomization`.

    ``layers[s]`` is the layer re-initialized at stage ``s`` (comma-joined
    names for a stage of several layers; every earlier layer stays
    randomized: the cascade); ``correlations[s, i]`` is the
    Spearman rank correlation of image ``i``'s map at stage ``s`` with its
    original map (NaN where a map is constant). ``original`` and ``maps`` hold
    the 2-D maps.
    """

    layers: list
    correlations: np.ndarray
    original: np.ndarray
    maps: np.ndarray

    def mean(self):
        """``{layer: mean correlation over images}`` (NaNs ignored)."""
        out = {}
        for name, row in zip(self.layers, self.correlations):
            finite = row[np.isfinite(row)]
            out[name] = float(finite.mean()) if finite.size else float("nan")
        return out


def method_function(method):
    """A callable, or the function of a map method's record (any of its names: ``"ig"``, ``"gradcam"``)."""
    if callable(method):
        return method
    from .registry import lookup, map_methods

    try:
        record = lookup(method)
    except ValueError:
        record = None
    if record is None or record not in map_methods():
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(m.name for m in map_methods())} "
                         f"or a callable method(model, inputs, target, **kwargs).")
    return record.load()


def _stages(graph, layers, output):
    """The cascade as lists of layer names re-initialized together, top first."""
    if layers is None:
        layers = randomization_layers(graph, output)
    if isinstance(layers, str):
        layers = [layers]
    stages = [[graph.step(n).name for n in ([entry] if isinstance(entry, str) else list(entry))]
              for entry in layers]
    if not stages or not all(stages):
        raise ValueError("no layer with weights to randomize.")
    return stages


def randomization(model, method, inputs, target=None, layers=None, seed=0, output=None,
                  **kwargs) -> Randomization:
    """Cascading model-parameter randomization (Adebayo et al. 2018, arXiv:1810.03292).

    Args:
      model: a Keras model; its weights are restored afterwards, also on error.
      method: the name of a map method (``registry.map_methods()``:
        ``"saliency"``, ``"ig"``, ``"gradcam"``, ``"scorecam"``, ...) or a callable ``method(model, inputs, target,
        **kwargs)`` returning maps in input space.
      inputs: a preprocessed batch.
      target: class index / list / None; None is resolved once on the trained
        model, so every stage explains the same class.
      layers: the cascade, top first; default :func:`randomization_layers`
        (every weighted layer from the logits down). Stage ``s`` re-initializes
        ``layers[s]`` on top of the stages before it; an entry may also be a
        list of layer names re-initialized together in one stage (e.g.
        ``[["predictions"], all_the_others]`` for "top layer" and "all layers").
      seed: seeds the fresh weights.
      **kwargs: passed to the method (``layer=``, ``samples=``, ...).

    Returns a :class:`Randomization`.
    """
    fn = method_function(method)
    request = prepare(model, inputs, target, output).with_predicted()
    graph, x, targets = request.graph, request.x, request.targets
    if output is not None:
        kwargs["output"] = output
    stages = _stages(graph, layers, output)
    cascade = [names[0] if len(names) == 1 else ",".join(names) for names in stages]
    original = to_2d(fn(model, x, list(targets), **kwargs))
    saved = {}
    correlations = np.empty((len(cascade), x.shape[0]), np.float64)
    maps = np.empty((len(cascade),) + original.shape, np.float64)
    try:
        for s, names in enumerate(stages):
            for j, name in enumerate(names):
                layer = graph.step(name).layer
                if id(layer) not in saved:
                    saved[id(layer)] = [(v, np.array(v.numpy(), copy=True)) for v in layer.weights]
                _reinitialize(layer, (seed + s) * 7919 + j)
            maps[s] = to_2d(fn(model, x, list(targets), **kwargs))
            correlations[s] = [spearman(o, m) for o, m in zip(original, maps[s])]
    finally:
        for pairs in saved.values():
            for variable, value in pairs:
                variable.assign(value)
    return Randomization(cascade, correlations, original, maps)
