"""Layer-wise relevance propagation (Bach et al. 2015; Montavon et al. 2019) through the probe interpreter.

The relevance at the top is the target's pre-softmax logit (zero at the other
classes); it flows down and comes out in input space, float32 ``(N, H, W, C)``.
:func:`keras_convviz.probe.run` runs the walk with a :class:`RelevanceRule`: it
runs every step forward and attaches (``tf.custom_gradient``) a backward pass
mapping the relevance of the step's output to its inputs', so the "gradient"
reaching the input *is* the relevance (Zennit's convention).

Rules for Conv2D, DepthwiseConv2D and Dense (``z = x W + b``, ``R`` the output's
relevance; each is ``R_in = sum_i s_i x_i * W_i^T (R / z')`` over its terms):
``"zero"`` (LRP-0, ``z' = z``: gradient x input on bias-free ReLU networks);
``"epsilon"`` (``z' = z + epsilon sign(z)``, sign(0) = 1; biases keep their
share); ``"gamma"`` (``W + gamma W+`` and ``b + gamma b+``; Zennit's sign-aware
form: ``W + gamma W-`` where ``z <= 0`` or the input is negative); ``"zplus"``
(z+, ``x+W+ + x-W-``, no bias: Montavon's ``x W+`` for non-negative inputs);
``"alpha_beta"`` (``alpha R(x+W+ + x-W-) - beta R(x+W- + x-W+)``, no bias;
alpha=1, beta=0 is z+); ``"zbox"`` (z^B, ``x W - l W+ - h W-`` for bounds
``l <= x <= h``); ``"flat"`` (weights and inputs 1); ``"wsquare"`` (weights
``W**2``, inputs 1). A denominator of exactly 0 passes no relevance (only
epsilon and gamma add a stabilizer). Other layers, whatever the rule:

* BatchNormalization right after a linear Conv2D/DepthwiseConv2D/Dense that
  nothing else reads is **folded** into it (Zennit's canonizer convention):
  the rule sees ``W * gamma / sqrt(var + eps)`` and the merged bias. Any
  other BatchNormalization is a per-channel linear layer (epsilon rule).
* Average pooling (also global) and Add/Average/Subtract: linear without
  weights, epsilon rule (Zennit's Norm): ``R_i = x_i R / (z + epsilon sign z)``,
  an Add splits relevance in proportion to each input's contribution.
* Activations (ReLU, ReLU6, any Activation, fused or not) and
  Rescaling/Normalization pass relevance through unchanged.
* Max pooling (winner takes all), padding, cropping, reshaping,
  concatenation and dropout route relevance with their true gradient.

Other layers (SeparableConv2D, Multiply, ...) are refused. Composites (Zennit's
names) pick a rule per layer type: ``"epsilon_plus"`` (epsilon for Dense, z+
for convolutions), ``"epsilon_plus_flat"``/``"epsilon_plus_box"`` (flat / z^B
at the first layer), ``"epsilon_gamma_box"`` (gamma for convolutions, z^B
first), ``"epsilon_alpha2_beta1"`` and ``"epsilon_alpha2_beta1_flat"``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import keras
import numpy as np
import tensorflow as tf

from ..probe import call_layer, compiled, input_spec, run
from ..request import prepare
from ..select import predicted, target_scores

__all__ = ["lrp", "RULES", "COMPOSITES", "RelevanceRule", "plan_rules"]

RULES = ("zero", "epsilon", "gamma", "zplus", "alpha_beta", "zbox", "flat", "wsquare")
# composite -> (rule for Dense, rule for convolutions, rule for the first layer or None)
COMPOSITES = {
    "epsilon_plus": ("epsilon", "zplus", None),
    "epsilon_plus_flat": ("epsilon", "zplus", "flat"),
    "epsilon_plus_box": ("epsilon", "zplus", "zbox"),
    "epsilon_gamma_box": ("epsilon", "gamma", "zbox"),
    "epsilon_alpha2_beta1": ("epsilon", "alpha2_beta1", None),
    "epsilon_alpha2_beta1_flat": ("epsilon", "alpha2_beta1", "flat"),
}
WEIGHTED = ("Conv2D", "DepthwiseConv2D", "Dense")
NORM = ("AveragePooling2D", "GlobalAveragePooling2D", "Add", "Average", "Subtract", "BatchNormalization")
PASS = ("ReLU", "Activation", "LeakyReLU", "ELU", "PReLU", "Softmax", "Rescaling", "Normalization")
ROUTE = ("InputLayer", "ZeroPadding2D", "Cropping2D", "Flatten", "Reshape", "Permute", "MaxPooling2D",
         "GlobalMaxPooling2D", "Concatenate", "Dropout", "SpatialDropout2D", "GaussianNoise",
         "GaussianDropout", "AlphaDropout", "UpSampling2D", "Identity")
_SPECS = (tf.TensorSpec((None,), tf.int64), tf.TensorSpec((None,), tf.float32), tf.TensorSpec((None,), tf.float32))


# ---------------------------------------------------------------- the plan: a rule per layer
@dataclasses.dataclass(frozen=True)
class Plan:
    """Which rule each weighted step uses, which BatchNormalizations fold into them, and epsilon."""

    rules: dict  # weighted step name -> (rule name, *parameters)
    folds: dict  # weighted step name -> the BatchNormalization step folded into it
    folded: frozenset  # names of the folded BatchNormalization steps
    epsilon: float


def _check_name(value, choices, what):
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, choices))}; got {value!r}")


def _number(value, name, low=0.0):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < low:
        raise ValueError(f"{name} must be a finite number >= {low}, got {value!r}")
    return float(value)


def _spec(name, epsilon, gamma, alpha, beta):
    """A rule name -> its spec tuple with the parameters it uses."""
    return {"epsilon": ("epsilon", epsilon), "gamma": ("gamma", gamma), "alpha_beta": ("alpha_beta", alpha, beta),
            "alpha2_beta1": ("alpha_beta", 2.0, 1.0)}.get(name, (name,))


def _first_steps(graph, order):
    """Weighted steps that no other weighted step is upstream of (the input layer(s))."""
    after, first = set(), set()
    for index in order:
        step = graph.steps[index]
        behind = any(t in after for t in step.input_ids)
        if step.type_name in WEIGHTED and not behind:
            first.add(step.name)
        if behind or step.type_name in WEIGHTED:
            after.update(step.output_ids)
    return first


def _folds(graph, order):
    """``{weighted step: BatchNormalization step}`` for every BN that only reads a linear weighted step nobody else reads."""
    readers = {}
    for index in order:
        for tid in graph.steps[index].input_ids:
            readers.setdefault(tid, []).append(graph.steps[index])
    folds = {}
    for index in order:
        bn = graph.steps[index]
        source = graph.producer(bn.input_ids[0]) if len(bn.input_ids) == 1 else None
        if (bn.type_name == "BatchNormalization" and source is not None and source.type_name in WEIGHTED
                and source.activation == "linear" and len(readers.get(source.output_ids[0], ())) == 1
                and source.output_ids[0] not in graph.output_ids and bn.layer.axis in (-1, len(bn.input_shapes[0]))):
            folds[source.name] = bn
    return folds


def plan_rules(graph, order, rule="epsilon", composite=None, first=None, epsilon=1e-6, gamma=0.25,
               alpha=2.0, beta=1.0):
    """The :class:`Plan` for the steps ``order`` (indices); ``ValueError`` for bad names or layers."""
    _check_name(rule, RULES, "rule")
    if composite is not None:
        _check_name(composite, tuple(COMPOSITES), "composite")
        if rule != "epsilon":
            raise ValueError(f"pass either rule= or composite=, not both (got {rule!r} and {composite!r})")
    if first is not None:
        _check_name(first, RULES, "first")
    dense, conv, first_rule = COMPOSITES[composite] if composite else (rule, rule, None)
    first_rule = first or first_rule
    params = (_number(epsilon, "epsilon"), _number(gamma, "gamma"), _number(alpha, "alpha"), _number(beta, "beta"))
    firsts, rules = _first_steps(graph, order), {}
    for index in order:
        step = graph.steps[index]
        if step.type_name not in WEIGHTED + NORM + PASS + ROUTE:
            raise ValueError(f"lrp has no rule for layer {step.name!r} ({step.type_name}); it handles "
                             f"{', '.join(WEIGHTED + NORM + PASS + ROUTE)}.")
        if step.type_name in WEIGHTED:
            name = first_rule if first_rule and step.name in firsts else dense if step.type_name == "Dense" else conv
            rules[step.name] = _spec(name, *params)
    folds = _folds(graph, order)
    return Plan(rules, folds, frozenset(bn.name for bn in folds.values()), 0.0 if rule == "zero" else params[0])


# ---------------------------------------------------------------- relevance arithmetic
def _attach(inputs, value, backward):
    """``value`` (computed from ``inputs``) whose backward pass is ``backward(R) -> [R_input, ...]``."""

    @tf.custom_gradient
    def relevance(*args):
        def grad(upstream):
            return tuple(backward(upstream)) + (tf.zeros_like(args[-1]),)

        return tf.identity(args[-1]), grad

    return relevance(*inputs, value)


def _ratio(relevance, z, epsilon):
    """``R / (z + epsilon * sign(z))`` with sign(0) = 1; where the denominator is 0, 0."""
    if epsilon:
        z = z + epsilon * tf.where(z >= 0, 1.0, -1.0)
    return tf.math.divide_no_nan(relevance, z)


def _apply(step, x, kernel):
    """The step's linear map (no bias, no activation) with ``kernel`` instead of its own."""
    layer = step.layer
    if step.type_name == "Conv2D":
        return layer.convolution_op(x, kernel)
    if step.type_name == "DepthwiseConv2D":
        return keras.ops.depthwise_conv(x, kernel, strides=layer.strides, padding=layer.padding,
                                        dilation_rate=layer.dilation_rate, data_format=layer.data_format)
    return keras.ops.matmul(x, kernel)


