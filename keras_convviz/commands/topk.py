"""``convviz topk``: the strongest activations of a layer's feature maps over an
image folder (Zeiler & Fergus, fig. 2).

Reads every image under DIR (recursively) or matching a glob, streams them
through the model once, and writes ``topk_<layer>.png`` (per map: its k deconv
projections beside the k receptive-field patches) and ``topk_<layer>.json``
(values, image paths and positions for every map). Unreadable files are
skipped with a warning and counted.

Photos of any size are fitted to the model input (``--fit``), each with its
own ``fit.Placement``; every patch is cut from the ORIGINAL photo at the
unit's receptive field mapped back through that placement (never from the
letterbox margins), and the JSON gives that field as ``photo_box``
``[x0, y0, x1, y1]`` in photo pixels. A flexible-size ``(None, None)`` model
is mined at ``--size`` (default 512x512).
"""

from __future__ import annotations

import functools
import glob
import json
import os
import sys
import time

from ..preflight import VIDEO_EXTENSIONS, banner, frame_arg, select_frames
from . import (add_fit_arg, add_model_args, add_out_arg, check_out_dir, ints_arg, load_preset, out_path,
               positive_int_arg, slug, warn_blank)

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
    p.add_argument("--size", default=None, metavar="H,W", type=ints_arg(2, "--size"),
                   help="mining size for a model with a flexible (None, None) input: every image is "
                        "fitted (--fit) to H,W (default: 512,512)")
    p.add_argument("--frames", type=frame_arg, default=None, metavar="N|all|A:B[:C]",
                   help="also mine frames: of the videos in DIR (" + " ".join(VIDEO_EXTENSIONS[:3]) + " ...) and of "
                        "multi-frame images (.gif): a frame number, 'all' or START:STOP[:STEP] such as 0:100:10. "
                        "Without it videos are skipped and a .gif gives its first frame only")
    add_out_arg(p)
    p.set_defaults(run=run)


def find_images(source, videos=False):
    """Image files under a folder (recursive) or matching a glob, sorted, each file once.

    ``videos=True`` also lists a folder's video files.
    A glob's ``**`` follows symlinked folders (a loop lists one photo under
    many paths) and links can name one file twice: every path is resolved
    to its real path once and only the first path of each file is kept.
    """
    kinds = IMAGE_EXTENSIONS + (VIDEO_EXTENSIONS if videos else ())
    if os.path.isdir(source):
        found = []
        for root, dirs, files in os.walk(source):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(os.path.join(root, f) for f in files
                         if not f.startswith(".") and f.lower().endswith(kinds))
    else:
        found = glob.glob(source, recursive=True)
        if not found and not glob.has_magic(source):
            raise ValueError(f"{source!r} is neither a folder nor a glob that matches files")
    unique, seen = [], set()
    for path in sorted(found, key=lambda p: (p.count(os.sep), p)):  # the shortest path of a file wins
        real = os.path.realpath(path)
        if real not in seen and os.path.isfile(real):
            seen.add(real)
            unique.append(path)
    return sorted(unique)


def run(args):
    import tensorflow as tf

    from .. import media
    from ..fields import receptive_fields
    from ..figures.topk import figure
    from ..graph import walk

    check_out_dir(args)
    files = _items(args, find_images(args.source, videos=True))
    preset = load_preset(args)
    size, model = _mining_model(args, preset)
    graph = walk(model)
    layer, channels = _layer(args, preset, graph)
    used, placements, skipped = [], [], []  # each readable image's path and its own fit.Placement
    spec = tf.TensorSpec(size + (int(graph.input_shape[-1]),), tf.float32)
    dataset = tf.data.Dataset.from_generator(
        lambda: _readable(files, preset, size, (used, placements, skipped), args.fit), output_signature=spec)
    result = _mine(args, model, dataset, layer, files, used, skipped)
    warn_blank(args, result.values[result.image_ids >= 0], f"the top activations of {layer}", "activations")
    read = functools.lru_cache(maxsize=64)(_read)
    grid, chosen = figure(model, result, lambda i: preset.fitted(read(used[i]), placements[i]),
                          maps=args.maps, preprocess=preset.preprocess, cell=args.cell, progress=True,
                          names=[_name(item) for item in used],
                          photos=lambda i: (read(used[i]), placements[i]))  # patches cut from the original photos
    png = media.save_png(out_path(args, f"topk_{slug(layer)}.png"), grid)
    field = receptive_fields(graph)[layer]
    table = json.dumps(_table(result, used, skipped, chosen, field, placements), indent=1).encode()
    js = media.atomic_write(out_path(args, f"topk_{slug(layer)}.json"), table)
    print(f"{result.count} images streamed through {layer} ({channels} maps, top {result.k} each)")
    if skipped:
        print(f"skipped {len(skipped)} unreadable file{'s' if len(skipped) != 1 else ''}", file=sys.stderr)
    print(f"wrote {png}")
    print(f"wrote {js}")
    return 0


