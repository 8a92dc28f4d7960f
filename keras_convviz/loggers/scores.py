"""Loggers of the methods that explain a class score (the pre-softmax logit).

Saliency and class models: Simonyan et al. 2014 arXiv:1312.6034; SmoothGrad:
Smilkov et al. 2017 arXiv:1706.03825; guided backprop: Springenberg et al.
2015 arXiv:1412.6806; integrated gradients: Sundararajan et al. 2017
arXiv:1703.01365; Grad-CAM: Selvaraju et al. 2017 arXiv:1610.02391; the class
models' regularizers: Yosinski et al. 2015 arXiv:1506.06579.
"""

from __future__ import annotations

import numpy as np

from ..checks import indices
from ..labels import class_label
from ..select import num_classes, score_step
from .base import MethodLogger, heatmap_images, probe_labels, projection_images, target_param

__all__ = ["ClassScoreLogger", "SaliencyLogger", "SmoothGradLogger", "GuidedLogger", "IntegratedLogger",
           "GradCAMLogger", "ClassModelLogger"]


class ClassScoreLogger(MethodLogger):
    """A method explaining the class score of each probe image, logged under the score layer."""

    kind = "heatmap"
    detail = "heatmap"
    signed = False
    meaning = "|gradient| of the explained class score"

    def configure(self):
        super().configure()
        self.score_layer = score_step(self.ctx.graph).name

    def as_map(self, out):
        """The method's output as one map per image ``(N, H, W)``."""
        return out

    def log(self, step):
        ctx = self.ctx
        out = self.fn(ctx.graph, ctx.probe, ctx.targets, **self.options)
        self.check_blank(out, self.score_layer)
        if self.kind == "heatmap":
            images = heatmap_images(self.as_map(out), ctx.image_size, signed=self.signed, meaning=self.meaning)
        else:
            images = projection_images(out)
        self.write(self.score_layer, self.detail, images, step, self.kind,
                   params=dict(self.options, target=target_param(ctx.targets)), labels=probe_labels(len(images)))


class SaliencyLogger(ClassScoreLogger):
    """Gradient saliency (Simonyan et al. 2014, arXiv:1312.6034)."""

    def load(self):
        from ..methods.gradients import saliency

        return saliency


class SmoothGradLogger(ClassScoreLogger):
    """SmoothGrad (Smilkov et al. 2017, arXiv:1706.03825)."""

    def load(self):
        from ..methods.gradients import smoothgrad

        return smoothgrad


class GuidedLogger(ClassScoreLogger):
    """Guided backpropagation (Springenberg et al. 2015, arXiv:1412.6806), shown as a projection."""

    kind = "projection"
    detail = "image"

    def load(self):
        from ..methods.gradients import guided_backprop

        return guided_backprop


class IntegratedLogger(ClassScoreLogger):
    """Integrated gradients (Sundararajan et al. 2017, arXiv:1703.01365), a signed map (diverging colours).

    Attributions are summed over the colour channels: the map's total is the
    score difference to the baseline (completeness), red raises the score.
    """

    signed = True
    meaning = "attribution summed over channels: red raises the explained score, blue lowers it"

    def as_map(self, out):
        return np.asarray(out, np.float64).sum(axis=-1)

    def load(self):
        from ..methods.gradients import integrated_gradients

        return integrated_gradients


class GradCAMLogger(MethodLogger):
    """Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391) at each chosen layer (default: the last conv)."""

    uses_layers = True

    def load(self):
        from ..methods.gradcam import gradcam

        return gradcam

    def default_layers(self):
        from ..methods.gradcam import default_layer

        return [default_layer(self.ctx.graph, self.options.get("output"))]

    def log(self, step):
        ctx = self.ctx
        params = dict(self.options, target=target_param(ctx.targets))
        for layer in self.layers:
            out = self.fn(ctx.graph, ctx.probe, ctx.targets, layer=layer, **self.options)
            self.check_blank(out, layer)
            self.write(layer, "heatmap", heatmap_images(out, ctx.image_size), step, "heatmap", params=params,
                       labels=probe_labels(len(ctx.probe)))


class ClassModelLogger(MethodLogger):
    """Class models (Simonyan et al. 2014, arXiv:1312.6034): an image maximizing each class logit.

    An optimization, so the costliest method; ``classes=`` picks the classes
    (default: the first ten).
    """

    fixed_args = ("model", "target", "progress")
    consumed = ("classes",)

    def load(self):
        from ..methods.classmodel import class_model

        return class_model

    def configure(self):
        super().configure()
        self.score_layer = score_step(self.ctx.graph).name
        self.options.setdefault("steps", 50)
        classes = self.options.pop("classes", None)
        limit = max(num_classes(self.ctx.graph), 2)
        if classes is None:
            self.classes = list(range(min(limit, 10)))
        else:
            self.classes = indices(classes, limit, "classmodel classes").tolist()

    def log(self, step):
        result = self.fn(self.ctx.graph, list(self.classes), **self.options)
        # a score the image cannot move (as convviz classmodel says); not the history: its penalties move
        self.check_blank(result.gain, self.score_layer,
                         what=f"{self.name}: the change of the maximized {self.score_layer} score")
        images = result.rgb(self.ctx.deprocess)  # deprocess None: each image min-max stretched
        params = {k: v for k, v in self.options.items() if isinstance(v, (int, float, str, bool, list, tuple))}
        for c, img in zip(self.classes, images):
            self.write(self.score_layer, f"class{c:04d}", [img], step, "image", params=dict(params, target=c),
                       labels=[class_label(c, self.ctx.class_names)])