def _contract(step, terms, relevance, epsilon, z=None, bias=None):
    """``sum_i s_i x_i * W_i^T (R / z')`` for terms ``(x_i, W_i, s_i)``, ``z' = sum_i s_i x_i W_i (+ bias)``.

    ``z`` (the forward output) replaces the recomputed denominator when given.
    """
    xs = [tf.identity(x) for x, _, _ in terms]  # distinct tensors, one gradient each
    with tf.GradientTape() as tape:
        tape.watch(xs)
        zs = tf.add_n([sign * _apply(step, x, w) for x, (_, w, sign) in zip(xs, terms)])
    denominator = z if z is not None else zs if bias is None else zs + bias
    grads = tape.gradient(zs, xs, output_gradients=_ratio(relevance, denominator, epsilon))
    return tf.add_n([x * g for x, g in zip(xs, grads)])


def _bn_affine(layer):
    """Inference BatchNormalization as ``x * scale + shift`` (per channel)."""
    scale = tf.math.rsqrt(tf.cast(layer.moving_variance, tf.float32) + layer.epsilon)
    if layer.scale:
        scale = scale * tf.cast(layer.gamma, tf.float32)
    shift = -tf.cast(layer.moving_mean, tf.float32) * scale
    return scale, shift + tf.cast(layer.beta, tf.float32) if layer.center else shift


