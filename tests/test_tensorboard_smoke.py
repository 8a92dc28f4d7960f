"""A real ``tensorboard`` process (Rust and Python data servers) serves the ConvViz plugin."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tb_helpers import (CLASS_NAMES, STEPS, WALK_LAYERS, get, predictions, tensorboard,  # noqa: E402
                        unit_position, write_logdir)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    return write_logdir(tmp_path_factory.mktemp("tb_smoke"))


@pytest.mark.slow
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

        # the walk and step documents (/run) through either data server, as tb_helpers wrote them
        status, _, body = get(base + "/data/plugin/convviz/run?run=demo/convviz")
        assert status == 200, body[:300]
        docs = json.loads(body)
        assert docs["run"] == "demo/convviz" and docs["walk"]["class_names"] == CLASS_NAMES
        assert [layer["name"] for layer in docs["walk"]["layers"]] == [layer["name"] for layer in WALK_LAYERS]
        assert docs["walk"]["layers"][3]["rf_stride"] == WALK_LAYERS[3]["rf_stride"]
        assert sorted(docs["steps"], key=int) == [str(s) for s in range(STEPS)]
        for step in range(STEPS):
            doc = docs["steps"][str(step)]
            assert doc["predictions"] == [[list(p) for p in probe] for probe in predictions(step)]
            assert doc["units"]["block3_conv2"]["3"][0] == list(unit_position(step, 0, 3))
        assert get(base + "/data/plugin/convviz/run")[0] == 400
        assert get(base + "/data/plugin/convviz/run?run=nope")[0] == 404

        assert get(base + "/data/plugin/convviz/series?run=demo/convviz")[0] == 400
        assert get(base + "/data/plugin/convviz/series?run=nope&tag=x")[0] == 404
        assert get(base + "/data/plugin/convviz/blob?key=bm9wZQ")[0] in (400, 404)
        assert get(base + "/data/plugin/convviz/static/..%2f..%2fplugin.py")[0] == 404


@pytest.mark.slow
@pytest.mark.parametrize("load_fast", [True, False], ids=["load_fast=true", "load_fast=false"])
def test_sampled_steps_keep_their_documents(tmp_path, load_fast):
    """Downsampled at load time, every kept picture step still has its step document (and the run its walk).

    Each data server samples every tag on its own (a reservoir per tag); the cards look up predictions,
    units and value ranges by step in the ``/run`` documents, so the two must keep the same steps.
    """
    logged = 12
    write_logdir(tmp_path, run="long", steps=logged)
    with tensorboard(tmp_path, load_fast, extra=["--samples_per_plugin", "convviz=5"]) as base:
        status, _, body = get(base + "/data/plugin/convviz/run?run=long/convviz")
        assert status == 200
        docs = json.loads(body)
        kept = sorted(int(s) for s in docs["steps"])
        assert len(kept) == 5 and kept[-1] == logged - 1 and docs["walk"]["class_names"] == CLASS_NAMES
        for step in kept:
            assert docs["steps"][str(step)]["predictions"] == [[list(p) for p in probe] for probe in predictions(step)]
        for tag in ("gradcam/block3_conv2/heatmap", "deconv/block3_conv2/map0007", "featurevis/block3_conv2/map0003"):
            status, _, body = get(base + "/data/plugin/convviz/series?run=long/convviz&tag=" + tag)
            assert status == 200 and [s["step"] for s in json.loads(body)["steps"]] == kept, tag
