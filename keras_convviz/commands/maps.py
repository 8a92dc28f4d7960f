"""``convviz saliency | smoothgrad | guided | ig | lrp | gradcam | ... | rise``: a map of one image.

One subcommand per map method of the registry (``registry.map_methods()``),
built from its record: its flags, its function, its drawing. Each writes
``<stem>_<method>.png`` (the map) and ``<stem>_<method>_overlay.png`` (the map
over the photo), both titled with the method, the explained class, its
probability and the layer, with a colour bar saying which values the colours
stand for (``figures.maps``, the dashboard's normalization). It prints the top
predicted classes. The explained class is ``--target`` (an index or a class
name) or the predicted one.
"""

from __future__ import annotations

import inspect
import os

from . import (add_image_command, add_out_arg, check_out_dir, class_index, fit_image, load_preset, output_name,
               positive_int_arg, warn_blank)
from ..registry import map_methods

_TYPES = {"positive_int": positive_int_arg, "int": int, "float": float, "str": str}


def register(sub):
    for record in map_methods():
        aliases = list(record.aliases) + ([record.name.replace("_", "-")] if "_" in record.name else [])
        p = add_image_command(sub, record.name, f"{record.summary} ({record.paper})", aliases=aliases)
        p.add_argument("--target", default=None, metavar="C",
                       help="class to explain: an index or a class name (default: the predicted class)")
        p.add_argument("--top", type=positive_int_arg, default=5,
                       help="predicted classes to print (default: %(default)s)")
        p.add_argument("--batch-size", type=positive_int_arg, default=16,
                       help="model inputs evaluated at once (memory) (default: %(default)s)")
        for flag in record.flags:
            p.add_argument(flag.flag, type=_TYPES[flag.kind], default=flag.default,
                           help=f"{flag.help} (default: %(default)s)")
        add_out_arg(p)
        p.set_defaults(run=run, method=record.name, check=check)


def _record(args):
    from ..registry import lookup

    return lookup(args.method)


def check(args):
    """Pre-flight (no TensorFlow): the iteration counts argparse leaves to the function (``--steps``)."""
    from ..checks import positive_int

    for flag in _record(args).flags:
        if flag.kind == "int":
            positive_int(getattr(args, flag.dest), flag.flag)


def compute(record, graph, x, target, args):
    """The raw map of ``record``'s method for the batch ``x``: its flags, and ``seed`` / ``progress`` where
    the function takes them."""
    fn = record.load()
    taken = inspect.signature(fn).parameters
    options = {f.dest: getattr(args, f.dest) for f in record.flags if getattr(args, f.dest) is not None}
    if "seed" in taken:
        options["seed"] = args.seed
    if "progress" in taken:
        options["progress"] = True
    return fn(graph, x, target, batch_size=args.batch_size, **options)


def _title(record, label, probability, layer):
    return f"{record.name}: {label}, p = {probability:.3f}, at {layer}"


def run(args):
    import numpy as np

    from .. import media
    from ..figures.deconv import display_order
    from ..figures.gradients import enlarge
    from ..figures.maps import map_overlay, map_picture, map_scale, normalize_map
    from ..figures.panel import titled
    from ..fit import map_to_photo, photo_view
    from ..graph import walk
    from ..request import class_score_step
    from ..select import class_probabilities

    record = _record(args)
    check(args)
    check_out_dir(args)
    image = media.read_input(args.image, args.frame)
    preset = load_preset(args)
    x, placement = fit_image(args, preset, image)  # first: it pins a flexible-size model
    graph = walk(preset.model)
    head = class_score_step(graph)
    target = class_index(args.target, preset, int(head.output_shape[-1]))
    layer = _layer(record, graph, args)

    probs = class_probabilities(graph, head, x)[0]
    top = np.argsort(-probs, kind="stable")[: min(args.top, probs.size)]
    explained = int(top[0]) if target is None else target
    m = np.asarray(compute(record, graph, x, explained, args))[0]
    warn_blank(args, m, f"the {record.name} map")
    order = display_order(preset.preprocess, x.shape[-1]) if record.drawing == "projection" else None
    on_photo = map_to_photo(m, placement)
    drawn = normalize_map(record.drawing, on_photo)
    picture, blended = map_picture(drawn, original=on_photo, order=order), map_overlay(photo_view(image, placement),
                                                                                       drawn)
    if args.region is not None:  # the explained box, where it lies on the photo
        from ..fit import box_on_view
        from ..render import outline

        corners = box_on_view(args.region_box, placement, picture.shape[:2])  # the explained input box
        picture, blended = outline(picture, corners), outline(blended, corners)
    title, scale = _title(record, preset.class_label(explained), probs[explained], layer), map_scale(drawn)
    written = [media.save_png(output_name(args, record.name), titled(enlarge(picture), title, scale)),
               media.save_png(output_name(args, record.name, "overlay"), titled(enlarge(blended), title, scale))]
    print("top classes:")
    for rank, c in enumerate(top, 1):
        print(f"  {rank}. {preset.class_label(c)}: {probs[c]:.3f}")
    print(f"explained: {preset.class_label(explained)}, p = {probs[explained]:.3f}")
    print(f"wrote {len(written)} files to {args.out}: " + ", ".join(os.path.basename(p) for p in written))
    return 0


def _layer(record, graph, args):
    """The layer a CAM is taken at (``--layer``, checked, or its default); the score layer otherwise."""
    if not record.takes_layer:
        from ..request import class_score_step

        return class_score_step(graph).name
    if args.layer is not None:
        return graph.spatial_step(args.layer).name
    from ..methods.gradcam import default_layer

    return default_layer(graph)

