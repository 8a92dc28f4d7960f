"""RISE: Randomized Input Sampling for Explanation (Petsiuk et al. 2018, arXiv:1806.07421).

A black-box saliency map: the model is only run forward, on the image
multiplied by random smooth masks, and each mask is weighted by the score it
leaves::

    S(x) = 1 / (N p) * sum_i f(I . M_i + fill . (1 - M_i)) * M_i(x)

which estimates ``E[f(I . M) M(x)] / p``, the expected score given that
pixel ``x`` is kept (``E[M(x)] = p``). Masks are made as in the paper: a
binary ``cells x cells`` grid whose cells are kept with probability ``p``,
upsampled bilinearly to ``(cells + 1) * ceil(H / cells)`` by
``(cells + 1) * ceil(W / cells)`` pixels and cropped to ``H x W`` at a random
shift of ``0 .. ceil(side / cells) - 1`` pixels per axis.

The grids and shifts (a few bytes per mask) are drawn up front from
``numpy.random.default_rng(seed)``, so a seed gives the same masks whatever
the ``batch_size`` and the number of images (every image gets the same
masks). Full-resolution masks exist only inside one compiled call, which
builds ``batch_size`` masked images, runs the model and returns each image's
``sum_i f_i M_i`` for that chunk: memory is bounded by ``batch_size``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import tensorflow as tf

from ..checks import positive_int
from ..probe import compiled, input_spec, run
from ..progress import tracker
from ..request import chunks, fill_values, prepare
from ..select import probabilities, target_scores

__all__ = ["rise", "rise_masks", "draw_grids", "upsample_masks", "SCORES", "NORMALIZE"]

SCORES = ("probability", "logit")
NORMALIZE = ("paper", "coverage")


# ---------------------------------------------------------------- masks
def draw_grids(masks, cells, probability, size, seed=0):
    """The random part of ``masks`` RISE masks: binary grids and pixel shifts.

    Returns ``(grids, shifts)``: ``grids`` float32 ``(masks, cells, cells)``
    of 0/1 (1 = kept, with probability ``probability``) and ``shifts`` int32
    ``(masks, 2)``, each uniform in ``0 .. ceil(side / cells) - 1`` for the
    image ``size = (H, W)``. Mask ``i`` depends only on ``seed`` and ``i``'s
    place in the sequence, not on any batching.
    """
    rng = np.random.default_rng(seed)
    grids = (rng.random((masks, cells, cells)) < probability).astype(np.float32)
    step = _cell_size(size, cells)
    shifts = np.stack([rng.integers(0, step[0], masks), rng.integers(0, step[1], masks)], axis=1)
    return grids, shifts.astype(np.int32)


def _cell_size(size, cells):
    """Pixels per grid cell before the upsampling to ``cells + 1`` cells: ``ceil(side / cells)``."""
    return (math.ceil(size[0] / cells), math.ceil(size[1] / cells))


def upsample_masks(grids, shifts, size):
    """Smooth masks ``(B, H, W)`` from grids ``(B, cells, cells)`` and shifts ``(B, 2)`` (traceable).

    Each grid is resized bilinearly (half-pixel centres, edges clamped:
    ``tf.image.resize``) to ``(cells + 1) * ceil(side / cells)`` pixels per
    side and cropped to ``size = (H, W)`` starting at its shift.
    """
    grids = tf.convert_to_tensor(grids, tf.float32)
    cells = int(grids.shape[-1])
    step = _cell_size(size, cells)
    up = tf.image.resize(grids[..., None], ((cells + 1) * step[0], (cells + 1) * step[1]),
                         method="bilinear", antialias=False)[..., 0]
    shifts = tf.convert_to_tensor(shifts, tf.int32)
    rows = shifts[:, :1] + tf.range(size[0], dtype=tf.int32)[None]
    cols = shifts[:, 1:] + tf.range(size[1], dtype=tf.int32)[None]
    up = tf.gather(up, rows, axis=1, batch_dims=1)
    return tf.gather(up, cols, axis=2, batch_dims=1)


def rise_masks(masks, size, cells=7, probability=0.5, seed=0) -> np.ndarray:
    """The ``(masks, H, W)`` float32 masks :func:`rise` uses for these arguments (to look at them).

    ``size = (H, W)``. This materializes every mask: :func:`rise` itself
    never does.
    """
    masks, cells, probability = _check_sampling(masks, cells, probability, size)
    grids, shifts = draw_grids(masks, cells, probability, size, seed)
    return upsample_masks(grids, shifts, tuple(size)).numpy()


# ---------------------------------------------------------------- arguments
def _check_sampling(masks, cells, probability, size):
    masks = positive_int(masks, "masks")
    cells = positive_int(cells, "cells")
    if cells > min(size):
        raise ValueError(f"cells={cells} is finer than the {size[0]}x{size[1]} image; use cells <= "
                         f"{min(size)} (the paper uses 7 for 224 x 224 inputs).")
    if isinstance(probability, bool) or not isinstance(probability, numbers.Real) \
            or not 0.0 < float(probability) < 1.0:
        raise ValueError(f"probability must be a number strictly between 0 and 1 (the chance that a grid "
                         f"cell is kept; the paper uses 0.5), got {probability!r}.")
    return masks, cells, float(probability)


def _check_seed(seed):
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def _check_score(score):
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES} ('probability': the softmax/sigmoid probability "
                         f"of the target, as in the paper; 'logit': the pre-softmax score), got {score!r}.")
    return score


def _rise_fn(graph, head, cells, score):
    """Compiled ``(x, fill, img, grids, shifts, targets) -> (k, H, W) x 2``: ``sum f_i M_i`` and ``sum M_i``.

    ``img`` holds sorted image indices into ``x`` starting at 0; ``k`` is
    ``img[-1] + 1``. One function per (graph, head, cells, score): no
    retracing across calls, batch sizes or image counts.
    """
    size = tuple(int(v) for v in graph.input_shape[:2])
    c = int(graph.input_shape[-1])
    signature = [input_spec(graph), tf.TensorSpec((None, c), tf.float32), tf.TensorSpec((None,), tf.int32),
                 tf.TensorSpec((None, cells, cells), tf.float32), tf.TensorSpec((None, 2), tf.int32),
                 tf.TensorSpec((None,), tf.int64)]

    def build():
        @tf.function(input_signature=signature, autograph=False, reduce_retracing=True)
        def masked_pass(x, fill, img, grids, shifts, targets):
            m = upsample_masks(grids, shifts, size)
            keep = m[..., None]
            xm = tf.gather(x, img) * keep + tf.gather(fill, img)[:, None, None, :] * (1.0 - keep)
            logits = run(graph, xm, [], linear=[head.name])[head.name]
            if score == "probability":  # a single unit gives (1 - p, p): target 0 or 1
                f = tf.gather(probabilities(logits, head), targets, axis=1, batch_dims=1)
            else:
                f = target_scores(logits, targets)
            k = tf.reduce_max(img) + 1
            weighted = tf.cast(f, tf.float32)[:, None, None] * m
            return tf.math.unsorted_segment_sum(weighted, img, k), tf.math.unsorted_segment_sum(m, img, k)

        return masked_pass

    return compiled(graph, ("rise", head.name, cells, score), build)


def _accumulate(fn, request, fills, grids, shifts, bar):
    """``sum_i f(I_n . M_i) M_i`` and ``sum_i M_i`` per image (float64), over (image, mask) pairs in
    chunks of ``batch_size``."""
    n, masks = request.n, len(grids)
    total = np.zeros((n,) + tuple(request.x.shape[1:3]), np.float64)
    coverage = np.zeros_like(total)
    targets = request.targets.astype(np.int64)
    for a, b in chunks(n * masks, request.batch_size):
        pair = np.arange(a, b)
        img, mask = pair // masks, pair % masks
        i0, i1 = int(img[0]), int(img[-1]) + 1
        part, cover = fn(tf.constant(request.x[i0:i1]), tf.constant(fills[i0:i1]),
                         (img - i0).astype(np.int32), grids[mask], shifts[mask], targets[img])
        total[i0:i1] += part.numpy()
        coverage[i0:i1] += cover.numpy()
        bar.update(b)
    return total, coverage


def rise(model, inputs, target=None, masks=2000, cells=7, probability=0.5, seed=0, score="probability",
         fill=0.0, normalize="paper", output=None, batch_size=32, progress=False) -> np.ndarray:
    """RISE saliency maps (Petsiuk et al. 2018, arXiv:1806.07421) for a batch of model inputs.

    Args:
      model: a Keras classifier with a fixed input size.
      inputs: preprocessed model inputs ``(N, H, W, C)``.
      target: class index, a list of one per image, or ``None`` for the
        class the model predicts on the unmasked image.
      masks: number of random masks ``N_masks`` (the paper: 4000 for
        ResNet50, 8000 for VGG16; 2000 is a fair start). The Monte Carlo
        error falls as ``1 / sqrt(masks)``.
      cells: the grid is ``cells x cells`` before upsampling (paper: 7).
      probability: chance ``p`` that a grid cell is kept (paper: 0.5).
      seed: the masks are a function of ``(seed, masks, cells,
        probability, H, W)`` only (not of ``batch_size`` or the images).
      score: ``"probability"`` (default, as in the paper: the softmax of
        the target, or the head's sigmoid for sigmoid heads) or ``"logit"``
        (the pre-softmax class score the gradient methods explain).
      fill: what masked pixels become, in model-input space: ``0.0``
        (default, the paper's ``I . M``; 0 is the mean pixel for the caffe
        presets and mid-grey for EfficientNet-Lite's ``(x - 127) / 128``),
        ``"mean"`` for each image's mean pixel, a number, ``C`` channel
        values or an ``(N, C)`` array. A pixel is ``I M + fill (1 - M)``.
      normalize: ``"paper"`` (default): divide by ``masks * p``, the
        paper's estimator. ``"coverage"``: divide each pixel by its own
        ``sum_i M_i(x)`` instead (a ratio estimator of the same
        ``E[f M(x)] / E[M(x)]``); it removes the noise of the masks' uneven
        coverage, which dominates when the score hardly changes (a constant
        score gives a constant map, not a picture of the masks).
      output: index or name of the output to explain (multi-output models).
      batch_size: masked images per compiled call (bounds memory).
      progress: a bar over the masked images (``keras_convviz.progress``).

    Returns float32 ``(N, H, W)``: ``sum_i f(I . M_i) M_i / (masks * p)``
    (``/ sum_i M_i`` with ``"coverage"``), in the units of the score: a
    pixel's value estimates the expected score when that pixel is kept.
    """
    request = prepare(model, inputs, target, output, batch_size)  # fails before any work
    size = tuple(request.x.shape[1:3])
    masks, cells, probability = _check_sampling(masks, cells, probability, size)
    seed, score = _check_seed(seed), _check_score(score)
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE} ('paper': divide by masks * probability; "
                         f"'coverage': by each pixel's summed masks), got {normalize!r}.")
    fills = fill_values(fill, request.x, 0.0)
    request = request.with_predicted()
    grids, shifts = draw_grids(masks, cells, probability, size, seed)
    fn = _rise_fn(request.graph, request.score, cells, score)
    bar = tracker(progress, request.n * masks, "mask")
    total, coverage = _accumulate(fn, request, fills, grids, shifts, bar)
    bar.close()
    if normalize == "coverage":  # a pixel no mask kept (only possible with very few masks) scores 0
        return np.divide(total, coverage, out=np.zeros_like(total), where=coverage > 0).astype(np.float32)
    return (total / (masks * probability)).astype(np.float32)
