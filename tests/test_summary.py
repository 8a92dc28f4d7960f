"""Summaries: blob sequences of PNGs with the convviz plugin metadata, read back from the event files."""

import glob
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tb_plugin import metadata as md


def _events(logdir):
    import tensorflow as tf

    out = []
    for path in sorted(glob.glob(os.path.join(logdir, "**", "*tfevents*"), recursive=True)):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                out.append((event.step, value))
    return out


def test_metadata_loads_without_tensorflow():
    code = ("import sys; import tb_plugin.metadata, tb_plugin.plugin; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout


def test_content_roundtrip_and_validation():
    content = md.make_content("deconv", "block3_conv2", "map0012", "projection", map=12,
                              params={"activations": 1}, labels=["probe 0"])
    parsed = md.parse_content(md.encode_content(content))
    assert parsed == content
    assert md.make_tag("deconv", "block3/conv 2", "map12") == "deconv/block3_conv_2/map12"
    assert md.split_tag("a/b/c") == ("a", "b", "c")
    assert md.split_tag("loss") == ("loss", "", "")
    with pytest.raises(ValueError, match="kind"):
        md.make_content("x", "y", "z", "nonsense")
    with pytest.raises(ValueError, match="JSON"):
        md.make_content("x", "y", "z", "heatmap", params={"f": object()})
    for bad in (b"", b"\xff\xfe", b"[1, 2]", b'{"version": 99, "kind": "heatmap"}',
                b'{"version": 1, "kind": "sound"}', b'{"version": 1, "kind": "heatmap", "method": 3}'):
        with pytest.raises(ValueError):
            md.parse_content(bad)
    # tolerant of odd optional fields from other writers
    odd = md.parse_content(b'{"version": 1, "kind": "heatmap", "map": "x", "params": [1]}')
    assert odd["map"] is None and odd["params"] == {} and odd["method"] == ""


def test_writer_blob_sequences_read_back(tmp_path):
    from tensorboard.compat.proto import summary_pb2

    from keras_convviz import summary

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (3, 8, 10, 3), dtype=np.uint8)
    with summary.Writer(str(tmp_path)) as w:
        for step in (0, 1):
            tag = w.images("saliency", "predictions", "heatmap", images, step, "heatmap",
                           params={"target": "predicted"}, labels=["a", "b", "c"])
        w.images("deconv", "conv", "map0001", [images[0, :, :, 0]], 1, "projection", map=1)
    assert tag == "saliency/predictions/heatmap"
    values = _events(str(tmp_path))
    sal = [(s, v) for s, v in values if v.tag == tag]
    assert [s for s, _ in sal] == [0, 1]
    for _, v in sal:
        meta = v.metadata
        assert meta.plugin_data.plugin_name == md.PLUGIN_NAME == "convviz"
        assert meta.data_class == summary_pb2.DATA_CLASS_BLOB_SEQUENCE
        content = json.loads(meta.plugin_data.content)
        assert content == md.make_content("saliency", "predictions", "heatmap", "heatmap",
                                          params={"target": "predicted"}, labels=["a", "b", "c"])
        assert [d.size for d in v.tensor.tensor_shape.dim] == [3]
        assert v.tensor.dtype == 7  # DT_STRING
        decoded = [np.asarray(Image.open(io.BytesIO(b))) for b in v.tensor.string_val]
        assert all(b.startswith(b"\x89PNG") for b in v.tensor.string_val)
        np.testing.assert_array_equal(np.stack(decoded), images)
    gray = [v for _, v in values if v.tag == "deconv/conv/map0001"][0]
    assert json.loads(gray.metadata.plugin_data.content)["map"] == 1
    assert np.asarray(Image.open(io.BytesIO(gray.tensor.string_val[0]))).shape == (8, 10)


def test_content_is_fixed_per_tag(tmp_path):
    from keras_convviz import summary

    img = np.zeros((4, 4, 3), np.uint8)
    with summary.Writer(str(tmp_path)) as w:
        w.images("gradcam", "conv", "heatmap", [img], 0, "heatmap", params={"a": 1})
        w.images("gradcam", "conv", "heatmap", [img], 1, "heatmap", params={"a": 1})
        with pytest.raises(ValueError, match="fixed"):
            w.images("gradcam", "conv", "heatmap", [img], 2, "heatmap", params={"a": 2})
        with pytest.raises(ValueError, match="PNG"):
            w.images("gradcam", "conv", "other", [b"not a png"], 0, "heatmap")
        with pytest.raises(ValueError, match="no images"):
            w.images("gradcam", "conv", "other", [], 0, "heatmap")


def test_write_images_with_default_writer(tmp_path):
    import tensorflow as tf

    from keras_convviz import summary

    content = md.make_content("guided", "predictions", "image", "projection")
    with tf.summary.create_file_writer(str(tmp_path)).as_default():
        assert summary.write_images("guided/predictions/image", [np.ones((5, 5, 3))], 7, content)
    (step, value), = _events(str(tmp_path))
    assert step == 7 and value.metadata.plugin_data.plugin_name == "convviz"
    assert np.asarray(Image.open(io.BytesIO(value.tensor.string_val[0]))).max() == 255
