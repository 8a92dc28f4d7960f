"""Write jobs run in order on one background thread (issue 28).

:class:`keras_convviz.summary.Writer` with ``background=True`` hands PNG
encoding and ``tf.summary.write`` calls to a :class:`JobThread`, so a
training step never waits for them. Jobs run one at a time, in the order
they were submitted (a flush submitted after some writes flushes them).

An exception in a job never reaches the thread that submitted it as a crash:
the first one is warned about (``RuntimeWarning``, once per thread) and kept;
:meth:`JobThread.raise_pending` raises it in the caller's thread later (the
callback calls it through ``Writer.flush``, where a failing write already
surfaced before, and turns it into its own warning). Later jobs still run.

The queue is bounded (``maxsize`` jobs): a producer far ahead of the encoder
waits for room rather than holding an unbounded backlog of images in memory.
"""

from __future__ import annotations

import atexit
import queue
import threading
import warnings
import weakref

__all__ = ["JobThread"]

_LIVE = weakref.WeakSet()  # threads drained at interpreter exit (a script that never closed its writer)
_STOP = object()


class JobThread:
    """One daemon thread running submitted callables in order."""

    def __init__(self, name="convviz-writer", maxsize=256):
        self.name = name
        self._queue = queue.Queue(maxsize)
        self._thread = None
        self._lock = threading.Lock()
        self._error = None  # the first exception not yet raised in the caller's thread
        self.errors = 0  # how many jobs failed in all
        self.done = 0  # how many jobs ran
        self._warned = False

    def submit(self, job):
        """Queue ``job()`` (a callable taking no argument); starts the thread at the first job."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
                _LIVE.add(self)
        self._queue.put(job)

    def _run(self):
        while True:
            job = self._queue.get()
            try:
                if job is _STOP:
                    return
                job()
            except Exception as err:  # noqa: BLE001 - a failed write must never kill training
                self.errors += 1
                if self._error is None:
                    self._error = err
                if not self._warned:
                    self._warned = True
                    warnings.warn(f"keras_convviz: a background summary write failed ({type(err).__name__}: "
                                  f"{err}); training goes on", RuntimeWarning, stacklevel=2)
            finally:
                self.done += 1
                self._queue.task_done()

    def wait(self):
        """Block until every job submitted so far has run."""
        if self._thread is not None:
            self._queue.join()

    def raise_pending(self):
        """Raise (once) the first exception a job raised since the last call, in the caller's thread."""
        err, self._error = self._error, None
        if err is not None:
            raise err

    @property
    def pending(self):
        """Jobs submitted and not yet run (approximate)."""
        return self._queue.unfinished_tasks

    def close(self, timeout=None):
        """Run every queued job, then stop and join the thread. Returns True when it was joined."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return True
        self._queue.put(_STOP)
        thread.join(timeout)
        joined = not thread.is_alive()
        if joined:
            self._thread = None
            _LIVE.discard(self)
        return joined


@atexit.register
def _drain_at_exit():
    for jobs in list(_LIVE):
        jobs.close(timeout=30)
