"""What feature visualization maximizes: objectives that compose with weights.

After Olah et al. 2017 ("Feature Visualization", Distill) and Lucid's
``objectives`` module. Each objective is a weighted sum of terms; every term
gives one value per image of the batch, and the batch can hold different
units of the same layer (16 channels of one layer in one batch, one image
each)::

    class_logit(c)            the pre-softmax logit of class c (Simonyan et al. 2014, arXiv:1312.6034)
    class_log_probability(c)  the log of the model's own softmax / sigmoid output for class c;
                              temperature=T takes it of logits / T (softer: T = 8 keeps raising
                              the class after its probability is 1 while pushing the others down)
    channel(layer, k)         the mean over positions of channel k of layer's pre-activation output
    neuron(layer, k, (y, x))  one value of that map (the centre by default)
    direction(layer, v)       the mean over positions of <activation, v> / |v|
    diversity(layer)          minus the mean cosine similarity of an image's Gram matrix with the
                              other images' (Olah et al. 2017, "Diversity"): several images of one
                              objective that differ

Objectives add, subtract and scale: ``channel("c3", 5) - 0.5 * channel("c3", 7)``,
``channel("c3", 5) + 1e2 * diversity("c3")``. An int or a list gives the unit
of each image: ``channel("c3", [0, 5, 9])`` is three images, one per channel;
single values are shared by every image.

Layers are read before their activation, like the class logit: maximizing a
ReLU'd value would stop at zero gradient where the unit is off.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Optional

import numpy as np
import tensorflow as tf

from ..select import target_scores

__all__ = ["Objective", "Term", "Plan", "plan", "values", "arg_specs", "arg_tensors", "class_logit", "class_log_probability", "channel", "neuron", "direction",
           "diversity", "as_objective", "KINDS", "CLASS_KINDS"]

CLASS_KINDS = ("logit", "log_probability")
KINDS = CLASS_KINDS + ("channel", "neuron", "direction", "diversity")


@dataclasses.dataclass(frozen=True, eq=False)
class Term:
    """One weighted term: ``kind`` of ``layer`` (the output selector for class terms), the
    unit(s) ``units`` (an int, a list per image, or None), a ``position`` (neurons) or a
    ``vector`` (directions), a softmax ``temperature`` (class log probabilities) and its
    ``weight``."""

    kind: str
    layer: object = None
    units: object = None
    position: Optional[tuple] = None
    vector: Optional[np.ndarray] = None
    weight: float = 1.0
    temperature: float = 1.0


@dataclasses.dataclass(frozen=True)
class Objective:
    """A weighted sum of :class:`Term` objects (build it with the functions of this module)."""

    terms: tuple

    def __add__(self, other):
        return Objective(self.terms + as_objective(other).terms)

    def __radd__(self, other):
        if isinstance(other, numbers.Number) and other == 0:  # sum([...])
            return self
        return as_objective(other) + self

    def __mul__(self, weight):
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not np.isfinite(weight):
            raise ValueError(f"an objective can only be scaled by a finite number, got {weight!r}")
        return Objective(tuple(dataclasses.replace(t, weight=t.weight * float(weight)) for t in self.terms))

    __rmul__ = __mul__

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-as_objective(other))


def as_objective(value) -> Objective:
    """An :class:`Objective`, or a ``ValueError`` naming how to build one."""
    if isinstance(value, Objective):
        return value
    raise ValueError(f"objective must be built with featurevis.channel / neuron / direction / class_logit / "
                     f"class_log_probability / diversity, got {value!r}")


def class_logit(target, output=None) -> Objective:
    """The pre-softmax logit of class ``target`` (an int or one per image)."""
    return Objective((Term("logit", output, target),))


def class_log_probability(target, output=None, temperature=1.0) -> Objective:
    """The log of the model's own (softmax or sigmoid) probability of ``target``,
    computed from ``logits / temperature`` (1: the model's own probability)."""
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not temperature > 0 \
            or not np.isfinite(temperature):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return Objective((Term("log_probability", output, target, temperature=float(temperature)),))


def channel(layer, index) -> Objective:
    """The mean of channel ``index`` (an int or one per image) of ``layer``."""
    return Objective((Term("channel", layer, index),))


def neuron(layer, index, position=None) -> Objective:
    """Channel ``index`` of ``layer`` at ``position = (y, x)`` (default: the centre of the map)."""
    return Objective((Term("neuron", layer, index, position=position),))


def direction(layer, vector) -> Objective:
    """The mean over positions of the activation's projection on ``vector`` (``(C,)`` or one per image)."""
    return Objective((Term("direction", layer, None, vector=np.asarray(vector, np.float32)),))


def diversity(layer) -> Objective:
    """Minus the mean Gram-matrix cosine similarity of each image with the others (weight it, e.g. 1e2)."""
    return Objective((Term("diversity", layer),))


# ---------------------------------------------------------------- values (traceable)
def class_value(kind, head_activation, logits, index, temperature=None):
    """A class term: the logit, or the log of the model's own output probability (``(N,)``)
    of ``logits / temperature`` (``(N, 1)``; None: 1)."""
    if kind == "logit":
        return target_scores(logits, index)
    if temperature is not None:
        logits = logits / temperature
    if logits.shape[-1] == 1 or head_activation == "sigmoid":
        return tf.math.log_sigmoid(target_scores(logits, index))
    return target_scores(tf.nn.log_softmax(logits), index)


def unit_value(kind, act, index, position, vector):
    """A channel / neuron / direction / diversity term of one layer's activation ``(N,)``."""
    if kind == "channel":
        return tf.gather(tf.reduce_mean(act, axis=[1, 2]), index, axis=1, batch_dims=1)
    if kind == "neuron":
        rows = tf.range(tf.shape(act, out_type=tf.int64)[0])
        return tf.gather_nd(act, tf.stack([rows, position[:, 0], position[:, 1], index], axis=1))
    if kind == "direction":
        unit = vector / tf.norm(vector, axis=1, keepdims=True)
        return tf.reduce_mean(tf.einsum("nhwc,nc->nhw", act, unit), axis=[1, 2])
    return _diversity(act)


def _diversity(act):
    """Lucid's diversity: minus each image's mean cosine similarity of Gram matrices with the others."""
    n = tf.shape(act)[0]
    flat = tf.reshape(act, [n, -1, act.shape[-1]])
    gram = tf.matmul(flat, flat, transpose_a=True) / tf.cast(tf.shape(flat)[1], act.dtype)
    gram = tf.reshape(gram, [n, -1])
    gram = gram / (tf.norm(gram, axis=1, keepdims=True) + 1e-12)
    similarity = tf.matmul(gram, gram, transpose_b=True)
    others = tf.reduce_sum(similarity, axis=1) - tf.linalg.diag_part(similarity)
    return -others / tf.maximum(tf.cast(n, act.dtype) - 1.0, 1.0)


# ---------------------------------------------------------------- checked against a model
@dataclasses.dataclass(frozen=True)
class Plan:
    """An objective checked against a model: ``family`` is static (part of the compiled step's
    key: per term its kind, layer and the head's activation), ``args`` the per-call tensors'
    numpy values (per term: unit ``(N,)``, position ``(N, 2)``, vector ``(N, D)``, weight)."""

    family: tuple
    args: tuple
    count: int
    labels: tuple

    @property
    def weights(self) -> np.ndarray:
        return np.asarray([a[3] for a in self.args], np.float32)


def _per_image(values, what):
    """An int or a list -> an int64 array (at least one)."""
    if isinstance(values, (bool, np.bool_)) or values is None:
        raise ValueError(f"{what} must be an index or a list of indices, got {values!r}")
    array = np.asarray([values] if isinstance(values, numbers.Integral) else list(values))
    if array.size == 0 or array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{what} must be an index or a list of indices, got {values!r}")
    return array.astype(np.int64)


def _units(graph, term):
    """A unit term: its layer step, per-image channels, positions and vectors (checked)."""
    step = graph.spatial_step(term.layer)
    h, w, c = (int(d) for d in step.output_shape)
    index = np.zeros(1, np.int64) if term.kind in ("direction", "diversity") else \
        _per_image(term.units, f"channel of layer {step.name!r}")
    bad = index[(index < 0) | (index >= c)]
    if bad.size:
        raise ValueError(f"channel {int(bad[0])} is outside 0..{c - 1} of layer {step.name!r} ({c} channels)")
    position = np.asarray([(h // 2, w // 2) if term.position is None else term.position], np.int64).reshape(-1, 2)
    outside = (position[:, 0] < 0) | (position[:, 0] >= h) | (position[:, 1] < 0) | (position[:, 1] >= w)
    if term.kind == "neuron" and outside.any():
        raise ValueError(f"neuron position {tuple(position[outside][0].tolist())} is outside the {h}x{w} map of layer "
                         f"{step.name!r}; use y in 0..{h - 1} and x in 0..{w - 1}")
    vector = np.zeros((1, c), np.float32)
    if term.kind == "direction":
        vector = np.asarray(term.vector, np.float32).reshape(-1, c) if term.vector.size % c == 0 else None
        if vector is None or not np.all(np.isfinite(vector)) or np.any(np.linalg.norm(vector, axis=1) == 0):
            raise ValueError(f"direction vector must be finite and non-zero with {c} values (the channels of "
                             f"{step.name!r}), or one such row per image")
    return step, index, position, vector


def _class_term(graph, term):
    from ..select import num_classes, score_step

    head = score_step(graph, term.layer)
    if term.units is None:
        raise ValueError("a class objective needs target=CLASS (an int or a list, one image each)")
    limit = max(num_classes(graph, term.layer), 2)
    index = _per_image(term.units, "target")
    bad = index[(index < 0) | (index >= limit)]
    if bad.size:
        raise ValueError(f"target {int(bad[0])} is outside the model's classes 0..{limit - 1}")
    if term.kind == "log_probability" and head.activation not in ("softmax", "sigmoid"):
        raise ValueError(f"class_log_probability needs a softmax or sigmoid output, but {head.name!r} has "
                         f"activation {head.activation!r}; use class_logit")
    # a class term's "vector" slot carries its temperature: one (N, 1) row per image, no retracing
    return head, index, np.zeros((1, 2), np.int64), np.full((1, 1), term.temperature, np.float32)


def _broadcast(array, count, what):
    if len(array) not in (1, count):
        raise ValueError(f"{what} has {len(array)} entries for {count} images; give one, or one per image")
    return np.repeat(array, count, axis=0) if len(array) == 1 else array


def plan(graph, objective, images=None) -> Plan:
    """Check ``objective`` against the walked model; ``images``: the batch size when every term is shared."""
    objective = as_objective(objective)
    if not objective.terms:
        raise ValueError("the objective has no terms")
    resolved = []
    for term in objective.terms:
        if term.kind not in KINDS:
            raise ValueError(f"unknown objective kind {term.kind!r}; use one of {', '.join(KINDS)}")
        parts = _class_term(graph, term) if term.kind in CLASS_KINDS else _units(graph, term)
        resolved.append((term,) + parts)
    sizes = [len(r[2]) for r in resolved] + [len(r[4]) for r in resolved]
    count = max(sizes) if images is None else int(images)
    if isinstance(images, bool) or count < 1:
        raise ValueError(f"images must be a positive integer, got {images!r}")
    if any(t.kind == "diversity" for t in objective.terms) and count < 2:
        raise ValueError("diversity compares several images: pass images=N (N >= 2) or several units")
    family, args, labels = [], [], [[] for _ in range(count)]
    for term, step, index, position, vector in resolved:
        index = _broadcast(index, count, f"{term.kind} units")
        args.append((index, _broadcast(position, count, "position"), _broadcast(vector, count, "vector"),
                     float(term.weight)))
        family.append((term.kind, step.name, step.activation))
        for i in range(count):
            unit = "" if term.kind in ("direction", "diversity") else f":{int(index[i])}"
            labels[i].append(f"{term.kind} {step.name}{unit}")
    return Plan(tuple(family), tuple(args), count, tuple(" + ".join(parts) for parts in labels))


def values(graph, family, x, args):
    """Every term's unweighted value per image, a list of ``(N,)`` tensors (traceable)."""
    from ..probe import run

    acts = run(graph, x, [], linear=sorted({name for _, name, _ in family}))
    out = []
    for (kind, name, activation), (index, position, vector, _) in zip(family, args):
        if kind in CLASS_KINDS:
            out.append(class_value(kind, activation, acts[name], index, vector))
        else:
            out.append(unit_value(kind, acts[name], index, position, vector))
    return out


def arg_specs(family):
    """The ``tf.TensorSpec`` of each term's per-call arguments."""
    one = (tf.TensorSpec((None,), tf.int64), tf.TensorSpec((None, 2), tf.int64),
           tf.TensorSpec((None, None), tf.float32), tf.TensorSpec((), tf.float32))
    return tuple(one for _ in family)


def arg_tensors(args):
    """The per-call arguments as tensors (matching :func:`arg_specs`)."""
    return tuple((tf.constant(i, tf.int64), tf.constant(p, tf.int64), tf.constant(v, tf.float32),
                  tf.constant(w, tf.float32)) for i, p, v, w in args)
