"""``convviz boxfilter``: receptive-field box-filter maps of a crop (seed viz.py).

    convviz boxfilter forward  --model mobilenet --weights none --layer conv_pw_6 \\
        --crop 144,64,64,144 video.mp4 --frame 300 --out maps/
    convviz boxfilter backward --model mobilenet --weights none --layer conv_pw_13 \\
        --crop 3,1,3,5 --overlay photo.jpg --out maps/

Writes ``<stem>_conv_maps.png`` (fraction) and ``<stem>_conv_maps_ratio.png``
(inside / (inside + outside)) to ``--out``, named after INPUT like every
command's outputs. The geometry needs no trained weights, so
``--weights none`` works offline.
"""

from __future__ import annotations

import os

from . import (add_fit_arg, add_frame_arg, add_model_args, add_out_arg, check_out_dir, fit_image, ints_arg,
               load_preset, output_name, warn_blank)


def register(sub):
    p = sub.add_parser(
        "boxfilter",
        help="receptive-field box-filter maps of a crop, forward or backward",
        description="Run an averaging box filter with every layer's geometry, forward from an "
                    "input crop or backward from a crop of LAYER's feature map, and draw the "
                    "fraction map (<input>_conv_maps.png) and the inside/(inside+outside) ratio map "
                    "(<input>_conv_maps_ratio.png) of every layer.",
    )
    p.add_argument("mode", choices=("forward", "backward"),
                   help="forward: crop in input pixels; backward: crop in LAYER's feature-map units")
    add_model_args(p)
    add_fit_arg(p)
    p.add_argument("--layer", default=None,
                   help="last layer (forward) or the layer holding the crop (backward); "
                        "default: the last block's last convolution, as for deconv")
    p.add_argument("--crop", required=True, metavar="X,Y,W,H", type=ints_arg(4, "--crop"),
                   help="crop: in pixels of INPUT (scaled with it to the model input) for forward, "
                        "in feature-map units of LAYER for backward")
    p.add_argument("--size", default=None, metavar="H,W", type=ints_arg(2, "--size"),
                   help="model input H,W for vgg16/mobilenet (default 224,224)")
    p.add_argument("--overlay", action="store_true",
                   help="draw the input image weighted by the upsampled map instead of a heatmap")
    p.add_argument("--all-layers", action="store_true",
                   help="also draw layers that keep the geometry (BatchNorm, activations, padding)")
    p.add_argument("input", metavar="INPUT",
                   help="image (PNG/JPEG; grayscale, RGBA and 16-bit are converted) or video")
    add_frame_arg(p)
    add_out_arg(p)
    p.set_defaults(run=run)


def run(args):
    import numpy as np

    from .. import media
    from ..figures.boxfilter import pictures
    from ..methods.boxfilter import box_filter, check_crop, default_layer

    check_out_dir(args)
    # read the input (and fail on it) before the model is built
    image = media.read_input(args.input, args.frame)
    if args.mode == "forward":
        check_crop(args.crop, image.shape[:2], f"the image {os.path.basename(args.input)!r}")
    preset = load_preset(args, size=args.size)
    model = preset.model
    # the last block's last conv (MobileNet: conv_pw_13, not the 1x1 conv_preds after pooling), as deconv's
    layer = args.layer if args.layer is not None else default_layer(model)
    given = args.crop
    _, placement = fit_image(args, preset, image)  # the crop moves with the photo (--fit)
    crop = placement.box_to_input(given) if args.mode == "forward" else given
    hw = placement.size
    result = box_filter(model, layer, crop, mode=args.mode, input_shape=placement.size, progress=True)
    # drawn on the photo at its resolution: maps cut back to its region, the crop in photo coordinates
    fraction, ratio = pictures(result, image=image, overlay=args.overlay, all_layers=args.all_layers,
                               placement=placement)
    paths = [output_name(args, "conv_maps"), output_name(args, "conv_maps", "ratio")]
    from ..figures.panel import titled
    from ..figures.results import box_filter_frame

    media.save_png(paths[0], titled(fraction, *box_filter_frame(result, "fraction")))
    media.save_png(paths[1], titled(ratio, *box_filter_frame(result, "ratio")))
    last = result.maps[result.layer if args.mode == "forward" else result.input_name]
    where = "input" if args.mode == "backward" else result.layer
    support = int(np.count_nonzero(last.fraction))
    warn_blank(args, last.fraction, f"the {where} box-filter map", "box filter")
    scaled = "" if tuple(crop) == tuple(given) else f" (scaled from {','.join(map(str, given))})"
    print(f"{args.mode} box filter, {preset.name} {hw[0]}x{hw[1]}, layer {result.layer}, "
          f"crop {','.join(map(str, crop))}{scaled}: {len(result.panels)} maps drawn; {where} support {support} units, "
          f"max fraction {float(last.fraction.max()):.3g}")
    for p in paths:
        print(f"wrote {p}")
    return 0
