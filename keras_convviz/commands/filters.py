"""``convviz filters``: the first convolution's kernels (Zeiler & Fergus 2014, arXiv:1311.2901, fig. 6).

Writes ``<model>_filters.png`` (the filter sheet, dead filters framed blue,
high-frequency ones red) and prints the dead and high-frequency counts.
"""

from __future__ import annotations

import argparse

from . import add_model_args, add_out_arg, check_out_dir, load_preset, out_path, slug


def register(sub):
    p = sub.add_parser("filters", help="first-layer filters with dead and aliasing flags (Zeiler & Fergus fig. 6)",
                       description="Draw the first convolution's kernels, each normalized on its own, and flag "
                                   "dead filters and filters dominated by high frequencies.")
    add_model_args(p)
    p.add_argument("--layer", default=None, help="a convolution layer (default: the first one)")
    p.add_argument("--dead-fraction", type=_fraction, default=0.05,
                   help="dead: L2 norm below this share of the median norm (default: %(default)s)")
    p.add_argument("--aliasing-threshold", type=_fraction, default=0.9,
                   help="flag filters whose power above half the Nyquist frequency exceeds this share "
                        "(white noise: 0.80; default: %(default)s)")
    add_out_arg(p)
    p.set_defaults(run=run)


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def run(args):
    from .. import media
    from ..figures.filters import figure
    from ..methods.filters import filters

    check_out_dir(args)
    preset = load_preset(args)
    result = filters(preset.model, args.layer, dead_fraction=args.dead_fraction,
                     aliasing_threshold=max(args.aliasing_threshold, 1e-6))
    png = media.save_png(out_path(args, f"{slug(preset.name)}_filters.png"), figure(result))
    print(result.summary())
    print(f"wrote {png}")
    return 0
