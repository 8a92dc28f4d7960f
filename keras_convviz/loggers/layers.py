"""Loggers of the methods that look at one layer's feature maps.

Deconvnet projections of followed maps (fig. 4), occlusion sensitivity
(fig. 7) and the top-k patches of a held-out set (fig. 2): Zeiler & Fergus
2014 arXiv:1311.2901. Receptive-field box filters: the seed tool's viz.py.
"""

from __future__ import annotations

import numbers

import numpy as np

from tb_plugin import metadata as md

from .. import render
from ..checks import count, indices, positive_int
from ..fields import receptive_fields
from .base import MethodLogger, ScaledImages, heatmap_images, probe_labels, projection_images, target_param

__all__ = ["DeconvLogger", "OcclusionLogger", "BoxFilterLogger", "TopKLogger"]


class DeconvLogger(MethodLogger):
    """Deconvnet projections of the followed feature maps, one tag per map (Zeiler & Fergus fig. 4)."""

    fixed_args = ("model", "inputs", "layer", "maps", "joint")
    uses_layers = True

    def configure(self):
        super().configure()
        self.ctx.follow(self.layers)
        spec = self.ctx.map_spec
        for layer in self.layers:
            channels = self.ctx.graph.step(layer).output_shape[-1]
            if isinstance(spec, (list, tuple)):
                indices(spec, channels, f"maps (layer {layer!r})")
            else:
                count(min(spec, channels) if isinstance(spec, numbers.Integral) else spec, channels, "maps")

    def log(self, step):
        ctx = self.ctx
        opts = dict({"activations": 1}, **self.options)
        for layer in self.layers:
            maps = ctx.fixed_maps(layer)
            out = np.asarray(self.fn(ctx.graph, ctx.probe, layer, maps=list(maps), joint=False, **opts))
            self.check_blank(out, layer, "activations")
            for j, m in enumerate(maps):  # out: (N, M, H, W, C), image n, map m
                self.write(layer, f"map{m:04d}", projection_images(out[:, j]), step, "projection", map=int(m),
                           params=dict(opts, maps="fixed at first log"), labels=probe_labels(len(out)))


