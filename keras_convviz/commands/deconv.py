"""``convviz deconv``: Zeiler–Fergus deconvnet projections of one image.

Writes, per layer, ``<stem>_<layer>.png`` (the input beside the joint
projection of the top maps, or with ``--separate`` one projection per map),
``<stem>_grid.png`` (the layer grid: one row per layer, one column per top
map, each cell the projection beside the receptive-field patch) and with
``--gif`` ``<stem>_<layer>.gif`` (maps added one at a time).
"""

from __future__ import annotations

import os

from . import add_model_args, add_out_arg, check_out_dir, load_preset, out_path


def register(sub):
    p = sub.add_parser(
        "deconv",
        help="deconvnet projections of the strongest activations (Zeiler & Fergus)",
        description="Project the strongest feature activations of each layer back to pixels.",
    )
    p.add_argument("image", metavar="IMAGE", help="an image file, or a video with --frame")
    add_model_args(p)
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
    p.add_argument("--frame", type=int, default=None, help="frame number when IMAGE is a video")
    p.add_argument("--batch-size", type=int, default=16, help="projections computed at once (memory)")
    add_out_arg(p)
    p.set_defaults(run=run)


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
    from keras.utils import Progbar

    from .. import media
    from ..graph import walk
    from ..methods import deconv as D
    from ..checks import count

    maps = parse_spec(args.maps, "--maps", allow_list=True)
    activations = parse_spec(args.activations, "--activations")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    check_out_dir(args)
    image = media.read_input(args.image, args.frame)
    preset = load_preset(args)
    model = preset.model
    graph = walk(model)
    layers = args.layer or list(preset.default_layers)
    if not layers:
        raise ValueError(f"model {model.name!r} has no conv layers; pick layers with --layer")
    # check every layer and count before anything is computed or written
    for name in layers:
        step = D._layer(graph, name)
        h, w, c = step.output_shape
        D._maps_count(maps, c)
        count(activations, h * w, "activations")
    rgb = media.resize(image, preset.input_size)
    x = preset.prepare([image])
    order = D.display_order(preset.preprocess, x.shape[-1])
    stem = os.path.splitext(os.path.basename(args.image))[0]
    if args.frame is not None:
        stem += f"_frame{args.frame}"

    pictures, grid_rows = {}, []
    bar = Progbar(len(layers), unit_name="layer")
    for i, name in enumerate(layers):
        sep = D.projections(model, x, name, maps, activations, joint=False, batch_size=args.batch_size)
        grid_rows.append(sep)
        if args.separate:
            cells = [D.projection_rgb(p, order) for p in sep.images[0]]
            titles = [f"map {int(c)}" for c in sep.maps[0]]
            from ..render import grid, label

            picture = label(grid(cells, titles=titles), f"{name}: {len(cells)} maps, one per projection")
        else:
            joint = D.projections(model, x, name, maps, activations, joint=True, batch_size=args.batch_size)
            picture = _pair(rgb, D.projection_rgb(joint.images[0], order),
                            f"{name}: top {joint.maps.shape[1]} maps together")
        pictures[f"{stem}_{name}.png"] = picture
        if args.gif:
            frames = D.cumulative(model, x, name, maps, activations, batch_size=args.batch_size)
            pictures[f"{stem}_{name}.gif"] = D.gif_frames(rgb, frames.images[0], name, order)
        bar.update(i + 1)
    pictures[f"{stem}_grid.png"] = D.layer_grid(rgb, grid_rows, model, order)

    written = []
    for filename, picture in pictures.items():
        path = out_path(args, filename)
        if filename.endswith(".gif"):
            media.save_gif(path, picture)
        else:
            media.save_png(path, np.asarray(picture))
        written.append(path)
    print(f"wrote {len(written)} files to {args.out}: " + ", ".join(os.path.basename(p) for p in written))
    return 0


def _pair(rgb, projection, title):
    from ..methods.deconv import _hstack
    from ..render import fit_square, label

    size = max(rgb.shape[0], 160)
    return label(_hstack([fit_square(rgb, size), fit_square(projection, size)], pad=2), title)
