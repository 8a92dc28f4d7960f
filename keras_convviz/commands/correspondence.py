"""``convviz correspondence``: part correspondence across images (Zeiler & Fergus 2014, arXiv:1311.2901, table 1).

``--boxes`` is a JSON file ``{"parts": [names], "boxes": [[[x, y, w, h] per
part] per image]}`` in each photo's own pixels, as the other commands'
boxes (``--region``): every box goes through the same placement as its photo
(``--fit``, :mod:`keras_convviz.fit`) to the model-input box covering it
(:func:`input_boxes`), which is what the API's
:func:`keras_convviz.correspondence` takes. Writes
``<stem>_correspondence.png`` (the images with their boxes and the table)
and ``.npz`` (Delta per part and per random box).
"""

from __future__ import annotations

import io
import json

from . import add_fit_arg, add_model_args, add_out_arg, check_out_dir, load_preset, output_name, positive_int_arg


def register(sub):
    p = sub.add_parser("correspondence", help="how consistently a layer ties object parts to features "
                                              "(Zeiler & Fergus table 1)",
                       description="Occlude the same part in several images and compare the signs of the feature "
                                   "changes (Delta: summed Hamming distances), against random boxes of the same size.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="two or more images of one kind of object")
    add_model_args(p)
    add_fit_arg(p)
    p.add_argument("--boxes", required=True, metavar="JSON",
                   help='{"parts": [names], "boxes": [[[x, y, w, h] per part] per image]} in each photo\'s pixels '
                        '(placed with the photo by --fit, like --region)')
    p.add_argument("--layer", required=True, help="the layer whose features are compared")
    p.add_argument("--random-trials", type=positive_int_arg, default=20, help="random boxes per part")
    p.add_argument("--batch-size", type=positive_int_arg, default=32, help="occluded copies per forward pass")
    add_out_arg(p)
    p.set_defaults(run=run)


def _read_boxes(path):
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return data.get("parts"), data["boxes"]
    except (OSError, ValueError, KeyError, AttributeError) as err:
        raise ValueError(f"--boxes {path!r}: expected a JSON file {{\"parts\": [...], \"boxes\": [[[x, y, w, h] "
                         f"per part] per image]}} ({type(err).__name__})") from None


def input_boxes(photo_shapes, size, fit, boxes):
    """Photo boxes ``[[x, y, w, h] per part] per image`` -> model-input boxes ``(N, P, 4)`` ints.

    Each photo is placed in the ``size = (H, W)`` input as ``fit`` places it
    (:func:`keras_convviz.fit.place`, the placement the photo itself gets), and
    each of its boxes becomes the input box covering it
    (:meth:`~keras_convviz.fit.Placement.box_to_input`).
    """
    import numpy as np

    from ..fit import place

    if len(boxes) != len(photo_shapes):
        raise ValueError(f"--boxes has boxes for {len(boxes)} images, but {len(photo_shapes)} were given")
    out = []
    for i, (shape, parts) in enumerate(zip(photo_shapes, boxes)):
        placement = place(shape[:2], size, fit)
        row = []
        for box in parts:
            x, y, w, h = (float(v) for v in box)
            if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > shape[1] or y + h > shape[0]:
                raise ValueError(f"--boxes: box {list(box)} of image {i} must be x, y, w, h inside its "
                                 f"{shape[1]}x{shape[0]} (WxH) photo, in its pixels")
            row.append(placement.box_to_input((x, y, w, h)))
        out.append(row)
    return np.asarray(out, np.int64)


def run(args):
    import numpy as np

    from .. import media
    from ..figures.correspondence import figure
    from ..fit import neutral_fill, to_channels
    from ..methods.correspondence import correspondence

    check_out_dir(args)
    names, boxes = _read_boxes(args.boxes)
    photos = [media.read_input(path, None) for path in args.images]
    preset = load_preset(args)
    x = preset.prepare(photos, fit=args.fit)
    parts = input_boxes([np.asarray(p).shape for p in photos], x.shape[1:3], args.fit, boxes)
    fill = neutral_fill(preset.preprocess, to_channels(np.asarray(preset.mean_pixel, np.float32), preset.channels))
    result = correspondence(preset.model, x, parts, args.layer, random_trials=args.random_trials,
                            fill=fill, part_names=names, batch_size=args.batch_size)
    vars(args)["image"] = args.images[0]  # outputs are named after the first image
    png = media.save_png(output_name(args, "correspondence"), figure(result, preset.deprocess(x.copy())))
    buf = io.BytesIO()
    np.savez_compressed(buf, delta=result.delta, normalized=result.normalized, random=result.random,
                        random_normalized=result.random_normalized, parts=result.parts)
    npz = media.atomic_write(output_name(args, "correspondence", ext="npz"), buf.getvalue())
    for name, d, m, s in result.rows():
        print(f"{name}: Delta/(N(N-1)D) = {d:.4f}; random {m:.4f} +- {s:.4f}")
    print(f"wrote {png}")
    print(f"wrote {npz}")
    return 0
