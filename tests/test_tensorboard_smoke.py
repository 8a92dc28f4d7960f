"""A real ``tensorboard`` process (Rust and Python data servers) serves the ConvViz plugin."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tb_helpers import STEPS, get, tensorboard, write_logdir  # noqa: E402


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    return write_logdir(tmp_path_factory.mktemp("tb_smoke"))


@pytest.mark.parametrize("load_fast", [True, False], ids=["load_fast=true", "load_fast=false"])
def test_tensorboard_serves_convviz(logdir, load_fast):
    with tensorboard(logdir, load_fast, extra=["--samples_per_plugin", "convviz=0"]) as base:
        status, _, body = get(base + "/data/plugins_listing")
        assert status == 200
        entry = json.loads(body)["convviz"]
        assert entry["enabled"] is True and entry["tab_name"] == "ConvViz"
        module_path = entry["loading_mechanism"]["module_path"]
        assert module_path == "/data/plugin/convviz/index.js"

        status, headers, body = get(base + module_path)
        assert status == 200 and b"export async function render" in body
        assert headers["Content-Type"].startswith("text/javascript")

        status, _, body = get(base + "/data/plugin/convviz/tags")
        tags = json.loads(body)["runs"]
        assert status == 200 and set(tags) == {"demo/convviz"}
        assert tags["demo/convviz"]["gradcam/block3_conv2/heatmap"]["kind"] == "heatmap"
        assert tags["demo/convviz"]["deconv/block3_conv2/map0007"]["map"] == 7

        status, _, body = get(base + "/data/plugin/convviz/series?run=demo/convviz&tag=gradcam/block3_conv2/heatmap")
        series = json.loads(body)
        assert status == 200 and [s["step"] for s in series["steps"]] == list(range(STEPS))
        status, headers, png = get(base + "/data/plugin/convviz/" + series["steps"][-1]["blobs"][0])
        assert status == 200 and headers["Content-Type"] == "image/png" and png.startswith(b"\x89PNG")

        assert get(base + "/data/plugin/convviz/series?run=demo/convviz")[0] == 400
        assert get(base + "/data/plugin/convviz/series?run=nope&tag=x")[0] == 404
        assert get(base + "/data/plugin/convviz/blob?key=bm9wZQ")[0] in (400, 404)
        assert get(base + "/data/plugin/convviz/static/..%2f..%2fplugin.py")[0] == 404
