"""The callback's time budget: skip scheduled logs that would push logging past a share of training time.

A log's cost is the methods' own compute (deconv of 9 maps for 4 probe images
is 36 backward passes through the network), which no caching removes; on a
network whose epochs are short next to that, logging at every epoch costs a
large share of training (13 % for an EfficientNet-Lite0 head fine-tuning,
benchmarks/RESULTS.md). ``ConvVizCallback(max_overhead=0.03)`` keeps the share
within 3 %: a scheduled log runs only when the time spent logging so far, plus
two logs at the last one's cost (this one, and the one kept in reserve for the
end of training), stays within ``max_overhead`` of the training time so far
(wall time outside the callback's logs). The first log always runs (there is
no cost to go by yet), and so does the log at the end of training, so the
final state is always on the dashboard; with the reserve, that last log still
fits the budget once training has run long enough for any second log.
"""

from __future__ import annotations

import numbers
import time
import warnings

__all__ = ["OverheadBudget", "check_max_overhead"]


def check_max_overhead(value):
    """``None`` or a share in (0, 1]: ``ValueError`` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value <= 1:
        raise ValueError(f"max_overhead must be None (log at every scheduled step) or a share of training time "
                         f"in (0, 1], such as 0.03, got {value!r}")
    return float(value)


class OverheadBudget:
    """Counts the time spent logging against the time spent training, and says whether a log fits."""

    def __init__(self, share):
        self.share = check_max_overhead(share)
        self.started = None
        self.spent = 0.0
        self.last_cost = None
        self.skipped = []
        self.warned = False

    def start(self):
        if self.started is None:  # a later fit() keeps counting from the first
            self.started = time.perf_counter()

    def training_time(self):
        now = time.perf_counter()
        return max(now - (now if self.started is None else self.started) - self.spent, 0.0)

    def allows(self, step):
        """True when the log at ``step`` fits the budget (always without one, and before any log)."""
        if self.share is None or self.last_cost is None:
            return True
        if self.spent + 2 * self.last_cost <= self.share * self.training_time():  # this log + the last one
            return True
        self.skipped.append(step)
        if not self.warned:
            self.warned = True
            warnings.warn(
                f"ConvVizCallback: a log takes {self.last_cost:.2f} s against {self.training_time():.1f} s of "
                f"training so far; skipping scheduled logs (from step {step}) to keep logging within "
                f"max_overhead={self.share:g} of training time. The end of training is still logged; "
                f"max_overhead=None logs at every scheduled step.", RuntimeWarning, stacklevel=3)
        return False

    def record(self, seconds):
        """A log took ``seconds``."""
        self.spent += seconds
        self.last_cost = seconds
