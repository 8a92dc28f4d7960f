"""The ``convviz`` command.

Each subcommand lives in its own module under ``keras_convviz/commands`` and
exposes ``register(subparsers)``, which adds its parser and sets ``run``.
Exit codes: 0 success, 2 bad input (one line on stderr, no traceback unless
``--debug``), 1 an internal error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback

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


def build_parser():
    parser = _Parser(prog="convviz", description="See inside convolutional networks.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in _commands():
        module.register(sub)
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # a usage error (its one line printed) or --help: exit code, as for run()
        return stop.code if isinstance(stop.code, int) else 2
    _import_tensorflow_quietly()
    _quiet_logs()
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("convviz: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, PermissionError, IsADirectoryError) as err:
        if debug:
            traceback.print_exc()
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"convviz {args.command}: error: {message}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug of ours: say so, briefly
        if debug:
            traceback.print_exc()
        else:
            print(f"convviz {args.command}: internal error: {type(err).__name__}: {err} "
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
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
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
