"""Pictures of feature visualizations (Olah et al. 2017, "Feature Visualization", Distill).

``unit_grid`` lays out the images of one :func:`keras_convviz.featurevis`
call, each titled with its unit and its final objective value;
``comparison`` puts several parameterizations side by side, one row each,
titled with the row's name. The images arrive as RGB ``uint8`` (the result's
``rgb(preset.deprocess)``).
"""

from __future__ import annotations

import numpy as np

from ..render import grid
from .optimize import cell_size, sheet

__all__ = ["unit_title", "unit_grid", "comparison"]


def unit_title(label, value) -> str:
    """``"block3_conv2:5 = 3.1"`` from an objective label such as ``"channel block3_conv2:5"``."""
    parts = str(label).split(" + ")
    unit = parts[0].split(" ", 1)[-1] if len(parts) == 1 else str(label)
    return f"{unit} = {float(value):.3g}"


def unit_grid(pictures, labels, values) -> np.ndarray:
    """One call's images, at most four a row, each titled with its unit and objective value."""
    return sheet(list(pictures), [unit_title(label, v) for label, v in zip(labels, values)])


def comparison(rows, row_names, titles) -> np.ndarray:
    """Rows of pictures (one per parameterization), each cell titled ``"<row>: <title>"``."""
    rows = [list(r) for r in rows]
    cell_titles = [[f"{name}: {t}" for t in row_titles] for name, row_titles in zip(row_names, titles)]
    return grid(rows, titles=cell_titles, cell=cell_size(np.asarray(rows[0][0])))
