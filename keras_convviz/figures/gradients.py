"""Pictures of gradient maps: the map itself and the map over the input.

Saliency (Simonyan et al. 2014, arXiv:1312.6034), SmoothGrad (Smilkov et al.
2017, arXiv:1706.03825) and integrated gradients (Sundararajan et al. 2017,
arXiv:1703.01365) are shown with Smilkov et al.'s display: absolute values
scaled by their 99th percentile and clipped, so a few extreme pixels do not
wash out the rest. Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391) is
non-negative and coarse: it is scaled by its maximum. Guided backprop
(Springenberg et al. 2015, arXiv:1412.6806) is an input-space signal, drawn
like a deconv projection (grey = 0).
"""

from __future__ import annotations

import numpy as np

from ..fit import MAX_DISPLAY_SIDE as MAX_SIDE
from ..render import colormap, overlay, projection_image

__all__ = ["pictures", "max_scaled", "stretch", "enlarge"]


def pictures(method, rgb, m, order=None) -> tuple:
    """``(map picture, overlay)``, RGB uint8, for one image's map ``m`` over its RGB input ``rgb``.

    ``method`` is the CLI's name (``saliency``, ``smoothgrad``, ``guided``,
    ``ig``, ``gradcam``); ``order`` the channel order that shows a BGR
    model's guided projection in RGB.
    """
    scale = max_scaled if method == "gradcam" else stretch
    if m.ndim == 3:  # guided / IG: (H, W, C)
        strength = np.abs(m).max(axis=-1) if method == "guided" else np.abs(m).sum(axis=-1)
        if method == "guided":
            picture = projection_image(m[..., order] if order is not None and m.shape[-1] == 3 else m)
        else:
            picture = colormap(scale(strength))
    else:
        strength = m
        picture = colormap(scale(m))
    return picture, overlay(rgb, scale(strength), normalized=True)


def max_scaled(m) -> np.ndarray:
    """``m`` divided by its maximum (all zeros when nothing is positive)."""
    m = np.asarray(m, np.float64)
    top = m.max()
    return m / top if top > 0 else np.zeros_like(m)


def stretch(m) -> np.ndarray:
    """``|m|`` scaled by its 99th percentile and clipped to [0, 1] (Smilkov et al.'s display)."""
    m = np.abs(np.asarray(m, np.float64))
    top = np.percentile(m, 99)
    top = top if top > 0 else m.max()
    return np.clip(m / top, 0, 1) if top > 0 else np.zeros_like(m)


def enlarge(image, minimum=192, maximum=MAX_SIDE) -> np.ndarray:
    """Small pictures (the 64x64 demo) enlarged by an integer factor, nearest neighbour.

    The factor never takes a side past ``maximum``: a 1000x1 photo's strip
    stays a strip (it would otherwise grow to 192 x 192000).
    """
    factor = min(-(-minimum // min(image.shape[:2])), maximum // max(image.shape[:2]))
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
