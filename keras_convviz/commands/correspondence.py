"""``convviz correspondence``: part correspondence across images (Zeiler & Fergus 2014, arXiv:1311.2901, table 1).

``--boxes`` is a JSON file ``{"parts": [names], "boxes": [[[x, y, w, h] per
part] per image]}`` in model-input pixels (after ``--fit``). Writes
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
                   help='{"parts": [names], "boxes": [[[x, y, w, h] per part] per image]} in model-input pixels')
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
    fill = neutral_fill(preset.preprocess, to_channels(np.asarray(preset.mean_pixel, np.float32), preset.channels))
    result = correspondence(preset.model, x, np.asarray(boxes), args.layer, random_trials=args.random_trials,
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
