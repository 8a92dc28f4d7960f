"""Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391) of the pre-softmax target logit.

``cam = relu(sum_k w_k A_k)`` with ``w_k`` the spatial mean of
``d S_target / d A_k`` over the feature maps ``A`` of a spatial layer (by
default the last spatial layer the class score depends on). With
``upsample=True`` the map is resized bilinearly to the input size inside the
same compiled function. Values are not normalized: use
``keras_convviz.render.normalize`` / ``heatmap`` to display them.
"""

from __future__ import annotations

import tensorflow as tf

from ..graph import walk
from ..probe import compiled, fast_conv_gradients, input_gradient, input_spec, run
from ..request import prepare
from ..select import pick_scores, score_step
from .gradients import per_image

__all__ = ["gradcam", "default_layer"]


def default_layer(model, output=None):
    """The last spatial layer with more than one position the class score depends on
    (the Grad-CAM default: ``Graph.last_map_before``)."""
    graph = walk(model)
    return graph.last_map_before(score_step(graph, output).name)


def _cam_fn(graph, layer, step, upsample):
    size = tuple(graph.input_shape[:2])

    def build():
        @tf.function(input_signature=[input_spec(graph), tf.TensorSpec((None,), tf.int64)], autograph=False)
        def cam(x, targets):
            with fast_conv_gradients():
                found = run(graph, x, [layer], linear=[step.name])
            maps = found[layer]
            grads = input_gradient(tf.reduce_sum(pick_scores(found[step.name], targets)), maps)
            weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
            heat = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1))
            if upsample and tuple(heat.shape[1:3]) != size:
                heat = tf.image.resize(heat[..., None], size, method="bilinear")[..., 0]
            return heat

        return cam

    return compiled(graph, ("gradcam", layer, step.name, bool(upsample)), build)


def gradcam(model, inputs, target=None, layer=None, upsample=True, output=None, batch_size=32):
    """Grad-CAM maps of the target logit.

    Args:
      model: a Keras model.
      inputs: a preprocessed batch ``(N, H, W, C)``.
      target: class index, list of one per image, or None (predicted class).
      layer: a spatial layer name; default the last spatial layer before the score.
      upsample: resize the maps to the input size (bilinear).
      output: index or name of the output to explain (multi-output models).
      batch_size: images per compiled call.

    Returns float32 ``(N, H, W)`` (``upsample=True``) or ``(N, h, w)``.
    """
    request = prepare(model, inputs, target, output, batch_size)
    graph, step = request.graph, request.score
    layer = default_layer(graph, output) if layer is None else graph.spatial_step(layer).name
    if graph.ancestors([step.name]).count(graph.names.index(layer)) == 0:
        raise ValueError(f"the score of {step.name!r} does not depend on layer {layer!r}; pick a "
                         f"layer before it, such as {default_layer(graph, output)!r}.")
    return per_image(_cam_fn(graph, layer, step, upsample), request)
