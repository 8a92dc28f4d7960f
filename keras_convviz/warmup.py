"""Compile the callback's methods on a background thread while training runs (issue 28).

Each method's compiled function is traced once per model and reused at
every log; what made the first log slow (deconv's 1-2 s on the demo model)
is that tracing. :func:`start` runs, on one daemon thread started in
``on_train_begin``, a throw-away log of each deterministic method on the
probe images (maps and images computed, nothing written, no blank-map
warning): the functions are traced while the first epoch trains, and the
first real log finds them compiled. :meth:`Warmup.wait` (called before the
first log) joins the thread; a warm-up that fails is dropped without a word
(the real log then compiles, and reports any real failure, as before).

Only methods that use no random numbers are warmed (``WARMED``): a warm-up
must not move the random streams of a seeded training. The followed feature
maps are *not* chosen here (they are chosen at the first log, as in Zeiler &
Fergus fig. 4): the warm-up projects placeholder maps, which trace the same
function (its map indices are an argument).
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time

__all__ = ["WARMED", "Warmup", "begin", "open_writer"]

# Methods whose log uses no random numbers and whose functions are traced per model (not per step).
WARMED = ("deconv", "saliency", "guided", "integrated", "ig", "lrp", "gradcam", "gradcam_plus_plus", "layercam",
          "xgradcam", "hirescam", "eigencam", "scorecam", "ablationcam")


def _ignore(*args, **kwargs):
    return None


class Warmup:
    """A background warm-up of some loggers; ``wait()`` joins it (at once when there is nothing to warm)."""

    def __init__(self, loggers, methods=WARMED):
        self.loggers = {name: lg for name, lg in loggers.items() if name in methods}
        self.ctx = next((lg.ctx for lg in loggers.values() if getattr(lg, "ctx", None) is not None), None)
        self.errors = {}
        self.seconds = 0.0
        self._thread = None
        if self.ctx is not None:
            self._thread = threading.Thread(target=self._run, name="convviz-warmup", daemon=True)
            self._thread.start()

    @staticmethod
    def _placeholder_maps(ctx, layer):
        """Map indices that trace the same functions as the ones chosen later."""
        spec = ctx.map_spec
        if isinstance(spec, (list, tuple)):
            return [int(m) for m in spec]
        channels = ctx.graph.step(layer).output_shape[-1]
        n = spec if isinstance(spec, int) else max(1, int(round(float(spec) * channels)))
        return list(range(max(1, min(int(n), channels))))

    def _choose_maps(self):
        """The forward pass that chooses the followed maps at the first log (the deconv layers)."""
        logger = self.loggers.get("deconv")
        if logger is None or not logger.layers or isinstance(logger.ctx.map_spec, (list, tuple)):
            return
        try:
            from .methods.capture import capture

            capture(logger.ctx.graph, logger.ctx.probe, sorted(set(logger.layers)))
        except Exception as err:  # noqa: BLE001 - a warm-up only saves time
            self.errors["maps"] = f"{type(err).__name__}: {err}"

    def _dashboard(self):
        """The step document's compiled forward pass (predictions, the followed maps' peaks)."""
        from .loggers.dashboard import step_document

        ctx, deconv = self.ctx, self.loggers.get("deconv")
        followed = {layer: self._placeholder_maps(ctx, layer) for layer in (deconv.layers if deconv else ())}
        try:
            step_document(ctx.graph, ctx.probe, ctx.targets, followed, {}, {})
        except Exception as err:  # noqa: BLE001 - a warm-up only saves time
            self.errors["dashboard"] = f"{type(err).__name__}: {err}"

    def _run(self):
        start = time.perf_counter()
        self._choose_maps()
        self._dashboard()
        for name, logger in self.loggers.items():
            try:
                clone = copy.copy(logger)
                clone.__dict__ = dict(logger.__dict__)
                ctx = logger.ctx
                clone.ctx = dataclasses.replace(ctx, write=_ignore,
                                                fixed_maps=lambda layer, ctx=ctx: self._placeholder_maps(ctx, layer))
                clone.check_blank = _ignore  # no warning about an untrained model's maps
                clone.write = _ignore
                clone.log(-1)
            except Exception as err:  # noqa: BLE001 - the real log reports real failures
                self.errors[name] = f"{type(err).__name__}: {err}"
        self.seconds = time.perf_counter() - start

    def wait(self, timeout=None):
        """Join the warm-up thread (before the first log); returns True when it is done."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
            self._thread = None
        return True


def begin(callback):
    """``ConvVizCallback.on_train_begin``'s set-up: ``configure()`` (errors raise there, before training), then
    warm its deterministic methods on a background thread (``callback.warmup``)."""
    callback.configure()
    callback.warmup = Warmup(callback.loggers)


def open_writer(callback, folder):
    """The callback's summary writer at its first log: after the warm-up (joined here), writing in the background."""
    warm = getattr(callback, "warmup", None)
    if warm is not None:
        warm.wait()
    from .summary import Writer

    return Writer(folder, background=True)
