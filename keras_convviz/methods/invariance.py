"""Feature invariance under translation, scaling and rotation (Zeiler & Fergus 2014, arXiv:1311.2901, fig. 5).

Every image is transformed over a range of each transformation (vertical
translation in pixels of the model input, scale factors about the centre,
rotation in degrees about the centre). For every copy we record the Euclidean
distance between the feature vectors of the original and of the transformed
image at a few layers (by default an early and a late one, as the paper's
layers 1 and 7) and the probability of the target class.

The uncovered border of a transformed copy is the neutral ``fill`` (a
preset's preprocessed mean pixel; 0 by default for inputs given directly),
so that padding adds as little signal as possible. All copies are built in
the graph and go through the network in batches of ``batch_size`` inside ONE
compiled call (``tf.function``, reused across calls: no retracing).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf

from ..checks import positive_int
from ..probe import compiled, input_spec, run
from ..request import prepare
from ..select import probabilities

__all__ = ["invariance", "Invariance", "transform_matrices", "transformed", "default_layers", "default_values",
           "TRANSFORMS", "UNITS"]

TRANSFORMS = ("translate", "scale", "rotate", "flip")
_PASS_THROUGH = ("Activation", "Softmax", "Dropout")
UNITS = {"translate": "px", "scale": "x", "rotate": "deg", "flip": ""}


@dataclasses.dataclass(frozen=True)
class Invariance:
    """Fig. 5 curves (Zeiler & Fergus 2014, arXiv:1311.2901), per transform name.

    ``values[t]`` ``(S,)``: the transform's parameter at each step (pixels,
    factors, degrees; flip: 0 = as is, 1 = mirrored left-right).
    ``distance[t]`` ``(N, L, S)``: Euclidean distance between the features of
    the original and of the transformed image at ``layers[l]``;
    ``relative[t]``: the same divided by the original features' norm
    (comparable across layers). ``probability[t]`` ``(N, S)``: the target's
    probability; ``base_probability`` ``(N,)`` the original's.
    """

    transforms: tuple
    values: dict
    layers: tuple
    distance: dict
    relative: dict
    probability: dict
    target: np.ndarray
    base_probability: np.ndarray
    feature_norm: np.ndarray  # (N, L): ||features of the original||
    fill: np.ndarray
    units: dict = dataclasses.field(default_factory=lambda: dict(UNITS))

    def curve(self, transform, layer=None, relative=False) -> np.ndarray:
        """``(N, S)``: one layer's distance curve (``layer=None``: the probability curve)."""
        if layer is None:
            return self.probability[transform]
        which = self.relative if relative else self.distance
        return which[transform][:, self.layers.index(layer)]

    def at(self, transform, value, layer, relative=True) -> np.ndarray:
        """``(N,)`` distances at the step whose value is nearest ``value`` (e.g. 30 px)."""
        k = int(np.argmin(np.abs(np.asarray(self.values[transform]) - value)))
        return self.curve(transform, layer, relative)[:, k]


# ---------------------------------------------------------------- geometry
def default_values(name, size, steps=20) -> np.ndarray:
    """The paper's ranges: +-60 px on a 224 input (scaled to ``size = (H, W)``), scale 1..1.8, rotation 0..360."""
    if name == "translate":
        reach = round(60 * size[0] / 224)
        return np.linspace(-reach, reach, steps)
    if name == "scale":
        return np.linspace(1.0, 1.8, steps)
    if name == "rotate":
        return np.linspace(0.0, 360.0, steps)
    if name == "flip":
        return np.array([0.0, 1.0])
    raise ValueError(f"unknown transform {name!r}; choose from {', '.join(TRANSFORMS)}")


def transform_matrices(name, values, size) -> np.ndarray:
    """``(S, 8)`` output-to-input maps of ``tf.raw_ops.ImageProjectiveTransformV3`` for ``size = (H, W)``.

    translate: the content moves down by ``v`` pixels; scale: magnified ``v``
    times about the centre; rotate: turned ``v`` degrees counter-clockwise as
    displayed; flip: ``v = 1`` mirrors left-right. Angles are taken modulo
    360, so 360 degrees is exactly the identity.
    """
    cy, cx = (size[0] - 1) / 2.0, (size[1] - 1) / 2.0
    out = []
    for v in np.asarray(values, np.float64).reshape(-1):
        a, shift = np.eye(2), np.zeros(2)
        if name == "translate":
            shift = np.array([0.0, -v])
        elif name == "scale":
            if v <= 0:
                raise ValueError(f"scale factors must be > 0, got {v}")
            a = np.eye(2) / v
        elif name == "rotate":
            t = math.radians(v % 360.0)
            c, s = (1.0, 0.0) if v % 360.0 == 0 else (math.cos(t), math.sin(t))
            a = np.array([[c, -s], [s, c]])  # (x, y) with y down: counter-clockwise on screen
        elif name == "flip":
            a = np.diag([-1.0 if v >= 0.5 else 1.0, 1.0])
        else:
            raise ValueError(f"unknown transform {name!r}; choose from {', '.join(TRANSFORMS)}")
        centre = np.array([cx, cy])
        offset = centre - a @ centre + shift
        out.append([a[0, 0], a[0, 1], offset[0], a[1, 0], a[1, 1], offset[1], 0.0, 0.0])
    return np.asarray(out, np.float32)


