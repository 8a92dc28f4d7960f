"""Faithfulness metrics for attribution maps.

* :func:`pointing_game` (Zhang et al. 2016): does the map's maximum fall on
  the object?
* :func:`deletion_auc` / :func:`insertion_auc` (Petsiuk et al. 2018, RISE,
  arXiv:1806.07421):
  remove (insert) pixels in the map's order and integrate the target-class
  probability over the fraction of pixels changed. Low deletion and high
  insertion AUCs mean the map found the pixels the model uses.
* :func:`randomization` (Adebayo et al. 2018, arXiv:1810.03292): the
  cascading model-parameter randomization sanity check, in
  :mod:`keras_convviz.randomization` (re-exported here with ``spearman``,
  ``Randomization`` and ``randomization_layers``).

Maps are in input space: ``(N, H, W)``, or ``(N, H, W, C)`` reduced with
:func:`to_2d` (the max over channels of the absolute value, like saliency).
numpy only, plus one compiled TensorFlow function for the perturbation curves.
"""

from __future__ import annotations

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
    from .select import probabilities, target_scores

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
            if kind == "probability":  # a single unit gives the two columns (1 - p, p)
                picked = tf.gather(probabilities(scores, step), repeated, axis=1, batch_dims=1)
            else:
                picked = target_scores(scores, repeated)  # a single unit: +-logit
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
    pixels per step at 224x224), and the target-class probability (as the
    model's head defines it: the softmax of the logits, per-class sigmoids for
    a sigmoid head, sigmoid(+-logit) for a single unit) is recorded after
    each step. ``baseline`` is a number (0 by default, black for [0, 1] inputs), an
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


# The randomization sanity check lives in its own module, which needs ``to_2d``
# from this one: its names are re-exported lazily, on first use.
_RANDOMIZATION = ("randomization", "Randomization", "randomization_layers", "spearman")
__all__ += _RANDOMIZATION


def __getattr__(name):
    if name in _RANDOMIZATION:
        from . import randomization

        return getattr(randomization, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
