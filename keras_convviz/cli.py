"""The ``convviz`` command.

Each subcommand lives in its own module under ``keras_convviz/commands`` and
exposes ``register(subparsers)``, which adds its parser and sets ``run``.
Exit codes: 0 success, 2 bad input or an OS error (one line on stderr, no
traceback unless ``--debug``), 130 / 143 SIGINT / SIGTERM (one line), 1 an
internal error. ``main`` is the one error boundary (see its docstring).
Files and cheap arguments are checked before TensorFlow is imported
(:mod:`keras_convviz.preflight`), so a missing file answers at once; every
subcommand's ``--help`` ends with examples (:mod:`keras_convviz.helptext`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
import traceback

from .preflight import preflight, run_command

# Quiet TensorFlow's C++ start-up chatter before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


class UsageError(ValueError):
    """Bad input from the user: exit 2 with a one-line message."""


def _commands():
    from . import commands

    names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))
    return [importlib.import_module(f"{commands.__name__}.{name}") for name in names]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def version():
    """The installed package's version (importlib.metadata), else setup.cfg's (a source checkout)."""
    from importlib import metadata

    try:
        return metadata.version("keras-convviz")
    except metadata.PackageNotFoundError:
        import configparser

        config = configparser.ConfigParser()
        config.read(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.cfg"))
        return config.get("metadata", "version", fallback="unknown")


def build_parser():
    """The ``convviz`` parser: every command module's subcommand, each ending with runnable examples."""
    from .helptext import add_examples

    parser = _Parser(prog="convviz", description="See inside convolutional networks.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"convviz (keras-convviz) {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in _commands():
        module.register(sub)
    add_examples(sub)
    return parser


def exit_on_signal(signum, frame):
    """SIGINT / SIGTERM in the ``convviz`` process: remove partial outputs, one line, exit 128 + signal.

    No exception is raised: one raised from a signal handler inside
    TensorFlow's C++ code (its import, a traced function) corrupts its state
    and prints tracebacks. ``media.discard_partial`` removes the temporary
    files of the writes under way; finished files are complete already.
    """
    for number in _SIGNALS:  # the first signal wins
        signal.signal(number, signal.SIG_IGN)
    media = sys.modules.get(f"{__package__}.media")
    if getattr(media, "discard_partial", None) is not None:
        media.discard_partial()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(_STDERR["fd"], f"convviz: interrupted ({signal.Signals(signum).name})\n".encode())
    finally:
        os._exit(128 + signum)


_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_STDERR = {"fd": 2}  # the real stderr, also while TensorFlow's import has fd 2 muted


def main(argv=None):
    """The one error boundary of ``convviz``: every exit code and one-line message is decided here.

    0 success; 2 bad input or an OS error (a full disk, a read-only place,
    an ``--out`` below a file); 130/143 SIGINT/SIGTERM (:func:`exit_on_signal`,
    from here on: imports, compute and writes; once the command has returned
    they are ignored, so a run whose files are all written exits with its own
    code); 1 a bug of ours. Called from Python with ``argv`` (tests), signals are
    left to the caller and SIGINT stays ``KeyboardInterrupt``.
    """
    in_process = argv is not None
    saved = {} if in_process else {number: signal.signal(number, exit_on_signal) for number in _SIGNALS}
    # over a file-size limit (ulimit -f) a write fails with EFBIG, an OSError, instead of killing us
    saved[signal.SIGXFSZ] = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(argv)
    except KeyboardInterrupt:  # in-process: atomic_write's finally has removed its temporary
        print("convviz: interrupted (SIGINT)", file=sys.stderr)
        return 130
    finally:
        if in_process:
            for number, handler in saved.items():
                signal.signal(number, handler)
        else:  # the work is done and every file complete: the interpreter's shutdown (seconds of
            for number in _SIGNALS:  # TensorFlow teardown, where Python resets its handlers) ignores signals
                signal.signal(number, signal.SIG_IGN)


def attach_negative_values(argv, options=("--input-range",)):
    """``--input-range -1,1`` -> ``--input-range=-1,1``: argparse takes a value like ``-1,1`` for an option."""
    out = []
    for arg in argv:
        if out and out[-1] in options and arg.startswith("-") and arg[1:2].isdigit():
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def _run(argv):
    argv = attach_negative_values(argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as stop:  # a usage error (its one line printed) or --help: exit code, as for run()
            return stop.code if isinstance(stop.code, int) else 2
        command = args.command
        preflight(args)  # files and cheap checks: a missing file answers before TensorFlow loads
        _import_tensorflow_quietly()
        _quiet_logs()
        return run_command(args)
    except (ValueError, OSError) as err:  # OSError: EFBIG/ENOSPC, EROFS, EACCES, ENOTDIR, ...
        if "--debug" in argv:
            traceback.print_exc()
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"convviz {command}: error: {message}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug of ours: say so, briefly
        if "--debug" in argv:
            traceback.print_exc()
        else:
            print(f"convviz {command}: internal error: {type(err).__name__}: {err} "
                  f"(rerun with --debug for the traceback)", file=sys.stderr)
        return 1


def _import_tensorflow_quietly():
    """Import TensorFlow with C-level stderr muted.

    TensorFlow's C++ runtime prints absl start-up lines (no CUDA driver, ...)
    before any Python setting can stop them; errors must stay one line.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    _STDERR["fd"] = saved  # where exit_on_signal writes while fd 2 is muted
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        _STDERR["fd"] = 2
        os.close(saved)


def _quiet_logs():
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning, module="keras")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass


if __name__ == "__main__":
    sys.exit(main())
