"""Run a walked model step by step: record activations, max-pool switches,
pre-activations, and swap the backward rule of every ReLU.

This is the one engine all methods share. ``run`` is plain TensorFlow and can
be called inside any ``tf.function`` or ``GradientTape``, from the model
inputs or from given activations of any layers (a tail of the network);
``compiled`` caches one ``tf.function`` per graph and key so repeated calls
never retrace; ``fast_conv_gradients`` + ``input_gradient`` take input
gradients with a faster exact rule for stride-1 convolutions.

Backward rules for ReLU and ReLU6 (fused into a layer or standalone):

* ``None`` / ``"gradient"``: the true gradient.
* ``"deconv"``: Zeiler & Fergus rectification on the way down, ``g -> relu(g)``.
* ``"guided"``: guided backprop (Springenberg et al. 2015),
  ``g -> relu(g) * relu'(x)``.

Both rules are positively homogeneous in ``g``, so the backward signal may
be rescaled per image by a positive factor without changing the result
beyond that factor. A deep untrained network (MobileNet at ``conv_pw_13``)
shrinks the signal below float32's smallest numbers on the way down, and
the projection underflows to exact zeros. So at every rectifier that all
paths between the inputs and the outputs go through (a *cut*: scaling there
scales everything below it alike), a signal whose per-image max-abs has left
``[2**-RESCALE_EXPONENT, 2**RESCALE_EXPONENT]`` is multiplied by a power of
two bringing it to about 1 (exact in floating point). Within that range
nothing is rescaled and results are the plain values; otherwise they are the
plain values times a positive power of two per image.
"""

from __future__ import annotations

import contextlib
import weakref

import tensorflow as tf

from .graph import Values, walk

__all__ = ["run", "call_layer", "compiled", "fast_conv_gradients", "input_gradient", "input_spec", "RULES",
           "REDUCED_PRECISION"]

# The layers of reduced-precision twins (keras_convviz.precision): these compute in their policy's type.
REDUCED_PRECISION = weakref.WeakSet()

RULES = (None, "gradient", "deconv", "guided")

# deconv/guided signals whose max-abs per image leaves [2**-E, 2**E] are rescaled (see the docstring):
# far from float32's normal range [2**-126, 2**128], leaving 2**30 for the layers between two cuts, and
# far enough from 1 that a network whose projection is representable gets its plain values
RESCALE_EXPONENT = 96


def rescale_per_image(g):
    """``g`` times a power of two per image bringing its max-abs to [1, 2) when it left the safe range.

    The exponent is read from the float32 bits, so the factor is an exact
    power of two; images whose max-abs is zero or within
    ``[2**-RESCALE_EXPONENT, 2**RESCALE_EXPONENT]`` are left as they are.
    """
    peak = tf.reduce_max(tf.abs(tf.cast(g, tf.float32)), axis=tf.range(1, tf.rank(g)), keepdims=True)
    exponent = tf.bitwise.right_shift(tf.bitcast(peak, tf.int32), 23) - 127  # floor(log2), -127 for subnormals
    outside = (peak > 0) & (tf.abs(exponent) > RESCALE_EXPONENT)
    shift = tf.where(outside, tf.clip_by_value(-exponent, -126, 126), 0)
    factor = tf.bitcast(tf.bitwise.left_shift(shift + 127, 23), tf.float32)  # 2**shift, exactly
    return g * tf.cast(factor, g.dtype)


def _rectifier(rule, max_value, rescale=False):
    """ReLU (or ReLU6) whose backward pass follows ``rule``; ``rescale`` keeps the signal in float32's range."""

    @tf.custom_gradient
    def rectify(x):
        y = tf.nn.relu(x) if max_value is None else tf.clip_by_value(x, 0.0, max_value)

        def backward(g):
            g = tf.nn.relu(g)
            if rule == "guided":
                active = x > 0 if max_value is None else (x > 0) & (x < max_value)
                g = g * tf.cast(active, g.dtype)
            return rescale_per_image(g) if rescale else g

        return y, backward

    return rectify


@contextlib.contextmanager
def _without_activation(layer):
    """Call a layer with its fused activation switched off (at trace time)."""
    saved = layer.activation
    object.__setattr__(layer, "activation", None)
    try:
        yield
    finally:
        object.__setattr__(layer, "activation", saved)