class OcclusionLogger(MethodLogger):
    """Fig. 7: probability of the target and strongest-map activity under a sliding grey square."""

    uses_layers = True

    def log(self, step):
        ctx = self.ctx
        h, w = ctx.image_size
        opts = dict(self.options)
        opts.setdefault("patch", max(4, min(h, w) // 4))
        opts.setdefault("stride", max(2, min(h, w) // 16))
        params = dict(opts, target=target_param(ctx.targets))
        labels = probe_labels(len(ctx.probe))
        for layer in self.layers:
            res = self.fn(ctx.graph, ctx.probe, ctx.targets, layer=layer, **opts)
            self.check_blank(res.activation, layer, "activations")
            # as the CLI's fig. 7 panel: p(target) as is on 0..1, the activation drop diverging about 0
            prob = heatmap_images(res.probability, (h, w), "probability", "p(target) with the square here")
            self.write(layer, "probability", prob, step, "heatmap", params=dict(params, shown="p(target)"),
                       labels=labels)
            meaning = "drop in the strongest map's total activation when occluded here"
            drop = heatmap_images(occlusion_drop(res, "activation"), (h, w), "signed", meaning)
            self.write(layer, "activation", drop, step, "heatmap", params=dict(params, shown=meaning), labels=labels)


def occlusion_drop(result, name):
    """``base - value`` per occluder position of an occlusion map: positive where occluding lowers it."""
    value = np.asarray(getattr(result, name), np.float64)
    base = np.asarray(getattr(result, "base_" + name), np.float64).reshape(len(value), 1, 1)
    return base - value


class BoxFilterLogger(MethodLogger):
    """Receptive-field box filters of a centre crop (geometry only: logged once)."""

    fixed_args = ("model", "layer", "crop", "mode", "input_shape", "every_layer", "batch_size")
    consumed = ("crop",)
    uses_layers = True
    once = True

    def log(self, step):
        h, w = self.ctx.image_size
        crop = tuple(int(c) for c in (self.options.get("crop") or (w // 4, h // 4, w // 2, h // 2)))
        for layer in self.layers:
            res = self.fn(self.ctx.graph, layer, crop, mode="forward")
            maps = res.maps[res.layer]
            self.check_blank(maps.fraction, layer, "box filter")
            for kind in ("ratio", "fraction"):
                m = np.asarray(getattr(maps, kind), np.float64)
                picture = ScaledImages([render.heatmap(render.upsample(m, (h, w)), normalized=True)],
                                       np.array([[0.0, 1.0]]),
                                       md.make_scale("inferno", "as is, 0 to 1", f"box-filter {kind} of the crop"))
                self.write(layer, kind, picture, step, kind,
                           params={"crop_xywh": list(crop), "mode": "forward"}, labels=[f"crop x,y,w,h={crop}"])


class TopKLogger(MethodLogger):
    """Fig. 2: the k strongest activations of the followed maps over a held-out set, as image patches."""

    fixed_args = ("model", "dataset", "layer", "k", "strategy", "batch_size", "callback")
    consumed = ("k",)
    uses_layers = True

    def configure(self):
        super().configure()
        if self.ctx.heldout is None:
            raise ValueError("method 'topk' needs a held-out set: pass heldout=images (N, H, W, C)")
        self.k = positive_int(self.options.get("k", 9), "k")
        self.ctx.follow(self.layers)
        self.fields = receptive_fields(self.ctx.graph)

    def log(self, step):
        ctx = self.ctx
        for layer in self.layers:
            res = self.fn(ctx.graph, ctx.heldout, layer, k=self.k)
            self.check_blank(np.asarray(res.values)[np.asarray(res.image_ids) >= 0], layer, "activations")
            for m in ctx.fixed_maps(layer):
                patches = self.patches(res, self.fields[layer], m)
                if patches:
                    self.write(layer, f"map{m:04d}", patches, step, "patches", map=int(m),
                               params={"k": self.k, "heldout": int(len(ctx.heldout))},
                               labels=[f"#{j + 1}" for j in range(self.k)], rows=self.values(res, m))
                    # the same patches' deconv projections (fig. 2's left half), for the dashboard's unit page
                    self.write(layer, f"map{m:04d}_projections", self.projections(res, layer, m), step, "patches",
                               map=int(m), params={"k": self.k, "heldout": int(len(ctx.heldout)),
                                                   "of": "deconv projections of the patches"},
                               labels=[f"#{j + 1}" for j in range(self.k)])

    def rows(self, result, m):
        """``(image_index, y, x)`` of map ``m``'s top activations found so far."""
        return [(int(i), int(y), int(x)) for i, (y, x) in zip(np.asarray(result.image_ids[m]),
                                                               np.asarray(result.positions[m])) if int(i) >= 0]

    def values(self, result, m):
        """``[activation, held-out image, y, x]`` of each patch of map ``m`` (the dashboard's captions)."""
        return [[float(v), i, y, x] for v, (i, y, x) in zip(np.asarray(result.values[m]), self.rows(result, m))]

    def crop(self, image, field, y, x):
        """The receptive field of unit ``(y, x)`` cut from ``image``, padded to the field's size."""
        h, w = self.ctx.image_size
        y0, y1, x0, x1 = field.window(y, x, clip_to=(h, w))
        piece = image[y0:y1, x0:x1]
        patch = np.zeros((min(field.size[0], h), min(field.size[1], w), 3), np.uint8)
        patch[:piece.shape[0], :piece.shape[1]] = piece
        return patch

    def patches(self, result, field, m):
        """The receptive-field patches of map ``m``'s top activations, padded to the field's size."""
        return [self.crop(self.ctx.heldout_display[i], field, y, x) for i, y, x in self.rows(result, m)]

    def projections(self, result, layer, m):
        """Each top activation's own deconv projection, cropped like its patch."""
        from ..methods.deconv import deconv_units

        rows = self.rows(result, m)
        units = np.array([[i, y, x, m] for i, y, x in rows], np.int64)
        pictures = projection_images(deconv_units(self.ctx.graph, self.ctx.heldout, layer, units))
        return [self.crop(p, self.fields[layer], y, x) for p, (_, y, x) in zip(pictures, rows)]
