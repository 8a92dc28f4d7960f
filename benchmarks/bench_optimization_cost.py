"""Per-step cost of the optimizations (issue 28): class models, feature visualization, inversion.

For EfficientNet-Lite0 (``presets.load("efficientnet-lite0")``) and VGG16
(``weights=None``) at 224, batch 1, seconds per step of

* ``class_model(model, 20)`` (its default recipe, ``CLASS_RECIPE``),
* ``featurevis(model, channel(layer, 0))`` (defaults: Fourier, jitter/zoom/rotate),
* ``invert(model, x, layer)`` (defaults),
* tf-keras-vis ``ActivationMaximization`` on class 20 (its defaults, ``ReplaceToLinear``),
* the floor: one plain ``tf.function`` step (forward, ``GradientTape`` gradient of
  the class-20 score with respect to the image, an in-place ascent step) on the
  same batch,
* where the machine computes bfloat16 natively (``precision.native_bfloat16()``):
  the three of ours with ``precision="bfloat16"``, and the floor on the
  bfloat16 twin (``precision.twin``),

each step timed on its own (our ``progress=`` callable, a tf-keras-vis
callback, the floor's call), in runs of ``--steps`` steps that alternate the
five functions for ``--rounds`` rounds (the machine is shared: drift hits all
alike); the first ``--skip`` steps of each run are left out (compilation,
set-up) and the median of the rest is the steady-state step. Reported: each
per step, its ratio to the floor (target <= 1.3x) and to tf-keras-vis, and
what a user waits for the defaults (a whole run's set-up, measured as a run's
time less its steps, plus the default step count times the median step).

    python benchmarks/bench_optimization_cost.py --models lite0,vgg16 --steps 6 --rounds 3
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

TARGET = 20
LAYERS = {"lite0": ("block5c_add", "block4a_expand_activation"), "vgg16": ("block4_conv3", "block3_conv3")}


def model_and_range(name):
    import keras
    import numpy as np

    if name == "lite0":
        from keras_convviz import presets
        from keras_convviz.methods.optimize import input_range

        preset = presets.load("efficientnet-lite0")
        low, high = input_range(preset.preprocess)
        return preset.model, (float(np.min(low)), float(np.max(high)))
    model = keras.applications.VGG16(weights=None, input_shape=(224, 224, 3))
    return model, (-123.68, 151.061)


def floor_fn(model, lr=0.05):
    """A plain ascent step: forward, the class score's gradient by GradientTape, x += lr * g."""
    import tensorflow as tf

    x = tf.Variable(tf.random.uniform((1,) + tuple(model.input_shape[1:]), 0.0, 1.0))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            score = tf.cast(model(x, training=False)[:, TARGET], tf.float32)
        x.assign_add(lr * tape.gradient(score, x))
        return score

    def run(steps, tick):
        for i in range(steps):
            step().numpy()
            tick(i + 1, steps)
        return x.numpy()

    return run


def makers(name, model, value_range):
    """``{label: fn(steps)}`` for one model."""
    import numpy as np

    from keras_convviz import class_model, featurevis, invert
    from keras_convviz.methods.featurevis import channel

    lo, hi = value_range
    layer, inv_layer = LAYERS[name]
    x = np.random.default_rng(0).uniform(lo, hi, (1,) + tuple(model.input_shape[1:])).astype(np.float32)

    import tensorflow as tf
    from tf_keras_vis.activation_maximization import ActivationMaximization
    from tf_keras_vis.activation_maximization.callbacks import Callback
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    am = ActivationMaximization(model, model_modifier=ReplaceToLinear(), clone=True)

    class Tick(Callback):
        def __init__(self, tick, steps):
            self.tick, self.steps = tick, steps

        def __call__(self, i, values, *args, **kwargs):
            np.asarray(values[0])
            self.tick(i + 1, self.steps)

    def tkv(steps, tick):
        tf.random.set_seed(0)
        return am(CategoricalScore([TARGET]), steps=steps, input_range=(lo, hi), callbacks=[Tick(tick, steps)],
                  seed_input=tf.random.uniform((1,) + tuple(model.input_shape[1:]), lo, hi))

    def ours(precision):
        return {
            "class_model": lambda s, tick: class_model(model, TARGET, steps=s, value_range=value_range,
                                                       progress=tick, precision=precision),
            "featurevis": lambda s, tick: featurevis(model, channel(layer, 0), steps=s, value_range=value_range,
                                                     progress=tick, precision=precision),
            "invert": lambda s, tick: invert(model, x, inv_layer, steps=s, value_range=value_range, progress=tick,
                                             precision=precision),
        }

    fns = {"floor": floor_fn(model), **ours("float32"), "tf-keras-vis": tkv}
    from keras_convviz.precision import native_bfloat16, twin

    if native_bfloat16():  # bfloat16 rows too where the machine computes it natively
        fns["floor bfloat16"] = floor_fn(twin(model, "bfloat16"))
        fns.update({f"{k} bfloat16": fn for k, fn in ours("bfloat16").items()})
    return fns


def default_steps():
    from keras_convviz import invert
    from keras_convviz.methods.featurevis import CLASS_RECIPE, featurevis

    return {"class_model": CLASS_RECIPE["steps"],
            "featurevis": inspect.signature(featurevis).parameters["steps"].default,
            "invert": inspect.signature(invert).parameters["steps"].default}


def timed_run(fn, steps):
    """``(total seconds, [seconds of each step])`` of one run of ``fn(steps, tick)``."""
    stamps = []
    start = time.perf_counter()
    fn(steps, lambda done, total: stamps.append(time.perf_counter()))
    total = time.perf_counter() - start
    marks = [start] + stamps
    return total, [b - a for a, b in zip(marks, marks[1:])]


def per_step(fns, steps, rounds, skip=2):
    """``{label: (median steady-state step, median set-up)}``: runs alternated over ``rounds``."""
    for fn in fns.values():
        fn(2, lambda done, total: None)  # compile
    kept, setup = {k: [] for k in fns}, {k: [] for k in fns}
    for _ in range(rounds):
        for label, fn in fns.items():
            total, each = timed_run(fn, steps)
            if len(each) != steps:
                raise RuntimeError(f"{label}: {len(each)} step marks for {steps} steps")
            kept[label].extend(each[skip:])
            setup[label].append(total - sum(each[skip:]) * steps / max(len(each[skip:]), 1))
    return {k: (statistics.median(kept[k]), statistics.median(setup[k])) for k in fns}


def measure(models=("lite0", "vgg16"), steps=6, rounds=3, skip=2):
    out = {"load_1min": [round(os.getloadavg()[0], 2)], "steps": steps, "rounds": rounds, "skip": skip,
           "models": {}}
    defaults = default_steps()
    for name in models:
        model, value_range = model_and_range(name)
        res = per_step(makers(name, model, value_range), steps, rounds, skip)
        floor = res["floor"][0]
        rows = {}
        for label, (step, setup) in res.items():
            r = {"s_per_step": round(step, 4), "x_floor": round(step / floor, 2),
                 "x_tf_keras_vis": round(step / res["tf-keras-vis"][0], 2)}
            base = label.split()[0]
            if base in defaults:
                r["default_steps"] = defaults[base]
                r["user_waits_s"] = round(max(setup, 0.0) + defaults[base] * step, 1)
            rows[label] = r
        out["models"][name] = rows
        out["load_1min"].append(round(os.getloadavg()[0], 2))
        print(name, json.dumps(rows), flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lite0,vgg16")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip", type=int, default=2)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    out = measure(tuple(args.models.split(",")), args.steps, args.rounds, args.skip)
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
