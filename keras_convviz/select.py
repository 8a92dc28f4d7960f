"""What to explain: the class score (the pre-softmax logit) and top maps.

The class score is always the logit before the final softmax/sigmoid
(Simonyan et al. 2014), whether that activation is fused into the last Dense
or is its own layer. For a single-unit sigmoid, target 1 is the logit and
target 0 its negation.
"""

from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

from .checks import count, indices
from .graph import walk
from .probe import compiled, input_spec, run

__all__ = ["score_step", "logits", "num_classes", "target_scores", "pick_scores", "probabilities",
           "predicted_classes", "class_probabilities", "top_maps"]


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
    """The number of class scores of the (chosen) output."""
    return int(score_step(model, output).output_shape[-1])


def target_scores(scores, targets):
    """Pick each image's class score; single-unit outputs give ±logit (traceable)."""
    targets = tf.convert_to_tensor(targets, tf.int64)
    if scores.shape[-1] == 1:
        sign = tf.where(targets > 0, 1.0, -1.0)
        return scores[:, 0] * tf.cast(sign, scores.dtype)
    return tf.gather(scores, targets, axis=1, batch_dims=1)


def pick_scores(scores, targets):
    """Each image's target score; targets ``< 0`` take the predicted class (traceable)."""
    targets = tf.convert_to_tensor(targets, tf.int64)
    return target_scores(scores, tf.where(targets < 0, predicted(scores), targets))


def predicted(scores):
    """The predicted classes ``(N,)`` of class scores (single unit: logit > 0; traceable)."""
    if scores.shape[-1] == 1:
        return tf.cast(scores[:, 0] > 0, tf.int64)
    return tf.argmax(scores, axis=-1, output_type=tf.int64)


def probabilities(scores, head):
    """Class probabilities from the class scores, as the model's head defines them (traceable).

    A single unit gives ``(1 - p, p)``; a sigmoid head per-class sigmoids;
    anything else the softmax of the logits.
    """
    if scores.shape[-1] == 1:
        p = tf.sigmoid(scores)
        return tf.concat([1.0 - p, p], axis=-1)
    if head.activation == "sigmoid":
        return tf.sigmoid(scores)
    return tf.nn.softmax(scores, axis=-1)


def _head_fn(graph, head, what):
    def build():
        @tf.function(input_signature=[input_spec(graph)], autograph=False)
        def head_values(x):
            scores = run(graph, x, [], linear=[head.name])[head.name]
            return predicted(scores) if what == "predicted" else probabilities(scores, head)

        return head_values

    return compiled(graph, (what, head.name), build)


def _batched(fn, x, batch_size):
    return np.concatenate([fn(tf.constant(x[i:i + batch_size])).numpy() for i in range(0, len(x), batch_size)])


def predicted_classes(graph, head, x, batch_size=64):
    """Predicted classes ``(N,)`` of a batch of model inputs, compiled and batched."""
    return _batched(_head_fn(graph, head, "predicted"), x, batch_size)


def class_probabilities(graph, head, x, batch_size=64):
    """Class probabilities ``(N, K)`` of a batch of model inputs (see ``probabilities``)."""
    return _batched(_head_fn(graph, head, "probabilities"), x, batch_size)


def top_maps(activations, spec):
    """Indices ``(N, M)`` of the feature maps with the largest max activation.

    ``activations`` is ``(N, H, W, C)``; ``spec`` is a count, a fraction, or an
    explicit list of map indices (then the same for every image).
    """
    acts = np.asarray(activations)
    channels = acts.shape[-1]
    if isinstance(spec, (list, tuple, np.ndarray)):
        idx = indices(spec, channels, "map")
        return np.broadcast_to(idx, (acts.shape[0], idx.size)).copy()
    m = count(spec, channels, "maps")
    peaks = acts.reshape(acts.shape[0], -1, channels).max(axis=1)
    return np.argsort(-peaks, axis=1, kind="stable")[:, :m]
