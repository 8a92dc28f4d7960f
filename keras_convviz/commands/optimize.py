"""``convviz classmodel`` and ``convviz invert``: images found by optimization.

``classmodel`` writes one image per ``--target`` class that maximizes its
pre-softmax score (Simonyan et al. 2014, with Yosinski et al.'s jitter / blur
/ total variation / clipping), or with ``--layer L --map K`` one that
maximizes a feature map's mean. ``invert`` reconstructs an image from one or
more layers' representations (Mahendran & Vedaldi 2015) and prints the
normalized feature error of each. Both show a progress bar over the
optimizer iterations; the pictures are laid out by ``figures.optimize``.
``classmodel`` prints and titles each image with its maximized score and the
model's probability, and warns when a score is not above a random image's.
``--size H,W`` builds a flexible-input model (HED) at that size for both.
"""

from __future__ import annotations

import sys

from . import (add_image_command, add_model_args, add_out_arg, add_precision_arg, check_out_dir, class_index,
               fit_image, ints_arg, load_preset, out_path, output_name, slug, warn_blank)

SIZE_HELP = "input H,W for a flexible-input model (hed; default: the preset's)"


def register(sub):
    p = sub.add_parser(
        "classmodel", help="an image that maximizes a class score (or a feature map)",
        description="Gradient ascent from the zero image on the pre-softmax class score "
                    "(Simonyan et al. 2014) with jitter, blur, total variation and clipping to the "
                    "valid input range (Yosinski et al. 2015).")
    add_model_args(p)
    p.add_argument("--target", default=None, metavar="C",
                   help="class(es) to maximize: an index, a class name, a comma-separated list, or 'all'")
    p.add_argument("--layer", default=None, metavar="L", help="maximize a feature map of this layer instead")
    p.add_argument("--map", default=None, metavar="K", help="feature map index(es) of --layer, comma-separated")
    p.add_argument("--steps", type=int, default=None,
                   help="optimizer iterations (default: 256 for classes, 100 with --layer or --blur-every)")
    p.add_argument("--lr", type=float, default=None,
                   help="step size (default: 0.0125 for classes; 0.05 of half the input range for pixels)")
    p.add_argument("--l2", type=float, default=0.01, help="L2 penalty weight, pixels only (default: %(default)s)")
    p.add_argument("--tv", type=float, default=None, help="total-variation weight (default: 0; the demo net 0.25)")
    p.add_argument("--jitter", type=int, default=None,
                   help="random shift in pixels (default: 7 %% of the side for classes, 4 for pixels)")
    p.add_argument("--blur-every", type=int, default=0, help="blur every k iterations, 0: never (default: %(default)s)")
    p.add_argument("--blur-sigma", type=float, default=0.5, help="blur sigma in pixels (default: %(default)s)")
    p.add_argument("--score", choices=("logit", "log_probability"), default=None,
                   help="maximize the pre-softmax logit (Simonyan) or the log probability (default: the class "
                        "recipe's: the logit at temperature 1, Fourier, for ImageNet networks; the demo net's log "
                        "probability at temperature 8)")
    p.add_argument("--size", default=None, metavar="H,W", type=ints_arg(2, "--size"), help=SIZE_HELP)
    add_precision_arg(p)
    add_out_arg(p)
    p.set_defaults(run=run_classmodel)

    p = add_image_command(sub, "invert", "reconstruct an image from a layer's representation",
                          "Representation inversion (Mahendran & Vedaldi 2015): from noise, minimize "
                          "||Phi(x) - Phi0||^2 / ||Phi0||^2 + alpha-norm + total variation.")
    p.add_argument("--layer", required=True, metavar="L", help="layer(s) to invert, comma-separated")
    p.add_argument("--steps", type=int, default=300, help="optimizer iterations (default: %(default)s)")
    p.add_argument("--lr", type=float, default=0.05,
                   help="step size as a fraction of half the input range (default: %(default)s)")
    p.add_argument("--alpha", type=float, default=6.0, help="alpha of the alpha-norm (default: %(default)s)")
    p.add_argument("--l-alpha", type=float, default=1e-4, help="alpha-norm weight (default: %(default)s)")
    p.add_argument("--tv", type=float, default=1e-3, help="total-variation weight (default: %(default)s)")
    p.add_argument("--tv-beta", type=float, default=2.0, help="beta of TV_beta (default: %(default)s)")
    p.add_argument("--jitter", type=int, default=0, help="random shift in pixels (default: %(default)s)")
    p.add_argument("--size", default=None, metavar="H,W", type=ints_arg(2, "--size"), help=SIZE_HELP)
    add_precision_arg(p)
    add_out_arg(p)
    p.set_defaults(run=run_invert)


# ---------------------------------------------------------------- helpers
def parse_targets(text, preset, classes):
    """``--target`` -> a list of class indices ('all', names, indices, comma lists)."""
    if text is None or not str(text).strip():
        raise ValueError("classmodel needs --target C (an index, a class name, a list or 'all'), "
                         "or --layer L --map K")
    if str(text).strip().lower() == "all":
        return list(range(classes))
    return [class_index(t, preset, classes) for t in str(text).split(",") if t.strip()]


def _parse_maps(text):
    try:
        return [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"--map must be comma-separated feature map indices, got {text!r}") from None


def _save_all(named_pictures):
    from ..media import save_png

    for path, picture in named_pictures:
        print(f"wrote {save_png(path, picture)}")


