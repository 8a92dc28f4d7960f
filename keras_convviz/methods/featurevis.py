"""Feature visualization people can read (Olah et al. 2017, "Feature Visualization", Distill).

``featurevis(model, objective)`` finds input images that maximize an
objective of :mod:`.objectives` (a class logit or log probability, a
channel, a neuron, a direction, a diversity term, or a weighted sum), with
the three ingredients of Lucid and of Mordvintsev et al. 2018
("Differentiable Image Parameterizations", Distill):

* a decorrelated parameterization (:mod:`.parameterize`): ``"fourier"``
  (1/f-scaled spectrum plus colour decorrelation, the default),
  ``"decorrelated"`` (colour decorrelation on pixels), ``"maco"`` (Fel et
  al. 2023, arXiv:2306.06805: the phase alone, the magnitude spectrum fixed
  to natural photographs', :mod:`.maco`, with its importance map), or ``"pixel"``:
  Simonyan et al.'s (2014, arXiv:1312.6034) plain gradient ascent on the
  pixels with jitter and clipping, the loop of :mod:`.optimize` unchanged;
* transformation robustness: every step the model sees each image rotated
  (``rotate`` degrees), scaled (``1 +- zoom``) and shifted (``jitter``
  pixels) at random, inside the compiled step;
* the image stays in ``value_range`` (a sigmoid onto the range for the
  parameterized images, clipping for pixels).

Several units of one objective family (16 channels of a layer, 4 classes)
are one batch, one image each, optimized together. Each step is one
compiled ``tf.function`` (the shared :func:`.optimize.iteration_fn`), keyed
by the parameterization and the objective's kinds and layers, and reused for
every step and every later call with other units, weights or batch sizes.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

from ..inline import Inline
from ..checks import finite_float
from ..graph import walk
from ..precision import graph_in
from ..probe import compiled, input_spec
from ..request import as_batch
from . import maco
from . import objectives as obj
from .optimize import (SCALAR, check_image_model, check_settings, iteration_fn, norm_penalty, rgb_images,
                       run_iterations, total_variation)
from .objectives import (channel, class_log_probability, class_logit, direction, diversity,  # noqa: F401
                         neuron)
from .parameterize import PARAMS, TRANSFORM_SLOTS, Parameterization, colour_matrix, normalized_colors  # noqa: F401

# The objectives and the colour matrix are re-exported: ``from keras_convviz.methods.featurevis import channel``.
__all__ = ["featurevis", "FeatureVis", "optimize_plan", "init_batch", "resolve_param", "check_param", "READABLE",
           "CLASS_RECIPE", "DEMO_RECIPE", "DEMO_MODEL", "TRANSPARENCY", "recipe", "class_recipe", "recipe_score",
           "recipe_class_objective", "check_alpha",
           "channel", "neuron", "direction", "diversity", "class_logit", "class_log_probability", "colour_matrix"]

# The readable defaults (Lucid's): Fourier + colour decorrelation, rotation +-10 degrees, scale +-10 %.
READABLE = dict(param="fourier", zoom=0.1, rotate=10.0)

# The class-model recipe for real networks, chosen and measured on an ImageNet classifier
# (EfficientNet-Lite0 at 224, judged by Lite1: benchmarks/bench_featurevis_real.py, docs/featurevis-real.md):
# an opaque 1/f Fourier image with ImageNet colour decorrelation (Lucid's; MaCo, Fel et al. 2023, transferred
# worse: 46/48 in Lite1's top 5 and Lite1 p 0.72 over 16 classes x 3 seeds, and its images are hazier), a step
# of 0.0125 (Lucid's 0.05 on its spectrum, which is 4x smaller than ours: 0.05 here paints saturated,
# high-contrast textures for the same transfer), the pre-softmax logit (Simonyan's score: the log probability
# stops rising once p = 1 and its class models transferred worse to Lite1: 2 of 4 below p 0.3 against 0 of 4),
# Lucid's robustness (shift a 14th of the side, scale +-10 %, rotation +-10 degrees) and no penalty (the
# sigmoid keeps the image in range). `jitter`: a share of the side.
CLASS_RECIPE = dict(param="fourier", steps=256, lr=0.0125, decay=1.0, alpha=None, solid=False, compact=False,
                    tv=0.0, tv_beta=2.0, jitter=0.07, zoom=0.1, rotate=10.0, score="logit", temperature=1.0)
# The demo net's own recipe (64 x 64 solid-coloured transparent shapes on grey; benchmarks/bench_featurevis.py):
# a transparent solid-coloured object covering about a fifth of the frame (0.15 and 0.25 transferred worse to
# twin models over 12 seeds) over random backgrounds (Mordvintsev et al. 2018), in one piece (compact:
# globally pooled nets otherwise tile the most telling part of the class), a smoother 1/f^2 spectrum,
# edge-preserving total variation (beta 1), scale but no rotation (the demo's objects stand upright), and
# the class's log probability at temperature 8 (the logit alone paints textures shared with other classes).
DEMO_RECIPE = dict(param="fourier", steps=256, lr=0.02, decay=2.0, alpha=0.2, solid=True, compact=True, tv=0.25,
                   tv_beta=1.0, jitter=0.1, zoom=0.2, rotate=0.0, score="log_probability", temperature=8.0)
# The recipe's options that describe a transparent object: pixel-space class models take none of them.
TRANSPARENCY = ("alpha", "solid", "compact")
DEMO_MODEL = "convviz_demo"  # demo.build()'s model name: the one net that takes DEMO_RECIPE


def recipe(model_name=None) -> dict:
    """The class-model recipe of a model: :data:`DEMO_RECIPE` for the demo net, else :data:`CLASS_RECIPE`."""
    return DEMO_RECIPE if model_name == DEMO_MODEL else CLASS_RECIPE


def class_recipe(height, width, model_name=None) -> dict:
    """The model's :func:`recipe` as :func:`featurevis` options for a ``height`` x ``width`` input
    (jitter in pixels), without the score and temperature (they belong to the objective)."""
    options = {k: v for k, v in recipe(model_name).items() if k not in ("score", "temperature")}
    return dict(options, jitter=max(1, int(round(options["jitter"] * min(height, width)))))


def recipe_score(head_activation, model_name=None) -> str:
    """The recipe's class score: its ``"logit"``, or ``"log_probability"`` when the recipe asks for it
    and the head is a softmax or sigmoid."""
    wanted = recipe(model_name)["score"]
    return wanted if wanted == "logit" or head_activation in ("softmax", "sigmoid") else "logit"


def recipe_class_objective(targets, head_activation, output=None, model_name=None):
    """The recipe's class objective (:func:`recipe_score`; the log probability at the recipe's
    temperature). Returns ``(objective, name)``."""
    if recipe_score(head_activation, model_name) == "log_probability":
        temperature = recipe(model_name)["temperature"]
        return (obj.class_log_probability(targets, output, temperature),
                f"class log probability (T={temperature:g})")
    return obj.class_logit(targets, output), "class logit"


def check_alpha(alpha, param, solid=False, compact=False):
    """``alpha``: None, or the target opaque share in (0, 1) of a Fourier / decorrelated image."""
    if alpha is None:
        for name, asked, what in (("solid", solid, "one colour"), ("compact", compact, "one piece")):
            if asked:
                raise ValueError(f"{name}=True gives a transparent object {what}; pass alpha= (such as 0.2) too")
        return None
    share = finite_float(alpha, "alpha")
    if not 0.0 < share < 1.0:
        raise ValueError(f"alpha is the opaque share of the image, in (0, 1) such as 0.2; got {alpha!r}")
    if param in ("pixel", "maco"):
        raise ValueError(f"alpha= (a transparent image) needs param='fourier' or 'decorrelated', not {param!r}")
    return share


@dataclasses.dataclass(frozen=True)
class FeatureVis(Inline):
    """What :func:`featurevis` found.

    ``images``: ``(N, H, W, C)`` model inputs; ``history``: ``(iterations,
    N)`` the objective (with penalties) on each step's transformed images;
    ``values``: ``(N,)`` the weighted objective on the final, untransformed
    images; ``terms``: ``(N, T)`` each term's unweighted value there;
    ``labels``: what each image maximizes; ``param``: the parameterization;
    ``importance``: ``(N, H, W)`` in [0, 1], MaCo's transparency map (where
    the objective's gradient on the image is large; Fel et al. 2023) for
    ``param="maco"``, else None; ``baseline``: ``(N,)`` the weighted
    objective of a random image (uniform noise over the valid range), and
    :attr:`failed` where ``values`` did not rise above it.
    """

    images: np.ndarray
    history: np.ndarray
    values: np.ndarray
    terms: np.ndarray
    labels: tuple
    param: str
    importance: Optional[np.ndarray] = None
    baseline: Optional[np.ndarray] = None

    @property
    def failed(self) -> np.ndarray:
        """``(N,)`` bool: the optimization did not beat a random image (objective not above ``baseline``)."""
        if self.baseline is None:
            return np.zeros(len(self.values), bool)
        return ~(self.values > self.baseline)

    def rgb(self, deprocess=None) -> np.ndarray:
        """The images as RGB ``uint8`` ``(N, H, W, 3)`` (see ``optimize.rgb_images``)."""
        return rgb_images(self.images, deprocess)


def check_param(param) -> str:
    """A parameterization name, or a ``ValueError`` listing them."""
    if param not in PARAMS:
        raise ValueError(f"unknown parameterization param={param!r}; use one of {', '.join(PARAMS)}")
    return param


def resolve_param(param, init=None, blur_every=0, default=None) -> str:
    """``class_model``'s default: ``default`` (its recipe's, or ``"fourier"``), but ``"pixel"`` (Simonyan's
    method, as before) when the call starts from an ``init`` image or asks for pixel blur (``blur_every``)."""
    if param is None:
        return "pixel" if init is not None or blur_every else default or READABLE["param"]
    return check_param(param)


# ---------------------------------------------------------------- the compiled pieces
def _objective_fn(graph, family):
    """``objective(x, seen, centre, scale, extra)``: weighted terms on ``seen`` minus penalties on ``x``."""

    def objective(x, seen, centre, scale, extra):
        _, _, penalties, *args = extra
        parts = obj.values(graph, family, seen, args)
        total = tf.add_n([a[3] * v for a, v in zip(args, parts)])
        return (total - penalties[0] * norm_penalty(x - centre, 2.0, scale)
                - penalties[1] * total_variation(x, penalties[2], scale))

    return objective


def _extra_specs(graph, family):
    channels = int(graph.input_shape[-1])
    return (tf.TensorSpec((channels, channels), tf.float32), tf.TensorSpec((TRANSFORM_SLOTS,), tf.float32),
            tf.TensorSpec((3,), tf.float32)) + obj.arg_specs(family)


def _render_fn(graph, image):
    """Compiled ``p -> x`` of a parameterization (the final images)."""
    channel = tf.TensorSpec((None,), tf.float32)
    specs = [image.spec, tf.TensorSpec((None, None), tf.float32), channel, channel, channel, SCALAR]

    def build():
        return tf.function(image.render, input_signature=specs, autograph=False)

    return compiled(graph, ("optimize.featurevis.render",) + image.key, build)


def _terms_fn(graph, family):
    """Compiled ``x, args -> (N, T)``: every term's unweighted value on the final images."""

    def build():
        @tf.function(input_signature=[input_spec(graph), obj.arg_specs(family)], autograph=False)
        def terms(x, args):
            return tf.stack(obj.values(graph, family, x, args), axis=1)

        return terms

    return compiled(graph, ("optimize.featurevis.terms", family), build)