def _weights(step, bn):
    """The step's kernel and bias, with ``bn`` (a folded BatchNormalization step) merged in."""
    layer = step.layer
    kernel = tf.cast(layer.kernel, tf.float32)
    channels = int(step.output_shape[-1])
    bias = tf.cast(layer.bias, tf.float32) if layer.use_bias else tf.zeros((channels,), tf.float32)
    if bn is not None:
        scale, shift = _bn_affine(bn.layer)
        per_out = tf.reshape(scale, kernel.shape[2:]) if step.type_name == "DepthwiseConv2D" else scale
        kernel, bias = kernel * per_out, bias * scale + shift
    return kernel, bias


def layer_relevance(step, spec, x, z, relevance, kernel, bias, bounds):
    """The relevance of a weighted step's input under rule ``spec`` (see the module docstring)."""
    name, pos, neg = spec[0], tf.nn.relu, (lambda t: tf.minimum(t, 0.0))
    if name in ("zero", "epsilon"):
        return _contract(step, [(x, kernel, 1.0)], relevance, spec[1] if name == "epsilon" else 0.0, z=z)
    if name == "gamma":  # Zennit's sign-aware form: positive outputs favour positive contributions
        up, down, g = kernel + spec[1] * pos(kernel), kernel + spec[1] * neg(kernel), spec[1]
        above = tf.cast(z > 0, relevance.dtype)
        return (_contract(step, [(pos(x), up, 1.0), (neg(x), down, 1.0)], relevance * above, 1e-6,
                          bias=bias + g * pos(bias))
                + _contract(step, [(pos(x), down, 1.0), (neg(x), up, 1.0)], relevance * (1.0 - above), 1e-6,
                            bias=bias + g * neg(bias)))
    if name in ("zplus", "alpha_beta"):
        alpha, beta = spec[1:] if name == "alpha_beta" else (1.0, 0.0)
        result = alpha * _contract(step, [(pos(x), pos(kernel), 1.0), (neg(x), neg(kernel), 1.0)], relevance, 0.0)
        if beta:
            result -= beta * _contract(step, [(pos(x), neg(kernel), 1.0), (neg(x), pos(kernel), 1.0)], relevance, 0.0)
        return result
    if name == "zbox":
        axes = list(range(1, len(x.shape)))
        low = tf.where(tf.math.is_nan(bounds[0]), tf.reduce_min(x, axis=axes), bounds[0])
        high = tf.where(tf.math.is_nan(bounds[1]), tf.reduce_max(x, axis=axes), bounds[1])
        low, high = (tf.zeros_like(x) + tf.reshape(v, [-1] + [1] * len(axes)) for v in (low, high))
        return _contract(step, [(x, kernel, 1.0), (low, pos(kernel), -1.0), (high, neg(kernel), -1.0)], relevance, 0.0)
    weights = tf.ones_like(kernel) if name == "flat" else kernel * kernel
    return _contract(step, [(tf.ones_like(x), weights, 1.0)], relevance, 0.0)


