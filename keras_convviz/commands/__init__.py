"""One module per ``convviz`` subcommand, each with ``register(subparsers)``.

Shared argument helpers live here so every command spells them the same way.
"""

from __future__ import annotations

import os


def add_model_args(parser, default="demo"):
    parser.add_argument("--model", default=default,
                        help="vgg16, mobilenet, demo, or a path to a .keras/.h5 model (default: %(default)s)")
    parser.add_argument("--weights", default="imagenet",
                        help="imagenet (downloaded when online; the demo's shipped weights for --model demo), "
                             "none, or a weights file (default: %(default)s)")


def load_preset(args, size=None):
    from ..presets import load

    return load(args.model, weights=args.weights, size=size)


def add_out_arg(parser, default="convviz_out"):
    parser.add_argument("--out", default=default, help="output folder (default: %(default)s)")


def check_out_dir(args):
    """Fail before any work when ``--out`` names an existing file, not a folder."""
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ValueError(f"--out {args.out!r} exists and is not a folder")


def out_path(args, name):
    os.makedirs(args.out, exist_ok=True)
    return os.path.join(args.out, name)


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
    classes 0 and 1. Unknown names list the closest ones.
    """
    if text is None:
        return None
    text = str(text).strip()
    limit = max(int(classes), 2)
    try:
        index = int(text)
    except ValueError:
        names = [str(n).lower() for n in (preset.class_names or [])]
        if text.lower() in names:
            return names.index(text.lower())
        import difflib

        close = difflib.get_close_matches(text.lower(), names, n=3, cutoff=0.5)
        hint = f" Closest: {', '.join(close)}." if close else ""
        raise ValueError(f"--target {text!r} is neither a class index 0..{limit - 1} nor a class name "
                         f"of this model.{hint}") from None
    if not 0 <= index < limit:
        raise ValueError(f"--target {index} is outside the model's classes 0..{limit - 1}")
    return index
