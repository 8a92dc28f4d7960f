"""``convviz topk``: the strongest activations of a layer's feature maps over an
image folder (Zeiler & Fergus, fig. 2).

Reads every image under DIR (recursively) or matching a glob, streams them
through the model once, and writes ``topk_<layer>.png`` (per map: its k deconv
projections beside the k receptive-field patches) and ``topk_<layer>.json``
(values, image paths and positions for every map). Unreadable files are
skipped with a warning and counted.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time

from . import add_fit_arg, add_model_args, add_out_arg, check_out_dir, load_preset, out_path, positive_int_arg, slug

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def register(sub):
    p = sub.add_parser(
        "topk",
        help="each feature map's k strongest activations over an image folder (Zeiler & Fergus fig. 2)",
        description="Mine the top-k activations of every feature map of a layer over a folder of images.",
    )
    p.add_argument("source", metavar="DIR_OR_GLOB", help="an image folder (searched recursively) or a glob")
    add_model_args(p)
    add_fit_arg(p)
    p.add_argument("--layer", default=None, help="spatial layer (default: the last conv layer)")
    p.add_argument("--k", type=positive_int_arg, default=9, help="activations kept per map (default: %(default)s)")
    p.add_argument("--maps", type=positive_int_arg, default=16,
                   help="maps drawn in the grid, the strongest first (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int_arg, default=32, help="images per forward pass")
    p.add_argument("--cell", type=positive_int_arg, default=64, help="pixels per patch in the grid")
    add_out_arg(p)
    p.set_defaults(run=run)


def find_images(source):
    """Image files under a folder (recursive) or matching a glob, sorted."""
    if os.path.isdir(source):
        found = []
        for root, dirs, files in os.walk(source):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(os.path.join(root, f) for f in files
                         if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS))
        return sorted(found)
    matches = glob.glob(source, recursive=True)
    if not matches and not glob.has_magic(source):
        raise ValueError(f"{source!r} is neither a folder nor a glob that matches files")
    return sorted(p for p in matches if os.path.isfile(p))


def run(args):
    import tensorflow as tf

    from .. import media
    from ..figures.topk import figure
    from ..graph import walk

    check_out_dir(args)
    files = find_images(args.source)
    if not files:
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS[:4])}, ...) in {args.source!r}")
    if len(files) < args.k:
        raise ValueError(f"--k {args.k} but {args.source!r} holds only {len(files)} image files; "
                         f"use --k {len(files)} or fewer")
    preset = load_preset(args)
    graph = walk(preset.model)
    layer, channels = _layer(args, preset, graph)
    used, skipped = [], []
    spec = tf.TensorSpec(tuple(preset.input_size) + (int(graph.input_shape[-1]),), tf.float32)
    dataset = tf.data.Dataset.from_generator(lambda: _readable(files, preset, used, skipped, args.fit),
                                             output_signature=spec)
    result = _mine(args, preset.model, dataset, layer, files, used, skipped)
    grid, chosen = figure(preset.model, result, lambda i: preset.prepare([media.read_image(used[i])], args.fit)[0],
                          maps=args.maps, deprocess=preset.deprocess, preprocess=preset.preprocess, cell=args.cell,
                          progress=True)
    png = media.save_png(out_path(args, f"topk_{slug(layer)}.png"), grid)
    table = json.dumps(_table(result, used, skipped, chosen), indent=1).encode()
    js = media.atomic_write(out_path(args, f"topk_{slug(layer)}.json"), table)
    print(f"{result.count} images streamed through {layer} ({channels} maps, top {result.k} each)")
    if skipped:
        print(f"skipped {len(skipped)} unreadable file{'s' if len(skipped) != 1 else ''}", file=sys.stderr)
    print(f"wrote {png}")
    print(f"wrote {js}")
    return 0


def _layer(args, preset, graph):
    """``(layer name, its map count)``: ``--layer`` or the preset's last default layer."""
    if args.layer is None:
        if not preset.default_layers:
            raise ValueError(f"model {preset.model.name!r} has no conv layer; pick one with --layer")
        layer = preset.default_layers[-1]
    else:
        layer = graph.spatial_step(args.layer).name
    channels = int(graph.step(layer).output_shape[-1])
    if args.maps > channels:
        raise ValueError(f"--maps {args.maps} but layer {layer!r} has {channels} maps")
    return layer, channels


def _readable(files, preset, used, skipped, fit="pad"):
    """Model inputs of the readable files, in order; the others are warned about and skipped."""
    from .. import media

    for path in files:
        try:
            img = media.read_image(path)
        except ValueError as err:
            skipped.append(path)
            sys.stdout.write("\n") if sys.stdout.isatty() else None
            print(f"convviz topk: warning: skipping {path}: {str(err).splitlines()[0]}", file=sys.stderr)
            continue
        used.append(path)
        yield preset.prepare([img], fit)[0]


def _mine(args, model, dataset, layer, files, used, skipped):
    """``top_activations`` over the folder with a progress bar; one line with the rate (images/s) at the end."""
    from ..methods.topk import top_activations
    from ..progress import rate_text, tracker

    bar = tracker(True, len(files), "image")

    def progress(done):
        bar.update(min(done + len(skipped), len(files)))

    try:
        result = top_activations(model, dataset, layer, k=args.k, batch_size=args.batch_size, callback=progress)
    except ValueError:
        if not used:
            raise ValueError(f"none of the {len(files)} files in {args.source!r} could be read") from None
        raise
    bar.update(len(files))
    if bar.close() is None:  # quick: no bar was shown, the rate line still is
        print(rate_text(result.count, time.time() - bar.start, "image"))
    return result


def _table(result, used, skipped, chosen):
    """The JSON table: per map its k values, image paths and positions."""
    maps = {
        str(c): [{"value": float(result.values[c, r]), "image": used[int(result.image_ids[c, r])],
                  "image_id": int(result.image_ids[c, r]),
                  "y": int(result.positions[c, r, 0]), "x": int(result.positions[c, r, 1])}
                 for r in range(result.k)]
        for c in range(result.values.shape[0])
    }
    return {"layer": result.layer, "k": result.k, "images": result.count, "skipped": len(skipped),
            "maps": maps, "drawn_maps": [int(c) for c in chosen]}
