"""What the dashboard reads besides pictures (issue 12), checked against independent references.

* the schema (tb_plugin/metadata.py, version 2): scales, walk and step documents;
* the ``/run`` route over a real logdir, next to a run written the version-1 way;
* the callback's documents after a real ``model.fit``: the walk against the
  receptive-field definitions recomputed here by hand, the predictions against
  ``model.predict``, the followed units against the argmax of the layer's
  activations from a plain ``keras.Model``, and the value ranges against the
  maps' own minimum and maximum.
"""

import json
import os
import sys

import numpy as np
import pytest

from tb_plugin import metadata as md

sys.path.insert(0, os.path.dirname(__file__))
from tb_helpers import CLASS_NAMES, STEPS, WALK_LAYERS, predictions, unit_position, write_logdir, \
    write_old_logdir  # noqa: E402
from test_plugin import BASE, _client, _get_json  # noqa: E402


def test_schema_documents_and_scales():
    walk = md.make_walk(WALK_LAYERS, (32, 32), CLASS_NAMES)
    assert walk["version"] == md.CONTENT_VERSION == 2 and walk["class_names"] == CLASS_NAMES
    assert [layer["name"] for layer in walk["layers"]] == [layer["name"] for layer in WALK_LAYERS]
    assert "rf_size" not in walk["layers"][-1]  # the Dense layer has no field
    with pytest.raises(ValueError, match="height, width"):
        md.make_walk([{"name": "c", "rf_size": [3], "rf_stride": [1, 1], "rf_padding": [1, 1]}], (8, 8))
    doc = md.make_step_info([[(1, 0.75)]], [1], {"c": {3: [(1, 2, 0.5)]}}, {"t": np.array([[0.0, 1.0]])})
    assert doc["units"] == {"c": {"3": [[1, 2, 0.5]]}} and doc["ranges"] == {"t": [[0.0, 1.0]]}
    assert md.parse_document(md.encode_content(doc)) == doc
    for bad in (b"\xff", b"[1]", b'{"no": "version"}'):
        with pytest.raises(ValueError):
            md.parse_document(bad)
    with pytest.raises(ValueError, match="colormap"):
        md.make_scale("jet", "min-max")
    content = md.make_content("saliency", "predictions", "heatmap", "heatmap",
                              scale=md.make_scale("inferno", "min-max per image", "|gradient|"))
    assert md.parse_content(md.encode_content(content))["scale"]["colormap"] == "inferno"
    old = dict(content, version=1)
    del old["scale"]
    assert md.parse_content(md.encode_content(old))["version"] == 1  # version-1 content still reads
    schema = md.dashboard_schema()
    assert schema["colormaps"]["diverging"][len(md.COLORMAPS["diverging"]) // 2] == [247, 247, 247]  # 0 is white
    assert set(schema["overlay_kinds"]) >= {"heatmap", "projection"} and "walk" in schema["json_kinds"]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs_logs")
    write_logdir(root)
    write_old_logdir(root)
    return _client(root)[0]


def test_run_route_and_old_runs(client):
    docs = _get_json(client, f"{BASE}/run?run=demo/convviz")
    assert docs["walk"]["class_names"] == CLASS_NAMES
    assert docs["walk"]["layers"][3]["rf_size"] == WALK_LAYERS[3]["rf_size"]
    assert sorted(docs["steps"], key=int) == [str(s) for s in range(STEPS)]
    last = docs["steps"][str(STEPS - 1)]
    assert last["predictions"] == [[list(p) for p in probe] for probe in predictions(STEPS - 1)]
    assert last["units"]["block3_conv2"]["7"][1] == list(unit_position(STEPS - 1, 1, 7))
    tags = _get_json(client, f"{BASE}/tags")["runs"]
    assert tags["demo/convviz"][md.WALK_TAG]["kind"] == "walk"
    ig = _get_json(client, f"{BASE}/series?run=demo/convviz&tag=ig/predictions/heatmap")["content"]
    assert ig["scale"]["colormap"] == "diverging"  # the scale comes with the series (the listing is slim)
    # a run written before schema 2: its tags list and its series load, it has no documents
    assert tags["old/convviz"]["saliency/predictions/heatmap"]["kind"] == "heatmap"
    old = _get_json(client, f"{BASE}/series?run=old/convviz&tag=saliency/predictions/heatmap")
    assert old["content"]["version"] == 1 and "scale" not in old["content"]
    assert len(old["steps"]) == 2
    assert _get_json(client, f"{BASE}/run?run=old/convviz") == {"run": "old/convviz", "walk": None, "steps": {}}
    assert client.get(f"{BASE}/run").status_code == 400
    assert client.get(f"{BASE}/run?run=nope").status_code == 404


def _documents(run_dir):
    import tensorflow as tf

    out = {}
    for name in sorted(os.listdir(run_dir)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(run_dir, name)):
            for value in event.summary.value:
                if value.tag in (md.WALK_TAG, md.STEP_TAG):
                    out.setdefault(value.tag, {})[event.step] = json.loads(tf.make_ndarray(value.tensor)[0])
    return out


def _field(model, name):
    """Receptive field of a Sequential-like chain by the textbook recurrence (Araujo et al. 2019)."""
    size, jump, pad, h = 1, 1, 0, model.input_shape[1]
    for layer in model.layers:
        k = getattr(layer, "kernel_size", getattr(layer, "pool_size", None))
        if k is not None:
            s = layer.strides[0]
            out = -(-h // s) if layer.padding == "same" else (h - k[0]) // s + 1
            p = max((out - 1) * s + k[0] - h, 0) // 2 if layer.padding == "same" else 0
            size, pad, jump, h = size + (k[0] - 1) * jump, pad + p * jump, jump * s, out
        if layer.name == name:
            return size, jump, pad


@pytest.mark.slow
def test_callback_documents_match_references(tmp_path):
    import keras

    from keras_convviz import ConvVizCallback, demo

    keras.utils.set_random_seed(0)
    model = demo.build_model()
    x, y, _ = demo.shapes(64, seed=0)
    probe = x[:3]
    cb = ConvVizCallback(tmp_path, probe, methods={"deconv": {}, "integrated": {"steps": 4}}, maps=2,
                         layers={"deconv": ["block2_conv2"]}, class_names=demo.CLASS_NAMES)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[cb])
    assert not cb.failed, cb.failed
    docs = _documents(tmp_path / "convviz")
    walk = docs[md.WALK_TAG][0]
    assert walk["class_names"] == list(demo.CLASS_NAMES) and walk["input_size"] == [64, 64]
    assert [entry["name"] for entry in walk["layers"]] == [layer.name for layer in model.layers
                                                                 if not isinstance(layer, keras.layers.InputLayer)]
    for entry in walk["layers"]:
        if "rf_size" in entry:
            size, stride, pad = _field(model, entry["name"])
            assert (entry["rf_size"], entry["rf_stride"], entry["rf_padding"]) == ([size] * 2, [stride] * 2,
                                                                                   [pad] * 2), entry
    last = docs[md.STEP_TAG][1]  # the documents of the last step describe the final weights
    probs = model.predict(probe, verbose=0)
    for row, p in zip(last["predictions"], probs):
        assert [c for c, _ in row] == list(np.argsort(-p, kind="stable"))
        assert [q for _, q in row] == pytest.approx(np.sort(p)[::-1], abs=1e-5)
    assert last["explained"] == list(probs.argmax(1))
    acts = keras.Model(model.inputs, model.get_layer("block2_conv2").output).predict(probe, verbose=0)
    for m, rows in last["units"]["block2_conv2"].items():
        for i, (yy, xx, a) in enumerate(rows):
            peak = np.unravel_index(acts[i, ..., int(m)].argmax(), acts.shape[1:3])
            assert (yy, xx) == tuple(int(v) for v in peak) and a == pytest.approx(acts[i, yy, xx, int(m)], rel=1e-4)
    ig = last["ranges"]["ig/predictions/heatmap"]
    assert all(lo == -hi and hi > 0 for lo, hi in ig)  # signed: symmetric about zero
    projections = [t for t in last["ranges"] if t.startswith("deconv/block2_conv2/")]
    assert len(projections) == 2


def test_dashboard_modules_stay_small():
    """The dashboard's ES modules keep the layout rules: functions <= 60 lines, modules <= 400, no CDN."""
    import pathlib
    import re

    static = pathlib.Path(md.__file__).parent / "static"
    modules = sorted(static.glob("*.js"))
    assert len(modules) >= 8
    for path in modules:
        text = path.read_text()
        lines = text.splitlines()
        assert len(lines) <= 400, path.name
        assert "http://" not in text and "https://" not in text, path.name
        for i, line in enumerate(lines):
            if not re.match(r"\s*(export\s+)?(async\s+)?function\s", line):
                continue
            depth, opened, end = 0, False, i
            for end in range(i, len(lines)):
                depth += lines[end].count("{") - lines[end].count("}")
                opened = opened or "{" in lines[end]
                if opened and depth <= 0:
                    break
            assert end - i + 1 <= 60, f"{path.name}:{i + 1} {line.strip()} is {end - i + 1} lines"
