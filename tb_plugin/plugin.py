"""The ConvViz TensorBoard dashboard: routes over TensorBoard's data provider.

A dynamic plugin: TensorBoard loads ``/data/plugin/convviz/index.js`` (an ES
module exporting ``render()``) in an iframe; that module and its stylesheet are
served from ``tb_plugin/static`` by this plugin, nothing comes from a CDN. All
data is read through ``context.data_provider`` (``list_blob_sequences``,
``read_blob_sequences``, ``read_blob``), so the dashboard works with the Rust
data server (``--load_fast=true``, the default) and the Python one
(``--load_fast=false``). No TensorFlow import is needed.

Routes (under ``/data/plugin/convviz``):

* ``/index.js``, ``/static/<name>``: the dashboard's files.
* ``/tags``: ``{"runs": {run: {tag: entry}}, "input_tag", "kinds",
  "overlay_kinds", "grid_kinds", "method_order", ...}``; ``entry`` is what the
  listing needs to filter, order and refresh cards: the content's
  ``LISTING_FIELDS`` (kind, method, layer, map) plus ``max_step``. The rest of
  the content (params, labels, scale, version) comes with ``/series``, which
  every card fetches anyway: a slim listing keeps this first request as cheap
  as TensorBoard's own images tab at 50,000 images. Tags whose content does
  not parse are left out. The other keys are
  :func:`tb_plugin.metadata.dashboard_schema`: the dashboard reads the names
  it needs from there.
* ``/series?run=R&tag=T``: ``{"run", "tag", "content", "steps": [{"step",
  "wall_time", "blobs": [url, ...]}]}``, downsampled to
  ``--samples_per_plugin convviz=N`` steps (0 = all; default 100).
* ``/run?run=R``: the run's walk and per-step documents
  (:func:`tb_plugin.documents.run_documents`).
* ``/blob?key=K``: the image bytes with their MIME type.

Bad or missing parameters answer 400, unknown runs, tags or blobs 404.
"""

from __future__ import annotations

import base64
import functools
import json
import mimetypes
import os
import re
import urllib.parse

from werkzeug import wrappers

from tensorboard import errors, plugin_util
from tensorboard.backend import http_util
from tensorboard.compat.proto import summary_pb2
from tensorboard.data import provider
from tensorboard.plugins import base_plugin

from . import documents, metadata

__all__ = ["ConvVizPlugin", "ConvVizPluginLoader", "DEFAULT_DOWNSAMPLE"]

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

# Steps per series when --samples_per_plugin says nothing for convviz.
DEFAULT_DOWNSAMPLE = 100
_ALL = 1 << 30  # "0 = keep all" in --samples_per_plugin

_STATIC_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.(js|css|svg|png|json|map)$")
_STATIC_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    ".map": "application/json",
}
_MAX_PARAM = 4096
_BLOB_SEQUENCE = summary_pb2.DATA_CLASS_BLOB_SEQUENCE
# The content fields the /tags listing carries per tag (with max_step); /series carries all of it.
LISTING_FIELDS = ("kind", "method", "layer", "map")


def image_mime_type(data):
    """MIME type of image bytes from their magic number (octet-stream if unknown)."""
    head = bytes(data[:12])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:2] == b"BM":
        return "image/bmp"
    return "application/octet-stream"


class _BadRequest(Exception):
    pass


def readable_content(time_series):
    """A tag's parsed ConvViz content, or None: any failure means "not ours".

    Hostile or foreign content may fail in any way (deeply nested JSON raises
    RecursionError, odd types TypeError, ...); the listing skips the tag.
    """
    return parsed_content(time_series.plugin_content)


def parsed_content(data):
    """:func:`readable_content` of a tag's content bytes."""
    try:
        content = _parse_cached(bytes(data)) if isinstance(data, (bytes, bytearray)) else _parse(data)
    except TypeError:  # unhashable or odd content: parse it uncached
        content = _parse(data)
    return dict(content) if isinstance(content, dict) else None  # a copy: the caller adds fields


def _parse(data):
    try:
        return metadata.parse_content(data)
    except Exception:  # noqa: BLE001 - RecursionError, MemoryError-free: anything the parser raises
        return None


# /tags parses every tag's content at every request (thousands of tags, the dashboard's first
# request): the same bytes always parse the same, so parse each distinct content once.
_parse_cached = functools.lru_cache(maxsize=1 << 16)(_parse)


