"""``ConvVizCallback``: log visualizations to TensorBoard during ``model.fit``.

    cb = keras_convviz.ConvVizCallback("runs/exp", probe_inputs=x_val[:4],
                                       methods=("deconv", "saliency", "gradcam"))
    model.fit(x, y, validation_data=(x_val, y_val), callbacks=[cb])

then ``tensorboard --logdir runs/exp`` and open the ConvViz tab.

Every method is a *logger* (:mod:`keras_convviz.loggers`), listed in
``METHODS``. In ``on_train_begin`` the callback checks its own arguments and
each logger checks its configuration against the model (unknown method or
layer, probe shape, a method missing from this install: ``ValueError`` before
any epoch is spent). At each log every logger computes its maps through the
public method function and writes PNG blob sequences through
:mod:`keras_convviz.summary`. Feature maps are chosen once, at the first log,
and followed for the rest of training, as in Zeiler & Fergus 2014
(arXiv:1311.2901) fig. 4. A method that fails at run time warns once, naming
it, and is skipped from then on; training continues.
"""

from __future__ import annotations

import numbers
import os
import time
import warnings

import keras
import numpy as np

from tb_plugin import metadata as md

from .budget import OverheadBudget
from .checks import non_negative_int, resolve_targets
from .convention import display_for, value_range_display
from .graph import walk
from .loggers.base import LogContext, probe_labels
from .loggers.dashboard import check_class_names, step_document, walk_document
from .loggers import check_methods, logged_methods, requested_methods
from .loggers.followed import FollowedMaps
from .distributed import current_strategy, is_chief
from .request import as_batch
from .select import num_classes

__all__ = ["ConvVizCallback", "METHODS", "DEFAULT_METHODS", "FollowedMaps"]

# Cheap methods, logged by default: one compiled backward pass each per log,
# deconv at the last block only (pass layers= to follow more), so that the
# default costs a few percent of training time (benchmarks/bench_callback.py).
DEFAULT_METHODS = ("deconv", "saliency", "gradcam")

# Every method the callback logs, by its one name, in the dashboard's pipeline order (from the registry).
METHODS = logged_methods()


