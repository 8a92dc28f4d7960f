"""Score-CAM and Ablation-CAM: class activation maps weighted by forward passes, no gradients.

Both weight the feature maps ``A_k`` of a spatial layer (by default the last
spatial layer the class score depends on, as Grad-CAM) and return
``relu(sum_k w_k A_k)``, resized bilinearly to the input size with
``upsample=True`` (the same final resize as ``gradcam``). Values are not
normalized (``keras_convviz.render.normalize`` / ``heatmap`` display them).

**Score-CAM** (Wang et al. 2020, "Score-CAM: Score-Weighted Visual
Explanations for Convolutional Neural Networks", arXiv:1910.01279). Each map
is upsampled to the input size (bilinear with aligned corners, as scipy's
``zoom(order=1)`` in tf-keras-vis and ``UpsamplingBilinear2d`` in
pytorch-grad-cam), min-max normalized, ``M_k = (U A_k - min) / (max - min +
1e-7)`` (a constant map gives ``M_k = 0``), and masks the input. The weight is
the channel's CIC score as the authors' code and tf-keras-vis' ``Scorecam``
compute it: ``w_k = softmax(z(x * M_k))[target]``, the target's softmax
probability from the pre-softmax logits ``z`` of the masked input, without
subtracting a baseline (a sigmoid head: its sigmoid; a single unit: the
probability of the target side). ``max_channels`` keeps, per image, the
channels whose maps have the largest spatial standard deviation ("Faster
Score-CAM", tf-keras-vis' ``max_N``). All-zero maps add nothing to the CAM and
are skipped; the other constant maps share one pass of the zero input.

**Ablation-CAM** (Desai & Ramaswamy 2020, "Ablation-CAM: Visual Explanations
for Deep Convolutional Network via Gradient-free Localization", WACV):
``w_k = (S - S_k) / S`` with ``S`` the target's pre-softmax logit and ``S_k``
the same logit with channel ``k`` of the layer's activations set to zero. Only
the tail of the network after the layer runs for the ablated activations
(``probe.run(given=...)``), channels in batches. ``S = 0`` is taken as ``1e-7``.

Every pass runs in one compiled function per model, layer and method (cached
on the walked graph, batch dimension open: repeated calls never retrace), at
most ``batch_size`` masked inputs or ablated maps per call.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ..probe import compiled, input_spec, run
from ..progress import tracker
from ..request import chunks, prepare
from ..select import predicted, probabilities, target_scores
from .gradcam import cam_layer, finish_cam

__all__ = ["scorecam", "ablationcam"]

_INDEX = tf.TensorSpec((None,), tf.int32)
_TARGETS = tf.TensorSpec((None,), tf.int64)


def _maps_fn(graph, layer, step):
    """Compiled ``x -> (activations, target logit, predicted class, spatial std per channel)``."""

    def build():
        @tf.function(input_signature=[input_spec(graph), _TARGETS], autograph=False)
        def maps(x, targets):
            found = run(graph, x, [layer], linear=[step.name])
            scores = found[step.name]
            targets = tf.where(targets < 0, predicted(scores), targets)
            acts = found[layer]
            return acts, target_scores(scores, targets), targets, tf.math.reduce_std(acts, axis=(1, 2))

        return maps

    return compiled(graph, ("scorecam-maps", layer, step.name), build)


def _forward(request, layer):
    """Activations ``(N, h, w, C)``, target logits, resolved targets and map std, batched."""
    fn = _maps_fn(request.graph, layer, request.score)
    parts = [fn(tf.constant(request.x[a:b]), tf.constant(request.targets[a:b])) for a, b in request.slices()]
    return [np.concatenate([p[i].numpy() for p in parts]) for i in range(4)]


def _combine_fn(graph, layer, upsample):
    """Compiled ``(maps (N, h, w, K), weights (N, K)) -> relu(sum_k w_k A_k)``, resized to the input."""
    size = tuple(graph.input_shape[:2])
    h, w = graph.step(layer).output_shape[:2]

    def build():
        @tf.function(input_signature=[tf.TensorSpec((None, h, w, None), tf.float32),
                                      tf.TensorSpec((None, None), tf.float32)], autograph=False)
        def combine(maps, weights):
            return finish_cam(tf.einsum("nhwk,nk->nhw", maps, weights), size if upsample else None)

        return combine

    return compiled(graph, ("cam-combine", layer, bool(upsample)), build)


def _masked_scores_fn(graph, layer, step):
    """Compiled ``(images, maps (B, h, w), image of each map, targets) -> (B,)`` Score-CAM weights."""
    size = tuple(graph.input_shape[:2])
    h, w = graph.step(layer).output_shape[:2]
    eps = float(keras.config.epsilon())

    def build():
        @tf.function(input_signature=[input_spec(graph), tf.TensorSpec((None, h, w), tf.float32), _INDEX,
                                      _TARGETS], autograph=False)
        def scores(x, maps, img, targets):
            up = maps[..., None]
            if (h, w) != size:
                up = tf.raw_ops.ResizeBilinear(images=up, size=size, align_corners=True, half_pixel_centers=False)
            lo = tf.reduce_min(up, axis=(1, 2, 3), keepdims=True)
            hi = tf.reduce_max(up, axis=(1, 2, 3), keepdims=True)
            flat = tf.reduce_max(maps, axis=(1, 2)) == tf.reduce_min(maps, axis=(1, 2))
            mask = tf.where(flat[:, None, None, None], 0.0, (up - lo) / (hi - lo + eps))
            logits = run(graph, tf.gather(x, img) * mask, [], linear=[step.name])[step.name]
            return target_scores(probabilities(logits, step), targets)

        return scores

    return compiled(graph, ("scorecam-scores", layer, step.name), build)


def _select_channels(acts, spread, max_channels):
    """Per image, the channel indices ``(N, K)`` Score-CAM weighs (top ``max_channels`` by spread)."""
    n, channels = acts.shape[0], acts.shape[-1]
    if max_channels is None:
        return np.tile(np.arange(channels), (n, 1))
    k = min(int(max_channels), channels)
    return tf.math.top_k(tf.constant(spread), k).indices.numpy()  # ties: the lower index, as tf-keras-vis


def _work_items(maps):
    """Which ``(image, channel)`` pairs of ``maps (N, h, w, K)`` need a pass, and whose score each takes.

    All-zero maps need none (their weight multiplies zeros); the other
    constant maps mask the input to zero, so one pass per image serves them
    all. Returns the pairs' images and channels (image-major) and, per
    ``(image, channel)``, the index of the pass it takes its score from (-1: none).
    """
    flat = maps.reshape(maps.shape[0], -1, maps.shape[-1])
    high, low = flat.max(axis=1), flat.min(axis=1)
    zero = (high == 0) & (low == 0)
    constant = (high == low) & ~zero
    keep = ~zero & ~(constant & (np.cumsum(constant, axis=1) > 1))
    img, ch = np.nonzero(keep)
    source = np.full(keep.shape, -1)
    source[img, ch] = np.arange(len(img))
    rows = np.nonzero(constant)[0]
    source[constant] = source[rows, np.argmax(constant, axis=1)[rows]]
    return img, ch, source


def _check_max_channels(max_channels):
    if max_channels is None:
        return None
    if isinstance(max_channels, (bool, np.bool_)) or not isinstance(max_channels, (int, np.integer)) \
            or max_channels < 1:
        raise ValueError(f"max_channels must be None (every channel) or an integer >= 1, got {max_channels!r}")
    return int(max_channels)


def _run_items(fn, items, batch_size, progress, unit, args_of):
    """``fn(*args_of(a, b))`` over ``items`` in slices of ``batch_size``; the concatenated results."""
    out = np.zeros(items, np.float32)
    bar = tracker(progress, items, unit)
    for a, b in chunks(items, batch_size):
        out[a:b] = fn(*args_of(a, b)).numpy()
        bar.update(b)
    bar.close()
    return out


def scorecam(model, inputs, target=None, layer=None, upsample=True, output=None, batch_size=32,
             max_channels=None, progress=False):
    """Score-CAM maps (Wang et al. 2020, arXiv:1910.01279); see the module docstring for the exact score.

    Args:
      model: a Keras model.
      inputs: a preprocessed batch ``(N, H, W, C)``.
      target: class index, list of one per image, or None (predicted class).
      layer: a spatial layer name; default the last spatial layer before the score.
      upsample: resize the maps to the input size (bilinear).
      output: index or name of the output to explain (multi-output models).
      batch_size: masked inputs per compiled call.
      max_channels: None (every channel) or the number of channels per image
        with the largest spatial standard deviation (tf-keras-vis' ``max_N``;
        more than the layer has means all of them).
      progress: a bar over the masked inputs (``keras_convviz.progress``).

    Returns float32 ``(N, H, W)`` (``upsample=True``) or ``(N, h, w)``.
    """
    request = prepare(model, inputs, target, output, batch_size)
    graph, step = request.graph, request.score
    layer, max_channels = cam_layer(graph, step, layer, output), _check_max_channels(max_channels)
    acts, _, targets, spread = _forward(request, layer)
    chosen = _select_channels(acts, spread, max_channels)
    maps = np.take_along_axis(acts, chosen[:, None, None, :], axis=3)
    img, ch, source = _work_items(maps)
    fn = _masked_scores_fn(graph, layer, step)

    def args_of(a, b):
        lo, hi = int(img[a]), int(img[b - 1]) + 1
        return (tf.constant(request.x[lo:hi]), tf.constant(maps[img[a:b], :, :, ch[a:b]]),
                tf.constant((img[a:b] - lo).astype(np.int32)), tf.constant(targets[img[a:b]]))

    scores = _run_items(fn, len(img), request.batch_size, progress, "mask", args_of)
    weights = np.where(source >= 0, scores[np.maximum(source, 0)], 0.0).astype(np.float32)
    return _combine_fn(graph, layer, upsample)(tf.constant(maps), tf.constant(weights)).numpy()


def _tail_inputs(graph, layer, step):
    """What the network after ``layer`` reads besides it: ``(step names, needs the model input)``."""
    tail = [graph.steps[i] for i in graph.ancestors([step.name], given=[layer])]
    made = {oid for s in tail for oid in s.output_ids} | set(graph.step(layer).output_ids)
    names, needs_input = [], False
    for tid in dict.fromkeys(t for s in tail for t in s.input_ids if t not in made):
        source = graph.producer(tid)
        if source is not None and source.output_ids[0] == tid:
            names.append(source.name)
        else:
            needs_input = True
    return names, needs_input


def _ablated_fn(graph, layer, step, extra, needs_input):
    """Compiled ``(x, acts, *extra, image, channel, targets) -> (B,)`` logits with channel zeroed."""
    h, w, c = graph.step(layer).output_shape
    specs = [tf.TensorSpec((None,) + tuple(graph.step(n).output_shape), tf.float32) for n in extra]

    def build():
        @tf.function(input_signature=[input_spec(graph), tf.TensorSpec((None, h, w, c), tf.float32), *specs,
                                      _INDEX, _INDEX, _TARGETS], autograph=False)
        def ablated(x, acts, *rest):
            *extras, img, channel, targets = rest
            keep = 1.0 - tf.one_hot(channel, c, dtype=acts.dtype)
            given = {name: tf.gather(value, img) for name, value in zip(extra, extras)}
            given[layer] = tf.gather(acts, img) * keep[:, None, None, :]
            inputs = tf.gather(x, img) if needs_input else None
            return target_scores(run(graph, inputs, [], linear=[step.name], given=given)[step.name], targets)

        return ablated

    return compiled(graph, ("ablationcam", layer, step.name, tuple(extra), needs_input), build)


def ablationcam(model, inputs, target=None, layer=None, upsample=True, output=None, batch_size=32,
                progress=False):
    """Ablation-CAM maps (Desai & Ramaswamy 2020, WACV): ``w_k = (S - S_k) / S`` of the target logit.

    Args as :func:`scorecam` (``batch_size``: ablated copies of the layer's
    activations per compiled call of the network's tail; ``progress``: a bar
    over the channels). Returns float32 ``(N, H, W)`` or ``(N, h, w)``.
    """
    request = prepare(model, inputs, target, output, batch_size)
    graph, step = request.graph, request.score
    layer = cam_layer(graph, step, layer, output)
    extra, needs_input = _tail_inputs(graph, layer, step)
    acts, base, targets, _ = _forward(request, layer)
    side = _side_values(request, extra)
    flat = acts.reshape(acts.shape[0], -1, acts.shape[-1])
    img, ch = np.nonzero(np.any(flat != 0, axis=1))  # an all-zero map: ablating it changes nothing
    fn = _ablated_fn(graph, layer, step, extra, needs_input)
    x = request.x if needs_input else request.x[:1]

    def args_of(a, b):
        lo, hi = int(img[a]), int(img[b - 1]) + 1
        pick = (lambda v: v[lo:hi])
        return (tf.constant(pick(x) if needs_input else x), tf.constant(pick(acts)),
                *[tf.constant(pick(v)) for v in side], tf.constant((img[a:b] - lo).astype(np.int32)),
                tf.constant(ch[a:b].astype(np.int32)), tf.constant(targets[img[a:b]]))

    ablated = _run_items(fn, len(img), request.batch_size, progress, "channel", args_of)
    denominator = np.where(base == 0, np.float32(1e-7), base)
    weights = np.zeros((acts.shape[0], acts.shape[-1]), np.float32)
    weights[img, ch] = (base[img] - ablated) / denominator[img]
    return _combine_fn(graph, layer, upsample)(tf.constant(acts), tf.constant(weights)).numpy()


def _side_values(request, names):
    """The activations of ``names`` (what the tail reads besides the layer) for every image."""
    if not names:
        return []
    graph = request.graph

    def build():
        @tf.function(input_signature=[input_spec(graph)], autograph=False)
        def side(x):
            found = run(graph, x, list(names))
            return [found[n] for n in names]

        return side

    fn = compiled(graph, ("ablationcam-side", tuple(names)), build)
    parts = [fn(tf.constant(request.x[a:b])) for a, b in request.slices()]
    return [np.concatenate([p[i].numpy() for p in parts]) for i in range(len(names))]
