"""Class-model transfer over many seeds and several twins: how luck-free is the 3-seed benchmark figure?

``bench_featurevis`` reads 4 classes x 3 seeds against one twin, the issue's
protocol. One image misread moves a class's mean by a third, and which image
is misread depends on float details (oneDNN on or off), so this script
repeats the protocol over ``--seeds`` seeds and ``--twins`` twins trained
here, and prints the class models' high-frequency ratios to real images
and, per twin, the mean p per class and every misread image. Run it once with
``TF_ENABLE_ONEDNN_OPTS=0`` and once without to see both float paths::

    python benchmarks/sweep_class_models.py --seeds 36 --twins 11,23
"""

from __future__ import annotations

import argparse

import numpy as np

from bench_featurevis import VARIANTS, class_models, hf_share, onednn_path, real_median_share, twin_model


def sweep(seeds, twin_seeds):
    from keras_convviz import demo

    model = demo.load_model()
    readable_default = dict(VARIANTS[0][1])  # class_model with featurevis.CLASS_RECIPE
    images = np.clip(class_models(model, readable_default, seeds)[0], 0, 1)
    classes = np.tile(np.arange(4), len(seeds))
    ratio = hf_share(images) / real_median_share()
    print(f"{len(seeds)} seeds x 4 classes, oneDNN {onednn_path()}; hf ratio {ratio.min():.2f}x-{ratio.max():.2f}x, "
          f"{int(np.sum(ratio > 1.5))} above 1.5x, {int(np.sum(ratio < 1 / 1.5))} below 0.67x")
    for twin_seed in twin_seeds:
        p = twin_model(twin_seed).predict(images, verbose=0)
        own = p[np.arange(len(images)), classes].reshape(len(seeds), 4).mean(0)
        wrong = np.flatnonzero(p.argmax(1) != classes)
        misread = ", ".join(f"seed {seeds[i // 4]} {demo.CLASS_NAMES[classes[i]]} as "
                            f"{demo.CLASS_NAMES[p[i].argmax()]}" for i in wrong)
        print(f"twin {twin_seed}: mean p " + " / ".join(f"{v:.2f}" for v in own)
              + f"; {len(wrong)}/{len(images)} misread" + (f" ({misread})" if misread else ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=12, help="class-model seeds 0..N-1 (default 12)")
    parser.add_argument("--twins", default="11,23", help="twin training seeds (default 11,23)")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    sweep(list(range(args.seeds)), [int(s) for s in args.twins.split(",")])


if __name__ == "__main__":
    main()
