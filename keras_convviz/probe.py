"""Run a walked model step by step: record activations, max-pool switches,
pre-activations, and swap the backward rule of every ReLU.

This is the one engine all methods share. ``run`` is plain TensorFlow and can
be called inside any ``tf.function`` or ``GradientTape``; ``compiled`` caches
one ``tf.function`` per graph and key so repeated calls never retrace.

Backward rules for ReLU and ReLU6 (fused into a layer or standalone):

* ``None`` / ``"gradient"``: the true gradient.
* ``"deconv"``: Zeiler & Fergus rectification on the way down, ``g -> relu(g)``.
* ``"guided"``: guided backprop (Springenberg et al. 2015),
  ``g -> relu(g) * relu'(x)``.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import tensorflow as tf

from .graph import _Values, walk

__all__ = ["run", "capture", "Capture", "compiled", "RULES"]

RULES = (None, "gradient", "deconv", "guided")


def _rectifier(rule, max_value):
    """ReLU (or ReLU6) whose backward pass follows ``rule``."""

    @tf.custom_gradient
    def rectify(x):
        y = tf.nn.relu(x) if max_value is None else tf.clip_by_value(x, 0.0, max_value)

        def backward(g):
            g = tf.nn.relu(g)
            if rule == "guided":
                active = x > 0 if max_value is None else (x > 0) & (x < max_value)
                g = g * tf.cast(active, g.dtype)
            return g

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


def _call(step, args, kwargs, linear=False):
    """Call a step's layer in inference mode; ``linear`` drops its activation."""
    layer = step.layer
    if getattr(layer, "_call_has_training_arg", False):
        kwargs = dict(kwargs, training=False)
    if linear and step.activation != "linear":
        if not step.fused:
            return args[0]  # a standalone activation layer: its input
        with _without_activation(layer):
            return layer(*args, **kwargs)
    return layer(*args, **kwargs)


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


def run(model, inputs, outputs, rule=None, switches=False, linear=()):
    """Compute the named layers' outputs for ``inputs`` (traceable TF code).

    Args:
      model: a Keras model or a walked ``Graph``.
      inputs: a tensor (single-input model) or a list of tensors.
      outputs: layer names to return.
      rule: backward rule for every ReLU/ReLU6, see the module docstring.
      switches: also return ``{pool_name: argmax}`` for every MaxPooling2D run.
      linear: layer names to return before their activation (pre-softmax
        logits, for example); also valid for standalone activation layers.

    Returns ``{name: tensor}`` (and the switches dict when asked). Only the
    steps the requested outputs depend on are run.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    graph = walk(model)
    outputs = list(outputs)
    linear = set(linear)
    values = _Values(graph.aliases)
    inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    for tid, x in zip(graph.input_ids, inputs):
        dict.__setitem__(values, tid, x)
    found, pool_switches = {}, {}
    for index in graph.ancestors(list(outputs) + list(linear)):
        step = graph.steps[index]
        args, kwargs = step.node.arguments.fill_in(values)
        if step.name in linear:
            found[step.name] = _call(step, args, kwargs, linear=True)
        if step.kind == "maxpool" and switches:
            y, pool_switches[step.name] = _max_pool_with_switches(step, args[0])
        elif rule not in (None, "gradient") and step.activation in ("relu", "relu6"):
            pre = _call(step, args, kwargs, linear=True)
            y = _rectifier(rule, step.relu_max)(pre)
        else:
            y = _call(step, args, kwargs)
        ys = y if isinstance(y, (list, tuple)) else [y]
        for oid, value in zip(step.output_ids, ys):
            dict.__setitem__(values, oid, value)
        if step.name in outputs:
            found.setdefault(step.name, ys[0])
    result = {name: found[name] for name in list(outputs) + sorted(linear - set(outputs)) if name in found}
    return (result, pool_switches) if switches else result


def compiled(model, key, build):
    """One ``tf.function`` per (graph, key), built by ``build()`` on first use."""
    graph = walk(model)
    fn = graph.cache.get(key)
    if fn is None:
        fn = graph.cache[key] = build()
    return fn


# ---------------------------------------------------------------- capture
@dataclasses.dataclass
class Capture:
    """Activations of the requested layers and switches of the max pools on the way.

    ``switches[pool]`` holds, per pooled output, the flattened index
    ``(y * width + x) * channels + c`` into the pool's input for the same
    image, as ``tf.nn.max_pool_with_argmax(..., include_batch_in_index=False)``.
    """

    activations: dict
    switches: dict


def as_batch(model, inputs, dtype=np.float32):
    """Validate model inputs: a finite ``(N, H, W, C)`` batch matching the model."""
    graph = walk(model)
    x = np.asarray(inputs.numpy() if hasattr(inputs, "numpy") else inputs)
    expected = graph.input_shape
    if x.ndim == len(expected):
        raise ValueError(
            f"inputs have shape {x.shape}; pass a batch (N, {', '.join(map(str, expected))}),"
            f" e.g. inputs[None]."
        )
    if x.ndim != len(expected) + 1 or any(
        e is not None and e != a for e, a in zip(expected, x.shape[1:])
    ):
        raise ValueError(
            f"inputs have shape {x.shape} but model {graph.model.name!r} expects "
            f"(N, {', '.join(map(str, expected))}); resize or preprocess them first."
        )
    if x.shape[0] == 0:
        raise ValueError("inputs are an empty batch; pass at least one image.")
    x = x.astype(dtype, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError("inputs contain NaN or Inf values; clean or re-preprocess them.")
    return x


def capture(model, inputs, layers):
    """One forward pass recording ``layers``' activations and all switches on the way.

    Args:
      model: a Keras model (Sequential, Functional or nested).
      inputs: a preprocessed batch ``(N, H, W, C)``.
      layers: a layer name or a list of them.

    Returns a :class:`Capture` of numpy arrays. The pass is compiled once per
    model and set of layers and reused for any batch size.
    """
    graph = walk(model)
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise ValueError("capture needs at least one layer name.")
    for name in names:
        graph.step(name)
    x = as_batch(graph, inputs)
    fn = compiled(graph, ("capture", tuple(names)), lambda: _capture_fn(graph, names))
    acts, switches = fn(tf.constant(x))
    return Capture(
        activations={k: v.numpy() for k, v in acts.items()},
        switches={k: v.numpy() for k, v in switches.items()},
    )


def _capture_fn(graph, names):
    spec = tf.TensorSpec((None,) + tuple(graph.input_shape), tf.float32)

    @tf.function(input_signature=[spec], reduce_retracing=True)
    def forward(x):
        return run(graph, x, names, switches=True)

    return forward