# ---------------------------------------------------------------- the engine
def optimize_plan(graph, settings, plan, param, colors=None, zoom=0.1, rotate=10.0, penalties=(0.0, 0.0, 2.0),
                  init=None, rng=None, progress=False, decay=1.0, alpha=None, solid=False,
                  compact=False, magnitude=None):
    """Optimize the images of a checked :class:`objectives.Plan`: ``(images, history)`` numpy.

    The one engine behind :func:`featurevis` and ``class_model``.
    ``penalties``: ``(l2, tv, tv_beta)`` on the untransformed image;
    ``decay``, ``alpha``, ``solid``, ``compact``, ``magnitude``: see :class:`parameterize.Parameterization`.
    """
    rng = np.random.default_rng(settings.seed) if rng is None else rng
    channels = int(graph.input_shape[-1])
    colors = normalized_colors(colors, channels)
    seed = float(rng.integers(0, 2 ** 24))
    extra = (tf.constant(colors), tf.constant([seed, zoom, rotate], tf.float32),
             tf.constant(penalties, tf.float32)) + obj.arg_tensors(plan.args)
    specs = _extra_specs(graph, plan.family)
    objective = _objective_fn(graph, plan.family)
    shape = (plan.count,) + tuple(graph.input_shape)
    if param == "pixel":
        x = settings.start(rng, shape, 0.0) if init is None else init
        fn = iteration_fn(graph, ("optimize.featurevis", "pixel", plan.family), settings.optimizer, objective,
                          specs, ascend=True)
        x, history = run_iterations(settings, fn, x, extra, rng, progress, "objective")
        return x.numpy(), history
    image = Parameterization(param, tuple(graph.input_shape), settings.clip, float(decay), alpha, bool(solid),
                             bool(compact), magnitude)
    bounds = [tf.constant(b) for b in settings.clip_bounds()] + [tf.constant(settings.centre),
                                                                 tf.constant(settings.scale, tf.float32)]
    p = image.initial(rng, plan.count) if init is None else image.encode(
        init, colors, settings.low, settings.high, settings.centre, settings.scale)
    fn = iteration_fn(graph, ("optimize.featurevis",) + image.key + (plan.family,), settings.optimizer, objective,
                      specs, ascend=True, image=image)
    p, history = run_iterations(settings, fn, p, extra, rng, progress, "objective")
    return _render_fn(graph, image)(p, tf.constant(colors), *bounds).numpy(), history


