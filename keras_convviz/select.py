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
           "predicted_classes", "class_probabilities", "top_maps", "region_score"]


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


def region_score(model, box, layer=None, name="region_score"):
    """A model whose one output is the mean of a spatial map over ``box``: a score to explain.

    Dense-output networks (edge detectors such as HED, segmenters) have no
    class score; this makes one that every class-score method (saliency,
    SmoothGrad, guided backprop, IG, Grad-CAM, occlusion) explains with
    ``target=None`` or 1: ``S(x) = mean of map[y:y+h, x:x+w]``. ``layer``
    defaults to the model's output, taken before its standalone final
    activation (the edge *logits*, as class scores are pre-softmax logits).
    ``box = (x, y, w, h)`` is in that map's units (input pixels for a
    full-resolution output). The new model shares the original's layers and
    weights (Cropping2D + GlobalAveragePooling2D named ``name``).
    """
    import keras

    graph = walk(model)
    step = graph.step(layer) if layer is not None else graph.output_steps[0]
    if layer is None and step.activation != "linear" and not step.fused:
        step = graph.producer(step.input_ids[0])  # the logits before a standalone activation
    step = graph.spatial_step(step)
    h, w = step.output_shape[:2]
    values = [int(v) for v in box] if len(tuple(box)) == 4 else []
    if len(values) != 4 or values[2] < 1 or values[3] < 1 or values[0] < 0 or values[1] < 0 \
            or values[0] + values[2] > w or values[1] + values[3] > h:
        raise ValueError(f"box {tuple(box)!r} must be (x, y, w, h) inside the {h}x{w} (HxW) map of "
                         f"{step.name!r}, with w, h >= 1.")
    x0, y0, bw, bh = values
    try:
        tensor = step.node.outputs[0]
        crop = keras.layers.Cropping2D(((y0, h - y0 - bh), (x0, w - x0 - bw)), name=f"{name}_box")(tensor)
        score = keras.layers.GlobalAveragePooling2D(name=name)(crop)
        return keras.Model(graph.model.inputs, score, name=f"{graph.model.name}_{name}")
    except ValueError as err:
        raise ValueError(f"cannot build a region score on layer {step.name!r} (inside a nested model?): "
                         f"{str(err).splitlines()[0]}; pass a layer of the outer model.") from None
