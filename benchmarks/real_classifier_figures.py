"""The README's real-classifier figures (docs/lite0-*.png): the ``convviz`` CLI on EfficientNet-Lite0.

EfficientNet-Lite0 (Tan & Le 2019, arXiv:1905.11946; ``--model efficientnet-lite0``, the ImageNet
weights shipped with ``keras-convviz[zoo]``, offline, 224x224) on scikit-image's bundled photographs
(chelsea, coffee, camera, astronaut, rocket; top-k also mines 12 more of its bundled images), under
the CLI's default ``--fit pad`` except top-k (``--fit crop``). Three figures are CLI outputs copied as is (occlusion, deconv, top-k); two are
redrawn from CLI runs: the Grad-CAM figure puts each photo, its map and the overlay side by side,
titled with the class and probability the CLI printed, and the box-filter figure is the CLI's
``<photo>_conv_maps.png`` redrawn by the same ``figures.boxfilter.pictures`` for the last layer of each
resolution only (the CLI draws all 51 layers). Run (about 1.5 minutes on 2 CPU cores):
``python benchmarks/real_classifier_figures.py [--docs DIR] [--work DIR] [figure ...]``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import re
import shutil
import sys
import tempfile
import time

import numpy as np

MODEL = "efficientnet-lite0"
PHOTOS = ("chelsea", "coffee", "camera", "astronaut", "rocket")
GRADCAM_PHOTOS = ("chelsea", "coffee", "camera")
# top-k keeps one activation per image and map: five photos would put 4 of the 5 in every row, so the
# top-k folder also holds scikit-image's other bundled photographs and textures (file stem: loader)
TOPK_EXTRA = {"motorcycle": "stereo_motorcycle", "coins": "coins", "clock": "clock", "moon": "moon",
              "page": "page", "text": "text", "brick": "brick", "grass": "grass", "gravel": "gravel",
              "hubble": "hubble_deep_field", "retina": "retina", "ihc": "immunohistochemistry"}
BOX_CROP = (300, 110, 60, 60)  # x, y, w, h in chelsea's own pixels: the eye on the viewer's right
# the last layer at each resolution (112, 56, 28, 14, 7), after the input and the stem
BOX_LAYERS = ("stem_conv", "block2a_expand_conv", "block2b_add", "block3b_add", "block4c_add", "block5c_add",
              "block6d_add", "top_conv")
EXPLAINED = re.compile(r"explained: (.+) \((\d+)\), p = ([0-9.]+)")


def commands(photos, topk_photos):
    """``{figure: [(argv, output file), ...]}``; each runs with ``--out <work>/<figure>``."""
    photo = (lambda name: os.path.join(photos, f"{name}.png"))
    lite = ["--model", MODEL]
    return {
        "gradcam": [(["gradcam", photo(name), *lite, "--top", "3"], f"{name}_gradcam.png")
                    for name in GRADCAM_PHOTOS],
        # the cup fills a third of the frame: a 64 px square can hide the crema (chelsea's face fills
        # the whole frame, and no single square hides enough of it to matter)
        "occlusion": [(["occlusion", photo("coffee"), *lite, "--patch", "64", "--stride", "24"],
                       "coffee_occlusion.png")],
        "deconv": [(["deconv", photo("chelsea"), *lite, "--maps", "4"], "chelsea_grid.png")],
        # --fit crop: the letterbox margin's edge would win some maps' top activations
        "topk": [(["topk", topk_photos, *lite, "--fit", "crop", "--layer", "block4a_expand_conv", "--k", "5",
                   "--maps", "8"], "topk_block4a_expand_conv.png")],
        "boxfilter": [(["boxfilter", "forward", photo("chelsea"), *lite, "--overlay",
                        "--crop", ",".join(map(str, BOX_CROP))], "chelsea_conv_maps.png")],
    }


def shrink(image, height):
    """An RGB uint8 image scaled (Lanczos, aspect kept) to ``height`` pixels."""
    from PIL import Image

    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((round(w * height / h), height), Image.LANCZOS))


def gradcam_figure(photos, out_dir, explained, height=148) -> np.ndarray:
    """Per photo a row: the photo, the CLI's Grad-CAM map (at the default layer, ``top_conv``) and its
    overlay, titled with the class the CLI explained (its top-1) and that class's probability."""
    from PIL import Image

    from keras_convviz import render
    from keras_convviz.figures.deconv import vstack

    rows = []
    for name in GRADCAM_PHOTOS:
        photo = np.asarray(Image.open(os.path.join(photos, f"{name}.png")).convert("RGB"))
        picture, blended = (np.asarray(Image.open(os.path.join(out_dir, f"{name}_gradcam{part}.png")).convert("RGB"))
                            for part in ("", "_overlay"))
        label, p = explained[name]
        h, w = photo.shape[:2]
        panels = [shrink(a, height) for a in (photo, picture, blended)]
        titles = [f"{name} {w}x{h}", f"Grad-CAM {label}", f"overlay, p = {p}"]  # fits a square panel
        rows.append(render.grid(panels, titles=titles, columns=3))
    return vstack(rows)


