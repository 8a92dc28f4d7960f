"""Say so when a picture would be blank: vanishing or exactly-zero maps, in one line.

One detector for the CLI and the callback. :func:`diagnose` looks at the raw
values behind a picture (activations, gradients, a finished map) and returns
one line naming what is wrong and the likely cause, or ``None`` when the
values are fine:

* exactly zero everywhere: nothing to draw (:mod:`render` draws it flat);
* every ``|value|`` below :data:`VANISHING` (1e-8, far below float32's
  resolution of O(1) signals): the signal vanished on the way; the picture
  is still drawn relative to the map's own scale, but it explains noise-level
  numbers;
* NaN or Inf values.

The likely causes: untrained weights (``--weights none``: activations shrink
layer after layer, e.g. ~1e-19 at MobileNet's ``conv_pw_13``), dead units
(ReLUs that never fire on this input), or a layer off the explained output's
path (its gradient is exactly zero).
"""

from __future__ import annotations

import sys
import warnings
from typing import Optional

import numpy as np

__all__ = ["VANISHING", "BlankMapWarning", "diagnose", "report"]

VANISHING = 1e-8

_CAUSES = {
    "activations": "untrained weights (--weights none shrinks activations layer by layer) or dead units "
                   "(ReLUs that never fire on this input)",
    "gradients": "untrained weights, dead units (ReLUs that never fire), or a layer off the explained "
                 "output's path",
    "box filter": "the crop does not reach this layer (it lies where the layer sees none of the input, "
                  "e.g. cut away by 'valid' padding or cropping); move or enlarge the crop",
}


class BlankMapWarning(RuntimeWarning):
    """A map is exactly zero, vanishing or not finite (the callback's one-line warning)."""


def diagnose(values, what, kind="gradients") -> Optional[str]:
    """One line about ``values`` (any array) when its picture would mislead, else ``None``.

    ``what`` names the map in the message (``"the saliency map"``, ``"conv5
    activations"``); ``kind`` is ``"gradients"`` (anything backpropagated or
    derived from gradients, class-score changes), ``"activations"`` or
    ``"box filter"`` (receptive-field geometry: a crop that never reaches a layer).
    """
    if kind not in _CAUSES:
        raise ValueError(f"kind must be one of {', '.join(_CAUSES)}, got {kind!r}")
    values = np.asarray(values)
    if values.size == 0:
        return None
    finite = np.isfinite(values)
    if not finite.all():
        return f"{what} has {int((~finite).sum())} NaN/Inf values; likely cause: diverging weights or inputs"
    top = float(np.abs(values).max())
    if top == 0.0:
        return f"{what} is exactly zero (drawn flat); likely cause: {_CAUSES[kind]}"
    if top < VANISHING:
        return (f"{what} vanishes (largest |value| {top:.1e}; drawn relative to its own scale); "
                f"likely cause: {_CAUSES[kind]}")
    return None


def report(message, source) -> Optional[str]:
    """Emit ``message`` (from :func:`diagnose`) as one line: ``source`` is ``"convviz CMD"`` or ``"callback"``.

    The CLI writes ``convviz CMD: warning: ...`` to stderr; the callback
    issues a :class:`BlankMapWarning`. ``None`` does nothing.
    """
    if message is None:
        return None
    if source == "callback":
        warnings.warn(f"ConvVizCallback: {message}", BlankMapWarning, stacklevel=3)
    else:
        print(f"{source}: warning: {message}", file=sys.stderr)
    return message
