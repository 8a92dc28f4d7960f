"""Results that display themselves in a notebook: the :class:`Inline` mix-in.

A result class that inherits :class:`Inline` gets ``_repr_png_`` (Jupyter's
hook for inline PNGs): the figure :func:`keras_convviz.show` draws for it,
titled and with its colour bar. The drawing code is imported only when a
notebook asks, so results stay plain data otherwise.
"""

from __future__ import annotations

__all__ = ["Inline"]


class Inline:
    """Mixed into result classes: notebooks display them as :func:`keras_convviz.show` draws them."""

    def _repr_png_(self) -> bytes:
        from .notebook import show

        return show(self)._repr_png_()