def call_layer(step, args, kwargs, linear=False):
    """Call a step's layer in inference mode; ``linear`` drops its activation."""
    layer = step.layer
    if getattr(layer, "_call_has_training_arg", False):
        kwargs = dict(kwargs, training=False)
    # A mixed-precision layer's __call__ casts inputs and weights to float16/bfloat16: its own ``call``
    # computes in float32 from the float32 variables, so every method explains the float32 network
    # (bfloat16's 8-bit mantissa would move argmaxes and blur gradients).
    # A twin's layers (precision.py) are the exception: computing in the reduced type is their purpose.
    reduced = getattr(layer, "compute_dtype", "float32") in ("float16", "bfloat16")
    call = layer.call if reduced and layer not in REDUCED_PRECISION else layer
    if linear and step.activation != "linear":
        if not step.fused:
            return args[0]  # a standalone activation layer: its input
        with _without_activation(layer):
            return call(*args, **kwargs)
    return call(*args, **kwargs)


def _max_pool_with_switches(step, x):
    layer = step.layer
    out, argmax = tf.nn.max_pool_with_argmax(
        x,
        ksize=layer.pool_size,
        strides=layer.strides,
        padding=layer.padding.upper(),
        include_batch_in_index=False,
    )
    return out, argmax


def run(model, inputs, outputs, rule=None, switches=False, linear=(), given=None):
    """Compute the named layers' outputs for ``inputs`` (traceable TF code).

    Args:
      model: a Keras model or a walked ``Graph``.
      inputs: a tensor (single-input model), a list of tensors, or None when
        ``given`` holds everything the outputs need.
      outputs: layer names to return.
      rule: backward rule for every ReLU/ReLU6, see the module docstring; or
        an object whose ``call_step(step, args, kwargs) -> (pre_activation,
        output)`` runs every step instead (the LRP rules, methods/lrp.py).
      switches: also return ``{pool_name: argmax}`` for every MaxPooling2D run.
      linear: layer names to return before their activation (pre-softmax
        logits, for example); also valid for standalone activation layers.
      given: ``{layer_name: tensor}`` activations to start from: those layers
        are not run, and neither is anything only they need.

    Returns ``{name: tensor}`` (and the switches dict when asked). Only the
    steps the requested outputs depend on are run.
    """
    if rule not in RULES and not callable(getattr(rule, "call_step", None)):
        raise ValueError(f"rule must be one of {RULES} or a relevance rule, got {rule!r}")
    graph = walk(model)
    outputs, linear, given = list(outputs), set(linear), dict(given or {})
    values = Values(graph.aliases)
    inputs = [] if inputs is None else inputs if isinstance(inputs, (list, tuple)) else [inputs]
    for tid, x in zip(graph.input_ids, inputs):
        dict.__setitem__(values, tid, x)
    for name, value in given.items():
        dict.__setitem__(values, graph.step(name).output_ids[0], value)
    found, pool_switches = {}, {}
    order = graph.ancestors(outputs + sorted(linear), given=given)
    cuts = cut_steps(graph, order, given, outputs + sorted(linear)) if rule in ("deconv", "guided") else ()
    for index in order:
        step = graph.steps[index]
        # every value in float32 (a layer with its own float16 casts still returns float16), so that
        # what a method reads, and differentiates, is on the path
        ys = [as_float32(y) for y in _run_step(step, values, rule, step.name in linear, switches, found,
                                                pool_switches, rescale=index in cuts)]
        for oid, value in zip(step.output_ids, ys):
            dict.__setitem__(values, oid, value)
        if step.name in outputs:
            found.setdefault(step.name, ys[0])
    for name in outputs:
        if name in given:
            found.setdefault(name, given[name])
    result = {name: as_float32(found[name]) for name in outputs + sorted(linear - set(outputs)) if name in found}
    return (result, pool_switches) if switches else result


def as_float32(tensor):
    """A floating tensor as float32 (mixed-precision layers compute and return float16 or bfloat16)."""
    return tf.cast(tensor, tf.float32) if tensor.dtype in (tf.float16, tf.bfloat16) else tensor


def cut_steps(graph, order, given, wanted):
    """The indices in ``order`` (steps run, in order) that every path from the inputs to ``wanted`` goes through.

    A step is a cut when no tensor made before it (an input, a ``given``
    activation, an earlier step's output) is read after it; ``wanted``
    outputs count as read at the end. Rescaling the backward signal at a
    cut scales everything below it by the same factor.
    """
    last = {}
    for pos, index in enumerate(order):
        last.update((tid, pos) for tid in graph.steps[index].input_ids)
    for name in wanted:
        last.update((oid, len(order)) for oid in graph.step(name).output_ids)
    before = list(graph.input_ids) + [oid for name in given for oid in graph.step(name).output_ids]
    reach, cuts = max([last.get(t, -1) for t in before] + [-1]), set()
    for pos, index in enumerate(order):
        if reach <= pos:
            cuts.add(index)
        reach = max([reach] + [last.get(t, -1) for t in graph.steps[index].output_ids])
    return cuts


