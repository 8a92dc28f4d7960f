"""Class models: images that maximize a class score (Simonyan et al. 2014, arXiv:1312.6034).

From the zero image, gradient ascent on ``S_c(x) - l2 * R_2(x - centre) -
tv * TV_beta(x)``, where ``S_c`` is the pre-softmax class score, with the
regularizers of Yosinski et al. 2015 (arXiv:1506.06579): random jitter, a
Gaussian blur every few iterations, total variation and clipping to the valid
input range. With ``layer=`` it maximizes the mean of one feature map
instead of a class. The loop, the penalties and the shared options are in
:mod:`keras_convviz.methods.optimize`.
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np
import tensorflow as tf

from ..inline import Inline
from ..checks import finite_float, indices, resolve_targets
from ..graph import walk
from ..precision import graph_in
from ..probe import compiled, input_spec, run
from ..select import num_classes, score_step
from .featurevis import TRANSPARENCY, class_recipe, init_batch, optimize_plan, recipe_score, resolve_param
from .featurevis import recipe as model_recipe
from .objectives import channel, class_log_probability, class_logit, plan
from .optimize import (SCALAR, check_image_model, check_settings, iteration_fn, norm_penalty,
                       rgb_images, run_iterations, total_variation)

__all__ = ["class_model", "ClassModel", "SCORES"]

SCORES = ("logit", "log_probability")
START_NOISE = 1e-2  # the default start's noise (times scale): the zero image is stuck on bias-free ReLU nets
_INDICES = tf.TensorSpec((None,), tf.int64)


@dataclasses.dataclass(frozen=True)
class ClassModel(Inline):
    """What :func:`class_model` found.

    ``images``: ``(N, H, W, C)`` model inputs. ``history``: ``(iterations,
    N)`` regularized objective. ``targets``: the class (or feature map) each
    image maximizes. ``scores``: the final maximized value per image (the
    pre-softmax logit, its log probability, or the feature map's mean).
    ``logits`` / ``probabilities``: the model's pre-activation scores and its
    actual output (softmax...) ``(N, K)`` for the final images.
    ``start_scores``: the same score of the zero image (``centre``), so
    :attr:`gain` is what the optimization won, exactly zero per image when
    the score ignores the image (a dead model). ``random_scores``: the score
    of a random image (uniform over the valid range, or ``centre +- scale``);
    :attr:`failed` where the optimization did not beat it.
    """

    images: np.ndarray
    history: np.ndarray
    targets: np.ndarray
    scores: np.ndarray
    logits: np.ndarray
    probabilities: np.ndarray
    start_scores: np.ndarray
    random_scores: np.ndarray = None

    @property
    def failed(self) -> np.ndarray:
        """``(N,)`` bool: the final score is not above a random image's."""
        if self.random_scores is None:
            return np.zeros(len(self.scores), bool)
        return ~(self.scores > self.random_scores)

    @property
    def gain(self) -> np.ndarray:
        """``scores - start_scores`` per image (the history holds the penalized objective instead)."""
        return self.scores - self.start_scores

    def rgb(self, deprocess=None) -> np.ndarray:
        """The images as RGB ``uint8`` ``(N, H, W, 3)`` (see ``optimize.rgb_images``)."""
        return rgb_images(self.images, deprocess)


@dataclasses.dataclass(frozen=True)
class _Goal:
    """What is maximized: output ``step`` (pre-activation when ``linear``),
    a class score or a feature map's mean (``feature``), picked by ``index``."""

    step: str
    linear: bool
    feature: bool
    score: str
    index: np.ndarray  # the class or feature map per image

    @property
    def key(self):
        return self.step, self.linear, self.feature, self.score


def _feature_goal(graph, layer, map) -> _Goal:
    step = graph.step(layer)
    units = int(step.output_shape[-1])
    if map is None:
        raise ValueError(f"layer={step.name!r} needs map=INDEX (0..{units - 1}), the feature map to maximize")
    return _Goal(step.name, step.activation != "linear", True, "logit", indices(map, units, "map"))


def _class_goal(graph, head, target, score, output) -> _Goal:
    if target is None:
        raise ValueError("class_model needs target=CLASS (an int or a list, one image each)")
    if isinstance(target, bool) or not isinstance(target, (numbers.Real, np.generic, list, tuple, np.ndarray)):
        raise ValueError(f"target must be a class index or a list of them, got {target!r}")
    n = 1 if isinstance(target, (numbers.Real, np.generic)) else np.asarray(target).size  # checks.resolve_targets
    if n == 0:
        raise ValueError("target is an empty list; give at least one class")
    index = resolve_targets(target, n, num_classes(graph, output))
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
    if score == "log_probability" and head.activation not in ("softmax", "sigmoid"):
        raise ValueError(
            f"score='log_probability' needs a softmax or sigmoid output, but {head.name!r} "
            f"has activation {head.activation!r}; use score='logit'."
        )
    return _Goal(head.name, True, False, score, index)


def _goal_value(graph, goal):
    """``x, index -> (N,)`` the maximized value (traceable)."""
    activation = graph.step(goal.step).activation

    def value(x, index):
        if goal.linear:
            out = run(graph, x, [], linear=[goal.step])[goal.step]
        else:
            out = run(graph, x, [goal.step])[goal.step]
        if goal.feature:
            if len(out.shape) > 2:
                out = tf.reduce_mean(out, axis=list(range(1, len(out.shape) - 1)))
            return tf.gather(out, index, axis=1, batch_dims=1)
        if out.shape[-1] == 1:  # single-unit sigmoid: class 1 is the logit, class 0 its negation
            logit = out[:, 0] * tf.where(index > 0, 1.0, -1.0)
            return tf.math.log_sigmoid(logit) if goal.score == "log_probability" else logit
        if goal.score == "log_probability":
            out = tf.nn.log_softmax(out) if activation == "softmax" else tf.math.log_sigmoid(out)
        return tf.gather(out, index, axis=1, batch_dims=1)

    return value


def _iteration(graph, goal, optimizer):
    """The compiled ascent iteration on ``S(jittered) - l2 R_2(x - centre) - tv TV_beta(x)``."""
    value = _goal_value(graph, goal)

    def objective(x, jittered, centre, scale, extra):
        index, l2, tv, beta = extra
        return (value(jittered, index)
                - l2 * norm_penalty(x - centre, 2.0, scale)
                - tv * total_variation(x, beta, scale))

    specs = (_INDICES, SCALAR, SCALAR, SCALAR)  # index, l2, tv, tv_beta
    return iteration_fn(graph, ("optimize.class_model",) + goal.key, optimizer, objective, specs, ascend=True)


def _final_fn(graph, head, goal):
    """Compiled ``x, index -> (value, logits, output)`` for the final images."""
    value = _goal_value(graph, goal)

    def build():
        @tf.function(input_signature=[input_spec(graph), _INDICES], autograph=False)
        def final(x, index):
            logits = run(graph, x, [], linear=[head])[head]
            output = run(graph, x, [head])[head]
            return value(x, index), logits, output

        return final

    return compiled(graph, ("optimize.final", head) + goal.key, build)


def _final_scores(graph, settings, head, goal, x):
    """``(scores, logits, probabilities, start_scores, random_scores)`` numpy: the final images', the zero
    image's and a random image's."""
    index, final = tf.constant(goal.index, tf.int64), _final_fn(graph, head.name, goal)
    scores, logits, probabilities = (t.numpy() for t in final(x, index))
    start = final(tf.constant(settings.start(None, tuple(x.shape), 0.0)), index)[0].numpy()
    noise = tf.constant(settings.random_image(tuple(x.shape)))
    return scores, logits, probabilities, start, final(noise, index)[0].numpy()


def _start(graph, settings, rng, init, n, noise):
    """The starting batch: the zero image (plus noise), or ``init`` (one, or one per image).

    ``noise=0`` still adds :data:`START_NOISE`: on a bias-free ReLU network the
    zero image has an exactly zero gradient and the ascent would never move."""
    if init is None:
        return settings.start(rng, (n,) + tuple(graph.input_shape), noise or START_NOISE)
    return init_batch(graph, init, n, "targets")


def _climb(graph, settings, goal, param, colors, init, noise, penalties, progress, recipe):
    """``(images, history)``: Simonyan's pixel loop, or the feature-visualization engine (``param``)."""
    rng = np.random.default_rng(settings.seed)
    if param != "pixel":
        if goal.feature:
            objective = channel(goal.step, goal.index)
        elif goal.score == "logit":
            objective = class_logit(goal.index, goal.step)
        else:
            objective = class_log_probability(goal.index, goal.step, recipe.get("temperature", 1.0))
        x, history = optimize_plan(graph, settings, plan(graph, objective), param, colors, rng=rng,
                                   penalties=(0.0,) + tuple(penalties[1:]), progress=progress,  # no l2: see param
                                   **{k: recipe[k] for k in ("zoom", "rotate", "decay") + TRANSPARENCY
                                      if k in recipe and (param != "maco" or k not in TRANSPARENCY)})
        return tf.constant(x), history
    x = _start(graph, settings, rng, init, len(goal.index), noise)
    extra = (tf.constant(goal.index, tf.int64),) + tuple(tf.constant(v, tf.float32) for v in penalties)
    return run_iterations(settings, _iteration(graph, goal, settings.optimizer), x, extra, rng, progress, "score")


# Simonyan's method as before the feature-visualization engine (param="pixel", and channels of layer=).
PIXEL_DEFAULTS = dict(steps=100, lr=0.05, jitter=4, tv=0.0, tv_beta=2.0, score="logit")


def _defaults(graph, param, feature, head, given):
    """The options left at None: :data:`PIXEL_DEFAULTS` for pixels and feature maps, the model's class
    recipe (:func:`featurevis.recipe`: ImageNet's, or the demo net's) for class models.
    Returns ``(options, recipe extras)``."""
    if param == "pixel" or feature:
        extras = {}
        defaults = dict(PIXEL_DEFAULTS)
    else:
        name = graph.model.name
        extras = class_recipe(*graph.input_shape[:2], name)
        defaults = dict({k: extras[k] for k in ("steps", "lr", "jitter", "tv", "tv_beta")},
                        score=recipe_score(head.activation, name))
        extras = dict(extras, temperature=model_recipe(name)["temperature"])
    options = {k: defaults[k] if v is None else v for k, v in given.items()}
    if given["score"] is not None or options["score"] == "logit":
        extras.pop("temperature", None)  # an explicit score is the model's own (temperature 1)
    return options, extras


def class_model(model, target=None, steps=None, lr=None, l2=0.01, jitter=None, blur_every=0,
                blur_sigma=0.5, tv=None, clip=None, layer=None, map=None, value_range=None,
                seed=0, progress=False, optimizer="adam", init=None, tv_beta=None, scale=None,
                centre=None, noise=0.0, score=None, output=None, param=None, colors=None,
                precision="float32") -> ClassModel:
    """Images that maximize a class score (Simonyan et al. 2014) or a feature map.

    From the zero image (``centre``), ``steps`` iterations of gradient ascent
    on ``S(x) - l2 * R_2(x - centre) - tv * TV_beta(x)``, with Yosinski et
    al.'s (2015) jitter, blur and clipping (the options and penalties are
    described in :mod:`keras_convviz.methods.optimize`).

    Args:
      model: a Keras image model (single input, fixed ``(H, W, C)``).
      target: the class to maximize, an int or a list (one image each).
        ``None`` is an error (there is no image to predict from).
      score: ``"logit"``: ``S`` is the pre-softmax logit (Simonyan), also for a
        fused or standalone softmax/sigmoid. ``"log_probability"``: the log of
        the model's own output probability, which also pushes the other
        classes down. None: the recipe's (see ``param``).
      l2, tv, tv_beta: weights of the L2 and total-variation penalties, and
        TV's exponent (None: the recipe's edge-preserving 1, or 2 for pixels).
      layer, map: maximize the mean of feature map ``map`` (an int or one per image) of ``layer``'s
        pre-activation output instead of a class.
      init: a starting batch in input space instead of the zero image.
      noise: Gaussian noise (times ``scale``) added to the start; 0 means ``START_NOISE`` (1e-2), because the
        exact zero image is a fixed point of bias-free ReLU networks (pass ``init=`` zeros for that start).
      output: the output of a multi-output model to take the class from.
      param: None (default): ``"fourier"``, the readable engine of :mod:`.featurevis`, whose class
        models take the model's :func:`featurevis.recipe` for options left at None (``CLASS_RECIPE``,
        chosen on ImageNet's EfficientNet-Lite0: Fourier, logit; the demo net: ``DEMO_RECIPE``);
        ``"pixel"`` (also with ``init`` or ``blur_every``): exactly Simonyan's method, :data:`PIXEL_DEFAULTS`.
        ``colors``: its colour matrix (``parameterize.colour_matrix(images)``). It takes ``tv`` but not
        ``l2`` (its sigmoid bounds the image; the pull to grey stalls weak classes on the flat image).
      precision: ``"float32"``, ``"bfloat16"``, ``"float16"``: see :mod:`keras_convviz.precision`.
      steps, lr, jitter, blur_every, blur_sigma, clip, value_range, seed, progress, optimizer, scale,
        centre: the shared options.

    Returns a :class:`ClassModel`: ``.images`` in input space, ``.rgb(preset.deprocess)`` for pictures, and
    the final ``.scores``, ``.logits``, ``.probabilities`` and the ``.history``.
    """
    graph = walk(model)
    check_image_model(graph)
    param = resolve_param(param, init, blur_every, layer is None and model_recipe(graph.model.name)["param"])
    head = score_step(graph, output)
    given = dict(steps=steps, lr=lr, jitter=jitter, tv=tv, tv_beta=tv_beta, score=score)
    options, recipe = _defaults(graph, param, layer is not None, head, given)
    settings = check_settings(graph, options["steps"], options["lr"], optimizer, options["jitter"], blur_every,
                              blur_sigma, clip, value_range, scale, seed, centre)
    l2, tv, noise = finite_float(l2, "l2"), finite_float(options["tv"], "tv"), finite_float(noise, "noise")
    tv_beta = finite_float(options["tv_beta"], "tv_beta", 0.0, allow_equal=False)
    if layer is not None:
        goal = _feature_goal(graph, layer, map)
    elif map is not None:
        raise ValueError("map= selects a feature map of layer=; pass layer=NAME too, or target=CLASS alone")
    else:
        goal = _class_goal(graph, head, target, options["score"], output)
    x, history = _climb(graph_in(graph, precision), settings, goal, param, colors, init, noise, (l2, tv, tv_beta),
                        progress, recipe)
    return ClassModel(x.numpy(), history, goal.index, *_final_scores(graph, settings, head, goal, x))
