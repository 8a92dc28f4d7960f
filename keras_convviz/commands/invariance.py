"""``convviz invariance``: feature invariance of one image (Zeiler & Fergus 2014, arXiv:1311.2901, fig. 5).

Writes ``<stem>_invariance.png`` (one row per transform: transformed
examples, early-layer distance, late-layer distance, target probability) and
``<stem>_invariance.npz`` (the curves).
"""

from __future__ import annotations

import io

from . import (add_image_command, add_out_arg, check_out_dir, class_index, fit_image, load_preset, output_name,
               positive_int_arg)


def register(sub):
    p = add_image_command(
        sub, "invariance", "feature distance and class probability under translation, scale and rotation "
        "(Zeiler & Fergus fig. 5)",
        "Transform the image over a range of vertical translations, scales and rotations (padding with the "
        "model's neutral fill) and plot the Euclidean feature distance to the original at an early and a late "
        "layer, and the target's probability.")
    p.add_argument("--target", default=None, help="class index or name (default: the predicted class)")
    p.add_argument("--transforms", default="translate,scale,rotate",
                   help="comma-separated: translate, scale, rotate, flip (default: %(default)s)")
    p.add_argument("--layers", default=None,
                   help="comma-separated layer names to compare (default: an early and a late layer)")
    p.add_argument("--steps", type=positive_int_arg, default=20, help="values per transform (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int_arg, default=64, help="copies per forward pass")
    add_out_arg(p)
    p.set_defaults(run=run)


def run(args):
    import numpy as np

    from .. import media
    from ..figures.invariance import examples, figure
    from ..fit import neutral_fill, to_channels
    from ..methods.invariance import invariance
    from ..select import num_classes

    check_out_dir(args)
    image = media.read_input(args.image, args.frame)
    preset = load_preset(args)
    x, _ = fit_image(args, preset, image)
    target = class_index(args.target, preset, num_classes(preset.model))
    fill = neutral_fill(preset.preprocess, to_channels(np.asarray(preset.mean_pixel, np.float32), preset.channels))
    transforms = tuple(t.strip() for t in args.transforms.split(",") if t.strip())
    layers = None if args.layers is None else tuple(t.strip() for t in args.layers.split(",") if t.strip())
    result = invariance(preset.model, x, target, transforms=transforms, layers=layers, steps=args.steps,
                        fill=fill, batch_size=args.batch_size)
    shown = {t: examples(x, result, t, preset.deprocess) for t in result.transforms}
    png = media.save_png(output_name(args, "invariance"), figure(result, shown, preset.class_names))
    buf = io.BytesIO()
    arrays = {f"{kind}_{t}": getattr(result, kind)[t][0] for kind in ("distance", "relative", "probability")
              for t in result.transforms}
    np.savez_compressed(buf, layers=np.array(result.layers), target=result.target[0],
                        base_probability=result.base_probability[0],
                        **{f"values_{t}": result.values[t] for t in result.transforms}, **arrays)
    npz = media.atomic_write(output_name(args, "invariance", ext="npz"), buf.getvalue())
    _print_summary(result, preset)
    print(f"wrote {png}")
    print(f"wrote {npz}")
    return 0


def _print_summary(result, preset):
    """The target, and each layer's largest relative distance per transform."""
    print(f"{preset.class_label(int(result.target[0]))}: p={result.base_probability[0]:.3f} unaltered")
    for t in result.transforms:
        parts = [f"{layer} max {result.curve(t, layer, relative=True)[0].max():.3f}" for layer in result.layers]
        prob = result.probability[t][0]
        print(f"  {t}: distance / |f(x)|: {', '.join(parts)}; p {prob.min():.3f}..{prob.max():.3f}")
