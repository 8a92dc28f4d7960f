"""What to explain: the class score (the pre-softmax logit) and top maps.

The class score is always the logit before the final softmax/sigmoid
(Simonyan et al. 2014), whether that activation is fused into the last Dense
or is its own layer. For a single-unit sigmoid, target 1 is the logit and
target 0 its negation.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import tensorflow as tf

from .graph import walk
from .probe import run

__all__ = ["score_step", "logits", "resolve_targets", "target_scores", "count", "top_maps"]


def score_step(model, output=None):
    """The step whose pre-activation output is the class score.

    ``output`` selects one output of a multi-output model by index or layer
    name; it is required when there are several.
    """
    graph = walk(model)
    outs = graph.output_steps
    if output is None:
        if len(outs) != 1:
            raise ValueError(
                f"model {graph.model.name!r} has {len(outs)} outputs "
                f"({', '.join(s.name for s in outs)}); pick one with output=INDEX or output=NAME."
            )
        return outs[0]
    if isinstance(output, numbers.Integral):
        if not 0 <= int(output) < len(outs):
            raise ValueError(f"output={output} but the model has {len(outs)} outputs (0..{len(outs) - 1}).")
        return outs[int(output)]
    names = [s.name for s in outs]
    if output not in names:
        raise ValueError(f"output={output!r} is not an output layer; the outputs are {', '.join(names)}.")
    return graph.step(output)


def logits(model, x, output=None, rule=None):
    """Pre-softmax class scores ``(N, K)`` for a batch (traceable)."""
    step = score_step(model, output)
    return run(model, x, [], rule=rule, linear=[step.name])[step.name]


def num_classes(model, output=None):
    return int(score_step(model, output).output_shape[-1])


def resolve_targets(target, n, classes, predicted=None):
    """``target`` (int, list of one per image, or None) -> int array ``(n,)``.

    ``None`` takes ``predicted`` (the argmax classes). Out-of-range targets
    raise ``ValueError``. A single-unit output accepts targets 0 and 1.
    """
    limit = max(int(classes), 2)
    if target is None:
        if predicted is None:
            raise ValueError("target=None needs the predicted classes")
        out = np.asarray(predicted, np.int64).reshape(-1)
    elif isinstance(target, numbers.Integral):
        out = np.full((n,), int(target), np.int64)
    else:
        out = np.asarray(list(target), np.int64).reshape(-1)
        if out.shape[0] != n:
            raise ValueError(f"target has {out.shape[0]} entries for {n} images; give one per image.")
    bad = out[(out < 0) | (out >= limit)]
    if bad.size:
        raise ValueError(f"target {int(bad[0])} is outside the model's classes 0..{limit - 1}.")
    return out


def target_scores(scores, targets):
    """Pick each image's class score; single-unit outputs give ±logit (traceable)."""
    targets = tf.convert_to_tensor(targets, tf.int64)
    if scores.shape[-1] == 1:
        sign = tf.where(targets > 0, 1.0, -1.0)
        return scores[:, 0] * tf.cast(sign, scores.dtype)
    return tf.gather(scores, targets, axis=1, batch_dims=1)


def count(spec, total, what="maps"):
    """A count (int >= 1) or a fraction (float in (0, 1]) of ``total`` -> an int.

    Anything else raises ``ValueError``: unlike the seed tool, we never fall
    back silently to a single instance.
    """
    if isinstance(spec, bool):
        raise ValueError(f"{what} must be a count or a fraction, got {spec!r}")
    if isinstance(spec, numbers.Integral):
        if spec < 1 or spec > total:
            raise ValueError(f"{what}={spec} but there are {total}; use 1..{total} or a fraction in (0, 1].")
        return int(spec)
    if isinstance(spec, numbers.Real):
        if not 0.0 < float(spec) <= 1.0 or math.isnan(spec):
            raise ValueError(f"{what}={spec}: a fraction must be in (0, 1]; use an int for a count.")
        return max(1, int(math.ceil(float(spec) * total - 1e-9)))
    raise ValueError(f"{what} must be an int count or a float fraction, got {spec!r}")


def top_maps(activations, spec):
    """Indices ``(N, M)`` of the feature maps with the largest max activation.

    ``activations`` is ``(N, H, W, C)``; ``spec`` is a count, a fraction, or an
    explicit list of map indices (then the same for every image).
    """
    acts = np.asarray(activations)
    channels = acts.shape[-1]
    if isinstance(spec, (list, tuple, np.ndarray)):
        idx = np.asarray(spec, np.int64).reshape(-1)
        if idx.size == 0 or idx.min() < 0 or idx.max() >= channels:
            raise ValueError(f"map indices {list(idx)} must be in 0..{channels - 1}")
        return np.broadcast_to(idx, (acts.shape[0], idx.size)).copy()
    m = count(spec, channels, "maps")
    peaks = acts.reshape(acts.shape[0], -1, channels).max(axis=1)
    return np.argsort(-peaks, axis=1, kind="stable")[:, :m]
