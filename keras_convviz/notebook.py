"""``show``: a result or a map as the titled, colour-barred figure the CLI draws, inline in a notebook.

>>> fig = show(saliency(model, x, target)[0], image=photo, method="saliency")
>>> fig                      # Jupyter displays it (``_repr_png_``)
>>> fig.save("cat_saliency.png")

Result objects (``Occlusion``, ``ClassModel``, ``FeatureVis``,
``Inversion``, ``Projections``, ``Capture``, ``TopActivations``,
``BoxFilterResult``) display themselves the same way: their ``_repr_png_``
is ``show(result)``'s. The pictures come from ``keras_convviz.figures``
(the CLI's drawing code); this module only frames them (title, colour bar)
and encodes them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["show", "Figure"]


class Figure:
    """A drawn figure: ``image`` (RGB uint8 ``(H, W, 3)``) and its ``title``.

    Notebooks display it inline (``_repr_png_``); :meth:`save` writes it as a
    PNG (atomically, as the CLI writes; pictures over 1024 px a side are
    scaled down, as the CLI's are).
    """

    def __init__(self, image, title=""):
        self.image = np.asarray(image, np.uint8)
        self.title = str(title)

    def _repr_png_(self) -> bytes:
        from .media import png_bytes

        return png_bytes(self.image)

    def save(self, path):
        """Write the figure to ``path`` as a PNG; returns the path."""
        from .media import save_png

        return save_png(str(path), self.image)

    def __repr__(self):
        h, w = self.image.shape[:2]
        return f"<Figure {self.title!r}: {w}x{h} px>"


def show(result_or_map, image=None, method=None, title=None, index=0, class_names=None, placement=None,
         fit="pad", deprocess=None, preprocess=None, model=None, images=None, preset=None) -> Figure:
    """The figure of a result object or a plain map, titled, with its colour bar.

    Args:
      result_or_map: a keras_convviz result (``Occlusion``, ``ClassModel``,
        ``FeatureVis``, ``Inversion``, ``Projections``, ``Capture``,
        ``TopActivations``, ``BoxFilterResult``) or a numpy map: ``(H, W)`` /
        ``(N, H, W)`` (saliency, SmoothGrad, Grad-CAM and the other CAMs) or
        ``(H, W, C)`` / ``(N, H, W, C)`` (guided backprop, integrated
        gradients, deconv, LRP: say so with ``method``).
      image: the picture to draw on, RGB uint8: the model input's picture or
        the original photo at any size (placed by ``placement``, default the
        ``fit`` policy, as ``Preset.prepare`` places it).
      method: the method that made a plain map (``"saliency"``,
        ``"gradcam"``, ``"guided_backprop"``, ...): it picks the CLI's
        drawing and colour scale.
      title: the figure's title (default: the method or result and image index).
      index: which image of a batch.
      class_names: names for class indices in titles (default: a preset's).
      deprocess / preprocess: a preset's, to show optimized images and BGR
        models' projections in RGB (default: a preset's).
      model, images: a ``TopActivations`` result's model and dataset images
        (by id) draw the fig. 2 grid; without them its table of values is drawn.
      preset: a ``presets.Preset`` supplying ``class_names``, ``deprocess``
        and ``preprocess`` (and ``model`` for top-k).

    Returns a :class:`Figure` (displayed inline by Jupyter; ``.save(path)``).
    """
    from .figures.panel import titled
    from .figures.results import gradient_figure, result_figure

    if preset is not None:
        class_names = preset.class_names if class_names is None else class_names
        deprocess = deprocess or preset.deprocess
        preprocess = preprocess or preset.preprocess
        model = model or preset.model
    order = _display_order(preprocess, result_or_map)
    if isinstance(result_or_map, np.ndarray) or _is_tensor(result_or_map):
        picture, default, scale = gradient_figure(np.asarray(result_or_map), image, method, index, placement,
                                                  fit, order)
    else:
        picture, default, scale = result_figure(result_or_map, image, index, class_names, placement, deprocess,
                                                preprocess, model, images, order)
    shown = default if title is None else str(title)
    return Figure(titled(picture, shown, scale), shown)


def _is_tensor(x):
    return hasattr(x, "numpy") and hasattr(x, "shape") and hasattr(x, "dtype")


def _display_order(preprocess, result):
    """The channel order showing a BGR model's projections in RGB (``figures.deconv.display_order``)."""
    if preprocess is None:
        return None
    from .figures.deconv import display_order

    shape = np.shape(getattr(result, "images", result))
    return display_order(preprocess, shape[-1] if shape else 3)

