"""ConvVizCallback overhead: the demo model trained with and without it, default settings.

Both runs build a fresh demo model with the same seed and train it with
``demo.train``'s defaults; the callback logs its default methods for 4 probe
images after every epoch. Runs alternate (baseline, callback, baseline, ...)
so machine drift hits both alike. Reported: the wall time spent inside the
callback relative to the rest of its run, the CPU-time ratio of the two runs,
and their wall-time ratio (noisy on a shared machine).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time

from common import row


def _train(with_callback, n, epochs, logdir):
    import keras

    from keras_convviz import ConvVizCallback, demo

    keras.utils.set_random_seed(0)
    callbacks = []
    cb = None
    if with_callback:
        probes, _, _ = demo.shapes(4, seed=99)
        cb = ConvVizCallback(logdir, probes)  # default methods, every epoch
        callbacks.append(cb)
    start, cpu = time.perf_counter(), time.process_time()
    demo.train(n=n, epochs=epochs, verbose=0, callbacks=callbacks)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    logged = sum(sum(t) for t in cb.timings.values()) if cb else 0.0
    return elapsed, cpu, logged


def measure(quick=False, repeat=None):
    import inspect

    from keras_convviz import demo

    defaults = inspect.signature(demo.train).parameters
    n = 1000 if quick else defaults["n"].default
    epochs = 3 if quick else defaults["epochs"].default
    repeat = repeat or (1 if quick else 2)
    runs = {"base": [], "ours": []}
    for _ in range(repeat):
        runs["base"].append(_train(False, n, epochs, None))
        logdir = tempfile.mkdtemp(prefix="convviz-bench-")
        try:
            runs["ours"].append(_train(True, n, epochs, logdir))
        finally:
            shutil.rmtree(logdir, ignore_errors=True)
    med = {k: [statistics.median(r[i] for r in v) for i in range(3)] for k, v in runs.items()}
    return {"n": n, "epochs": epochs, "wall": (med["ours"][0], med["base"][0]),
            "cpu": (med["ours"][1], med["base"][1]), "in_callback": med["ours"][2]}


def rows(quick=False):
    """The overhead three ways: wall time spent inside the callback (measured in the
    run itself, robust to a shared machine), the CPU-time ratio, and the plain
    wall-time ratio of separate runs (noisy where other jobs share the cores)."""
    m = measure(quick)
    (wall, wall0), (cpu, cpu0) = m["wall"], m["cpu"]
    ratio, cpu_ratio = wall / wall0, cpu / cpu0
    share = m["in_callback"] / max(wall - m["in_callback"], 1e-9)
    return [row(f"ConvVizCallback defaults, demo.train(n={m['n']}, epochs={m['epochs']}) vs no callback",
                f"+{100 * share:.1f}% wall in the callback, {cpu_ratio:.3f}x CPU",
                "<= 1.05x", share <= 0.05 and cpu_ratio <= 1.05,
                f"{m['in_callback']:.1f} s inside the callback; separate runs: {wall:.0f} s vs {wall0:.0f} s "
                f"wall ({ratio:.3f}x)")]


if __name__ == "__main__":
    import sys

    print(rows(quick="--quick" in sys.argv))