# ---------------------------------------------------------------- the probe hook
def _norm_backward(step, args, kwargs, z, epsilon):
    """Epsilon rule for a linear layer without weights (pooling, Add, a lone BatchNormalization)."""
    inputs = [t for t in tf.nest.flatten(args) if tf.is_tensor(t)]

    def backward(relevance):
        xs = [tf.identity(x) for x in inputs]
        with tf.GradientTape() as tape:
            tape.watch(xs)
            out = call_layer(step, tf.nest.pack_sequence_as(args, xs), kwargs, linear=True)
        grads = tape.gradient(out, xs, output_gradients=_ratio(relevance, z, epsilon))
        return [x * g for x, g in zip(xs, grads)]

    return inputs, backward


class RelevanceRule:
    """The rule :func:`keras_convviz.probe.run` hands every step to (``call_step``).

    Built inside the traced function: ``low``/``high`` are per-image input
    bounds for the z^B rule (NaN: the image's own min / max).
    """

    def __init__(self, plan, low, high):
        self.plan, self.bounds = plan, (low, high)

    def call_step(self, step, args, kwargs):
        """``(pre-activation, output)`` of one step, with its relevance backward pass attached."""
        kind = step.type_name
        if step.name in self.plan.folded:  # already applied by the weighted step before it
            return args[0], args[0]
        if kind in WEIGHTED:
            return self._weighted(step, args, kwargs)
        if kind in NORM:
            z = call_layer(step, args, kwargs, linear=True)
            inputs, backward = _norm_backward(step, args, kwargs, z, self.plan.epsilon)
            return z, _attach(inputs, z, backward)
        y = call_layer(step, args, kwargs)
        if kind in PASS:
            y = _attach([args[0]], y, lambda relevance: [relevance])
            return (args[0] if step.activation != "linear" else y), y
        return y, y

    def _weighted(self, step, args, kwargs):
        x, bn = args[0], self.plan.folds.get(step.name)
        z = call_layer(step, args, kwargs, linear=True)
        if bn is not None:
            z = call_layer(bn, (z,), {})

        def backward(relevance):
            kernel, bias = _weights(step, bn)
            return [layer_relevance(step, self.plan.rules[step.name], x, z, relevance, kernel, bias, self.bounds)]

        z = _attach([x], z, backward)
        if step.activation == "linear":
            return z, z
        return z, _attach([z], step.layer.activation(z), lambda relevance: [relevance])


# ---------------------------------------------------------------- compiled and public
def _relevance_fn(graph, score, plan, key, names):
    """Compiled ``(x, targets, low, high) -> (input relevance, per-layer totals (N, len(names)))``."""

    def build():
        @tf.function(input_signature=[input_spec(graph), *_SPECS], autograph=False)
        def relevance(x, targets, low, high):
            found = run(graph, x, names, rule=RelevanceRule(plan, low, high), linear=[score.name])
            scores = found[score.name]
            chosen = tf.where(targets < 0, predicted(scores), targets)
            top = target_scores(scores, chosen)
            mask = tf.ones_like(scores) if scores.shape[-1] == 1 else tf.one_hot(chosen, scores.shape[-1])
            wrt = [x] + [found[n] for n in names]
            grads = tf.gradients(scores, wrt, grad_ys=mask * top[:, None],
                                 unconnected_gradients=tf.UnconnectedGradients.ZERO)
            totals = [tf.reduce_sum(tf.reshape(g, [tf.shape(g)[0], -1]), axis=1) for g in grads]
            return grads[0], tf.stack(totals, axis=1)

        return relevance

    return compiled(graph, key, build)


