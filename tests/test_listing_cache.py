"""/tags answered from its last listing until the Python loader's data changes (issue 28)."""

from __future__ import annotations

import json

import numpy as np

from tb_plugin import metadata as md


def _write(logdir, run, steps, tags=("map0000",)):
    from keras_convviz import summary

    img = np.zeros((4, 4, 3), np.uint8)
    with summary.Writer(str(logdir / run)) as w:
        for step in steps:
            for tag in tags:
                w.images("deconv", "conv", tag, [img], step, "projection", map=int(tag[3:]))


def _serve(logdir):
    from tb_helpers import python_loader_app

    return python_loader_app(logdir)


def _runs(client):
    r = client.get("/data/plugin/convviz/tags")
    assert r.status_code == 200
    return json.loads(r.get_data(as_text=True))["runs"]


def test_listing_is_reused_until_new_events_then_fresh(tmp_path, monkeypatch):
    _write(tmp_path, "a", [0, 1])
    client, plugin, mux = _serve(tmp_path)
    calls = []
    real = plugin.tags
    monkeypatch.setattr(plugin, "tags", lambda *a: calls.append(1) or real(*a))
    first = _runs(client)
    assert first["a"]["deconv/conv/map0000"]["max_step"] == 1
    assert _runs(client) == first and len(calls) == 1  # nothing new: the last listing
    _write(tmp_path, "a", [2], tags=("map0000", "map0003"))  # a new step and a new tag
    assert _runs(client) == first  # not reloaded yet: the loader has not read it
    mux.AddRunsFromDirectory(str(tmp_path))
    mux.Reload()
    after = _runs(client)
    assert len(calls) == 2 and after["a"]["deconv/conv/map0000"]["max_step"] == 2
    assert after["a"]["deconv/conv/map0003"]["max_step"] == 2
    _write(tmp_path, "b", [0])  # a new run
    mux.AddRunsFromDirectory(str(tmp_path))
    mux.Reload()
    assert set(_runs(client)) == {"a", "b"} and len(calls) == 3


def test_without_a_multiplexer_every_request_lists(tmp_path):
    from tb_plugin.plugin import ConvVizPlugin

    class Context:
        data_provider = None
        sampling_hints = {}

    plugin = ConvVizPlugin(Context())
    assert plugin.listing_key("") is None


def test_multiplexer_listing_equals_the_data_providers(tmp_path):
    import tensorflow as tf

    from keras_convviz import summary
    from tb_plugin.plugin import ConvVizPlugin

    _write(tmp_path, "a", [0, 1, 5, 3], tags=("map0000", "map0002"))
    _write(tmp_path, "b", [7])
    with tf.summary.create_file_writer(str(tmp_path / "b")).as_default():  # foreign and broken content
        meta = summary.summary_metadata(md.make_content("x", "y", "z", "heatmap"))
        meta.plugin_data.content = b"{not json"
        tf.summary.write("broken/tag/x", tf.constant([b"x"]), step=0, metadata=meta)
        tf.summary.image("stock/image", np.zeros((1, 4, 4, 3), np.float32), step=0)
    _, plugin, mux = _serve(tmp_path)

    class Context:
        data_provider = plugin._data_provider
        sampling_hints = {}

    from tensorboard import context as tb_context

    fast = plugin.tags(tb_context.RequestContext(), "")
    slow = ConvVizPlugin(Context()).tags(tb_context.RequestContext(), "")
    assert fast == plugin.multiplexer_tags() == slow
    assert set(fast["a"]) == {"deconv/conv/map0000", "deconv/conv/map0002"} and "broken/tag/x" not in fast["b"]
