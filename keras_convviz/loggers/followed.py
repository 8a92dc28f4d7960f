"""The feature maps the callback follows across logs (Zeiler & Fergus 2014, arXiv:1311.2901, fig. 4)."""

from __future__ import annotations

import numbers

import numpy as np

from ..distributed import broadcast_from_chief, current_strategy
from ..methods.capture import capture
from ..select import top_maps

__all__ = ["FollowedMaps"]


class FollowedMaps:
    """The feature maps followed across logs, chosen at the first log (Zeiler & Fergus fig. 4).

    A count picks the maps with the largest activation over all probe images
    (the strongest maps of the network at that point), for every followed
    layer in one forward pass; a list of indices is taken as it is.
    """

    def __init__(self, graph, probe, spec):
        self.graph, self.probe, self.spec = graph, probe, spec
        self.layers = set()
        self.chosen = {}

    def follow(self, layers):
        self.layers.update(layers)

    def fixed(self, layer):
        if layer not in self.chosen:
            self.choose(sorted((self.layers | {layer}) - set(self.chosen)))
        return self.chosen[layer]

    def choose(self, layers):
        if isinstance(self.spec, (list, tuple)):
            self.chosen.update({name: [int(m) for m in self.spec] for name in layers})
            return
        acts = capture(self.graph, self.probe, layers).activations
        for name in layers:
            channels = self.graph.step(name).output_shape[-1]
            spec = min(self.spec, channels) if isinstance(self.spec, numbers.Integral) else self.spec
            # all probe images as one: the maps strongest anywhere in the probe
            chosen = np.zeros(channels)
            chosen[top_maps(acts[name][None], spec)[0]] = 1
            # several workers: the chief's choice, so every worker follows the same maps
            chosen = broadcast_from_chief(current_strategy(), chosen)
            self.chosen[name] = [int(m) for m in np.flatnonzero(chosen)]

    def carry_over(self, previous):
        """Keep ``previous``'s chosen maps when it followed the same model with the same spec (a later ``fit()``).

        Re-choosing at the next fit's first log would silently switch a
        unit's evolution to another unit.
        """
        if previous is not None and previous.graph.model is self.graph.model and previous.spec == self.spec:
            self.chosen.update(previous.chosen)
            self.layers.update(previous.layers)
