"""One progress helper for every long method: a Keras ``Progbar`` that appears after about a second.

Methods take ``progress=`` and pass it to :func:`tracker`:

* ``False`` / ``None`` (the API's default): quiet;
* ``True`` (what the CLI passes): a ``keras.utils.Progbar`` on stdout, shown
  only once the work has run longer than :data:`DELAY` seconds, so quick
  calls print nothing; it reports time per unit (``45ms/image``), and
  :meth:`Progress.close` prints one summary line with the rate to three
  significant digits (``120 images in 2.4 s, 50.1 images/s``);
* ``"always"``: the same bar from the first unit on (the optimization
  commands, where the user asked for N iterations and expects to see them);
* a callable ``fn(done, total)``: called after each chunk (a GUI, a log).
"""

from __future__ import annotations

import time
from typing import Callable, Optional, Union

__all__ = ["DELAY", "Progress", "tracker", "rate_text"]

DELAY = 1.0  # seconds of silence before a bar appears

ProgressArg = Union[bool, None, str, Callable[[int, int], object]]


def rate_text(done, seconds, unit) -> str:
    """``"120 images in 2.4 s, 50.1 images/s"``: counts exact, time and rate to 3 significant digits."""
    plural = unit if unit.endswith("s") else unit + "s"
    rate = done / seconds if seconds > 0 else float("inf")
    return f"{done} {plural if done != 1 else unit} in {seconds:.3g} s, {rate:.3g} {plural}/s"


class Progress:
    """Progress of ``total`` units of work; see the module docstring for ``progress``."""

    def __init__(self, total, unit="step", progress: ProgressArg = True, delay=DELAY, label=None):
        self.total, self.unit = int(total), unit
        self.delay = 0.0 if progress == "always" else float(delay)
        self.show = progress is True or progress == "always"
        self.callback = progress if callable(progress) else None
        self.label = label
        self.start = time.time()
        self.bar = None
        self.done = 0

    def update(self, done, values=None) -> None:
        """``done`` units finished so far; ``values``: ``[(name, number), ...]`` for the bar."""
        self.done = int(done)
        if self.callback is not None:
            self.callback(self.done, self.total)
        if not self.show:
            return
        if self.bar is None and time.time() - self.start >= self.delay and self.done < self.total:
            self.bar = self._open(values)
        if self.bar is not None:
            self.bar.update(min(self.done, self.total), values=values, finalize=False)

    def _open(self, values):
        import keras

        if self.label:
            print(self.label)
        names = [name for name, _ in values or ()]
        bar = keras.utils.Progbar(self.total, unit_name=self.unit, stateful_metrics=names)
        bar._start = self.start  # count from the start of the work, not from when the bar appeared
        return bar

    def close(self) -> Optional[str]:
        """Finish the bar (if shown) and print the summary line; returns it."""
        if self.bar is None:
            return None
        self.bar.update(self.total, finalize=True)
        line = rate_text(self.done, time.time() - self.start, self.unit)
        print(line)
        return line


def tracker(progress: ProgressArg, total, unit="step", label=None) -> Progress:
    """A :class:`Progress` for ``progress`` (False/None, True, "always" or a callable ``fn(done, total)``)."""
    if not (progress is None or isinstance(progress, bool) or progress == "always" or callable(progress)):
        raise ValueError(f"progress must be True, False, 'always' or a callable fn(done, total), got {progress!r}")
    return Progress(total, unit, progress, label=label)
