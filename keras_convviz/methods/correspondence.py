"""Correspondence of object parts across images (Zeiler & Fergus 2014, arXiv:1311.2901, table 1).

The same part (e.g. the left eye) of several images of one kind of object is
occluded with the neutral fill; at layer ``l`` the feature change is
``eps_i = x_i - x~_i`` (the features of image ``i`` minus those of its
occluded copy). If the network ties the part to the same features in every
image, the signs of the changes agree:

    Delta_l = sum_{i != j} H(sign(eps_i), sign(eps_j))

with ``H`` the Hamming distance (the number of feature positions whose signs
differ), over ordered pairs. Smaller is more consistent. The control
occludes random boxes of the same size, at the same place in every image.
All occluded copies go through one compiled function in batches.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from ..probe import compiled, input_spec, run
from ..request import chunks, prepare

__all__ = ["correspondence", "Correspondence", "delta", "check_parts"]


@dataclasses.dataclass(frozen=True)
class Correspondence:
    """Table 1 of Zeiler & Fergus 2014 (arXiv:1311.2901) for one layer.

    ``delta`` ``(P,)``: Delta per part (summed Hamming counts over ordered
    pairs); ``normalized``: the same divided by ``N (N - 1) D`` (the mean
    share of feature positions whose signs differ, ``D`` = features per
    image), the scale of the paper's table. ``random`` ``(P, trials)``:
    Delta of random boxes of each part's size (``random_normalized`` alike);
    ``random_boxes`` ``(P, trials, 4)`` their ``(x, y, w, h)``.
    """

    layer: str
    parts: np.ndarray
    part_names: tuple
    delta: np.ndarray
    normalized: np.ndarray
    random: np.ndarray
    random_normalized: np.ndarray
    random_boxes: np.ndarray
    features: int

    def rows(self) -> list:
        """``[(name, Delta normalized, random mean, random std)]`` per part."""
        return [(name, float(self.normalized[p]), float(self.random_normalized[p].mean()),
                 float(self.random_normalized[p].std())) for p, name in enumerate(self.part_names)]


def delta(signs) -> int:
    """``sum_{i != j} H(s_i, s_j)`` over ordered pairs of sign vectors ``(N, D)`` (int8 -1/0/1)."""
    s = np.asarray(signs).reshape(len(signs), -1)
    total = 0
    for i in range(len(s)):  # N is small (a few images): D-long comparisons, no N x N x D array
        total += 2 * int(sum(np.count_nonzero(s[i] != s[j]) for j in range(i + 1, len(s))))
    return total


def check_parts(parts, n, size) -> np.ndarray:
    """``(N, P, 4)`` int boxes ``(x, y, w, h)`` inside ``size = (H, W)``, or a ValueError naming the fix."""
    arr = np.asarray(parts)
    if arr.ndim == 2 and arr.shape == (n, 4):
        arr = arr[:, None]
    if arr.ndim != 3 or arr.shape[0] != n or arr.shape[2] != 4 or arr.shape[1] == 0:
        raise ValueError(f"parts must be one box (x, y, w, h) per part per image, shape (N={n}, P, 4); "
                         f"got shape {arr.shape}")
    if not np.all(np.isfinite(arr.astype(np.float64))) or np.any(arr != np.round(arr)):
        raise ValueError("parts must hold whole pixel numbers (x, y, w, h)")
    arr = arr.astype(np.int64)
    x, y, w, h = np.moveaxis(arr, -1, 0)
    if np.any(w < 1) | np.any(h < 1) | np.any(x < 0) | np.any(y < 0) | np.any(x + w > size[1]) | np.any(
            y + h > size[0]):
        raise ValueError(f"every part box (x, y, w, h) must have w, h >= 1 and lie inside the "
                         f"{size[0]}x{size[1]} model input; clip the boxes to it")
    return arr


def _sign_fn(graph, layer):
    """Compiled ``(x, boxes (M, 4), img (M,), fill) -> sign(f(x_img) - f(occluded)) as int8 (M, D)``."""
    c = graph.input_shape[-1]
    h, w = graph.input_shape[:2]

    def build():
        spec = [input_spec(graph), tf.TensorSpec((None, 4), tf.int32), tf.TensorSpec((None,), tf.int32),
                tf.TensorSpec((c,), tf.float32)]

        @tf.function(input_signature=spec, reduce_retracing=True)
        def signs(x, boxes, img, fill):
            xs = tf.gather(x, img)
            ys, xs_ = tf.range(h)[None, :, None], tf.range(w)[None, None, :]
            bx, by, bw, bh = (boxes[:, k][:, None, None] for k in range(4))
            inside = (ys >= by) & (ys < by + bh) & (xs_ >= bx) & (xs_ < bx + bw)
            occluded = tf.where(inside[..., None], fill, xs)
            both = run(graph, tf.concat([xs, occluded], 0), [layer])[layer]
            m = tf.shape(img)[0]
            eps = tf.reshape(both[:m] - both[m:], (m, -1))
            return tf.cast(tf.sign(eps), tf.int8)

        return signs

    return compiled(graph, ("correspondence", layer), build)


def _random_boxes(parts, size, trials, rng):
    """``(P, trials, 4)``: per part, boxes of its (first image's) size at random places shared by all images."""
    out = np.empty((parts.shape[1], trials, 4), np.int64)
    for p in range(parts.shape[1]):
        w, h = parts[0, p, 2], parts[0, p, 3]
        out[p, :, 0] = rng.integers(0, size[1] - w + 1, trials)
        out[p, :, 1] = rng.integers(0, size[0] - h + 1, trials)
        out[p, :, 2:] = (w, h)
    return out


def correspondence(model, images, parts, layer, random_trials=20, fill=0.0, part_names=None, seed=0,
                   batch_size=32) -> Correspondence:
    """Table 1 of Zeiler & Fergus 2014 (arXiv:1311.2901): how consistently a layer ties parts to features.

    Args:
      model: a Keras model.
      images: model inputs ``(N, H, W, C)`` of one kind of object (N >= 2).
      parts: ``(N, P, 4)`` boxes ``(x, y, w, h)`` in model-input pixels, one
        per part per image (e.g. the same eye in each image).
      layer: the layer whose features are compared.
      random_trials: random boxes per part (the paper's "random" rows).
      fill: the occluder in model-input space (a number or one value per
        channel): the preset's neutral value for photos.
      part_names: a name per part for the table.
      seed: of the random boxes.
    """
    request = prepare(model, images, None, batch_size=batch_size, scores=False)
    graph, x = request.graph, request.x
    n, h, w, c = x.shape
    if n < 2:
        raise ValueError("correspondence compares images: pass at least 2 (the paper uses 5)")
    layer = graph.step(layer).name
    parts = check_parts(parts, n, (h, w))
    trials = int(random_trials)
    if trials < 0:
        raise ValueError(f"random_trials must be >= 0, got {random_trials!r}")
    fill = np.broadcast_to(np.asarray(fill, np.float32), (c,)).copy()
    names = tuple(part_names) if part_names is not None else tuple(f"part {p}" for p in range(parts.shape[1]))
    if len(names) != parts.shape[1]:
        raise ValueError(f"part_names has {len(names)} names for {parts.shape[1]} parts; give one per part")
    rand = _random_boxes(parts, (h, w), trials, np.random.default_rng(seed))
    # every occlusion (parts, then random trials) of every image, as one list of (box, image)
    boxes = np.concatenate([parts.transpose(1, 0, 2).reshape(-1, 4),
                            np.repeat(rand.reshape(-1, 4), n, axis=0)]).astype(np.int32)
    img = np.tile(np.arange(n, dtype=np.int32), len(boxes) // n)
    fn = _sign_fn(graph, layer)
    # half a batch: each occluded copy runs with its original
    per = max(1, request.batch_size // 2)
    signs = np.concatenate([fn(tf.constant(x), boxes[a:b], img[a:b], tf.constant(fill)).numpy()
                            for a, b in chunks(len(boxes), per)])
    groups = signs.reshape(-1, n, signs.shape[-1])
    deltas = np.array([delta(g) for g in groups], np.float64)
    d, pairs = signs.shape[-1], n * (n - 1)
    npart = parts.shape[1]
    return Correspondence(layer=layer, parts=parts, part_names=names, delta=deltas[:npart],
                          normalized=deltas[:npart] / (pairs * d), random=deltas[npart:].reshape(npart, trials),
                          random_normalized=deltas[npart:].reshape(npart, trials) / (pairs * d),
                          random_boxes=rand, features=d)