def _warp(x, mats, fill):
    """Bilinear warp of ``x`` by ``mats`` with a per-channel ``fill`` outside (traceable).

    A ones channel is warped along: ``warp(x) + (1 - warp(1)) * fill`` is
    bilinear interpolation over the image extended by ``fill``, and exactly
    ``x`` for the identity (no ``x - fill + fill`` rounding).
    """
    ones = tf.ones_like(x[..., :1])
    both = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.concat([x, ones], -1), transforms=mats, output_shape=tf.shape(x)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")
    return both[..., :-1] + (1.0 - both[..., -1:]) * fill


def transformed(inputs, transform, values, fill=0.0) -> np.ndarray:
    """``(N, S, H, W, C)``: each input under each value of ``transform`` (the copies ``invariance`` measures)."""
    x = np.asarray(inputs, np.float32)
    n, h, w, c = x.shape
    mats = transform_matrices(transform, values, (h, w))
    fill = np.broadcast_to(np.asarray(fill, np.float32), (c,))
    rep = np.repeat(x, len(mats), axis=0)
    out = _warp(tf.constant(rep), tf.constant(np.tile(mats, (n, 1))), tf.constant(fill)).numpy()
    return out.reshape((n, len(mats), h, w, c))


# ---------------------------------------------------------------- layers
def default_layers(graph) -> tuple:
    """An early and a late layer, as the paper's layers 1 and 7: the first rectified map and the score's input."""
    early = next((s.name for s in graph.steps if s.is_map and s.activation not in ("linear", "softmax")), None)
    if early is None:
        early = next((s.name for s in graph.steps if s.is_map), graph.steps[0].name)
    step = graph.output_steps[0] if graph.output_steps else None
    # past a standalone softmax (Lite0's "predictions") to the classifier, then to its input; Dropout is
    # the identity at inference, so the features are named by the layer that computes them
    while step is not None and step.type_name in _PASS_THROUGH and step.input_ids:
        step = graph.producer(step.input_ids[0])
    step = graph.producer(step.input_ids[0]) if step is not None and step.input_ids else None
    while step is not None and step.type_name == "Dropout" and step.input_ids:
        step = graph.producer(step.input_ids[0])
    late = step.name if step is not None else graph.steps[-1].name
    return (early, late) if early != late else (early,)


