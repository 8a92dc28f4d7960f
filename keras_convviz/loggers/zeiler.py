"""Loggers for the rest of Zeiler & Fergus 2014 (arXiv:1311.2901): fig. 5 invariance and fig. 6 filters.

``invariance`` logs scalars (TensorBoard's Scalars tab): per transform and
layer, the probe images' mean relative feature distance over the transform's
range, and the target's mean probability, so that the growth of invariance
shows over training. ``filters`` logs the first convolution's filter sheet
(dead filters framed blue, high-frequency ones red) at every log.
"""

from __future__ import annotations

import numpy as np

from .base import MethodLogger, target_param


class InvarianceLogger(MethodLogger):
    """Fig. 5 as scalars: mean relative feature distance and mean target probability per transform."""

    fixed_args = ("model", "inputs", "target")

    def load(self):
        from ..methods.invariance import invariance

        return invariance

    def log(self, step):
        ctx = self.ctx
        opts = dict(self.options)
        opts.setdefault("steps", 8)  # a coarse curve keeps the log cheap: 3 x 8 copies per probe image
        res = self.fn(ctx.graph, ctx.probe, ctx.targets, **opts)
        values = {}
        for t in res.transforms:
            for layer in res.layers:
                values[f"{t}/{layer}/relative_distance"] = float(np.mean(res.relative[t][:, res.layers.index(layer)]))
            values[f"{t}/probability"] = float(np.mean(res.probability[t]))
        self.write("", "", values, step, "scalars", params={"target": target_param(ctx.targets)})


class FiltersLogger(MethodLogger):
    """Fig. 6: the first convolution's kernels as a sheet, with dead and high-frequency frames."""

    fixed_args = ("model",)

    def load(self):
        from ..methods.filters import filters

        return filters

    def log(self, step):
        res = self.fn(self.ctx.graph.model, **self.options)
        self.write(res.layer, "kernels", [res.grid], step, "image",
                   params={"dead": int(res.dead.sum()), "high_frequency": int(res.aliased.sum()),
                           "shown": "each filter normalized alone: mid-grey = 0; blue frame = dead, "
                                    "red = high-frequency"},
                   labels=[res.summary()[:200]])
