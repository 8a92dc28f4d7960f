"""``convviz demo``: train the demo CNN from scratch and log every method to TensorBoard.

Offline: synthetic shapes, no download. Keras' progress bar shows training;
the ConvViz callback logs after every epoch, next to Keras' own TensorBoard
scalars in the same log directory. Sample images for the README's CLI examples
go to ``<logdir>/samples/`` (``keras_convviz.demo.write_samples``).
"""

from __future__ import annotations

import os
import shlex
import sys
import time

from ..registry import demo_options

# Every method the records give demo settings (sized for the 64x64 demo on a laptop CPU).
DEMO_METHODS = demo_options()


def register(sub):
    p = sub.add_parser(
        "demo",
        help="train the demo CNN from scratch, logging every visualization to TensorBoard",
        description="Train the small demo CNN on synthetic shapes (offline, a few minutes on 2 CPU cores) "
                    "with ConvVizCallback logging every method after each epoch, then print the "
                    "tensorboard command to look at it.",
    )
    p.add_argument("--logdir", default=os.path.join("runs", "demo"), help="TensorBoard log directory (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=6, help="training epochs (default: %(default)s)")
    p.add_argument("--images", type=int, default=3000, help="synthetic training images (default: %(default)s)")
    p.add_argument("--probes", type=int, default=4, help="probe images explained at every epoch (default: %(default)s)")
    p.add_argument("--methods", default="all",
                   help="comma-separated methods to log, or 'all' (default: %(default)s): " + ",".join(DEMO_METHODS))
    p.add_argument("--seed", type=int, default=1, help="data and weight seed (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run, check=check)


def check(args):
    """Pre-flight (no TensorFlow): the counts and the method list."""
    if args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
    if args.images < 64:
        raise ValueError(f"--images must be >= 64, got {args.images}")
    if not 1 <= args.probes <= 16:
        raise ValueError(f"--probes must be 1..16, got {args.probes}")
    _methods(args.methods)


def _methods(text):
    if text.strip() == "all":
        return dict(DEMO_METHODS)
    names = [_one_name(n.strip()) for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in DEMO_METHODS]
    if unknown or not names:
        raise ValueError(f"--methods: unknown {', '.join(unknown) or 'empty list'}; choose from "
                         f"{', '.join(DEMO_METHODS)} or 'all'")
    return {n: DEMO_METHODS[n] for n in names}


def _one_name(name):
    """A method's one name for an alias (``integrated`` -> ``ig``); an unknown name as it is."""
    from ..registry import resolve

    try:
        return resolve(name)
    except ValueError:
        return name


def with_recipe_smoothing(methods):
    """``featurevis`` with the spectrum decay and edge-preserving TV of the demo net's ``DEMO_RECIPE``: Lucid's
    defaults give this 64-pixel net saturated pixel-scale noise or stripes a person cannot read (imports TF)."""
    if "featurevis" not in methods:
        return methods
    from ..methods.featurevis import DEMO_RECIPE

    smoothing = {k: DEMO_RECIPE[k] for k in ("decay", "tv", "tv_beta")}
    return dict(methods, featurevis=dict(methods["featurevis"], **smoothing))


def probe_images(count, seed):
    """``count`` validation images, cycling through the classes (one circle, one square, ...)."""
    from .. import demo

    images, labels, _ = demo.shapes(max(64, 8 * count), seed=seed + 2000)
    order = []
    for i in range(len(labels)):
        wanted = len(order) % len(demo.CLASS_NAMES)
        if labels[i] == wanted:
            order.append(i)
        if len(order) == count:
            break
    return images[order], labels[order]


def run(args):
    check(args)  # again for callers of run() outside the CLI
    methods = _methods(args.methods)

    import keras

    from .. import demo
    from ..callbacks import ConvVizCallback
    from ..graph import walk

    keras.utils.set_random_seed(args.seed)
    model = demo.build_model()
    blocks = walk(model).block_ends()
    probes, probe_labels = probe_images(args.probes, args.seed)
    heldout, _, _ = demo.shapes(256, seed=args.seed + 3000)
    names = ", ".join(demo.CLASS_NAMES[int(c)] for c in probe_labels)
    print(f"convviz demo: training the demo CNN on {args.images} synthetic images for {args.epochs} epochs; "
          f"logging {', '.join(methods)} for {args.probes} probe images ({names}) to {args.logdir}")
    samples = demo.write_samples(os.path.join(args.logdir, "samples"), seed=args.seed)
    print(f"convviz demo: wrote {len(samples)} sample images for the CLI examples to "
          f"{os.path.dirname(samples[0])} ({', '.join(os.path.basename(p) for p in samples)})")
    cb = ConvVizCallback(args.logdir, probes, methods=with_recipe_smoothing(methods), heldout=heldout, maps=6,
                         layers={"deconv": blocks, "topk": blocks[-2:], "featurevis": blocks[-2:]},
                         targets=[int(c) for c in probe_labels], class_names=demo.CLASS_NAMES)
    tensorboard = keras.callbacks.TensorBoard(log_dir=args.logdir, write_graph=False)
    start = time.perf_counter()
    demo.train(model=model, n=args.images, epochs=args.epochs, seed=args.seed, verbose=0 if args.quiet else 1,
               callbacks=[cb, tensorboard])
    elapsed = time.perf_counter() - start
    spent = sum(sum(t) for t in cb.timings.values())
    for name, reason in cb.failed.items():
        print(f"convviz demo: warning: {name} was skipped: {reason}", file=sys.stderr)
    print(f"convviz demo: done in {elapsed:.0f} s ({spent:.0f} s of it logging visualizations).")
    print("Now run:")
    print(f"  tensorboard --logdir {shlex.quote(args.logdir)} --samples_per_plugin convviz=0")
    print("and open the ConvViz tab (http://localhost:6006/#convviz).")
    return 0