# ---------------------------------------------------------------- the compiled sweep
def _sweep_fn(graph, layers, head):
    """Compiled ``(x, mats, img, targets, fill, batch) -> (dist (M, L), prob (M,), norms (N, L), base (N,))``."""
    c = graph.input_shape[-1]

    def features(xs):
        out = run(graph, xs, list(layers), linear=[head.name])
        flat = [tf.reshape(out[name], (tf.shape(xs)[0], -1)) for name in layers]
        return flat, probabilities(out[head.name], head)

    def build():
        ints = tf.TensorSpec((None,), tf.int32)
        spec = [input_spec(graph), tf.TensorSpec((None, 8), tf.float32), ints, ints, tf.TensorSpec((c,), tf.float32),
                tf.TensorSpec((), tf.int32)]

        @tf.function(input_signature=spec, reduce_retracing=True)
        def invariance_pass(x, mats, img, targets, fill, batch):
            n, m = tf.shape(x)[0], tf.shape(mats)[0]
            refs = [tf.TensorArray(tf.float32, size=0, dynamic_size=True, infer_shape=False) for _ in layers]
            base = tf.TensorArray(tf.float32, size=0, dynamic_size=True, infer_shape=False)
            for a in tf.range(0, n, batch):  # the originals, a batch at a time
                flat, probs = features(x[a:a + batch])
                refs = [r.write(a // batch, f) for r, f in zip(refs, flat)]
                base = base.write(a // batch, probs)
            refs, base = [r.concat() for r in refs], base.concat()
            targets = tf.where(targets < 0, tf.argmax(base, -1, output_type=tf.int32), targets)
            dist = tf.TensorArray(tf.float32, size=0, dynamic_size=True, infer_shape=False)
            prob = tf.TensorArray(tf.float32, size=0, dynamic_size=True, infer_shape=False)
            for a in tf.range(0, m, batch):  # every transformed copy, a batch at a time
                idx = img[a:a + batch]
                flat, probs = features(_warp(tf.gather(x, idx), mats[a:a + batch], fill))
                d = [tf.norm(f - tf.gather(r, idx), axis=1) for f, r in zip(flat, refs)]
                dist = dist.write(a // batch, tf.stack(d, 1))
                prob = prob.write(a // batch, tf.gather(probs, tf.gather(targets, idx), axis=1, batch_dims=1))
            norms = tf.stack([tf.norm(r, axis=1) for r in refs], 1)
            return (dist.concat(), prob.concat(), norms,
                    tf.gather(base, targets, axis=1, batch_dims=1), targets)

        return invariance_pass

    return compiled(graph, ("invariance", tuple(layers), head.name), build)


def _plan(transforms, size, steps):
    """``{name: values}`` from names (default ranges, ``steps`` each) or a dict of explicit values."""
    if isinstance(transforms, str):
        transforms = (transforms,)
    items = transforms.items() if isinstance(transforms, dict) else ((t, None) for t in transforms)
    plan = {}
    for name, values in items:
        if name not in TRANSFORMS:
            raise ValueError(f"unknown transform {name!r}; choose from {', '.join(TRANSFORMS)}")
        values = default_values(name, size, steps) if values is None else np.asarray(values, np.float64).reshape(-1)
        if values.size == 0 or not np.all(np.isfinite(values)):
            raise ValueError(f"transform {name!r} needs at least one finite value, got {values!r}")
        plan[name] = values
    if not plan:
        raise ValueError(f"transforms is empty; pass some of {', '.join(TRANSFORMS)}")
    return plan


def _fill(fill, c):
    arr = np.asarray(0.0 if fill is None else fill, np.float32)
    if arr.ndim == 0:
        arr = np.full((c,), float(arr), np.float32)
    if arr.shape != (c,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"fill must be a number or {c} finite channel values in model-input space "
                         f"(a preset's neutral value: keras_convviz.fit.neutral_fill(preset.preprocess, "
                         f"preset.mean_pixel)); got {fill!r}")
    return arr


def invariance(model, inputs, target=None, transforms=("translate", "scale", "rotate"), layers=None, steps=20,
               fill=None, batch_size=64, output=None) -> Invariance:
    """Fig. 5 of Zeiler & Fergus 2014 (arXiv:1311.2901): feature distance and target probability under transforms.

    Args:
      model: a Keras classifier.
      inputs: preprocessed model inputs ``(N, H, W, C)``.
      target: class index, one per image, or None (the class predicted on the original).
      transforms: names from ``translate`` (vertical, pixels of the model input),
        ``scale`` (factor), ``rotate`` (degrees), ``flip`` (left-right), or a
        dict ``{name: values}`` of explicit values.
      layers: layer names whose features are compared (default: an early and a
        late layer, :func:`default_layers`).
      steps: values per named transform over its default range (:func:`default_values`).
      fill: the padding in model-input space (a number or one value per
        channel; default 0). Pass the preset's neutral value for photos.
      batch_size: images per forward pass inside the one compiled call.
    """
    request = prepare(model, inputs, target, output, batch_size)
    graph, x = request.graph, request.x
    n, h, w, c = x.shape
    steps = positive_int(steps, "steps")
    names = default_layers(graph) if layers is None else (layers,) if isinstance(layers, str) else tuple(layers)
    names = tuple(graph.step(name).name for name in names)
    if not names:
        raise ValueError("layers is empty; pass layer names or None for an early and a late layer")
    plan, fill = _plan(transforms, (h, w), steps), _fill(fill, c)
    mats = np.concatenate([transform_matrices(t, v, (h, w)) for t, v in plan.items()])
    per = len(mats)  # copies per image, all transforms
    fn = _sweep_fn(graph, names, request.score)
    img = np.repeat(np.arange(n, dtype=np.int32), per)
    dist, prob, norms, base, targets = [t.numpy() for t in fn(
        tf.constant(x), tf.constant(np.tile(mats, (n, 1))), img, request.targets.astype(np.int32),
        tf.constant(fill), tf.constant(request.batch_size, tf.int32))]
    dist, prob = dist.reshape(n, per, len(names)), prob.reshape(n, per)
    out = {"distance": {}, "relative": {}, "probability": {}}
    start = 0
    for name, values in plan.items():
        span = slice(start, start + len(values))
        start += len(values)
        out["distance"][name] = np.transpose(dist[:, span], (0, 2, 1))
        out["relative"][name] = out["distance"][name] / np.maximum(norms, 1e-30)[:, :, None]
        out["probability"][name] = prob[:, span]
    return Invariance(transforms=tuple(plan), values=plan, layers=names, target=targets.astype(np.int64),
                      base_probability=base, feature_norm=norms, fill=fill, **out)