def _items(args, found):
    """``[(path, frame or None)]`` to mine: each image, or with ``--frames`` the chosen frames of each
    video and multi-frame image. Without ``--frames`` videos are left out and a .gif's later frames
    ignored, each said in one held line (``preflight.banner``)."""
    videos = {p for p in found if p.lower().endswith(VIDEO_EXTENSIONS)}
    if args.frames is None:
        items = [(path, None) for path in found if path not in videos]
        gifs = [p for p, _ in items if p.lower().endswith(".gif") and _frames_in(p) > 1]
        said = [f"{len(gifs)} multi-frame .gif file{'s' if len(gifs) != 1 else ''}: only the first frame is read"
                if gifs else "", f"{len(videos)} video file{'s' if len(videos) != 1 else ''} skipped" if videos else ""]
        if gifs or videos:
            banner(args, f"convviz topk: note: {'; '.join(t for t in said if t)} (read frames with --frames, "
                         f"e.g. --frames 0:100:10 or --frames all)")
    else:
        items = []
        for path in found:
            count = _frames_in(path, path in videos)
            if count <= 1 and path not in videos or count == 0:  # a still image, or an unreadable file:
                items.append((path, None if path not in videos else 0))  # the reader says why it is skipped
                continue
            try:
                items.extend((path, n) for n in select_frames(args.frames, count, path, "--frames"))
            except ValueError as err:
                banner(args, f"convviz topk: note: skipped {path}: {err}")
    if not items:
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS[:4])}, ...) in {args.source!r}")
    kind = "image files" if args.frames is None else "images and frames"
    if len(items) < args.k:
        raise ValueError(f"--k {args.k} but {args.source!r} holds only {len(items)} {kind}; "
                         f"use --k {len(items)} or fewer")
    return items


def _frames_in(path, video=False):
    """Frames of a video or image file; an unreadable file counts 0 (a video) or 1 (an image): the
    reader skips it later with its reason."""
    from ..media import frame_count

    try:
        return frame_count(path)
    except ValueError:
        return 0 if video else 1


def _read(item):
    """The RGB photo of an item ``(path, frame)``: an image, or a frame of a video or multi-frame image."""
    from .. import media

    path, frame = item
    return media.read_image(path) if frame is None else media.read_input(path, frame)


def _name(item):
    """An item's title in the grid: the file's stem, plus ``_frameN`` for a frame."""
    path, frame = item
    stem = os.path.splitext(os.path.basename(path))[0]
    return stem if frame is None else f"{stem}_frame{frame}"


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


def _mining_model(args, preset):
    """``(size, model)``: the ``(H, W)`` every image is fitted to and the model mined at that size.

    A fixed-size model keeps its input size. A flexible-size ``(None, None)``
    model is mined at ``--size`` (default ``fit.MAX_INPUT_SIDE`` square), one
    size for the whole folder so images batch together.
    """
    from ..checks import positive_int
    from ..fit import MAX_INPUT_SIDE

    size = tuple(preset.input_size)
    if None not in size:
        if args.size is not None and tuple(args.size) != size:
            raise ValueError(f"--size is for models with a flexible input size; {preset.name} takes "
                             f"{size[0]}x{size[1]} images (drop --size)")
        return size, preset.model
    import keras

    size = tuple(positive_int(v, "--size") for v in (args.size or (MAX_INPUT_SIDE, MAX_INPUT_SIDE)))
    print(f"flexible-size model: every image fitted (--fit {args.fit}) to {size[0]}x{size[1]} for mining (--size H,W)")
    inputs = keras.Input(size + (int(preset.model.inputs[0].shape[-1]),))
    return size, keras.Model(inputs, preset.model(inputs), name=preset.model.name)


def _readable(files, preset, size, found, fit="pad"):
    """Model inputs of the readable files fitted to ``size``, in order; ``found = (used paths, their
    placements, skipped paths)`` fill as they are read; unreadable files are warned about and skipped."""
    from .. import media
    from ..fit import place

    used, placements, skipped = found
    for item in files:
        try:
            img = _read(item)
        except ValueError as err:
            skipped.append(item[0])
            sys.stdout.write("\n") if sys.stdout.isatty() else None
            print(f"convviz topk: warning: skipping {item[0]}: {str(err).splitlines()[0]}", file=sys.stderr)
            continue
        placement = place(img.shape[:2], size, fit)
        used.append(item)
        placements.append(placement)
        yield preset.fitted(img, placement)


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


def _photo_box(field, placement, y, x):
    """Unit ``(y, x)``'s receptive field on its original photo: ``[x0, y0, x1, y1]`` photo pixels
    (edges), mapped back through the photo's Placement and clipped to the part the model saw."""
    y0, y1, x0, x1 = field.window(y, x, clip_to=placement.size)
    (py0, px0), (py1, px1) = placement.to_photo(y0, x0, centre=False), placement.to_photo(y1, x1, centre=False)
    vy0, vy1, vx0, vx1 = placement.visible
    return [round(float(min(max(v, lo), hi)), 1)
            for v, lo, hi in ((px0, vx0, vx1), (py0, vy0, vy1), (px1, vx0, vx1), (py1, vy0, vy1))]


def _table(result, used, skipped, chosen, field=None, placements=None):
    """The JSON table: per map its k values, image paths and positions (in ``layer`` units and,
    given the layer's receptive ``field`` and each image's placement, as ``photo_box`` on the photo)."""
    def entry(c, r):
        i, y, x = int(result.image_ids[c, r]), int(result.positions[c, r, 0]), int(result.positions[c, r, 1])
        path, frame = used[i]
        row = {"value": float(result.values[c, r]), "image": path, "image_id": i, "y": y, "x": x}
        if frame is not None:
            row["frame"] = frame
        if field is not None and i >= 0:
            row["photo_box"] = _photo_box(field, placements[i], y, x)
        return row

    maps = {str(c): [entry(c, r) for r in range(result.k)] for c in range(result.values.shape[0])}
    return {"layer": result.layer, "k": result.k, "images": result.count, "skipped": len(skipped),
            "maps": maps, "drawn_maps": [int(c) for c in chosen]}
