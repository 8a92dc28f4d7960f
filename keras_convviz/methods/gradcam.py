"""Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391) of the pre-softmax target logit,
and the base every gradient-based class activation map shares (``methods/cams.py``).

``cam = relu(sum_k w_k A_k)`` with ``w_k`` the spatial mean of
``d S_target / d A_k`` over the feature maps ``A`` of a spatial layer (by
default the last spatial layer the class score depends on). With
``upsample=True`` the map is resized bilinearly to the input size inside the
same compiled function. Values are not normalized: use
``keras_convviz.render.normalize`` / ``heatmap`` to display them.

The base (in the manner of pytorch-grad-cam's ``base_cam.py``):
:func:`class_activation_map` validates the call once (``request.prepare``),
picks the layer (:func:`cam_layer`) and runs one compiled function per
(graph, method, layer, score, upsample) (:func:`cam_function`). That
function runs the model to the layer and to the pre-softmax target logit
``S`` (``probe.run``), takes ``G = d S / d A``, hands ``(A, G)`` to the
method's ``combine``, which returns the un-rectified ``(N, h, w)`` map, and
applies the ReLU and the resize. A method is thus just its ``combine``.
"""

from __future__ import annotations

import tensorflow as tf

from ..graph import walk
from ..probe import compiled, fast_conv_gradients, input_gradient, input_spec, run
from ..request import prepare
from ..select import pick_scores, score_step
from .gradients import per_image

__all__ = ["gradcam", "default_layer", "cam_layer", "cam_function", "class_activation_map",
           "channel_weighted", "finish_cam"]


def default_layer(model, output=None):
    """The last spatial layer with more than one position the class score depends on
    (the Grad-CAM default: ``Graph.last_map_before``)."""
    graph = walk(model)
    return graph.last_map_before(score_step(graph, output).name)


def cam_layer(graph, step, layer=None, output=None):
    """The explained layer's name: ``layer`` (a spatial layer the score ``step`` depends on) or the default.

    Raises ``ValueError`` naming the fix for an unknown or non-spatial layer
    and for a layer the score does not depend on (after it, or off its path).
    """
    layer = default_layer(graph, output) if layer is None else graph.spatial_step(layer).name
    if graph.ancestors([step.name]).count(graph.names.index(layer)) == 0:
        raise ValueError(f"the score of {step.name!r} does not depend on layer {layer!r}; pick a "
                         f"layer before it, such as {default_layer(graph, output)!r}.")
    return layer


def cam_function(graph, layer, step, upsample, name, combine, gradients=True):
    """The compiled ``(x, targets) -> (N, H, W)`` (or ``(N, h, w)``) map function of one CAM method.

    ``combine(A, G)`` gets the layer's activations ``A`` and ``G = d S / d A``
    of the pre-softmax target logit ``S`` (``G`` is None when ``gradients`` is
    False: then only the layers up to ``layer`` run), both ``(N, h, w, K)``,
    and returns the ``(N, h, w)`` map before the ReLU. Compiled once per
    (graph, ``name``, layer, score, upsample).
    """
    size = tuple(graph.input_shape[:2])

    def build():
        @tf.function(input_signature=[input_spec(graph), tf.TensorSpec((None,), tf.int64)], autograph=False)
        def cam(x, targets):
            if gradients:
                with fast_conv_gradients():
                    found = run(graph, x, [layer], linear=[step.name])
                maps = found[layer]
                grads = input_gradient(tf.reduce_sum(pick_scores(found[step.name], targets)), maps)
            else:
                maps, grads = run(graph, x, [layer])[layer], None
            return finish_cam(combine(maps, grads), size if upsample else None)

        return cam

    return compiled(graph, ("cam", name, layer, step.name, bool(upsample)), build)


def class_activation_map(model, inputs, target, layer, upsample, output, batch_size, name, combine,
                         gradients=True):
    """Run one CAM method (``combine``, see :func:`cam_function`) over a batch, ``batch_size`` images a call.

    The public CAM functions are this with their own ``name`` and ``combine``.
    Returns float32 ``(N, H, W)`` (``upsample``) or ``(N, h, w)``.
    """
    request = prepare(model, inputs, target, output, batch_size)
    layer = cam_layer(request.graph, request.score, layer, output)
    fn = cam_function(request.graph, layer, request.score, upsample, name, combine, gradients)
    return per_image(fn, request)


def finish_cam(heat, size=None):
    """Every CAM's last step: ``relu``, then (given ``size``) a bilinear resize of the ``(N, h, w)`` map."""
    heat = tf.nn.relu(heat)
    if size is not None and tuple(heat.shape[1:3]) != tuple(size):
        heat = tf.image.resize(heat[..., None], size, method="bilinear")[..., 0]
    return heat


def channel_weighted(weights, maps):
    """``sum_k w_k A_k``: ``(N, 1, 1, K)`` channel weights times ``(N, h, w, K)`` maps -> ``(N, h, w)``."""
    return tf.reduce_sum(weights * maps, axis=-1)


def _gradcam_combine(maps, grads):
    return channel_weighted(tf.reduce_mean(grads, axis=(1, 2), keepdims=True), maps)


def gradcam(model, inputs, target=None, layer=None, upsample=True, output=None, batch_size=32):
    """Grad-CAM maps of the target logit (Selvaraju et al. 2017, arXiv:1610.02391).

    ``relu(sum_k mean_ij(G_k) A_k)`` with ``G = d S / d A`` of the pre-softmax
    target logit ``S``.

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
    return class_activation_map(model, inputs, target, layer, upsample, output, batch_size,
                                "gradcam", _gradcam_combine)
