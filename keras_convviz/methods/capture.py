"""Capture: one forward pass recording activations and max-pool switches.

The switches are what Zeiler & Fergus (2014, arXiv:1311.2901) record to
unpool on the way down; they equal ``tf.nn.max_pool_with_argmax``.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from ..inline import Inline
from ..probe import compiled, input_spec, run
from ..request import prepare

__all__ = ["capture", "Capture"]


@dataclasses.dataclass(frozen=True)
class Capture(Inline):
    """Activations of the requested layers and switches of the max pools on the way.

    ``switches[pool]`` holds, per pooled output, the flattened index
    ``(y * width + x) * channels + c`` into the pool's input for the same
    image, as ``tf.nn.max_pool_with_argmax(..., include_batch_in_index=False)``.
    """

    activations: dict
    switches: dict


def capture(model, inputs, layers) -> Capture:
    """One forward pass recording ``layers``' activations and all switches on the way.

    Args:
      model: a Keras model (Sequential, Functional or nested).
      inputs: a preprocessed batch ``(N, H, W, C)``.
      layers: a layer name or a list of them.

    Returns a :class:`Capture` of numpy arrays. The pass is compiled once per
    model and set of layers and reused for any batch size.
    """
    request = prepare(model, inputs, scores=False, fixed_size=False)  # any size a fully-convolutional model takes
    graph = request.graph
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise ValueError("capture needs at least one layer name.")
    for name in names:
        graph.step(name)
    fn = compiled(graph, ("capture", tuple(names)), lambda: _capture_fn(graph, names))
    acts, switches = fn(tf.constant(request.x))
    return Capture(
        activations={k: v.numpy() for k, v in acts.items()},
        switches={k: v.numpy() for k, v in switches.items()},
    )


def _capture_fn(graph, names):
    @tf.function(input_signature=[input_spec(graph)], reduce_retracing=True)
    def forward(x):
        return run(graph, x, names, switches=True)

    return forward
