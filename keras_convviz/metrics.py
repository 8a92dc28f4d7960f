"""Faithfulness metrics for attribution maps.

* :func:`pointing_game` (Zhang et al. 2016): does the map's maximum fall on
  the object?
* :func:`deletion_auc` / :func:`insertion_auc` (Petsiuk et al. 2018, RISE):
  remove (insert) pixels in the map's order and integrate the target-class
  probability over the fraction of pixels changed. Low deletion and high
  insertion AUCs mean the map found the pixels the model uses.
* :func:`randomization` (Adebayo et al. 2018): the cascading model-parameter
  randomization sanity check; Spearman rank correlation between the map of
  the trained model and the maps after re-initializing the layers from the
  top down. A map that depends on the model decorrelates quickly.

Maps are in input space: ``(N, H, W)``, or ``(N, H, W, C)`` reduced with
:func:`to_2d` (the max over channels of the absolute value, like saliency).
numpy only, plus one compiled TensorFlow function for the perturbation curves.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

__all__ = [
    "to_2d",
    "pointing_game",
    "deletion_curve",
    "insertion_curve",
    "deletion_auc",
    "insertion_auc",
    "blur",
    "spearman",
    "randomization",
    "Randomization",
    "randomization_layers",
]


def to_2d(maps):
    """Attribution maps as ``(N, H, W)``: 4-D maps take ``max_c |m|``."""
    maps = np.asarray(maps)
    if maps.ndim == 4:
        maps = np.abs(maps).max(axis=-1)
    if maps.ndim != 3:
        raise ValueError(f"maps must be (N, H, W) or (N, H, W, C), got shape {maps.shape}")
    maps = maps.astype(np.float64, copy=False)
    if not np.all(np.isfinite(maps)):
        raise ValueError("maps contain NaN or Inf values.")
    return maps


# ---------------------------------------------------------------- pointing game
def _box_distance(ys, xs, box):
    y0, x0, y1, x1 = box
    dy = np.maximum(np.maximum(y0 - ys, ys - (y1 - 1)), 0)
    dx = np.maximum(np.maximum(x0 - xs, xs - (x1 - 1)), 0)
    return np.sqrt(dy ** 2 + dx ** 2)


def _mask_distance(ys, xs, mask):
    my, mx = np.nonzero(mask)
    if my.size == 0:
        return np.full(ys.shape, np.inf)
    return np.sqrt((ys[:, None] - my[None]) ** 2 + (xs[:, None] - mx[None]) ** 2).min(axis=1)


def pointing_game(maps, boxes, tolerance=0.0):
    """Hits of the pointing game, one per image (``.mean()`` is the accuracy).

    Args:
      maps: ``(N, H, W)`` or ``(N, H, W, C)`` maps in input space.
      boxes: ``(N, 4)`` boxes ``(y0, x0, y1, x1)`` in pixels, end exclusive
        (``demo.shapes``' convention), or ``(N, H, W)`` boolean object masks.
      tolerance: a hit may miss the object by up to this many pixels
        (Euclidean; Zhang et al. use 15 at 224x224).

    Returns float ``(N,)``: 1 when the map's maximum lies on the object, 0
    when not. When several pixels tie for the maximum, the score is the
    fraction of them on the object (the expected hit of a random tie-break),
    so a constant map scores the object's share of the image, not a free hit.
    """
    maps = to_2d(maps)
    boxes = np.asarray(boxes)
    n = maps.shape[0]
    masks = boxes.ndim == 3
    if masks and boxes.shape != maps.shape:
        raise ValueError(f"masks have shape {boxes.shape} but the maps {maps.shape}; pass one mask per map.")
    if not masks and boxes.shape != (n, 4):
        raise ValueError(f"boxes must be (N, 4) = ({n}, 4) as (y0, x0, y1, x1) or (N, H, W) masks, "
                         f"got shape {boxes.shape}")
    if not isinstance(tolerance, numbers.Real) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a distance >= 0 in pixels, got {tolerance!r}")
    hits = np.empty(n, np.float64)
    for i in range(n):
        m = maps[i]
        ys, xs = np.nonzero(m == m.max())
        dist = _mask_distance(ys, xs, boxes[i]) if masks else _box_distance(ys, xs, boxes[i])
        hits[i] = np.mean(dist <= tolerance)
    return hits


# ---------------------------------------------------------------- deletion / insertion
def blur(images, sigma=5.0, radius=None):
    """Gaussian blur of a batch ``(N, H, W, C)`` (reflect padding), as RISE's insertion canvas.

    Petsiuk et al. blur with sigma 5 and an 11x11 kernel at 224x224; the
    radius defaults to ``ceil(2 sigma)`` (never more than the image allows).
    """
    images = np.asarray(images, np.float32)
    if sigma <= 0:
        return images.copy()
    h, w = images.shape[1:3]
    radius = int(math.ceil(2 * sigma)) if radius is None else int(radius)
    radius = max(0, min(radius, h - 1, w - 1))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    out = images
    for axis, size in ((1, h), (2, w)):
        pad = [(0, 0)] * 4
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="reflect")
        acc = np.zeros_like(out)
        for k, t in enumerate(taps):
            acc += t * np.take(padded, np.arange(k, k + size), axis=axis)
        out = acc
    return out


def _baseline(x, baseline):
    if isinstance(baseline, str):
        if baseline == "blur":
            return blur(x)
        if baseline == "mean":
            return np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape).astype(np.float32)
        raise ValueError(f"baseline must be a number, an array, 'blur' or 'mean', got {baseline!r}")
    base = np.asarray(baseline, np.float32)
    try:
        base = np.broadcast_to(base, x.shape)
    except ValueError:
        raise ValueError(f"baseline of shape {base.shape} does not broadcast to the inputs {x.shape}") from None
    if not np.all(np.isfinite(base)):
        raise ValueError("baseline contains NaN or Inf values.")
    return np.ascontiguousarray(base, np.float32)


def _ranks(maps, seed=0):
    """Per image, each pixel's position in the order of decreasing map value.

    Ties are broken at random (seeded), so flat regions are not removed in
    raster order.
    """
    n, h, w = maps.shape
    rng = np.random.default_rng(seed)
    ranks = np.empty((n, h, w), np.int32)
    for i in range(n):
        flat = maps[i].reshape(-1)
        order = np.lexsort((rng.random(flat.size), -flat))
        r = np.empty(flat.size, np.int32)
        r[order] = np.arange(flat.size, dtype=np.int32)
        ranks[i] = r.reshape(h, w)
    return ranks


def _curve_fn(graph, step, mode, kind):
    import tensorflow as tf

    from .probe import compiled, run
    from .select import target_scores

    spec = tf.TensorSpec((None,) + tuple(graph.input_shape), tf.float32)

    def build():
        @tf.function(input_signature=[spec, spec, tf.TensorSpec((None,) + tuple(graph.input_shape[:2]), tf.int32),
                                      tf.TensorSpec((None,), tf.int32), tf.TensorSpec((None,), tf.int64)],
                     autograph=False)
        def curve(x, base, ranks, counts, targets):
            n, k = tf.shape(x)[0], tf.shape(counts)[0]
            changed = ranks[:, None] < counts[None, :, None, None]  # (n, k, H, W)
            changed = tf.cast(changed, x.dtype)[..., None]
            if mode == "deletion":
                images = x[:, None] * (1 - changed) + base[:, None] * changed
            else:
                images = base[:, None] * (1 - changed) + x[:, None] * changed
            images = tf.reshape(images, tf.concat([[n * k], tf.shape(x)[1:]], 0))
            scores = run(graph, images, [], linear=[step.name])[step.name]
            repeated = tf.repeat(targets, k)
            if step.output_shape[-1] == 1:
                picked = target_scores(scores, repeated)  # +-logit
                picked = tf.sigmoid(picked) if kind == "probability" else picked
            else:
                if kind == "probability":
                    scores = tf.nn.softmax(scores, axis=-1)
                picked = tf.gather(scores, repeated, axis=1, batch_dims=1)
            return tf.reshape(picked, (n, k))

        return curve

    return compiled(graph, ("perturbation", step.name, mode, kind), build)


def _perturbation(model, inputs, maps, target, steps, baseline, output, batch_size, mode, score, seed):
    import tensorflow as tf

    from .checks import positive_int
    from .request import prepare

    request = prepare(model, inputs, target, output, batch_size).with_predicted()
    graph, x, step, targets = request.graph, request.x, request.score, request.targets
    batch_size = request.batch_size
    maps = to_2d(maps)
    if maps.shape != x.shape[:3]:
        raise ValueError(f"maps have shape {maps.shape} but the inputs {x.shape[:3]}; pass maps in input "
                         f"space (e.g. gradcam(..., upsample=True)).")
    if score not in ("probability", "logit"):
        raise ValueError(f"score must be 'probability' or 'logit', got {score!r}")
    h, w = x.shape[1:3]
    steps = h if steps is None else positive_int(steps, "steps")
    base = _baseline(x, baseline)
    ranks = _ranks(maps, seed)
    fractions = np.arange(steps + 1) / steps
    counts = np.round(fractions * h * w).astype(np.int32)
    fn = _curve_fn(graph, step, mode, score)
    curves = np.empty((x.shape[0], steps + 1), np.float64)
    per_call = max(1, batch_size // (steps + 1))
    for a in range(0, x.shape[0], per_call):
        b = min(a + per_call, x.shape[0])
        if per_call == 1 and steps + 1 > batch_size:  # one image, its curve in chunks
            for lo in range(0, steps + 1, batch_size):
                hi = min(lo + batch_size, steps + 1)
                curves[a, lo:hi] = fn(tf.constant(x[a:b]), tf.constant(base[a:b]), tf.constant(ranks[a:b]),
                                      tf.constant(counts[lo:hi]), tf.constant(targets[a:b])).numpy()[0]
            continue
        curves[a:b] = fn(tf.constant(x[a:b]), tf.constant(base[a:b]), tf.constant(ranks[a:b]),
                         tf.constant(counts), tf.constant(targets[a:b])).numpy()
    return fractions, curves


def _auc(fractions, curves):
    return (0.5 * (curves[:, 1:] + curves[:, :-1]) * np.diff(fractions)[None]).sum(axis=1)


def deletion_curve(model, inputs, maps, target=None, steps=None, baseline=0.0, output=None,
                   batch_size=64, score="probability", seed=0):
    """RISE deletion: ``(fractions (K+1,), scores (N, K+1))``.

    Pixels (all channels of a location) are replaced by ``baseline`` in the
    order of decreasing map value, ``H * W / steps`` per step (``steps``
    defaults to ``H``: one image row's worth per step, Petsiuk et al.'s 224
    pixels per step at 224x224), and the target-class probability (softmax of
    the logits; a single unit gives sigmoid(+-logit)) is recorded after each
    step. ``baseline`` is a number (0 by default, black for [0, 1] inputs), an
    array, ``"blur"`` or ``"mean"``; ``score="logit"`` records the logit.
    ``target=None`` uses the class predicted on the unperturbed input.
    """
    return _perturbation(model, inputs, maps, target, steps, baseline, output, batch_size, "deletion",
                         score, seed)


def insertion_curve(model, inputs, maps, target=None, steps=None, baseline="blur", output=None,
                    batch_size=64, score="probability", seed=0):
    """RISE insertion: start from ``baseline`` (a blurred copy by default) and insert pixels.

    Same arguments and result as :func:`deletion_curve`.
    """
    return _perturbation(model, inputs, maps, target, steps, baseline, output, batch_size, "insertion",
                         score, seed)


def deletion_auc(model, inputs, maps, target=None, **kwargs):
    """Area under the deletion curve per image ``(N,)``; lower is better."""
    return _auc(*deletion_curve(model, inputs, maps, target, **kwargs))


def insertion_auc(model, inputs, maps, target=None, **kwargs):
    """Area under the insertion curve per image ``(N,)``; higher is better."""
    return _auc(*insertion_curve(model, inputs, maps, target, **kwargs))


# ---------------------------------------------------------------- randomization
def _rankdata(a):
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
    ra, rb = _rankdata(a), _rankdata(b)
    if ra.size != rb.size:
        raise ValueError(f"arrays differ in size: {ra.size} vs {rb.size}")
    ra -= ra.mean()
    rb -= rb.mean()
    denom = math.sqrt(float((ra * ra).sum()) * float((rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def randomization_layers(model, output=None):
    """The layers with weights the class score depends on, from the top down."""
    from .graph import walk
    from .select import score_step

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
    import keras

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


@dataclasses.dataclass
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


def _method(method):
    if callable(method):
        return method
    from . import gradcam, guided_backprop, integrated_gradients, saliency, smoothgrad

    named = {"saliency": saliency, "smoothgrad": smoothgrad, "guided": guided_backprop,
             "guided_backprop": guided_backprop, "ig": integrated_gradients,
             "integrated_gradients": integrated_gradients, "gradcam": gradcam}
    if method not in named:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(named)} or a callable "
                         f"method(model, inputs, target, **kwargs).")
    return named[method]


def randomization(model, method, inputs, target=None, layers=None, seed=0, output=None, **kwargs):
    """Cascading model-parameter randomization (Adebayo et al. 2018).

    Args:
      model: a Keras model; its weights are restored afterwards, also on error.
      method: a method name (``"saliency"``, ``"smoothgrad"``, ``"guided"``,
        ``"ig"``, ``"gradcam"``) or a callable ``method(model, inputs, target,
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
    from .request import prepare

    fn = _method(method)
    request = prepare(model, inputs, target, output).with_predicted()
    graph, x, targets = request.graph, request.x, request.targets
    if output is not None:
        kwargs["output"] = output
    if layers is None:
        layers = randomization_layers(graph, output)
    if isinstance(layers, str):
        layers = [layers]
    stages = [[graph.step(n).name for n in ([entry] if isinstance(entry, str) else list(entry))]
              for entry in layers]
    cascade = [names[0] if len(names) == 1 else ",".join(names) for names in stages]
    if not cascade or not all(stages):
        raise ValueError("no layer with weights to randomize.")
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