def boxfilter_figure(photo_path) -> np.ndarray:
    """The CLI's forward box-filter overlay (same crop and pictures) for ``BOX_LAYERS``, 3 columns."""
    from PIL import Image

    from keras_convviz import fit, presets
    from keras_convviz.figures.boxfilter import pictures
    from keras_convviz.methods.boxfilter import box_filter

    photo = np.asarray(Image.open(photo_path).convert("RGB"))
    preset = presets.load(MODEL)
    placement = fit.place(photo.shape[:2], preset.input_size, "pad")
    result = box_filter(preset.model, "top_conv", placement.box_to_input(BOX_CROP))
    result = dataclasses.replace(result, panels=[result.input_name, *BOX_LAYERS])
    return pictures(result, image=photo, overlay=True, columns=3, placement=placement, max_side=300,
                    min_panel=160)[0]


def run(argv, out) -> str:
    """``cli.main(argv + --out out)``'s standard output; raises when the command fails."""
    from keras_convviz import cli

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = cli.main(argv + ["--out", out])
    sys.stdout.write(printed.getvalue())
    if status != 0:
        raise RuntimeError(f"convviz {' '.join(argv)}: exit status {status}")
    return printed.getvalue()


def write_photos(folder, loaders):
    """scikit-image's bundled images ``{file stem: loader name}`` as PNGs (grayscale stays grayscale)."""
    from PIL import Image
    from skimage import data

    os.makedirs(folder, exist_ok=True)
    for name, loader in loaders.items():
        image = getattr(data, loader)()
        image = image[0] if isinstance(image, tuple) else image  # stereo_motorcycle: (left, right, disparity)
        Image.fromarray(image).save(os.path.join(folder, f"{name}.png"))


def make(figure, steps, photos, out, target):
    """Run ``figure``'s commands into ``out`` and write its README picture to ``target``."""
    from keras_convviz import media

    explained = {}
    for argv, _ in steps:
        found = EXPLAINED.search(run(argv, out))
        if found:
            stem = os.path.splitext(os.path.basename(argv[1]))[0]
            explained[stem] = (f"{found.group(1)} ({found.group(2)})", f"{float(found.group(3)):.2f}")
    if figure == "gradcam":
        media.save_png(target, gradcam_figure(photos, out, explained))
    elif figure == "boxfilter":
        media.save_png(target, boxfilter_figure(os.path.join(photos, "chelsea.png")))
    else:
        shutil.copyfile(os.path.join(out, steps[0][1]), target)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs"))
    parser.add_argument("--work", default=None, help="folder for the CLI outputs (default: a temporary one)")
    parser.add_argument("figures", nargs="*", help="a subset of: gradcam occlusion deconv topk boxfilter")
    args = parser.parse_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="convviz_lite0_")
    photos, topk_photos = os.path.join(work, "photos"), os.path.join(work, "topk_photos")
    write_photos(photos, {name: name for name in PHOTOS})
    write_photos(topk_photos, {**{name: name for name in PHOTOS}, **TOPK_EXTRA})
    for figure, steps in commands(photos, topk_photos).items():
        if args.figures and figure not in args.figures:
            continue
        start = time.perf_counter()
        target = os.path.join(args.docs, f"lite0-{figure}.png")
        try:
            make(figure, steps, photos, os.path.join(work, figure), target)
        except RuntimeError as err:
            print(err, file=sys.stderr)
            return 1
        print(f"{figure}: {time.perf_counter() - start:.1f} s, wrote {target}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
