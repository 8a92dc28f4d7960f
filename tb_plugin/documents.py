"""The run's JSON documents for the dashboard: the model walk and every step's facts.

``run_documents`` reads the ``WALK_TAG`` and ``STEP_TAG`` blob sequences of one
run through TensorBoard's data provider (so the Rust and the Python data
servers both work) and returns ``{"run", "walk": doc | None, "steps": {step:
doc}}``. Runs written before content version 2 have neither tag: ``walk`` is
None and ``steps`` empty, and the dashboard shows what it can without them.
Imports no TensorFlow.
"""

from __future__ import annotations

from tensorboard import errors
from tensorboard.data import provider

from . import metadata

__all__ = ["run_documents"]


def _read(data_provider, ctx, datum):
    """The parsed document of one step's blob sequence (None when unreadable)."""
    if not datum.values:
        return None
    try:
        return metadata.parse_document(data_provider.read_blob(ctx, blob_key=datum.values[0].blob_key))
    except (ValueError, errors.NotFoundError, errors.InvalidArgumentError):
        return None


def run_documents(data_provider, ctx, experiment, run, downsample, plugin_name=metadata.PLUGIN_NAME) -> dict:
    """``{"run", "walk", "steps"}`` of ``run``; ``NotFoundError`` when the run has no ConvViz data."""
    listing = data_provider.list_blob_sequences(
        ctx, experiment_id=experiment, plugin_name=plugin_name,
        run_tag_filter=provider.RunTagFilter(runs=[run])) or {}
    if run not in listing:
        raise errors.NotFoundError(f"no ConvViz data for run {run!r}")
    tags = [t for t in (metadata.WALK_TAG, metadata.STEP_TAG) if t in listing[run]]
    result = {"run": run, "walk": None, "steps": {}}
    if not tags:
        return result
    data = data_provider.read_blob_sequences(
        ctx, experiment_id=experiment, plugin_name=plugin_name, downsample=downsample,
        run_tag_filter=provider.RunTagFilter(runs=[run], tags=tags)) or {}
    walks = data.get(run, {}).get(metadata.WALK_TAG, [])
    if walks:
        result["walk"] = _read(data_provider, ctx, walks[-1])
    for datum in data.get(run, {}).get(metadata.STEP_TAG, []):
        doc = _read(data_provider, ctx, datum)
        if doc is not None:
            result["steps"][str(int(datum.step))] = doc
    return result
