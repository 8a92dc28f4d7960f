"""Every route of the dashboard plugin over a real logdir, through TensorBoard's WSGI app.

The logdir holds event files written by keras_convviz.summary (two runs), a
tag with convviz plugin data but malformed content, and a stock image summary,
read back through TensorBoard's Python data provider.
"""

import json

import numpy as np
import pytest
from werkzeug.test import Client

from tb_plugin import metadata as md

N_STEPS = 4


def _write_logdir(root):
    import tensorflow as tf

    from keras_convviz import summary

    rng = np.random.default_rng(0)
    with summary.Writer(str(root / "exp" / "convviz")) as w:
        probe = rng.integers(0, 255, (2, 16, 16, 3), dtype=np.uint8)
        w.images(*md.split_tag(md.INPUT_TAG), probe, 0, "input", labels=["probe 0", "probe 1"])
        for step in range(N_STEPS):
            w.images("saliency", "predictions", "heatmap", np.full((2, 16, 16, 3), step * 40, np.uint8), step,
                     "heatmap", params={"target": "predicted"})
            w.images("deconv", "block1_conv2", "map0003", rng.integers(0, 255, (2, 16, 16, 3), dtype=np.uint8),
                     step, "projection", map=3)
        w.images("topk", "block1_conv2", "map0003", rng.integers(0, 255, (9, 5, 5, 3), dtype=np.uint8), 3,
                 "patches", map=3, params={"k": 9})
    with summary.Writer(str(root / "other" / "convviz")) as w:
        w.images("gradcam", "conv", "heatmap", np.zeros((1, 8, 8, 3), np.uint8), 0, "heatmap")
    # Other writers: convviz plugin data with malformed content, and a stock image summary.
    with tf.summary.create_file_writer(str(root / "exp" / "convviz")).as_default():
        for content in (b"{not json", b'{"version": 1, "kind": "heatmap", "method": 5}', b"\xff"):
            meta = summary.summary_metadata(md.make_content("x", "y", "z", "heatmap"))
            meta.plugin_data.content = content
            tf.summary.write(f"broken/{len(content)}/tag", tf.constant([b"x"]), step=0, metadata=meta)
        tf.summary.image("stock/image", np.zeros((1, 4, 4, 3), np.float32), step=0)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("logs")
    _write_logdir(root)
    return root


def _client(logdir, hints=None):
    from tensorboard.backend import application
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin

    from tb_plugin.plugin import ConvVizPluginLoader

    multiplexer = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={md.PLUGIN_NAME: 0})
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    context = base_plugin.TBContext(logdir=str(logdir), data_provider=provider, multiplexer=multiplexer,
                                    sampling_hints=hints or {})
    plugin = ConvVizPluginLoader().load(context)
    app = application.TensorBoardWSGI([plugin], data_provider=provider)
    return Client(app), plugin


@pytest.fixture(scope="module")
def client(logdir):
    return _client(logdir)[0]


BASE = "/data/plugin/convviz"


def _get_json(client, url, code=200):
    r = client.get(url)
    assert r.status_code == code, (url, r.status_code, r.get_data(as_text=True))
    return json.loads(r.get_data(as_text=True))


def test_frontend_metadata_and_listing(client):
    listing = _get_json(client, "/data/plugins_listing")
    entry = listing["convviz"]
    assert entry["enabled"] is True
    assert entry["tab_name"] == "ConvViz"
    assert entry["loading_mechanism"] == {"type": "IFRAME", "module_path": f"{BASE}/index.js"}
    page = client.get("/data/plugin_entry.html?name=convviz")
    assert page.status_code == 200 and b"./index.js" in page.data


def test_static_files(client):
    js = client.get(f"{BASE}/index.js")
    assert js.status_code == 200
    assert js.headers["Content-Type"].startswith("text/javascript")
    assert b"export async function render" in js.data
    assert b"http://" not in js.data and b"https://" not in js.data  # nothing from a CDN
    for name in ("card.js", "common.js"):  # the modules index.js imports
        module = client.get(f"{BASE}/static/{name}")
        assert module.status_code == 200 and module.headers["Content-Type"].startswith("text/javascript")
        assert b"http://" not in module.data and b"https://" not in module.data
    css = client.get(f"{BASE}/static/style.css")
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    for bad in ("../plugin.py", "..%2Fplugin.py", "%2e%2e/metadata.py", "..%252fplugin.py", "nope.js",
                ".hidden.js", "style.css/../../plugin.py", "plugin.py", "sub/dir.js", "index.js%00.css"):
        r = client.get(f"{BASE}/static/{bad}")
        assert r.status_code == 404, (bad, r.status_code)
        assert b"import" not in r.data


