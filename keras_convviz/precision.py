"""Reduced-precision twins of a model, for the optimizations' inner loop (issue 28).

Class models, feature visualization and inversion spend all their time in
forward and backward passes of the network. With ``precision="bfloat16"``
(or ``"float16"``) those passes run on a *twin*: the same layers rebuilt with
Keras' ``mixed_<dtype>`` policy (variables in float32, computation in the
reduced type) and the model's weights copied in. Only the iterations use it;
the reported scores, probabilities and errors are the float32 network's, so
a result always says how the user's own model sees the image.

bfloat16 is worth it where the hardware computes it natively: CPUs with
AVX-512 BF16 or AMX (AMD Zen 4 and later, Intel Cooper Lake and Sapphire
Rapids and later) and GPUs. There the VGG16 class-model step takes about 0.6x
the float32 step, and the class models of EfficientNet-Lite0 are recognized
as well as in float32 (benchmarks/RESULTS.md). Elsewhere it is emulated and
slower: :func:`native_bfloat16` tells which.

A user's mixed-precision model is explained in float32 by every other
method (``probe.call_layer`` calls its layers' float32 ``call``); the twins'
layers are registered in ``probe.REDUCED_PRECISION`` so that they, and only
they, compute in their policy's type.
"""

from __future__ import annotations

import functools

__all__ = ["PRECISIONS", "check_precision", "graph_in", "twin", "native_bfloat16"]

PRECISIONS = ("float32", "bfloat16", "float16")


def check_precision(precision):
    """``precision`` validated: one of :data:`PRECISIONS` (``ValueError`` otherwise)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def graph_in(graph, precision):
    """The walked graph the optimization runs on: ``graph`` itself for float32, else its twin's (cached, with
    the model's current weights copied in at every call)."""
    if check_precision(precision) == "float32":
        return graph
    from .graph import walk  # here, not at the top: the CLI's parser reads PRECISIONS without TensorFlow
    from .probe import REDUCED_PRECISION

    key = ("precision.twin", precision)
    reduced = graph.cache.get(key)
    if reduced is None:  # a new twin has the model's weights already
        reduced = graph.cache[key] = walk(twin(graph.model, precision))
        for step in reduced.steps:
            REDUCED_PRECISION.add(step.layer)
    else:  # the model may have trained since the twin was made (the callback logs every epoch)
        for mine, theirs in zip(reduced.model.weights, graph.model.weights):
            mine.assign(theirs)
    return reduced


def twin(model, precision):
    """``model`` rebuilt with the ``mixed_<precision>`` policy, its weights copied (a new model)."""
    import keras

    policy = f"mixed_{check_precision(precision)}"

    def rebuild(layer):
        config = layer.get_config()
        if not isinstance(layer, keras.layers.InputLayer):
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    try:
        copy = keras.models.clone_model(model, clone_function=rebuild)
    except Exception as err:  # subclassed models, layers without a config
        raise ValueError(
            f"precision={precision!r} rebuilds the model with the {policy} policy, which failed for "
            f"{model.name!r} ({type(err).__name__}: {err}); use precision='float32' (the default) or a "
            f"Functional/Sequential model whose layers have get_config()") from err
    copy.set_weights(model.get_weights())
    return copy


@functools.lru_cache(maxsize=1)
def native_bfloat16():
    """True when this machine computes bfloat16 natively (a GPU, or a CPU with AVX-512 BF16 or AMX)."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return True
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
