"""``convviz featurevis``: images that maximize channels of a layer or classes (Olah et al. 2017).

``--layer L --channels 0,5,9`` optimizes one image per channel of ``L`` (all
in one batch); ``--class NAME[,NAME]`` one image per class (the pre-softmax
log probability at temperature 8 with the readable class recipe of
``featurevis.CLASS_RECIPE``, or ``--score logit|log_probability`` with the
plain options). ``--param`` picks the
parameterization (``fourier``, the default; ``decorrelated``; ``pixel``,
Simonyan's method). Writes one PNG per unit and a labelled grid, with a
progress bar over the steps. The colour matrix is the demo's own (estimated
from ``demo.shapes``) for ``--model demo`` and ImageNet's otherwise.
"""

from __future__ import annotations

from . import add_model_args, add_out_arg, check_out_dir, load_preset, out_path, positive_int_arg, slug


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
                   help="class objective (default: the log probability at temperature 8, with one solid "
                        "object in one piece on random backgrounds: the readable class recipe)")
    p.add_argument("--param", choices=("fourier", "decorrelated", "pixel"), default="fourier",
                   help="image parameterization (default: %(default)s)")
    p.add_argument("--steps", type=positive_int_arg, default=256, help="optimizer steps (default: %(default)s)")
    p.add_argument("--lr", type=float, default=None, help="Adam step size (default: 0.05; 0.02 for classes)")
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
    preset = load_preset(args)
    objective, names, grid_name, class_names = _objective(args, preset)
    channels = int(preset.model.inputs[0].shape[-1])
    options = dict(steps=args.steps, lr=0.05)
    if args.classes is not None and args.score is None and args.param != "pixel":
        options = dict(class_recipe(*preset.model.inputs[0].shape[1:3]), steps=args.steps, param=args.param)
    if args.lr is not None:
        options["lr"] = args.lr
    print(f"feature visualization, param={args.param}, {args.steps} steps")
    result = featurevis(preset.model, objective, seed=args.seed, colors=colors_for(preset),
                        value_range=input_range(preset.preprocess, channels), progress="always",
                        **dict(options, param=args.param))
    pictures = list(result.rgb(preset.deprocess))
    labels = class_names or list(result.labels)
    for label, value in zip(labels, result.values):
        print(f"{label}: objective {float(value):.4g}")
    named = [(out_path(args, name), picture) for name, picture in zip(names, pictures)]
    named.append((out_path(args, grid_name), unit_grid(pictures, labels, result.values)))
    for path, picture in named:
        print(f"wrote {save_png(path, picture)}")
    return 0
