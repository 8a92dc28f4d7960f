"""One process of the test cluster in test_distributed.py (not a test module itself).

argv: repo root, model file, data folder, output json. TF_CONFIG names the
cluster (MultiWorkerMirroredStrategy) or is absent (MirroredStrategy over two
logical CPUs when argv[5] == "mirrored"). Each case is also mined without a
strategy in the same process (same kernels: the test runs these with oneDNN on,
the setting under which an empty replica batch used to crash).
"""

import glob
import json
import os
import sys

import numpy as np
import tensorflow as tf

root, model_file, data_dir, out = sys.argv[1:5]
mode = sys.argv[5] if len(sys.argv) > 5 else "multiworker"
if mode == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
else:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
sys.path.insert(0, root)
import keras  # noqa: E402

from keras_convviz.methods.topk import numbered_records, top_activations  # noqa: E402

with strategy.scope():
    model = keras.models.load_model(model_file, compile=False)
images = np.load(os.path.join(data_dir, "images.npy"))
layer = "conv"


def with_policy(ds, policy):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy
    return ds.with_options(options)


def table(result):
    return {"values": result.values.tolist(), "ids": result.image_ids.tolist(),
            "positions": result.positions.tolist(), "count": result.count}


policies = tf.data.experimental.AutoShardPolicy
results = {}
if mode == "callback":  # worker-specific weights: left alone, each would follow other maps
    from keras_convviz.callbacks import ConvVizCallback

    resolver = strategy.cluster_resolver
    with strategy.scope():
        keras.utils.set_random_seed(100 + resolver.task_id)
        net = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(8, 3, activation="relu", name="c"),
                                keras.layers.GlobalMaxPooling2D(), keras.layers.Dense(3)])
        kernel = net.get_layer("c").kernel  # MWMS syncs initial values: make the workers drift apart
        kernel.assign(np.random.default_rng(resolver.task_id).normal(size=kernel.shape).astype(np.float32))
        cb = ConvVizCallback(os.path.join(data_dir, "logs"), images[:3], methods=["deconv"], layers=["c"], maps=3)
        cb.set_model(net)
        cb.on_train_begin()
        cb.on_epoch_end(0)
        scratch = getattr(cb, "_scratch", None)  # the non-chief's own folder, deleted at the end
        cb.on_train_end()
        own = ConvVizCallback(os.path.join(data_dir, "unused"), images[:3], methods=["deconv"], layers=["c"], maps=3)
    own.set_model(net)
    own.configure()
    results = {"task": resolver.task_id, "followed": cb.fixed_maps("c"), "own": own.fixed_maps("c"),
               "scratch": scratch, "scratch_left": bool(scratch) and os.path.exists(scratch)}
elif mode == "mirrored":
    results["mirrored_9_8"] = table(top_activations(model, images[:9], layer, k=3, batch_size=8, strategy=strategy))
    results["single_9_8"] = table(top_activations(model, images[:9], layer, k=3, batch_size=8))
else:
    data = with_policy(tf.data.Dataset.from_tensor_slices(images), policies.DATA)
    results["data_2001_80"] = table(top_activations(model, data, layer, k=5, batch_size=80, strategy=strategy))
    results["single_2001_80"] = table(top_activations(model, images, layer, k=5, batch_size=80))
    files = sorted(glob.glob(os.path.join(data_dir, "part-*.tfrecord")))
    shape = images.shape[1:]
    parse = lambda rec: tf.ensure_shape(tf.io.parse_tensor(rec, tf.float32), shape)  # noqa: E731
    by_file = with_policy(numbered_records(files, parse), policies.FILE)
    results["file_7"] = table(top_activations(model, by_file, layer, k=5, batch_size=7, strategy=strategy))
    results["single_file_7"] = table(top_activations(model, numbered_records(files, parse), layer, k=5, batch_size=7))
    off = with_policy(tf.data.Dataset.from_tensor_slices(images[:50]), policies.OFF)
    try:
        top_activations(model, off, layer, k=5, batch_size=8, strategy=strategy)
        results["off"] = "no error"
    except ValueError as err:
        results["off"] = str(err)
    resolver = strategy.cluster_resolver
    results["task"] = resolver.task_id
with open(out, "w") as f:
    json.dump(results, f)