def test_tags(client):
    listing = _get_json(client, f"{BASE}/tags")
    # the names the dashboard needs come with the listing, from metadata.py
    assert {k: v for k, v in listing.items() if k != "runs"} == md.dashboard_schema()
    tags = listing["runs"]
    assert set(tags) == {"exp/convviz", "other/convviz"}
    exp = tags["exp/convviz"]
    assert set(exp) == {md.INPUT_TAG, "saliency/predictions/heatmap", "deconv/block1_conv2/map0003",
                        "topk/block1_conv2/map0003"}  # malformed and stock tags are left out
    # the listing is slim: what the dashboard filters, orders and refreshes cards by, nothing more
    sal = exp["saliency/predictions/heatmap"]
    assert sal == {"kind": "heatmap", "method": "saliency", "layer": "predictions", "map": None,
                   "max_step": N_STEPS - 1}
    assert exp["deconv/block1_conv2/map0003"] == {"kind": "projection", "method": "deconv", "layer": "block1_conv2",
                                                  "map": 3, "max_step": N_STEPS - 1}
    assert exp["topk/block1_conv2/map0003"]["max_step"] == 3
    # the rest of each content (params, labels, version) comes with the tag's series
    sal_series = _get_json(client, f"{BASE}/series?run=exp/convviz&tag=saliency/predictions/heatmap")
    assert sal_series["content"]["params"] == {"target": "predicted"}
    assert sal_series["content"]["version"] == md.CONTENT_VERSION
    assert max(len(s["blobs"]) for s in sal_series["steps"]) == 2
    topk = _get_json(client, f"{BASE}/series?run=exp/convviz&tag=topk/block1_conv2/map0003")
    assert topk["content"]["params"] == {"k": 9} and [len(s["blobs"]) for s in topk["steps"]] == [9]
    probe = _get_json(client, f"{BASE}/series?run=exp/convviz&tag={md.INPUT_TAG}")
    assert probe["content"]["labels"] == ["probe 0", "probe 1"]


def test_series_and_blobs(client):
    data = _get_json(client, f"{BASE}/series?run=exp/convviz&tag=saliency/predictions/heatmap")
    assert data["run"] == "exp/convviz" and data["content"]["kind"] == "heatmap"
    assert [s["step"] for s in data["steps"]] == list(range(N_STEPS))
    for s in data["steps"]:
        assert len(s["blobs"]) == 2 and s["wall_time"] > 0
        r = client.get(f"{BASE}/{s['blobs'][1]}")
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "image/png"
        from PIL import Image
        import io

        img = np.asarray(Image.open(io.BytesIO(r.data)))
        assert img.shape == (16, 16, 3) and int(img[0, 0, 0]) == s["step"] * 40


def test_bad_and_unknown_params(client):
    for url in (f"{BASE}/series", f"{BASE}/series?run=exp/convviz", f"{BASE}/series?tag=x",
                f"{BASE}/series?run=&tag=saliency/predictions/heatmap",
                f"{BASE}/series?run=a&run=b&tag=x", f"{BASE}/blob", f"{BASE}/blob?key=",
                f"{BASE}/blob?key=" + "A" * 5000, f"{BASE}/blob?key=%25%25%25"):
        r = client.get(url)
        assert r.status_code == 400, (url, r.status_code, r.data[:200])
    for url in (f"{BASE}/series?run=nope&tag=saliency/predictions/heatmap",
                f"{BASE}/series?run=exp/convviz&tag=nope/nope/nope",
                f"{BASE}/series?run=exp/convviz&tag=broken/9/tag",  # malformed content: not ours to show
                f"{BASE}/series?run=exp/convviz&tag=stock/image", f"{BASE}/nope"):
        r = client.get(url)
        assert r.status_code == 404, (url, r.status_code, r.data[:200])


def test_unknown_blob_key_is_404(client):
    data = _get_json(client, f"{BASE}/series?run=other/convviz&tag=gradcam/conv/heatmap")
    key = data["steps"][0]["blobs"][0].split("key=", 1)[1]
    import base64

    raw = json.loads(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)))
    raw[4] = 99  # a step that does not exist
    missing = base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")
    r = client.get(f"{BASE}/blob?key={missing}")
    assert r.status_code == 404, r.data


def test_sampling_hints(logdir):
    client, plugin = _client(logdir, hints={"convviz": 2})
    data = _get_json(client, f"{BASE}/series?run=exp/convviz&tag=deconv/block1_conv2/map0003")
    steps = [s["step"] for s in data["steps"]]
    assert len(steps) == 2 and steps[-1] == N_STEPS - 1
    client, _ = _client(logdir, hints={"convviz": 0})  # 0: every step
    data = _get_json(client, f"{BASE}/series?run=exp/convviz&tag=deconv/block1_conv2/map0003")
    assert len(data["steps"]) == N_STEPS


def test_empty_logdir(tmp_path):
    client, _ = _client(tmp_path)
    assert _get_json(client, f"{BASE}/tags")["runs"] == {}
    assert _get_json(client, "/data/plugins_listing")["convviz"]["enabled"] is False