def _bounds(bounds, n):
    """Per-image z^B bounds: NaN (each image's own min and max) or the given ``(low, high)``."""
    try:
        low, high = (np.nan, np.nan) if bounds is None else (float(b) for b in bounds)
    except (TypeError, ValueError):
        low = high = math.inf
    if bounds is not None and not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"bounds must be (low, high) finite numbers with low < high, got {bounds!r}")
    return np.full(n, low, np.float32), np.full(n, high, np.float32)


def lrp(model, inputs, target=None, rule="epsilon", composite=None, epsilon=1e-6, alpha=2.0, beta=1.0,
        gamma=0.25, first=None, bounds=None, output=None, batch_size=32, return_layers=False):
    """Layer-wise relevance propagation of the target's pre-softmax logit to the input.

    Args:
      model: a Keras model (Sequential, Functional or nested).
      inputs: a preprocessed batch ``(N, H, W, C)``.
      target: class index, list of one per image, or None (predicted class).
      rule: one rule for every Conv2D/DepthwiseConv2D/Dense: ``"zero"``,
        ``"epsilon"`` (default), ``"gamma"``, ``"zplus"``, ``"alpha_beta"``,
        ``"zbox"``, ``"flat"`` or ``"wsquare"`` (module docstring).
      composite: a rule per layer type instead (Zennit's composites):
        ``"epsilon_plus"``, ``"epsilon_plus_flat"``, ``"epsilon_plus_box"``,
        ``"epsilon_gamma_box"``, ``"epsilon_alpha2_beta1"``,
        ``"epsilon_alpha2_beta1_flat"``. Leave ``rule`` at its default then.
      epsilon: the epsilon rule's stabilizer (1e-6, Zennit's default), also
        used by pooling, Add and lone BatchNormalization layers (0 there with
        ``rule="zero"``); 0 gives LRP-0.
      alpha, beta: the alpha-beta rule's weights (2, 1: alpha - beta = 1
        conserves relevance); the ``alpha2_beta1`` composites fix them.
      gamma: the gamma rule's share of positive weights (0.25).
      first: a rule for the first weighted layer(s), overriding ``rule`` and
        the composite (``"zbox"`` or ``"flat"`` are the usual ones).
      bounds: ``(low, high)`` of the first layer's input for z^B; None takes
        each image's own min and max.
      output: index or name of the output to explain (multi-output models).
      batch_size: images per compiled call (one compiled function per model,
        output and rule settings: repeated calls never retrace).
      return_layers: also return ``{name: (N,) relevance sums}``: ``"input"``
        first, then every step run, in order (the folded BatchNormalization
        repeats its layer's sums); for a conserving rule on a bias-free
        network each sum at a layer every path goes through equals the logit.

    Returns float32 ``(N, H, W, C)`` relevance (with ``return_layers``, a pair).
    """
    request = prepare(model, inputs, target, output, batch_size)
    graph, score = request.graph, request.score
    order = graph.ancestors([score.name])
    plan = plan_rules(graph, order, rule, composite, first, epsilon, gamma, alpha, beta)
    names = [graph.steps[i].name for i in order] if return_layers else []
    key = ("lrp", score.name, rule, composite, first, plan.epsilon, float(gamma), float(alpha), float(beta),
           bool(return_layers))
    fn = _relevance_fn(graph, score, plan, key, names)
    low, high = _bounds(bounds, request.n)
    parts = [fn(*map(tf.constant, (request.x[a:b], request.targets[a:b], low[a:b], high[a:b])))
             for a, b in request.slices()]
    maps = np.concatenate([relevance.numpy() for relevance, _ in parts]).astype(np.float32)
    if not return_layers:
        return maps
    sums = np.concatenate([totals.numpy() for _, totals in parts])
    return maps, {name: sums[:, i] for i, name in enumerate(["input"] + names)}