class ConvVizCallback(keras.callbacks.Callback):
    """Log ConvViz visualizations of fixed probe inputs to TensorBoard during training.

    Args:
      log_dir: the TensorBoard log directory (the same one as
        ``keras.callbacks.TensorBoard`` is fine); summaries go to
        ``log_dir/<run>``.
      probe_inputs: model inputs ``(N, H, W, C)`` (already preprocessed) to
        explain at every log; a few images keep the overhead low.
      methods: names from ``METHODS`` (the records of
        :mod:`keras_convviz.registry`: deconv, guided, saliency, smoothgrad,
        ig, lrp, gradcam and the CAM family, rise, occlusion, topk,
        featurevis, classmodel, boxfilter, filters, invariance; aliases such
        as ``integrated_gradients`` are accepted), or a dict ``{name: {option: value}}`` passing options to the method
        (e.g. ``{"smoothgrad": {"samples": 10}}``). Default: the cheap ones,
        ``DEFAULT_METHODS``.
      layers: layer names for the layer-based methods (default: each
        method's own: the last block's last conv for deconv, gradcam,
        occlusion, boxfilter and topk), or a dict ``{method: [layers]}``,
        e.g. ``{"deconv": walk(model).block_ends()}`` for every block.
      every_n_epochs: log after every n-th epoch (and after the last one);
        the step is the epoch index, as in ``keras.callbacks.TensorBoard``.
      every_n_batches: log every n training batches instead; the step is the
        global batch count.
      targets: class index, one per probe image, or None for the predicted
        class (explained as the pre-softmax logit).
      maps: feature maps followed per layer: a count of the strongest maps at
        the first log (fixed afterwards), a fraction, or explicit indices.
      heldout: images for ``topk`` (the strongest activations over this set).
      display: function mapping model inputs to RGB uint8 for display
        (a preset's ``deprocess``); default: the ``input_range``'s, else the
        model's leading ``Rescaling``/``Normalization`` layer's (raw 0..255
        inputs), else inputs in [0, 1] or [0, 255] as they are, anything else
        min-max scaled per image. ``input_convention`` says which was used.
      run: the run (sub-folder of ``log_dir``) to write to.
      log_at_train_end: also log after the last epoch when it was skipped.
      max_overhead: None (default: log at every scheduled step), or a share
        of training time such as 0.03: scheduled logs that would push the
        time spent logging past it are skipped, with one warning (the first
        log and the one at the end of training always run; ``budget.py``).
      class_names: one name per class, shown by the dashboard with every
        prediction and explained class (a preset's ``class_names``), and on
        the class models ("Egyptian cat (285)").
      input_range: ``"0,255"``, ``"0,1"`` or ``"-1,1"``: the values the
        model's inputs take for 0..255 pixels, for display (as
        ``presets.load(..., input_range=)``).
    """

    def __init__(self, log_dir, probe_inputs, methods=DEFAULT_METHODS, layers=None, every_n_epochs=1,
                 every_n_batches=None, targets=None, maps=9, heldout=None, display=None, run="convviz",
                 log_at_train_end=True, class_names=None, input_range=None, max_overhead=None):
        super().__init__()
        self.budget = OverheadBudget(max_overhead)  # checked here: a bad share fails before training
        self.class_names = class_names
        self.input_range = input_range
        self.input_convention = None  # set by configure(): how inputs are shown
        self._step_ranges, self._step_topk = {}, {}  # this step's colour-bar ranges and top-k rows
        self.log_dir = os.fspath(log_dir)
        self.run = run
        self.probe_inputs = probe_inputs
        self.method_options = requested_methods(methods)  # aliases ("integrated") become one name ("ig")
        self.layers = layers
        self.every_n_epochs = every_n_epochs
        self.every_n_batches = every_n_batches
        self.targets = targets
        self.maps = maps
        self.heldout = heldout
        self.user_display = display
        self.display = display or value_range_display
        self.log_at_train_end = log_at_train_end
        self.loggers = {}
        self.failed = {}
        self.timings = {}
        self._writer = None
        self._followed = None
        self._logged_once = set()
        self._last_logged = None
        self._last_epoch = None
        self._global_batch = 0
        self._configured = False
        self._warned_deleted = False
        self.unwritable = None  # why log_dir could not be written (then logging is off)

    # -- configuration ------------------------------------------------------
    def _check_arguments(self):
        """The callback's own arguments, before the model is looked at."""
        check_methods(self.method_options, tuple(METHODS))
        for name in ("every_n_epochs", "every_n_batches"):
            if getattr(self, name) is not None:
                non_negative_int(getattr(self, name), name, low=1)
        if self.every_n_epochs is None and self.every_n_batches is None:
            raise ValueError("set every_n_epochs or every_n_batches: with neither the callback never logs")
        spec = self.maps
        if isinstance(spec, (list, tuple)):
            if not spec or any(isinstance(m, bool) or not isinstance(m, numbers.Integral) for m in spec):
                raise ValueError(f"maps must be a count, a fraction or a non-empty list of map indices, got {spec!r}")
        elif isinstance(spec, bool) or not isinstance(spec, numbers.Real):
            raise ValueError(f"maps must be a count, a fraction or a list of map indices, got {spec!r}")

    def _check_inputs(self, graph):
        """Probe images, targets and the held-out set against the model."""
        try:
            self.probe = as_batch(graph, self.probe_inputs)
        except ValueError as err:
            raise ValueError(f"probe_inputs: {err}") from None
        self.image_size = tuple(self.probe.shape[1:3])
        if self.targets is not None:
            resolve_targets(self.targets, len(self.probe), num_classes(graph))
        self.heldout_display = None
        if self.heldout is not None and not hasattr(self.heldout, "element_spec"):
            try:
                self.heldout = as_batch(graph, self.heldout)
            except ValueError as err:
                raise ValueError(f"heldout: {err}") from None
            self.heldout_display = self.display(self.heldout)

    def configure(self):
        """Check everything against the model; raises ``ValueError`` naming the fix."""
        self._check_arguments()
        graph = walk(self.model)
        deprocess = self._resolve_display()
        self._check_inputs(graph)
        followed, self._followed = self._followed, FollowedMaps(graph, self.probe, self.maps)
        self._followed.carry_over(followed)  # a later fit() follows the same units
        self._class_names = check_class_names(self.class_names, num_classes(graph))
        context = LogContext(
            graph=graph, probe=self.probe, targets=self.targets, image_size=self.image_size, write=self._write,
            fixed_maps=self._followed.fixed, follow=self._followed.follow, layer_spec=self.layers,
            map_spec=self.maps, deprocess=deprocess, heldout=self.heldout,
            heldout_display=self.heldout_display, class_names=self._class_names)
        loggers = {}
        for name, opts in self.method_options.items():
            logger = METHODS[name](name, opts, context)
            try:
                logger.configure()
            except ValueError as err:
                raise ValueError(f"ConvVizCallback method {name!r}: {err}") from None
            loggers[name] = logger
        self.loggers = loggers
        self.probe_display = self.display(self.probe)
        self._configured = True

    def _resolve_display(self):
        """Pick the display of model inputs (:func:`convention.display_for`); returns the loggers' ``deprocess``."""
        self.display, deprocess, self.input_convention = display_for(self.model, self.user_display, self.input_range)
        return deprocess

    def fixed_maps(self, layer):
        """The maps of ``layer`` followed across logs, chosen at the first log (see :class:`FollowedMaps`)."""
        return self._followed.fixed(layer)

    # -- writing -------------------------------------------------------------
    def _write(self, method, layer, detail, images, step, kind, map=None, params=None, labels=None,  # noqa: A002
               scale=None, ranges=None, rows=None):
        tag = self._writer.images(method, layer, detail, images, step, kind, map=map, params=params, labels=labels,
                                  scale=scale)
        if ranges is not None:
            self._step_ranges[tag] = np.asarray(ranges, np.float64).tolist()
        if rows is not None:  # top-k patches: [activation, held-out image, y, x] each
            self._step_topk[tag] = [list(r) for r in rows]

    def _write_documents(self, step):
        """The dashboard's JSON: the model walk once, then this step's predictions, units and value ranges."""
        try:
            if md.WALK_TAG not in self._writer.contents:
                self._writer.document(md.WALK_TAG, "walk", walk_document(
                    self._followed.graph, self.image_size, self._class_names), step)
            doc = step_document(self._followed.graph, self.probe, self.targets, self._followed.chosen,
                                self._step_ranges, self._step_topk)
            self._writer.document(md.STEP_TAG, "stepinfo", doc, step)
        except Exception as err:  # logging never kills training
            self.failed.setdefault("dashboard", f"{type(err).__name__}: {err}")
            warnings.warn(f"ConvVizCallback: the dashboard's step document failed at step {step}: "
                          f"{type(err).__name__}: {err}", RuntimeWarning, stacklevel=3)
        self._step_ranges = {}
        self._step_topk = {}

    def _log_one(self, name, logger, step):
        """Run one logger; a failure warns once and drops the method for the rest of training."""
        start = time.perf_counter()
        try:
            logger.log(step)
        except Exception as err:  # a visualization must never stop training
            self.failed[name] = f"{type(err).__name__}: {err}"
            warnings.warn(
                f"ConvVizCallback: method {name!r} failed at step {step} and is skipped for the rest of "
                f"training: {type(err).__name__}: {err}",
                RuntimeWarning,
                stacklevel=3,
            )
            return
        finally:
            self.timings.setdefault(name, []).append(time.perf_counter() - start)
        self._logged_once.add(name)

    def _open_writer(self, step):
        """The summary writer (created at the first log) and the probe images, written once."""
        if self._writer is not None and self._writer.gone():
            self._writer_deleted(step)
        if self._writer is None:
            from .warmup import open_writer  # joins the warm-up; writes in the background (issue 28)
            folder = os.path.join(self.log_dir, self.run) if self.run else self.log_dir
            if not is_chief(current_strategy()):  # multi-worker: only the chief writes the run folder
                import tempfile

                # as keras.callbacks.TensorBoard does: other workers write a scratch folder,
                # deleted at the end of training
                folder = self._scratch = tempfile.mkdtemp(prefix="convviz-worker-")
            self._writer = open_writer(self, folder)
        if md.INPUT_TAG not in self._writer.contents:
            method, layer, detail = md.split_tag(md.INPUT_TAG)
            self._write(method, layer, detail, list(self.probe_display), step, "input",
                        labels=probe_labels(len(self.probe)))
        self._writer.flush()  # fails here, once, when log_dir cannot be written

    def _writer_deleted(self, step):
        """The run folder or its event file was deleted during training: warn once, start a new event file.

        TensorFlow's writer goes on writing into the deleted file, so the logs
        would vanish without a word.
        """
        writer, self._writer = self._writer, None
        try:
            writer.close()
        except Exception:  # noqa: BLE001 - its file is gone already; nothing left to save
            pass
        if not self._warned_deleted:
            self._warned_deleted = True
            warnings.warn(f"ConvVizCallback: the log folder {writer.logdir!r} (or its event file) was deleted "
                          f"during training, noticed at step {step}: what was logged before is lost; logging goes "
                          f"on in a new event file there. Fix: leave log_dir alone while model.fit runs (clean it "
                          f"before training, or pass a new log_dir or run=)", RuntimeWarning, stacklevel=4)

    def _stop_writing(self, err, step):
        """Warn once that ``log_dir`` cannot be written; every later log is skipped."""
        self.unwritable = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        warnings.warn(f"ConvVizCallback: cannot write to log_dir {self.log_dir!r} at step {step} "
                      f"({self.unwritable}); logging is off for the rest of training", RuntimeWarning, stacklevel=3)
        self._writer = None

    def log(self, step):
        """Compute and write every configured method at ``step`` (failures warn once)."""
        if getattr(self, "unwritable", None) is not None:
            return  # the log_dir cannot be written: warned once, training goes on
        start = time.perf_counter()
        try:
            self._log_all(step)
        finally:
            self.budget.record(time.perf_counter() - start)

    def _log_all(self, step):
        try:
            self._open_writer(step)
        except Exception as err:  # an unwritable log_dir (OSError, tf.errors.*) must never stop model.fit
            self._stop_writing(err, step)
            return
        for name, logger in self.loggers.items():
            if name not in self.failed and not (logger.once and name in self._logged_once):
                self._log_one(name, logger, step)
        if "dashboard" not in self.failed:
            start = time.perf_counter()
            self._write_documents(step)
            self.timings.setdefault("dashboard", []).append(time.perf_counter() - start)  # counted as overhead
        try:
            self._writer.flush()
        except Exception as err:  # the disk filled up or the folder went away during training
            if self._writer.gone():
                self._writer_deleted(step)  # deleted while this step was written: a new file next time
            else:
                self._stop_writing(err, step)
        self._last_logged = step

    # -- keras hooks ---------------------------------------------------------
    def on_train_begin(self, logs=None):
        from .warmup import begin  # configure(), then compile the methods off the critical path
        begin(self)
        self.budget.start()
        self._global_batch = self._trained_batches(0)
        self._epoch_base = self._global_batch

    def _trained_batches(self, fallback):
        """The global count of batches trained so far: the optimizer's ``iterations`` (``fallback`` without one)."""
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return fallback
        return int(keras.ops.convert_to_numpy(optimizer.iterations))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_base = self._trained_batches(self._global_batch)

    def on_train_batch_end(self, batch, logs=None):
        # With compile(steps_per_execution=N) Keras calls this once per N batches, ``batch`` being the chunk's
        # last index in the epoch (past the end for a short last chunk): hook calls are not batches. Log once
        # whenever a multiple of every_n_batches has been reached, at the true global batch count.
        n = self.every_n_batches
        if n is None:
            return
        bound = self._epoch_base + int(batch) + 1  # never below the true count
        if bound // n <= self._global_batch // n:
            self._global_batch = bound
            return
        trained = self._trained_batches(bound)  # one read of the optimizer's step when a multiple may be reached
        if trained // n > self._global_batch // n:
            self._global_batch = trained
            if self.budget.allows(trained):
                self.log(trained)
        else:
            self._global_batch = trained

    def on_epoch_end(self, epoch, logs=None):
        self._last_epoch = epoch
        if self.every_n_batches is None and (epoch + 1) % self.every_n_epochs == 0 and self.budget.allows(epoch):
            self.log(epoch)

    def on_train_end(self, logs=None):
        try:
            if self.log_at_train_end and self._configured:
                last = (self._trained_batches(self._global_batch) if self.every_n_batches is not None
                        else self._last_epoch)
                if last is not None and last != self._last_logged:
                    self.log(last)
        finally:
            if self._writer is not None:
                writer, self._writer = self._writer, None
                try:
                    writer.close()
                except Exception as err:  # logging never kills training, not even at its end
                    self._stop_writing(err, "the end")
            if getattr(self, "_scratch", None):
                import shutil

                shutil.rmtree(self._scratch, ignore_errors=True)
                self._scratch = None
                # a later fit() continues the same tags with the same content
