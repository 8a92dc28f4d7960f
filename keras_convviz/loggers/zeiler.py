"""Loggers for the rest of Zeiler & Fergus 2014 (arXiv:1311.2901): fig. 5 invariance and fig. 6 filters.

``invariance`` logs, at every log, (1) scalars for TensorBoard's Scalars tab:
per transform and layer the probe images' mean relative feature distance
over the transform's range, and the target's mean probability, so that the
growth of invariance shows over training; and (2) the whole curves, one
picture per probe image under ``invariance/<score layer>/curves``: the
picture shows transformed copies of the probe (fig. 5's first column) and
carries the curves (relative and absolute distance at each layer, target
probability, per transform value with its unit) as JSON in its PNG
(:mod:`.annotate`); the dashboard's image page draws them as charts.

``filters`` logs the first convolution's filter sheet (dead filters framed
blue, high-frequency ones red) at every log; the per-step statistics (norms,
high-frequency shares, which are dead or flagged, the sheet's layout) travel
in the PNG, since a tag's labels and params are fixed at its first write.
"""

from __future__ import annotations

import numpy as np

from ..select import score_step
from .annotate import png_with_data
from .base import MethodLogger, probe_labels, target_param

__all__ = ["InvarianceLogger", "FiltersLogger", "invariance_curves", "filter_statistics"]


def invariance_curves(result, index):
    """The fig. 5 curves of probe ``index`` as plain JSON values (what the dashboard's charts read)."""
    out = {"kind": "invariance", "layers": list(result.layers), "target": int(result.target[index]),
           "base_probability": float(result.base_probability[index]), "transforms": {}}
    for t in result.transforms:
        out["transforms"][t] = {
            "unit": result.units.get(t, ""),
            "values": [float(v) for v in np.asarray(result.values[t])],
            "relative": {layer: result.relative[t][index, k].tolist() for k, layer in enumerate(result.layers)},
            "distance": {layer: result.distance[t][index, k].tolist() for k, layer in enumerate(result.layers)},
            "probability": result.probability[t][index].tolist()}
    return out


def filter_statistics(res):
    """fig. 6's per-filter statistics of a ``filters()`` result, and the sheet's layout (cells in pixels)."""
    f = len(res.norm)
    columns = int(np.ceil(np.sqrt(f)))
    pad = 3
    cell = (res.grid.shape[1] - pad) // columns - pad
    return {"kind": "filters", "layer": res.layer, "count": f, "kernel": list(res.kernels.shape[:3]),
            "norm": res.norm.tolist(), "high_frequency": res.high_frequency.tolist(),
            "dead": np.flatnonzero(res.dead).tolist(), "aliased": np.flatnonzero(res.aliased).tolist(),
            "median_norm": float(np.median(res.norm)), "median_share": float(np.median(res.high_frequency)),
            "dead_fraction": res.dead_fraction, "aliasing_threshold": res.aliasing_threshold,
            "sheet": {"columns": columns, "pad": pad, "cell": int(cell)}}


class InvarianceLogger(MethodLogger):
    """Fig. 5: mean curves as scalars, and per probe the full curves in a picture of its transformed copies."""

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
        params = {"target": target_param(ctx.targets), "steps": int(opts["steps"]), "layers": list(res.layers),
                  "transforms": list(res.transforms),
                  "distance": "relative: ||f(copy) - f(image)|| / ||f(image)|| at each layer"}
        self.write("", "", values, step, "scalars", params=params)
        pictures = self.copies(res)
        images = [png_with_data(pic, invariance_curves(res, i)) for i, pic in enumerate(pictures)]
        self.write(score_step(ctx.graph).name, "curves", images, step, "image", params=params,
                   labels=probe_labels(len(images)))

    def copies(self, res):
        """Per probe image, its transformed copies (4 per transform, one sheet per transform, stacked)."""
        from ..figures.invariance import examples_sheet

        probe = np.asarray(self.ctx.probe, np.float32)
        deprocess = self.ctx.deprocess
        if deprocess is None:  # the probe's own range, so the neutral fill keeps its grey
            low, high = float(probe.min()), float(probe.max())
            deprocess = lambda z: np.clip((z - low) / max(high - low, 1e-6), 0, 1)  # noqa: E731
        return [examples_sheet(probe[i:i + 1], res, deprocess) for i in range(len(probe))]


class FiltersLogger(MethodLogger):
    """Fig. 6: the first convolution's kernels as a sheet, with dead and high-frequency frames."""

    fixed_args = ("model",)

    def load(self):
        from ..methods.filters import filters

        return filters

    def log(self, step):
        res = self.fn(self.ctx.graph.model, **self.options)
        self.write(res.layer, "kernels", [png_with_data(res.grid, filter_statistics(res))], step, "image",
                   params={"dead_fraction": res.dead_fraction, "aliasing_threshold": res.aliasing_threshold,
                           "shown": "each filter normalized alone: mid-grey = 0; blue frame = dead, "
                                    "red = high-frequency"},
                   labels=[f"{res.layer}: {len(res.norm)} filters"])
