"""``convviz featurevis``: images that maximize channels of a layer or classes (Olah et al. 2017).

``--layer L --channels 0,5,9`` optimizes one image per channel of ``L`` (all
in one batch); ``--class NAME[,NAME]`` one image per class (the model's class
recipe, ``featurevis.recipe``: for ImageNet networks ``CLASS_RECIPE``, Fourier on
the pre-softmax logit at temperature 1; the demo net keeps ``DEMO_RECIPE``,
the log probability at temperature 8; or ``--score logit|log_probability``
with the plain options). ``--param`` picks the parameterization (``fourier``,
the default; ``decorrelated``; ``maco``, Fel et al. 2023;
``pixel``, Simonyan's method). ``--size H,W`` builds a flexible-input model
(HED) at that size. Prints each image's objective, the model's probability of
its class, and a warning when an image's objective is not above a random
image's. Writes one PNG per unit and a labelled grid, with a progress bar over
the steps. The colour matrix is the demo's own (estimated from
``demo.shapes``) for ``--model demo`` and ImageNet's otherwise.
"""

from __future__ import annotations

from . import (add_model_args, add_out_arg, add_precision_arg, check_out_dir, ints_arg, load_preset, out_path,
               positive_int_arg, slug)


def register(sub):
    p = sub.add_parser(
        "featurevis", help="images that maximize channels or classes (Fourier, decorrelated, transformation-robust)",
        description="Feature visualization (Olah et al. 2017): gradient ascent on a Fourier, colour-"
                    "decorrelated image under random rotation, scale and jitter, kept in the valid input range.")
    add_model_args(p)
    p.add_argument("--layer", default=None, metavar="L", help="a spatial layer whose channels to visualize")
    p.add_argument("--channels", default=None, metavar="K", help="channel indices of --layer, comma-separated")
    p.add_argument("--class", dest="classes", default=None, metavar="NAME",
                   help="class(es) instead of channels: names or indices, comma-separated, or 'all'")
    p.add_argument("--score", choices=("logit", "log_probability"), default=None,
                   help="class objective (default: the class recipe's: the logit at temperature 1 for "
                        "ImageNet networks; the demo net's log probability at temperature 8)")
    p.add_argument("--param", choices=("fourier", "decorrelated", "maco", "pixel"), default=None,
                   help="image parameterization (default: fourier; classes: the class recipe's)")
    p.add_argument("--steps", type=positive_int_arg, default=256, help="optimizer steps (default: 256)")
    p.add_argument("--lr", type=float, default=None, help="Adam step size (default: 0.05; 0.0125 for classes)")
    p.add_argument("--size", default=None, metavar="H,W", type=ints_arg(2, "--size"),
                   help="input H,W for a flexible-input model (hed; default: the preset's)")
    add_precision_arg(p)
    p.set_defaults(run=run)
    add_out_arg(p)


def _channels(text):
    try:
        values = [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        values = []
    if not values:
        raise ValueError(f"--channels must be comma-separated channel indices such as 0,5,9, got {text!r}")
    return values


def _objective(args, preset):
    """The objective, the file name of each image, and the grid's name."""
    from ..methods import objectives as obj
    from ..methods.featurevis import recipe_class_objective
    from ..select import num_classes, score_step
    from .optimize import parse_targets

    if (args.classes is None) == (args.layer is None):
        raise ValueError("give either --layer L --channels K[,K...] or --class NAME[,NAME...]")
    if args.classes is not None:
        if args.channels is not None:
            raise ValueError("--channels needs --layer L, not --class")
        targets = parse_targets(args.classes, preset, max(num_classes(preset.model), 2))
        if args.score is None:
            objective = recipe_class_objective(targets, score_step(preset.model).activation)[0]
        else:
            objective = (obj.class_logit if args.score == "logit" else obj.class_log_probability)(targets)
        names = [f"featurevis_class_{t}_{slug(preset.class_name(t))}.png" for t in targets]
        return objective, names, "featurevis_class_grid.png", [preset.class_label(t) for t in targets]
    if args.channels is None:
        raise ValueError("--layer needs --channels K[,K...], the channels to visualize")
    channels = _channels(args.channels)
    names = [f"featurevis_{slug(args.layer)}_{k}.png" for k in channels]
    return obj.channel(args.layer, channels), names, f"featurevis_{slug(args.layer)}_grid.png", None


def run(args):
    from ..figures.featurevis import unit_grid
    from ..media import save_png
    from ..methods.featurevis import class_recipe, featurevis
    from ..methods.optimize import input_range
    from ..methods.parameterize import colors_for

    check_out_dir(args)
    preset = load_preset(args, size=args.size)
    objective, names, grid_name, class_names = _objective(args, preset)
    channels = int(preset.model.inputs[0].shape[-1])
    options = dict(steps=args.steps, lr=0.05, param=args.param or "fourier", precision=args.precision)
    if args.classes is not None and args.score is None and args.param != "pixel":
        recipe = class_recipe(*preset.model.inputs[0].shape[1:3], preset.model.name)
        options = dict(recipe, steps=args.steps, param=args.param or recipe["param"], precision=args.precision)
        if options["param"] == "maco":
            options.update(alpha=None, solid=False, compact=False)  # MaCo's images are opaque
    if args.lr is not None:
        options["lr"] = args.lr
    print(f"feature visualization, param={options['param']}, {args.steps} steps")
    result = featurevis(preset.model, objective, seed=args.seed, colors=colors_for(preset),
                        value_range=input_range(preset.preprocess, channels), progress="always", **options)
    pictures = list(result.rgb(preset.deprocess))
    labels = class_names or list(result.labels)
    labels = report(args, preset, result, labels)
    named = [(out_path(args, name), picture) for name, picture in zip(names, pictures)]
    named.append((out_path(args, grid_name), unit_grid(pictures, labels, result.values)))
    for path, picture in named:
        print(f"wrote {save_png(path, picture)}")
    return 0


def report(args, preset, result, labels):
    """Each image's objective (and, for classes, the model's probability of its class), and one warning
    line naming the images whose objective did not rise above a random image's. Returns the grid's labels
    (with the probability for classes)."""
    import sys

    import numpy as np

    probs = None
    if args.classes is not None:
        probs = np.asarray(preset.model.predict(result.images, verbose=0), np.float64).reshape(len(labels), -1)
    titles = []
    for i, (label, value) in enumerate(zip(labels, result.values)):
        shown, title = f"{label}: objective {float(value):.4g} (random image {float(result.baseline[i]):.4g})", label
        if probs is not None and probs.shape[-1] > 1:
            p = probs[i, _target(result.labels[i], probs.shape[-1])]
            shown, title = shown + f", probability {p:.4f}", f"{label} p={p:.2f}"
        print(shown)
        titles.append(title)
    failed = [label for label, bad in zip(labels, result.failed) if bad]
    if failed:
        print(f"convviz featurevis: warning: the optimization failed for {', '.join(map(str, failed))}: the "
              f"objective is not above a random image's (try more --steps or another --lr)", file=sys.stderr)
    return titles


def _target(label, classes):
    """The class index a featurevis label names (``"class logit 130"`` -> 130)."""
    digits = str(label).split()[-1].split(":")[-1]
    return int(digits) if digits.isdigit() and int(digits) < classes else 0
