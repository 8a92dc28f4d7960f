"""Peak resident memory of one SmoothGrad / integrated-gradients call, in a fresh process.

Used by the memory test (tests/test_gradients.py) and the memory benchmark
(benchmarks/bench_gradients.py), both through ``subprocess``, so each
measurement starts from a clean process. Prints one JSON line:
``{"before_kb": ..., "peak_kb": ...}`` (VmHWM before and after the call).

usage: python benchmarks/peak_memory.py {smoothgrad,ig} COUNT [--batch-size B] [--size S]
       [--warmup-count N] [--warmup-repeats R]
"""

import argparse
import json
import os
import resource


def peak_kb():
    # VmHWM: this process's own peak RSS. ru_maxrss is no good here: Linux carries the
    # parent's high-water mark into a forked-and-exec'd child.
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def model_and_image(size):
    import keras
    import numpy as np

    layers = keras.layers
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(4, activation="softmax")(x))
    image = np.random.default_rng(0).uniform(0, 1, (1, size, size, 3)).astype(np.float32)
    return model, image


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method", choices=("smoothgrad", "ig"))
    parser.add_argument("count", type=int, help="noise samples (smoothgrad) or path steps (ig)")
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--warmup-count", type=int, default=1, help="samples/steps of each warm-up call")
    parser.add_argument("--warmup-repeats", type=int, default=1,
                        help="warm-up calls: compile, and let the allocator reach its plateau")
    args = parser.parse_args()
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    from keras_convviz import integrated_gradients, smoothgrad

    model, image = model_and_image(args.size)

    def call(n, batch):
        if args.method == "smoothgrad":
            return smoothgrad(model, image, 0, samples=n, batch_size=batch)
        return integrated_gradients(model, image, 0, steps=n, batch_size=batch)

    for _ in range(args.warmup_repeats):
        call(args.warmup_count, min(args.warmup_count, args.batch_size))
    before = peak_kb()
    call(args.count, args.batch_size)
    print(json.dumps({"before_kb": before, "peak_kb": peak_kb()}))


if __name__ == "__main__":
    main()
