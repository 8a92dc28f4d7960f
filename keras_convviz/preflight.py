"""What ``convviz`` does around a command's ``run``, without TensorFlow (or numpy).

* :func:`preflight`: input files, ``--out``, ``--model``/``--weights``/``--class-names``
  files, a video's ``--frame`` and each command's own cheap checks (its
  ``check`` default), all before TensorFlow's import (seconds): a missing file
  answers at once. The errors are ``ValueError``: ``cli.main`` stays the one
  error boundary.
* :func:`run_command`: the command's ``run``, once, or once per frame for
  ``--frame all`` / ``--frame START:STOP[:STEP]`` (each output named
  ``_frameN``), then the run's deferred banners on stderr.
* :func:`banner`: a warning-like line (``--weights none``, ...) held until
  the run has passed every check that can fail, so a failing run still
  prints exactly one line on stderr.

Only the standard library is imported at module level: the pre-flight of a
missing file must not pay for numpy, PIL or TensorFlow.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

__all__ = ["VIDEO_EXTENSIONS", "is_video", "frame_arg", "frame_text", "select_frames", "preflight",
           "run_command", "banner", "check_out"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")

FRAME_FORMS = "a frame number N >= 0, 'all', or START:STOP[:STEP] (e.g. 0:30:5)"


def is_video(path) -> bool:
    """A video file by its extension (``media.read_input`` decides the same way)."""
    return os.fspath(path).lower().endswith(VIDEO_EXTENSIONS)


def frame_arg(text):
    """``type=`` for ``--frame``/``--frames``: an int, ``'all'`` (``slice(None)``) or ``A:B[:C]`` (a slice)."""
    text = str(text).strip()
    if text.lower() == "all":
        return slice(None)
    parts = text.split(":")
    try:
        if len(parts) == 1:
            value = int(text)
            if value < 0:
                raise ValueError
            return value
        if len(parts) > 3:
            raise ValueError
        start, stop, step = ([int(p) if p.strip() else None for p in parts] + [None])[:3]
        if any(v is not None and v < 0 for v in (start, stop)) or (step is not None and step < 1):
            raise ValueError
        return slice(start, stop, step)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {FRAME_FORMS}, got {text!r}") from None


def frame_text(spec) -> str:
    """The ``--frame`` text of a parsed spec (for messages): ``7``, ``all``, ``0:30:5``."""
    if not isinstance(spec, slice):
        return str(spec)
    if spec == slice(None):
        return "all"
    text = f"{'' if spec.start is None else spec.start}:{'' if spec.stop is None else spec.stop}"
    return text + ("" if spec.step is None else f":{spec.step}")


def select_frames(spec, count, path, flag="--frame") -> list:
    """The frame numbers ``spec`` picks from a file of ``count`` frames (a stop past the end is cut
    there); none at all is a ``ValueError`` naming ``flag`` and the count."""
    numbers = list(range(count)[spec]) if isinstance(spec, slice) else [int(spec)]
    if not numbers or numbers[-1] >= count:
        raise ValueError(f"{flag} {frame_text(spec)} selects no frame of {os.fspath(path)!r}, which has {count} "
                         f"frame{'s' if count != 1 else ''} (0..{count - 1})")
    return numbers


# ---------------------------------------------------------------- pre-flight
def check_out(out):
    """``--out`` must be a folder or creatable as one: not an existing file, not below a file."""
    if os.path.exists(out):
        if not os.path.isdir(out):
            raise ValueError(f"--out {out!r} exists and is not a folder")
        return
    parent = os.path.dirname(os.path.abspath(out))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        raise ValueError(f"--out {out!r} cannot be created: Not a directory ({parent!r} is a file, not a folder)")


def check_input(path, frame):
    """An input image or video: an existing readable file; a video needs ``--frame``."""
    what = "video" if is_video(path) else "image"
    if not os.path.exists(path):
        raise ValueError(f"{what} {os.fspath(path)!r} does not exist")
    if not os.path.isfile(path):
        raise ValueError(f"{what} {os.fspath(path)!r} is not a file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"cannot read {what} {os.fspath(path)!r}: permission denied")
    if what == "video" and frame is None:
        raise ValueError(f"{os.fspath(path)!r} is a video: pick its frames with --frame N (a frame number), "
                         f"--frame all or --frame START:STOP[:STEP]")


def _check_model_files(args):
    """``--model`` / ``--weights`` / ``--class-names`` files that do not exist (presets' own messages)."""
    model = getattr(args, "model", None)
    if model is not None:
        key = str(model).lower()
        if (key.endswith((".keras", ".h5")) or os.sep in key) and not os.path.isfile(model):
            raise ValueError(f"model file {model!r} does not exist")
    weights = getattr(args, "weights", None)
    if weights is not None and str(weights).lower() not in ("none", "imagenet") and not os.path.isfile(weights):
        raise ValueError(f"weights file {weights!r} does not exist; use imagenet, none or a path.")
    names = getattr(args, "class_names", None)
    if names is not None and not os.path.isfile(names):
        raise ValueError(f"class names file {names!r} does not exist; give a text file with one name per line "
                         f"or a JSON list")


def preflight(args):
    """Every check that needs no model, before TensorFlow is imported: a ``ValueError`` on bad input.

    Files first (``--out``, the input, the model files), then the command's
    own ``check(args)`` (set with ``set_defaults(check=...)``): numbers and
    specs it can judge without a model.
    """
    if getattr(args, "out", None) is not None:
        check_out(args.out)
    for attr in ("image", "input"):
        if getattr(args, attr, None) is not None:
            check_input(getattr(args, attr), getattr(args, "frame", None))
    images = getattr(args, "images", None)  # correspondence's IMAGE list (demo's --images is a count)
    for path in images if isinstance(images, list) else ():
        check_input(path, 0)
    source = getattr(args, "source", None)
    if source is not None and not os.path.exists(source) and not glob.has_magic(source):
        raise ValueError(f"{source!r} is neither a folder nor a glob that matches files")
    _check_model_files(args)
    check = getattr(args, "check", None)
    if check is not None:
        check(args)


# ---------------------------------------------------------------- the run
def banner(args, text):
    """Say ``text`` on stderr once the run has succeeded (:func:`run_command`), or now outside one."""
    held = getattr(args, "banners", None)
    if held is None:
        print(text, file=sys.stderr)
    elif text not in held:
        held.append(text)


def run_command(args) -> int:
    """``args.run(args)``, once per frame for a frame range, then the held banners on stderr.

    The frames of ``--frame all`` / ``A:B:C`` run one after another with the
    same model (``load_preset`` keeps it in ``args.preset_cache``) and one
    record of claimed output names; ``input_stem`` names each ``_frameN``.
    """
    args.banners = []
    vars(args).setdefault("claimed_outputs", set())
    args.preset_cache = {}
    spec = getattr(args, "frame", None)
    if isinstance(spec, slice):
        from .media import frame_count

        path = getattr(args, "image", None) or getattr(args, "input")
        numbers = select_frames(spec, frame_count(path), path)
        print(f"{len(numbers)} frame{'s' if len(numbers) != 1 else ''} of {path}: "
              f"{', '.join(map(str, numbers[:8]))}{' ...' if len(numbers) > 8 else ''}")
        code = 0
        for number in numbers:
            code = max(code, int(args.run(argparse.Namespace(**dict(vars(args), frame=number))) or 0))
    else:
        code = int(args.run(args) or 0)
    for text in args.banners:
        print(text, file=sys.stderr)
    return code
