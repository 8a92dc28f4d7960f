"""``convviz deconv``: Zeiler–Fergus deconvnet projections of one image.

Writes, per layer, ``<stem>_<layer>.png`` (the input beside the joint
projection of the top maps, or with ``--separate`` one projection per map),
``<stem>_grid.png`` (the layer grid: one row per layer, one column per top
map, each cell the projection beside the receptive-field patch) and with
``--gif`` ``<stem>_<layer>.gif`` (maps added one at a time).
"""

from __future__ import annotations

import os

from . import (add_image_command, add_out_arg, check_out_dir, fit_image, load_preset, output_name, positive_int_arg,
               warn_blank)


def register(sub):
    p = add_image_command(sub, "deconv", "deconvnet projections of the strongest activations (Zeiler & Fergus)",
                          "Project the strongest feature activations of each layer back to pixels.")
    p.add_argument("--layer", action="append", default=None, metavar="L",
                   help="layer to project (repeatable; default: the last conv layer of each block)")
    p.add_argument("--maps", default="9",
                   help="top feature maps per layer: a count (9), a fraction (0.2) or indices (3,17,42) "
                        "(default: %(default)s)")
    p.add_argument("--activations", default="1",
                   help="strongest activations kept in each map: a count or a fraction (default: %(default)s)")
    p.add_argument("--separate", action="store_true",
                   help="one projection per map instead of all maps together")
    p.add_argument("--gif", action="store_true", help="also write a GIF per layer adding maps one at a time")
    p.add_argument("--batch-size", type=positive_int_arg, default=16, help="projections computed at once (memory)")
    add_out_arg(p)
    p.set_defaults(run=run, check=check)


def check(args):
    """Pre-flight (no TensorFlow): ``--maps`` and ``--activations`` parse."""
    parse_spec(args.maps, "--maps", allow_list=True)
    parse_spec(args.activations, "--activations")


def parse_spec(text, what, allow_list=False):
    """'9' -> 9, '0.2' -> 0.2, '3,17' -> [3, 17] (maps only); else ValueError naming the flag."""
    text = str(text).strip()
    try:
        if allow_list and "," in text:
            return [int(v) for v in text.split(",") if v.strip()]
        if any(ch in text for ch in ".eE"):
            return float(text)
        return int(text)
    except ValueError:
        kinds = "a count, a fraction or comma-separated map indices" if allow_list else "a count or a fraction"
        raise ValueError(f"{what} must be {kinds}, got {text!r}") from None


def run(args):
    import numpy as np

    from .. import media
    from ..graph import walk
    from ..methods.deconv import selection

    # parsed here, not by argparse: the method's own checks name the layer's size
    maps = parse_spec(args.maps, "--maps", allow_list=True)
    activations = parse_spec(args.activations, "--activations")
    check_out_dir(args)
    image = media.read_input(args.image, args.frame)
    preset = load_preset(args)
    fitted = fit_image(args, preset, image)  # first: it pins a flexible-size model
    layers = args.layer or list(preset.default_layers)
    if not layers:
        raise ValueError(f"model {preset.model.name!r} has no conv layers; pick layers with --layer")
    graph = walk(preset.model)
    for name in layers:  # every layer and count checked before anything is computed or written
        selection(graph, name, maps, activations)
    written = []
    for (part, ext), picture in _pictures(args, preset, (image, fitted), layers, maps, activations).items():
        path = output_name(args, part, ext=ext)
        if ext == "gif":
            media.save_gif(path, picture)
        else:
            media.save_png(path, np.asarray(picture))
        written.append(path)
    print(f"wrote {len(written)} files to {args.out}: " + ", ".join(os.path.basename(p) for p in written))
    return 0


def _pictures(args, preset, photo, layers, maps, activations):
    """``{(name part, extension): picture}``: per layer a PNG (and a GIF), then the layer grid.

    ``photo = (image, (x, placement))``: the RGB photo and its fitted model input.
    """
    from keras.utils import Progbar

    from ..figures import deconv as figures
    from ..methods.deconv import cumulative, projections

    photo, (x, placement) = photo
    # every picture is drawn on the photo at its resolution, fields mapped back through the placement
    model = preset.model
    order = figures.display_order(preset.preprocess, x.shape[-1])
    options = dict(maps=maps, activations=activations, batch_size=args.batch_size)
    pictures, separate = {}, []
    bar = Progbar(len(layers), unit_name="layer")
    for i, name in enumerate(layers):
        separate.append(projections(model, x, name, joint=False, **options))
        if args.separate:
            pictures[(name, "png")] = figures.separate_picture(separate[-1], order, placement=placement)
        else:
            joint = projections(model, x, name, joint=True, **options)
            warn_blank(args, joint.images[0], f"the {name} projection", "activations")
            pictures[(name, "png")] = figures.joint_picture(photo, joint, order, placement=placement)
        if args.gif:
            frames = cumulative(model, x, name, **options).images[0]
            pictures[(name, "gif")] = figures.gif_frames(photo, frames, name, order, placement=placement)
        bar.update(i + 1)
    pictures[("grid", "png")] = figures.layer_grid(photo, separate, model, order, cell=96, placement=placement)
    return pictures
