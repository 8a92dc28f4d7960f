"""Shared timing helpers for the benchmark modules.

Every figure is a steady-state median over repeats, measured side by side in
one process, and reported as a ratio to its reference: the machines are
shared and noisy, ratios travel better than seconds.
"""

from __future__ import annotations

import statistics
import time


def median_seconds(fn, repeat=7, warmup=2):
    """Median wall time of ``fn()`` after ``warmup`` untimed calls (compilation)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(fns, repeat=7, warmup=2):
    """Medians of several callables timed in alternation, so drift hits all alike."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def row(name, figure, target, ok, detail=""):
    """One line of the benchmark table."""
    return {"benchmark": name, "figure": figure, "target": target, "ok": ok, "detail": detail}
