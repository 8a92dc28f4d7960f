"""TensorBoard summaries for the ConvViz dashboard.

Each artifact is a *blob sequence*: a rank-1 string tensor of PNG images
written with ``tf.summary.write`` under the tag ``method/layer/detail``, with
``SummaryMetadata`` naming the ``convviz`` plugin, ``data_class =
DATA_CLASS_BLOB_SEQUENCE`` and a JSON content object fixed per tag. The name
and the schema come from :mod:`tb_plugin.metadata`, which the dashboard reads
too.

    from keras_convviz import summary
    with summary.Writer("runs/exp/convviz") as w:
        w.images("saliency", "predictions", "heatmap", pngs_or_arrays, step=3,
                 kind="heatmap", params={"target": "predicted"})

``write_images`` writes through the default ``tf.summary`` writer instead, for
code that already manages one. ``Writer.document`` writes one of the run's
JSON documents (the model walk, a step's predictions and value ranges; see
:mod:`tb_plugin.metadata`) as a one-blob sequence.

``Writer(..., background=True)`` (what ``ConvVizCallback`` uses) checks each
write at once (the tag's fixed content, image shapes: a ``ValueError`` in the
caller, as without it) and encodes the PNGs and writes the event on one
background thread (:mod:`keras_convviz.asyncwrite`), in order: ``flush()``
queues a flush and raises there the first error a background write met since
the last call; ``wait()`` blocks until everything queued is written;
``close()`` writes everything queued, joins the thread and closes the file.
The first ``flush()`` waits, so that an unwritable folder is noticed at once.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import summary_pb2

from tb_plugin import metadata as md

from .asyncwrite import JobThread
from .media import png_bytes

__all__ = ["summary_metadata", "encode_pngs", "write_images", "Writer"]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def summary_metadata(content, description=""):
    """A ``SummaryMetadata`` proto for one tag: convviz plugin, blob sequence, JSON content."""
    meta = summary_pb2.SummaryMetadata(
        summary_description=description,
        data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE,
    )
    meta.plugin_data.plugin_name = md.PLUGIN_NAME
    meta.plugin_data.content = md.encode_content(content)
    return meta


def checked_images(images, copy=False):
    """The images to encode, checked: PNG bytes as they are, arrays as ``(H, W)`` / ``(H, W, 3)``
    (``copy``: arrays copied, for encoding later while the caller reuses its own)."""
    if isinstance(images, np.ndarray) and images.ndim in (3, 4) and images.dtype != object:
        images = list(images) if images.ndim == 4 else [images]
    out = []
    for image in images:
        if isinstance(image, (bytes, bytearray)):
            if not bytes(image[:8]) == _PNG_MAGIC:
                raise ValueError("an image given as bytes is not PNG-encoded")
            out.append(bytes(image))
        else:
            arr = np.array(image, copy=True) if copy else np.asarray(image)
            if arr.ndim == 3 and arr.shape[-1] == 1:
                arr = arr[..., 0]
            if arr.ndim not in (2, 3):
                raise ValueError(f"an image must be (H, W), (H, W, 1) or (H, W, 3), got shape {arr.shape}")
            out.append(arr)
    if not out:
        raise ValueError("no images to write")
    return out


def np_step(step):
    """``step`` as a NumPy int64 for ``tf.summary``, not a Python int (issue 28).

    TensorFlow's eager scalar cache keeps every distinct Python ``int`` or
    ``float`` it converts to a tensor, unbounded (about 650 bytes each): a new
    step number at every log, and the invariance logger's new means, grew the
    heap by ~6 KB a log. NumPy scalars (not ``np.float64``, a ``float``) are
    converted without it.
    """
    return np.int64(step)


def encode_pngs(images):
    """PNG bytes for each image: uint8 / [0, 1] float arrays, or bytes already PNG-encoded."""
    return [im if isinstance(im, bytes) else png_bytes(im) for im in checked_images(images)]


def write_images(tag, images, step, content, description=""):
    """Write one blob sequence of PNGs with the default ``tf.summary`` writer.

    Returns what ``tf.summary.write`` returns (False when no default writer).
    """
    pngs = encode_pngs(images)
    return tf.summary.write(
        tag=tag,
        tensor=tf.constant(pngs, dtype=tf.string),
        step=np_step(step),
        metadata=summary_metadata(content, description),
    )


def _write_blob(tag, blob, step, content):
    tf.summary.write(tag=tag, tensor=tf.constant([blob], dtype=tf.string), step=np_step(step),
                     metadata=summary_metadata(content))


def _write_scalars(method, values, step):
    for name, value in values.items():
        tf.summary.scalar(f"convviz_{method}/{name}", np.float32(value), step=np_step(step))


class Writer:
    """A summary file writer for ConvViz tags that keeps each tag's content fixed.

    Writing a tag again with different content raises ``ValueError``:
    TensorBoard keeps only the first metadata of a tag, so a change would be
    silently lost.
    """

    def __init__(self, logdir, max_queue=100, flush_millis=None, background=False):
        self.logdir = str(logdir)
        self._jobs = JobThread() if background else None
        self._flushed = False
        before = set(glob.glob(os.path.join(glob.escape(self.logdir), "*.convviz")))
        self._writer = tf.summary.create_file_writer(
            self.logdir, max_queue=max_queue, flush_millis=flush_millis, filename_suffix=".convviz"
        )
        # the event file, created with the writer: ``gone()`` notices when it is deleted under us
        made = sorted(set(glob.glob(os.path.join(glob.escape(self.logdir), "*.convviz"))) - before)
        self.path = made[-1] if len(made) == 1 else None
        self.contents = {}

    def gone(self):
        """True when the event file (or its folder) was deleted: what is written now would be lost."""
        return not os.path.exists(self.path or self.logdir)

    def content_for(self, method, layer, detail, kind, map=None, params=None, labels=None,  # noqa: A002
                    scale=None):
        tag = md.make_tag(method, layer, detail)
        content = md.make_content(method, layer, md.split_tag(tag)[2], kind, map=map, params=params, labels=labels,
                                  scale=scale)
        return tag, content

    def images(self, method, layer, detail, images, step, kind, map=None, params=None, labels=None,  # noqa: A002
               description="", scale=None):
        """Write ``images`` as the blob sequence ``method/layer/detail`` at ``step``; returns the tag.

        ``kind="scalars"``: ``images`` is ``{name: value}``, written as plain scalars (:meth:`scalars`).
        """
        if kind == "scalars":  # fig. 5 invariance curves' means: TensorBoard's Scalars tab draws them over steps
            return self.scalars(method, images, step)
        tag, content = self.content_for(method, layer, detail, kind, map=map, params=params, labels=labels,
                                        scale=scale)
        self._check_fixed(tag, content)
        if self._jobs is None:
            self._write_now(write_images, tag, images, step, content, description)
        else:  # checked here (a ValueError in the caller), encoded and written on the background thread
            pending = checked_images(images, copy=True)
            self._jobs.submit(lambda: self._write_now(write_images, tag, pending, step, content, description))
        return tag

    def _write_now(self, fn, *args):
        with self._writer.as_default():
            fn(*args)

    def document(self, tag, kind, document, step):
        """Write ``document`` (a dict from ``md.make_walk`` / ``md.make_step_info``) as JSON at ``step``."""
        if kind not in md.JSON_KINDS:
            raise ValueError(f"kind {kind!r} is not a document kind ({', '.join(md.JSON_KINDS)})")
        method, layer, detail = md.split_tag(tag)
        content = md.make_content(method, layer, detail, kind)
        self._check_fixed(tag, content)
        blob = md.encode_content(document)
        if self._jobs is None:
            self._write_now(_write_blob, tag, blob, step, content)
        else:
            self._jobs.submit(lambda: self._write_now(_write_blob, tag, blob, step, content))
        return tag

    def scalars(self, method, values, step):
        """Plain TensorBoard scalars ``convviz_<method>/<name>`` (the Scalars tab), e.g. fig. 5 curves' means."""
        values = {name: float(value) for name, value in values.items()}
        if self._jobs is None:
            self._write_now(_write_scalars, method, values, step)
        else:
            self._jobs.submit(lambda: self._write_now(_write_scalars, method, values, step))

    def _check_fixed(self, tag, content):
        known = self.contents.get(tag)
        if known is None:
            self.contents[tag] = content
        elif known != content:
            raise ValueError(
                f"tag {tag!r} was first written with content {known} and now with {content}; "
                f"the content of a tag is fixed (TensorBoard keeps only the first), use another tag."
            )

    def flush(self):
        """Flush the event file. In the background: queue a flush (the first one waits for it) and raise
        here the first error a background write met since the last call."""
        if self._jobs is None:
            self._writer.flush()
            return
        if self._flushed:
            self._jobs.submit(self._writer.flush)
        else:
            self.wait()
            self._writer.flush()
            self._flushed = True
        self._jobs.raise_pending()

    def wait(self):
        """Block until every queued write has run (no-op without a background thread)."""
        if self._jobs is not None:
            self._jobs.wait()

    def close(self):
        """Write everything queued, join the background thread, close the event file; raise a pending error."""
        try:
            if self._jobs is not None:
                self._jobs.close()
        finally:
            self._writer.close()
        if self._jobs is not None:
            self._jobs.raise_pending()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
