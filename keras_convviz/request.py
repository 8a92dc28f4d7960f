"""User arguments -> one validated request: graph, batch, class score, targets.

Every public entry point (the methods, the metrics, the callback, the CLI)
turns its arguments into a :class:`Request` once, here, and everything below
takes the request or its graph. The checks raise a ``ValueError`` that names
the fix before any TensorFlow work is done.

The batching helpers (``chunks``, ``accumulate``) bound memory the same way
everywhere: at most ``batch_size`` model inputs per compiled call.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np

from .checks import positive_int, resolve_targets
from .graph import Graph, Step, walk
from .select import predicted_classes, score_step

__all__ = ["fill_values", "Request", "prepare", "check_model", "as_batch", "chunks", "accumulate"]


@dataclasses.dataclass(frozen=True)
class Request:
    """A validated call: the walked model, the input batch and what to explain.

    ``score`` is the step whose pre-activation output is the class score
    (``None`` for methods that explain a layer, not a class). ``targets``
    holds one class per image; ``-1`` stands for the predicted class until
    :meth:`with_predicted` resolves it.
    """

    graph: Graph
    x: np.ndarray
    score: Optional[Step] = None
    targets: Optional[np.ndarray] = None
    batch_size: int = 32

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def with_predicted(self) -> "Request":
        """This request with every ``-1`` target replaced by the predicted class."""
        if self.targets is None or not np.any(self.targets < 0):
            return self
        guess = predicted_classes(self.graph, self.score, self.x, self.batch_size)
        return dataclasses.replace(self, targets=np.where(self.targets < 0, guess, self.targets))

    def slices(self):
        """``(start, stop)`` slices of the batch, each at most ``batch_size`` images."""
        return chunks(self.n, self.batch_size)


def prepare(model, inputs, target=None, output=None, batch_size=32, scores=True, fixed_size=True) -> Request:
    """Validate ``inputs`` (and, with ``scores``, ``target``/``output``) once.

    Args:
      model: a Keras model or a walked graph.
      inputs: a preprocessed batch ``(N, H, W, C)``.
      target: class index, list of one per image, or None (predicted class).
      output: index or name of the output to explain (multi-output models).
      batch_size: model inputs per compiled call.
      scores: the method explains a class score (False: a layer, no target).
      fixed_size: the method needs a model with a fixed input size
        (:func:`check_model`; only ``capture`` runs without one).
    """
    batch_size = positive_int(batch_size, "batch_size")
    graph = walk(model)
    head = check_model(graph, scores=scores, output=output, fixed_size=fixed_size)
    x = as_batch(graph, inputs)
    if not scores:
        return Request(graph, x, batch_size=batch_size)
    targets = resolve_targets(target, x.shape[0], int(head.output_shape[-1]))
    return Request(graph, x, head, targets, batch_size)


def check_model(graph, scores=True, output=None, fixed_size=True) -> Optional[Step]:
    """The model-capability check every method runs before compiling anything.

    ``fixed_size``: the model takes a fixed ``(H, W, C)`` input (occlusion
    grids, Grad-CAM upsampling, deconv canvases and the compiled signatures
    need it). ``scores``: the explained output is a ``(N, classes)`` class
    score vector (not a feature map); returns that step (None without ``scores``).
    Every method explains one image input: a model with several is refused here.
    """
    if len(graph.input_ids) != 1:
        raise ValueError(
            f"model {graph.model.name!r} has {len(graph.input_ids)} inputs; the methods explain one image "
            f"input: wrap it as keras.Model(image_input, model([image_input, *fixed_other_inputs])) first."
        )
    if fixed_size and (len(graph.input_shape) != 3 or any(d is None for d in graph.input_shape)):
        raise ValueError(
            f"model {graph.model.name!r} takes inputs of shape {tuple(graph.input_shape)}; this method needs "
            f"a fixed (H, W, C) image input: rebuild it with keras.Input(shape=(H, W, C)) and the same weights."
        )
    return class_score_step(graph, output) if scores else None


def class_score_step(graph, output=None):
    """The class-score step, refusing outputs that are not a ``(N, classes)`` vector."""
    head = score_step(graph, output)
    if len(head.output_shape) != 1 or head.output_shape[-1] is None:
        raise ValueError(
            f"output layer {head.name!r} has shape {head.output_shape}; this method explains "
            f"a class score vector (N, classes). Pick a classification output with output=, or explain "
            f"a region of a spatial output with --region X,Y,W,H (image pixels; Python: "
            f"keras_convviz.select.region_score(model, box))."
        )
    return head


def as_batch(graph, inputs, dtype=np.float32):
    """Validate model inputs: a finite ``(N, H, W, C)`` batch matching the walked model."""
    x = np.asarray(inputs.numpy() if hasattr(inputs, "numpy") else inputs)
    expected = graph.input_shape
    if x.ndim == len(expected):
        raise ValueError(
            f"inputs have shape {x.shape}; pass a batch (N, {', '.join(map(str, expected))}),"
            f" e.g. inputs[None]."
        )
    if x.ndim != len(expected) + 1 or any(
        e is not None and e != a for e, a in zip(expected, x.shape[1:])
    ):
        raise ValueError(
            f"inputs have shape {x.shape} but model {graph.model.name!r} expects "
            f"(N, {', '.join(map(str, expected))}); resize or preprocess them first."
        )
    if x.shape[0] == 0:
        raise ValueError("inputs are an empty batch; pass at least one image.")
    x = x.astype(dtype, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError("inputs contain NaN or Inf values; clean or re-preprocess them.")
    return x


def chunks(total, batch_size):
    """Near-equal ``(start, stop)`` slices of ``range(total)``, each <= ``batch_size``."""
    count = max(1, math.ceil(total / batch_size))
    bounds = np.linspace(0, total, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def accumulate(total, idx, values):
    """``total[idx] += values`` for sorted ``idx`` (sums each run of equal indices first)."""
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    total[idx[starts]] += np.add.reduceat(values, starts, axis=0)


def fill_values(fill, x, default="mean") -> np.ndarray:
    """The per-image fill colour ``(N, C)`` in model-input space of an occluder or a mask.

    ``fill``: ``"mean"`` (each image's mean pixel), a number, ``C`` channel
    values or an ``(N, C)`` array; None means ``default`` (occlusion: the
    mean pixel; RISE: 0, as its paper). ``ValueError`` names the choices.
    """
    n, c = x.shape[0], x.shape[-1]
    fill = default if fill is None else fill
    choices = f"'mean' (each image's mean pixel), a number, {c} channel values or an (N, {c}) array"
    if isinstance(fill, str):
        if fill != "mean":
            raise ValueError(f"fill must be {choices}; got {fill!r}.")
        return np.asarray(x).reshape(n, -1, c).mean(axis=1).astype(np.float32)
    arr = np.asarray(fill, np.float32)
    if arr.ndim == 0 or arr.shape == (c,):
        arr = np.broadcast_to(arr, (n, c)).copy()
    elif arr.shape != (n, c):
        raise ValueError(f"fill must be {choices}; got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError("fill contains NaN or Inf")
    return arr