# ---------------------------------------------------------------- classmodel
def _feature_maps(args, model, options):
    """``--layer L --map K``: maximize feature maps; the result, titles and file names."""
    from ..methods.classmodel import class_model

    if args.target is not None:
        raise ValueError("give either --target (a class) or --layer with --map (a feature map), not both")
    if args.map is None:
        raise ValueError("--layer needs --map K, the feature map index(es) to maximize")
    maps = _parse_maps(args.map)
    print(f"maximizing feature map(s) {', '.join(map(str, maps))} of {args.layer} ({args.steps or 100} iterations)")
    result = class_model(model, layer=args.layer, map=maps, **options)
    titles = [f"{args.layer}:{k} mean {s:.3g}" for k, s in zip(maps, result.scores)]
    names = [f"featuremap_{slug(args.layer)}_{k}.png" for k in maps]
    return result, titles, names, f"featuremap_{slug(args.layer)}_grid.png"


def _classes(args, preset, options):
    """``--target``: maximize class scores, print each class's logit and probability."""
    import numpy as np

    from ..methods.classmodel import class_model
    from ..methods.featurevis import recipe, recipe_score
    from ..select import num_classes, score_step

    if args.map is not None:
        raise ValueError("--map needs --layer L")
    targets = parse_targets(args.target, preset, max(num_classes(preset.model), 2))
    chosen = recipe(preset.model.name)
    default = recipe_score(score_step(preset.model).activation, preset.model.name)
    score = (args.score or f"{default} (temperature {chosen['temperature']:g})").replace("_", " ")
    print(f"maximizing the {score} of {', '.join(preset.class_label(t) for t in targets)}")
    result = class_model(preset.model, targets, score=args.score, **options)
    probs = result.probabilities
    if probs.shape[-1] == 1:  # single-unit sigmoid: class 1's probability, class 0 its complement
        probs = np.concatenate([1 - probs, probs], axis=-1)
    titles, names = [], []
    for i, t in enumerate(targets):
        p, z = float(probs[i, t]), result.logits[i]
        logit = float(z[t]) if z.shape[-1] > 1 else float(z[0]) * (1.0 if t else -1.0)
        titles.append(f"{preset.class_label(t)} {result.scores[i]:.3g} p={p:.2f}")
        names.append(f"classmodel_{t}_{slug(preset.class_name(t))}.png")
        print(f"{preset.class_label(t)}: logit {logit:.3f}, probability {p:.4f}, "
              f"predicted {preset.class_label(int(np.argmax(probs[i])))}, objective {result.scores[i]:.4g} "
              f"(random image {result.random_scores[i]:.4g})")
    return result, titles, names, "classmodel_grid.png"


def run_classmodel(args):
    from ..figures.optimize import sheet
    from ..methods.optimize import check_iterations, input_range

    check_out_dir(args)
    if args.steps is not None:
        check_iterations(args.steps, "--steps")
    preset = load_preset(args, size=args.size)
    channels = int(preset.model.inputs[0].shape[-1])
    options = dict(steps=args.steps, lr=args.lr, l2=args.l2, tv=args.tv, jitter=args.jitter,
                   blur_every=args.blur_every, blur_sigma=args.blur_sigma, seed=args.seed,
                   value_range=input_range(preset.preprocess, channels), progress="always",
                   precision=args.precision)
    if args.layer is not None:
        result, titles, names, grid_name = _feature_maps(args, preset.model, options)
    else:
        result, titles, names, grid_name = _classes(args, preset, options)
    if not warn_blank(args, result.gain, "the change of the maximized score") and result.failed.any():
        print(f"convviz classmodel: warning: the optimization failed for {int(result.failed.sum())} of "
              f"{len(result.failed)} images: the score is not above a random image's (try more --steps or "
              f"another --lr)", file=sys.stderr)
    pictures = list(result.rgb(preset.deprocess))
    named = [(out_path(args, name), picture) for name, picture in zip(names, pictures)]
    if len(pictures) > 1:
        named.append((out_path(args, grid_name), sheet(pictures, titles)))
    _save_all(named)
    return 0


# ---------------------------------------------------------------- invert
def run_invert(args):
    from ..figures.optimize import sheet
    from ..graph import walk
    from ..media import read_input
    from ..methods.inversion import invert
    from ..methods.optimize import check_iterations, input_range
    from ..probe import run

    check_out_dir(args)
    layers = [name.strip() for name in str(args.layer).split(",") if name.strip()]
    if not layers:
        raise ValueError("--layer needs at least one layer name")
    check_iterations(args.steps, "--steps")
    image = read_input(args.image, args.frame)
    preset = load_preset(args, size=args.size)
    graph = walk(preset.model)
    for name in layers:
        graph.step(name)  # unknown layers fail before any work
    x, _ = fit_image(args, preset, image)
    value_range = input_range(preset.preprocess, int(x.shape[-1]))
    shown = preset.deprocess(x.copy())[0]
    panels, titles, named = [shown], ["input"], []
    representations = run(graph, x, layers)  # blank ones are named before any optimization
    for name in layers:
        values = representations[name].numpy()
        if values.any():  # an exactly-zero one is invert's one-line ValueError (nothing to invert)
            warn_blank(args, values, f"the {name} representation of the image", "activations")
    for name in layers:
        print(f"inverting {name} ({args.steps} iterations)")
        result = invert(preset.model, x, name, steps=args.steps, lr=args.lr, alpha=args.alpha,
                        l_alpha=args.l_alpha, tv=args.tv, tv_beta=args.tv_beta, jitter=args.jitter,
                        seed=args.seed, value_range=value_range, progress="always", precision=args.precision)
        error = float(result.errors[0])
        warn_blank(args, result.history - result.history[:1], f"the change of the {name} reconstruction loss")
        print(f"{name}: normalized feature error {error:.4f}")
        panels.append(result.rgb(preset.deprocess)[0])
        titles.append(f"{name} err {error:.3f}")
        named.append((output_name(args, "invert", name), panels[-1]))
    named.append((output_name(args, "invert"), sheet(panels, titles)))
    _save_all(named)
    return 0
