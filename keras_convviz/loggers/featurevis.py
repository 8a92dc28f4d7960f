"""The callback's feature-visualization logger (Olah et al. 2017, "Feature Visualization", Distill).

For every followed layer it optimizes one image per followed feature map (all
maps of a layer in one batch) and logs it under ``featurevis/<layer>/map<k>``,
the detail the deconv and top-k tags of the same map use, so the dashboard's
unit pages show them side by side; with ``classes`` it also logs class models
(Simonyan et al. 2014 arXiv:1312.6034, with the readable class recipe
``featurevis.CLASS_RECIPE`` for options not given) under
``featurevis/<score layer>/class<c>``. Both go through
:func:`keras_convviz.methods.featurevis.featurevis` (Fourier, colour-decorrelated,
transformation-robust by default).

Without ``value_range=``, the valid input range is taken as the probe
images' per-channel minimum and maximum, and without ``colors=`` the colour
matrix is estimated from the probe (and held-out) images: the user's own data.
"""

from __future__ import annotations

import numpy as np

from ..checks import indices, positive_int
from ..labels import class_label
from ..select import num_classes, score_step
from .annotate import optimized_data, png_with_data
from .base import MethodLogger

__all__ = ["FeatureVisLogger"]


class FeatureVisLogger(MethodLogger):
    """Images maximizing each followed map of the chosen layers, and optionally class logits."""

    uses_layers = True
    fixed_args = ("model", "objective", "progress", "images", "init")
    consumed = ("classes",)

    def load(self):
        from ..methods.featurevis import featurevis

        return featurevis

    def configure(self):
        super().configure()
        self.options["steps"] = positive_int(self.options.get("steps", 64), "featurevis steps")
        self.ctx.follow(self.layers)
        classes = self.options.pop("classes", None)
        limit = max(num_classes(self.ctx.graph), 2)
        self.classes = [] if classes is None else indices(classes, limit, "featurevis classes").tolist()
        self.score_layer = score_step(self.ctx.graph).name if self.classes else None
        if "value_range" not in self.options:
            probe = np.asarray(self.ctx.probe, np.float32)
            low, high = probe.min(axis=(0, 1, 2)), probe.max(axis=(0, 1, 2))
            self.options["value_range"] = (low, np.maximum(high, low + 1e-3))
        if "colors" not in self.options and self.options.get("param", "fourier") != "pixel":
            from ..methods.parameterize import colour_matrix

            data = [self.ctx.probe] + ([self.ctx.heldout] if isinstance(self.ctx.heldout, np.ndarray) else [])
            self.options["colors"] = colour_matrix(np.concatenate([np.asarray(d, np.float32) for d in data]))

    def shown(self, result):
        return result.rgb(self.ctx.deprocess)

    def log(self, step):
        from ..methods import objectives as obj

        params = {k: v for k, v in self.options.items() if isinstance(v, (int, float, str, bool))}
        for layer in self.layers:
            maps = [int(m) for m in self.ctx.fixed_maps(layer)]
            result = self.fn(self.ctx.graph, obj.channel(layer, maps), **self.options)
            # labels are part of a tag's fixed content: the per-step objective and probability go in the PNG
            for m, image in zip(maps, self.annotated(result, "channel mean")):
                self.write(layer, f"map{m:04d}", [image], step, "image", map=m,
                           params=dict(params, objective="channel mean"), labels=[f"map {m}"])
        if self.classes:
            objective, name, options = self.class_objective()
            result = self.fn(self.ctx.graph, objective, **options)
            for c, image in zip(self.classes, self.annotated(result, name, self.classes)):
                self.write(self.score_layer, f"class{c:04d}", [image], step, "image",
                           params=dict(params, objective=name, target=c), labels=[class_label(c, self.ctx.class_names)])

    def annotated(self, result, name, targets=None):
        """The pictures as PNG bytes carrying each one's objective, a random image's and the model's probability
        (of its class, or of its top class for a channel), read by the dashboard's cards (loggers/annotate.py)."""
        probs = self.probabilities(result.images)
        out = []
        for i, image in enumerate(self.shown(result)):
            target = None if targets is None else int(targets[i])
            top = None if probs is None else int(probs[i].argmax())
            p = None if probs is None else float(probs[i, top if target is None else target])
            base = None if result.baseline is None else float(result.baseline[i])
            out.append(png_with_data(image, optimized_data(float(result.values[i]), base, p, target=target, top=top,
                                                           objective_name=name)))
        return out

    def probabilities(self, images):
        """``(N, K)`` the model's class probabilities of ``images``, or None for a model without a class head."""
        from ..select import class_probabilities

        try:
            head = score_step(self.ctx.graph)
        except (ValueError, TypeError):
            return None
        return class_probabilities(self.ctx.graph, head, np.asarray(images, np.float32))

    def class_objective(self):
        """The class models' objective, its name and options: the class recipe under the user's options."""
        from ..methods.featurevis import TRANSPARENCY, class_recipe, recipe_class_objective

        model_name = self.ctx.graph.model.name  # the demo net keeps its own recipe (featurevis.recipe)
        options = dict(class_recipe(*self.ctx.graph.input_shape[:2], model_name), **self.options)
        if options["param"] in ("pixel", "maco"):
            for name in TRANSPARENCY:
                options.pop(name)
        activation = self.ctx.graph.step(self.score_layer).activation
        return recipe_class_objective(self.classes, activation, model_name=model_name) + (options,)
