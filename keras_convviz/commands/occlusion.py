"""``convviz occlusion``: occlusion sensitivity of one image (Zeiler & Fergus, fig. 7).

Writes ``<stem>_occlusion.png`` (the image, the target probability map, the
most-probable-class map with its legend and the strongest map's activation)
and ``<stem>_occlusion.npz`` (the three maps and the grid geometry).
"""

from __future__ import annotations

import argparse
import io

from . import (add_image_command, add_out_arg, check_out_dir, class_index, fit_image, load_preset, output_name,
               positive_int_arg, warn_blank)


def register(sub):
    p = add_image_command(
        sub, "occlusion", "slide a grey square over an image and map the class probability (Zeiler & Fergus)",
        "Occlusion sensitivity: probability of the target, most probable class and the "
        "strongest feature map's activity for every position of an occluding square.")
    p.add_argument("--target", default=None,
                   help="class index or name to explain (default: the predicted class)")
    p.add_argument("--patch", type=positive_int_arg, default=None,
                   help="occluder side in pixels of the model input (default: a quarter of the input)")
    # a plain int: occlusion() itself refuses a stride < 1 with a hint on overlapping occluders
    p.add_argument("--stride", type=int, default=None, help="step between positions (default: patch / 2)")
    p.add_argument("--fill", type=_fill_arg, default="mean",
                   help="occluder value in model-input space: 'mean' (the image's mean pixel) or a number "
                        "(default: %(default)s)")
    p.add_argument("--layer", default=None,
                   help="layer for the activation map (default: the last conv layer)")
    p.add_argument("--batch-size", type=positive_int_arg, default=32, help="occluded images per forward pass")
    add_out_arg(p)
    p.set_defaults(run=run)


def _fill_arg(text):
    """``type=`` for ``--fill``: 'mean' (None: each image's mean pixel) or a number."""
    if str(text).lower() == "mean":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'mean' or a number, got {text!r}") from None


def run(args):
    from .. import media
    from ..fit import photo_view
    from ..methods.occlusion import occlusion
    from ..select import num_classes

    check_out_dir(args)
    image = media.read_input(args.image, args.frame)
    preset = load_preset(args)
    x, placement = fit_image(args, preset, image)
    h, w = placement.size
    patch = args.patch if args.patch is not None else max(1, min(h, w) // 4)
    stride = args.stride if args.stride is not None else max(1, patch // 2)
    target = class_index(args.target, preset, num_classes(preset.model))
    result = occlusion(preset.model, x, target, patch, stride, fill=args.fill,
                       layer=args.layer, batch_size=args.batch_size, progress=True)
    warn_blank(args, result.probability[0] - result.base_probability[0], "the occlusion probability change")
    warn_blank(args, result.activation[0], f"the {result.layer} activation map", "activations")
    png, npz = _save(args, (photo_view(image, placement), placement), result, preset)
    _print_summary(result, preset, patch, stride)
    print(f"wrote {png}")
    print(f"wrote {npz}")
    return 0


def _save(args, shown, result, preset):
    """The fig. 7 panel and the maps of image 0; returns both paths."""
    import numpy as np

    from .. import media
    from ..figures.occlusion import figure
    from ..figures.panel import titled
    from ..figures.results import occlusion_frame

    photo, placement = shown
    region = getattr(args, "region_box", None)  # --region mapped to model-input pixels (fit_image)
    panel = figure(photo, result, 0, class_names=preset.class_names, placement=placement, region=region)
    panel = titled(panel, *occlusion_frame(result, 0, preset.class_names))  # as show() frames it
    png = media.save_png(output_name(args, "occlusion"), panel)
    buf = io.BytesIO()
    np.savez_compressed(buf, probability=result.probability[0], top_class=result.top_class[0],
                        activation=result.activation[0], origins_y=result.origins_y,
                        origins_x=result.origins_x, patch=np.array(result.patch), target=result.target[0],
                        map_index=result.map_index[0])
    return png, media.atomic_write(output_name(args, "occlusion", ext="npz"), buf.getvalue())


def _print_summary(result, preset, patch, stride):
    """The target's unoccluded probability and the occluder that lowers it most."""
    import numpy as np

    prob = result.probability[0]
    i, j = np.unravel_index(np.argmin(prob), prob.shape)
    y0, y1, x0, x1 = result.window(i, j)
    tgt = int(result.target[0])
    print(f"{preset.class_label(tgt)}: p={result.base_probability[0]:.3f} unoccluded, "
          f"min {prob.min():.3f} with the {patch}px square at rows {y0}..{y1 - 1}, cols {x0}..{x1 - 1} "
          f"({prob.shape[0]}x{prob.shape[1]} positions, stride {stride})")