def check_blob_key(key):
    """Refuse a Python-loader blob key (``--load_fast=false``) whose fields have the wrong type or range.

    That loader's key is URL-safe base64 of JSON ``[experiment, plugin, run,
    tag, step, index]`` and it indexes the stored tensor with ``index`` as
    given: a float, a list or null would serve arrays or crash. The Rust
    loader's keys are opaque: anything that does not decode to that list is
    left to the data provider to accept or refuse.
    """
    try:
        fields = json.loads(base64.urlsafe_b64decode(key + "==").decode("ascii"))
    except Exception:  # noqa: BLE001 - not a Python-loader key
        return
    if not isinstance(fields, list) or len(fields) != 6:
        return
    _, plugin, run, tag, step, index = fields
    if plugin != metadata.PLUGIN_NAME or not isinstance(run, str) or not isinstance(tag, str):
        raise _BadRequest("blob key is not a ConvViz blob")
    for name, value in (("step", step), ("index", index)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 62:
            raise _BadRequest(f"blob key {name} must be an integer >= 0, got {value!r}")


def _param(request, name):
    values = request.args.getlist(name)
    if not values or values[0] == "":
        raise _BadRequest(f"missing query parameter {name!r}")
    if len(values) > 1:
        raise _BadRequest(f"query parameter {name!r} given {len(values)} times")
    if len(values[0]) > _MAX_PARAM:
        raise _BadRequest(f"query parameter {name!r} is too long")
    return values[0]


def _text(request, message, code):
    return http_util.Respond(request, message, "text/plain", code=code)


def _json(request, value, code=200):
    return http_util.Respond(request, value, "application/json", code=code)


class ConvVizPlugin(base_plugin.TBPlugin):
    """The ConvViz dashboard."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context):
        self._data_provider = context.data_provider
        # The Python loader's multiplexer (``--load_fast=false``; None with the Rust data server): its runs'
        # last event (step, wall time) tell when the listing may have changed, so /tags is answered from
        # the last listing until then (issue 28). Without it every request lists.
        self._multiplexer = getattr(context, "multiplexer", None)
        self._listing = None  # (key, compact JSON body) of the last /tags answer
        hint = (context.sampling_hints or {}).get(self.plugin_name)
        if hint is None:
            self._downsample = DEFAULT_DOWNSAMPLE
        else:
            self._downsample = _ALL if int(hint) <= 0 else int(hint)

    # -- TBPlugin -----------------------------------------------------------
    def get_plugin_apps(self):
        return {
            "/index.js": self._serve_index_js,
            "/static/*": self._serve_static,
            "/tags": self._serve_tags,
            "/series": self._serve_series,
            "/run": self._serve_run,
            "/blob": self._serve_blob,
        }

    def is_active(self):
        return False  # TensorBoard's list_plugins (data for "convviz") decides

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="ConvViz", disable_reload=False)

    # -- data -----------------------------------------------------------------
    def tags(self, ctx, experiment):
        """``{run: {tag: {LISTING_FIELDS..., "max_step"}}}`` of every parseable ConvViz tag."""
        if self._multiplexer is not None:
            try:
                return self.multiplexer_tags()
            except Exception:  # noqa: BLE001 - an unexpected multiplexer: the data provider's way
                pass
        mapping = self._data_provider.list_blob_sequences(
            ctx, experiment_id=experiment, plugin_name=self.plugin_name
        ) or {}
        result = {}
        for run, tag_map in mapping.items():
            tags = {}
            for tag, ts in (tag_map or {}).items():
                content = readable_content(ts)
                if content is None:
                    continue  # another writer's content: never break the listing
                tags[tag] = {key: content[key] for key in LISTING_FIELDS}
                tags[tag]["max_step"] = int(ts.max_step)
            if tags:
                result[run] = tags
        return result

    def multiplexer_tags(self):
        """:meth:`tags` straight from the Python loader's multiplexer (issue 28): the same tags and
        ``max_step`` as its data provider's ``list_blob_sequences``, without the per-event sizes and wall
        times that the listing does not use (a fifth of the work at 50,000 images)."""
        mux, result = self._multiplexer, {}
        for run, tag_to_meta in mux.AllSummaryMetadata().items():
            tags = {}
            for tag, meta in tag_to_meta.items():
                if meta.plugin_data.plugin_name != self.plugin_name or meta.data_class != _BLOB_SEQUENCE:
                    continue
                content = parsed_content(meta.plugin_data.content)
                events = mux.Tensors(run, tag) if content is not None else None
                if not events:
                    continue  # another writer's content, or no event kept
                tags[tag] = {key: content[key] for key in LISTING_FIELDS}
                tags[tag]["max_step"] = int(max(e.step for e in events))
            if tags:
                result[run] = tags
        return result

    def series(self, ctx, experiment, run, tag):
        listing = self._data_provider.list_blob_sequences(
            ctx,
            experiment_id=experiment,
            plugin_name=self.plugin_name,
            run_tag_filter=provider.RunTagFilter(runs=[run], tags=[tag]),
        ) or {}
        ts = listing.get(run, {}).get(tag)
        if ts is None:
            raise errors.NotFoundError(f"no ConvViz data for run {run!r}, tag {tag!r}")
        content = readable_content(ts)
        if content is None:
            raise errors.NotFoundError(f"tag {tag!r} of run {run!r} has no readable ConvViz content")
        data = self._data_provider.read_blob_sequences(
            ctx,
            experiment_id=experiment,
            plugin_name=self.plugin_name,
            downsample=self._downsample,
            run_tag_filter=provider.RunTagFilter(runs=[run], tags=[tag]),
        ) or {}
        steps = [
            {
                "step": int(d.step),
                "wall_time": float(d.wall_time),
                "blobs": ["blob?" + urllib.parse.urlencode({"key": ref.blob_key}) for ref in d.values],
            }
            for d in data.get(run, {}).get(tag, [])
        ]
        return {"run": run, "tag": tag, "content": content, "steps": steps}

    # -- routes ---------------------------------------------------------------
    def listing_key(self, experiment):
        """What the listing depends on, cheaply: every run's accumulator and its last event (step, wall
        time), taken before listing (an event added meanwhile changes the next key); None without the
        Python loader's multiplexer (the listing is then made at every request)."""
        mux = self._multiplexer
        if mux is None:
            return None
        try:
            accumulators = [(run, mux.GetAccumulator(run)) for run in sorted(mux.Runs())]
            return (experiment,) + tuple((run, id(acc), len(acc.summary_metadata), acc.most_recent_step,
                                          acc.most_recent_wall_time)
                                         for run, acc in accumulators)
        except Exception:  # noqa: BLE001 - any surprise: list every time, as without a multiplexer
            return None

    @wrappers.Request.application
    def _serve_tags(self, request):
        ctx = plugin_util.context(request.environ)
        experiment = plugin_util.experiment_id(request.environ)
        key = self.listing_key(experiment)
        cached = self._listing
        if key is not None and cached is not None and cached[0] == key:
            return _json(request, cached[1])
        listing = dict(metadata.dashboard_schema(), runs=self.tags(ctx, experiment))
        # encoded here, compactly: the listing holds only JSON-clean values (http_util's generic cleanse
        # walks every object of it again)
        body = json.dumps(listing, separators=(",", ":"), allow_nan=False)
        if key is not None:
            self._listing = (key, body)
        return _json(request, body)

    @wrappers.Request.application
    def _serve_series(self, request):
        try:
            run, tag = _param(request, "run"), _param(request, "tag")
        except _BadRequest as err:
            return _text(request, str(err), 400)
        ctx = plugin_util.context(request.environ)
        experiment = plugin_util.experiment_id(request.environ)
        try:
            return _json(request, self.series(ctx, experiment, run, tag))
        except errors.NotFoundError as err:
            return _text(request, str(err), 404)

    @wrappers.Request.application
    def _serve_run(self, request):
        try:
            run = _param(request, "run")
        except _BadRequest as err:
            return _text(request, str(err), 400)
        ctx = plugin_util.context(request.environ)
        experiment = plugin_util.experiment_id(request.environ)
        try:
            return _json(request, documents.run_documents(self._data_provider, ctx, experiment, run,
                                                          self._downsample))
        except errors.NotFoundError as err:
            return _text(request, str(err), 404)

    @wrappers.Request.application
    def _serve_blob(self, request):
        try:
            key = _param(request, "key")
            check_blob_key(key)
        except _BadRequest as err:
            return _text(request, str(err), 400)
        ctx = plugin_util.context(request.environ)
        try:
            data = self._data_provider.read_blob(ctx, blob_key=key)
            if not isinstance(data, bytes):  # np.bytes_ is bytes; arrays, floats and None are not blobs
                raise errors.NotFoundError(f"blob {key!r} is not an image")
        except errors.NotFoundError as err:
            return _text(request, f"unknown blob: {err}", 404)
        except errors.InvalidArgumentError as err:
            return _text(request, f"bad blob key: {err}", 400)
        except (ValueError, TypeError, IndexError, KeyError, UnicodeError, RecursionError) as err:
            # the Python data provider raises these for keys it cannot decode
            return _text(request, f"bad blob key: {type(err).__name__}", 400)
        return http_util.Respond(request, data, image_mime_type(data), expires=3600)

    @wrappers.Request.application
    def _serve_index_js(self, request):
        return self._static_response(request, "index.js")

    @wrappers.Request.application
    def _serve_static(self, request):
        path = urllib.parse.unquote(request.path)
        marker = "/static/"
        name = path[path.rfind(marker) + len(marker):] if marker in path else ""
        return self._static_response(request, name)

    def _static_response(self, request, name):
        # Only plain file names of known types that exist in static/: no '/', '..', or hidden files.
        if not _STATIC_NAME.match(name or "") or ".." in name:
            return _text(request, "not found", 404)
        path = os.path.join(STATIC_DIR, name)
        if os.path.dirname(os.path.realpath(path)) != os.path.realpath(STATIC_DIR) or not os.path.isfile(path):
            return _text(request, "not found", 404)
        with open(path, "rb") as f:
            body = f.read()
        ext = os.path.splitext(name)[1]
        mime = _STATIC_TYPES.get(ext) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        if mime.startswith("text/") or mime == "application/json":
            mime += "; charset=utf-8"
        return http_util.Respond(request, body, mime)


class ConvVizPluginLoader(base_plugin.TBLoader):
    """Entry point ``tensorboard_plugins: convviz``; loads without TensorFlow."""

    def load(self, context):
        return ConvVizPlugin(context)