def init_batch(graph, init, count, what="images"):
    """``init`` (one image, or one per ``what``) as a checked batch of ``count`` model inputs; None stays None."""
    if init is None:
        return None
    x = as_batch(graph, init)
    if len(x) == 1 and count > 1:
        x = np.repeat(x, count, axis=0)
    if len(x) != count:
        raise ValueError(f"init has {len(x)} images for {count} {what}; give one, or one per {what.rstrip('s')}")
    return x


def featurevis(model, objective, param="fourier", steps=256, lr=0.05, images=None, colors=None,
               value_range=None, jitter=None, zoom=0.1, rotate=10.0, l2=0.0, tv=0.0, tv_beta=2.0, seed=0,
               progress=False, optimizer="adam", init=None, scale=None, centre=None, decay=1.0,
               alpha=None, solid=False, compact=False, magnitude=None, precision="float32") -> FeatureVis:
    """Images that maximize ``objective`` (Olah et al. 2017; see the module docstring).

    Args:
      model: a Keras image model (single input, fixed ``(H, W, C)``).
      objective: built with :mod:`keras_convviz.methods.objectives`, e.g.
        ``channel("block3_conv2", range(16))`` (16 images in one batch) or
        ``class_logit(2) + 1e2 * diversity("block3_conv2")`` with ``images=4``.
      param: ``"fourier"`` (default), ``"decorrelated"``, ``"maco"`` (Fel et al.
        2023: the phase alone, the magnitude spectrum fixed) or ``"pixel"``.
      steps, lr: Adam steps and step size (in the variable's units; for
        ``"pixel"`` in units of ``scale``, as in ``class_model``).
      images: the batch size when every term is shared by all images.
      colors: the colour matrix ``(C, C)`` in model-input channel order
        (``parameterize.colour_matrix(your_images)``; default ImageNet's for
        3 channels); ignored by ``"pixel"``.
      value_range: ``(low, high)`` valid model inputs; the images stay inside.
      jitter, zoom, rotate: the random shift (pixels, default ``H // 16``),
        scale (``1 +- zoom``) and rotation (degrees) of every step (pixel:
        jitter only).
      l2, tv, tv_beta: penalties on the image (see ``optimize``).
      decay: the Fourier spectrum's ``1 / f ** decay`` scale (2: smoother).
      alpha: None (an opaque image), or the opaque share in (0, 1) of a
        transparent object optimized over random backgrounds and shown over
        the zero image (Mordvintsev et al. 2018); class models use 0.2
        (:data:`CLASS_RECIPE`). ``solid``: that object in one colour (its
        silhouette carries the objective; needs ``alpha``). ``compact``:
        that object in one piece (``parameterize.spread``; needs ``alpha``).
      magnitude: ``"maco"``'s fixed spectrum: None (natural photographs',
        ``maco.NATURAL_SPECTRUM``), the user's images ``(N, H, W, C)`` (model
        inputs, with ``value_range``), or a spectrum ``(C, H, W // 2 + 1)``.
      init: start images (model inputs) instead of the flat mid-range image.
      precision: ``"float32"`` (default), ``"bfloat16"`` or ``"float16"``: the steps run on a
        mixed-precision twin (:mod:`keras_convviz.precision`); the reported terms are the float32 model's.
      seed, progress, optimizer, scale, centre: the shared options.

    Returns a :class:`FeatureVis`; ``.rgb(preset.deprocess)`` for pictures.
    """
    graph = walk(model)
    check_image_model(graph)
    param = check_param(param)
    plan = obj.plan(graph, objective, images)
    jitter = max(1, min(graph.input_shape[:2]) // 16) if jitter is None else jitter
    settings = check_settings(graph, steps, lr, optimizer, jitter, 0, 0.5, None, value_range, scale, seed, centre)
    zoom = finite_float(zoom, "zoom")
    rotate = finite_float(rotate, "rotate")
    if zoom >= 1.0:
        raise ValueError(f"zoom must be below 1 (the scale varies in 1 +- zoom), got {zoom}")
    penalties = (finite_float(l2, "l2"), finite_float(tv, "tv"), finite_float(tv_beta, "tv_beta", 0.0, False))
    decay = finite_float(decay, "decay", 0.0)
    alpha = check_alpha(alpha, param, solid, compact)
    magnitude = maco.resolve_magnitude(magnitude, param, graph.input_shape, normalized_colors(
        colors, int(graph.input_shape[-1])), settings.low, settings.high)
    x, history = optimize_plan(graph_in(graph, precision), settings, plan, param, colors, zoom, rotate, penalties,
                               init_batch(graph, init, plan.count), progress=progress, decay=decay, alpha=alpha,
                               solid=solid, compact=compact, magnitude=magnitude)
    return _result(graph, plan, settings, x, history, param)


def _result(graph, plan, settings, x, history, param):
    """The :class:`FeatureVis` of optimized images ``x``: the terms there and on a random image."""
    terms_fn, args = _terms_fn(graph, plan.family), obj.arg_tensors(plan.args)
    terms = terms_fn(tf.constant(x), args).numpy()
    baseline = terms_fn(tf.constant(settings.random_image(x.shape)), args).numpy() @ plan.weights
    importance = maco.importance(graph, plan, x, settings, settings.seed) if param == "maco" else None
    return FeatureVis(x, history, terms @ plan.weights, terms, plan.labels, param, importance, baseline)
