"""Loggers of the methods that explain a class score (the pre-softmax logit).

Two generic loggers serve every attribution method through its record
(:mod:`keras_convviz.registry`, which names each paper): ``ClassScoreLogger``
for input-space maps and ``CAMLogger`` for the class activation maps. Class
models: Simonyan et al. 2014 arXiv:1312.6034, with Yosinski et al. 2015
arXiv:1506.06579's regularizers.
"""

from __future__ import annotations


from ..checks import indices
from ..labels import class_label
from ..select import num_classes, score_step
from .annotate import class_model_images
from .base import MethodLogger, heatmap_images, probe_labels, projection_images, target_param

__all__ = ["ClassScoreLogger", "CAMLogger", "ClassModelLogger"]


class ClassScoreLogger(MethodLogger):
    """A map explaining the class score of each probe image, logged under the score layer.

    The function and the drawing come from the method's record
    (:mod:`keras_convviz.registry`); a projection (guided backprop) is logged
    as such, every other map as a heatmap normalized as the CLI draws it.
    """

    def configure(self):
        super().configure()
        self.score_layer = score_step(self.ctx.graph).name

    def log(self, step):
        ctx = self.ctx
        out = self.fn(ctx.graph, ctx.probe, ctx.targets, **self.options)
        self.check_blank(out, self.score_layer)
        drawing = self.record.drawing
        if drawing == "projection":
            images, kind, detail = projection_images(out), "projection", "image"
        else:
            images, kind, detail = heatmap_images(out, ctx.image_size, drawing, self.record.summary), "heatmap", \
                "heatmap"
        self.write(self.score_layer, detail, images, step, kind,
                   params=dict(self.options, target=target_param(ctx.targets)), labels=probe_labels(len(images)))


class CAMLogger(MethodLogger):
    """A class activation map (Grad-CAM and its family) at each chosen layer (default: the last conv)."""

    uses_layers = True

    def default_layers(self):
        from ..methods.gradcam import default_layer

        return [default_layer(self.ctx.graph, self.options.get("output"))]

    def log(self, step):
        ctx = self.ctx
        params = dict(self.options, target=target_param(ctx.targets))
        for layer in self.layers:
            out = self.fn(ctx.graph, ctx.probe, ctx.targets, layer=layer, **self.options)
            self.check_blank(out, layer)
            self.write(layer, "heatmap", heatmap_images(out, ctx.image_size, "cam", self.record.summary), step,
                       "heatmap", params=params, labels=probe_labels(len(ctx.probe)))


class ClassModelLogger(MethodLogger):
    """Class models (Simonyan et al. 2014, arXiv:1312.6034): an image maximizing each class logit.

    An optimization, so the costliest method; ``classes=`` picks the classes
    (default: the first ten).
    """

    fixed_args = ("model", "target", "progress")
    consumed = ("classes",)

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
        images = class_model_images(images, result)  # each PNG carries its objective and probability
        params = {k: v for k, v in self.options.items() if isinstance(v, (int, float, str, bool, list, tuple))}
        for c, img in zip(self.classes, images):
            self.write(self.score_layer, f"class{c:04d}", [img], step, "image", params=dict(params, target=c),
                       labels=[class_label(c, self.ctx.class_names)])