def _run_step(step, values, rule, linear, switches, found, pool_switches, rescale=False):
    """One step of ``run``: its outputs, recording pre-activations and switches."""
    args, kwargs = step.fill_in(values)
    if callable(getattr(rule, "call_step", None)):  # a relevance rule (methods/lrp.py) runs the whole step
        pre, y = rule.call_step(step, args, kwargs)
        if linear:
            found[step.name] = pre
        return y if isinstance(y, (list, tuple)) else [y]
    if linear:
        found[step.name] = call_layer(step, args, kwargs, linear=True)
    if step.kind == "maxpool" and switches:
        y, pool_switches[step.name] = _max_pool_with_switches(step, args[0])
    elif rule not in (None, "gradient") and step.activation in ("relu", "relu6"):
        y = _rectifier(rule, step.relu_max, rescale)(call_layer(step, args, kwargs, linear=True))
    else:
        y = call_layer(step, args, kwargs)
    return y if isinstance(y, (list, tuple)) else [y]


def compiled(graph, key, build):
    """One ``tf.function`` per (graph, key), built by ``build()`` on first use."""
    fn = graph.cache.get(key)
    if fn is None:
        fn = graph.cache[key] = build()
    return fn


def input_spec(graph, hw=None):
    """The ``tf.TensorSpec`` of a batch of model inputs (batch left open)."""
    shape = tuple(graph.input_shape) if hw is None else tuple(hw) + tuple(graph.input_shape[2:])
    return tf.TensorSpec((None,) + shape, tf.float32)


# ---------------------------------------------------------------- fast input gradients
_FLIPPED = "ConvvizFlippedConv2D"


def _standard_conv_grad(op, grad):
    try:
        from tensorflow.python.ops import nn_grad

        return nn_grad._Conv2DGrad(op, grad)
    except (ImportError, AttributeError):  # pragma: no cover - older/newer TF layouts
        x, w = op.inputs
        strides, padding = op.get_attr("strides"), op.get_attr("padding").decode()
        dilations, fmt = op.get_attr("dilations"), op.get_attr("data_format").decode()
        if padding == "EXPLICIT":
            flat = op.get_attr("explicit_paddings")
            padding = [flat[i:i + 2] for i in range(0, len(flat), 2)]
        dx = tf.compat.v1.nn.conv2d_backprop_input(tf.shape(x), w, grad, strides, padding,
                                                   data_format=fmt, dilations=dilations)
        dw = tf.compat.v1.nn.conv2d_backprop_filter(x, tf.shape(w), grad, strides, padding,
                                                    data_format=fmt, dilations=dilations)
        return dx, dw


def _flipped_conv_grad(op, grad):
    """Conv2D gradient; the input part as a forward conv with the flipped kernel where exact."""
    x, w = op.inputs
    kh, kw = w.shape[0], w.shape[1]
    padding = op.get_attr("padding")
    eligible = (
        list(op.get_attr("strides")) == [1, 1, 1, 1]
        and list(op.get_attr("dilations")) == [1, 1, 1, 1]
        and op.get_attr("data_format") == b"NHWC"
        and padding in (b"SAME", b"VALID")
        and kh is not None and kw is not None
        and x.shape[-1] is not None and x.shape[-1] == w.shape[2]  # not grouped
        and (padding == b"VALID" or (kh % 2 == 1 and kw % 2 == 1))  # SAME pads symmetrically
    )
    if not eligible:
        return _standard_conv_grad(op, grad)
    flipped = tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2])
    if padding == b"SAME":
        dx = tf.nn.conv2d(grad, flipped, 1, "SAME")
    else:  # the "full" correlation: pad by kernel - 1 on every side
        dx = tf.nn.conv2d(grad, flipped, 1, [[0, 0], [kh - 1, kh - 1], [kw - 1, kw - 1], [0, 0]])
    dw = tf.compat.v1.nn.conv2d_backprop_filter(x, tf.shape(w), grad, [1, 1, 1, 1], padding.decode())
    return dx, dw  # dw is pruned from the graph when only input gradients are fetched


try:
    tf.RegisterGradient(_FLIPPED)(_flipped_conv_grad)
except KeyError:  # already registered (module reloaded)
    pass


@contextlib.contextmanager
def fast_conv_gradients():
    """While tracing: Conv2D ops created here differentiate through ``_flipped_conv_grad``.

    Only ``tf.gradients`` honours the override (``GradientTape`` looks
    gradients up by op type alone).
    """
    with tf.compat.v1.get_default_graph().gradient_override_map({"Conv2D": _FLIPPED}):
        yield


def input_gradient(score, wrt):
    """``d score / d wrt`` in the traced graph (zeros where unconnected)."""
    return tf.gradients(score, wrt, unconnected_gradients=tf.UnconnectedGradients.ZERO)[0]
