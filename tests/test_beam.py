"""keras_convviz.beam: the combiner against a brute-force sort, the pipeline on
Beam's DirectRunner in multi-process mode against in-process top_activations
(exact), TFRecord input, and resuming from partial tables."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

beam = pytest.importorskip("apache_beam", reason="apache-beam is in the test extra: pip install -e '.[test]'")

from keras_convviz import demo, media  # noqa: E402
from keras_convviz.beam import TopKCombineFn  # noqa: E402
from keras_convviz.beam.pipeline import parser, run  # noqa: E402
from keras_convviz.methods.topk import record_id, top_activations  # noqa: E402
from keras_convviz.presets import load  # noqa: E402


def _brute(values, ids, k):
    """Per map: the k best (value desc, id asc) by numpy's lexsort."""
    order = [np.lexsort((ids, -values[:, c]))[:k] for c in range(values.shape[1])]
    return np.stack([values[o, c] for c, o in enumerate(order)]), np.stack([ids[o] for o in order])


def test_combiner_any_split_any_order_equals_brute_force():
    rng = np.random.default_rng(0)
    n, channels, k = 40, 3, 5
    values = rng.integers(0, 4, (n, channels)).astype(np.float32)  # many ties
    ids = rng.permutation(1000)[:n].astype(np.int64)
    pos = rng.integers(0, 9, (n, channels, 2))
    want_values, want_ids = _brute(values, ids, k)
    combine = TopKCombineFn("layer", k)
    for trial in range(4):
        cuts = np.sort(rng.choice(np.arange(1, n), 5, replace=False))
        accumulators = []
        for part in np.split(rng.permutation(n), cuts):
            acc = combine.create_accumulator()
            for batch in np.array_split(part, 2):
                acc = combine.add_input(acc, (values[batch], ids[batch], pos[batch]))
            accumulators.append(acc)
        rng.shuffle(accumulators)
        table = combine.extract_output(combine.merge_accumulators(accumulators))
        np.testing.assert_array_equal(table.values, want_values)
        np.testing.assert_array_equal(table.image_ids, want_ids)
        rows = {int(i): r for r, i in enumerate(ids)}
        for c in range(channels):
            np.testing.assert_array_equal(table.positions[c], pos[[rows[int(i)] for i in table.image_ids[c]], c])
        assert table.count == n


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """11 demo images as PNGs; image 4 again under three more names (duplicates in the input)."""
    folder = tmp_path_factory.mktemp("photos")
    images, _, _ = demo.shapes(8, seed=7)
    rgb = [(img * 255).astype(np.uint8) for img in images] + [(images[4] * 255).astype(np.uint8)] * 3
    for i, img in enumerate(rgb):
        media.save_png(folder / f"im{i:02d}.png", img)
    preset = load("demo")
    prepared = preset.prepare([media.read_image(folder / f"im{i:02d}.png") for i in range(len(rgb))])
    return folder, preset, prepared


def _args(*argv):
    return parser().parse_known_args(list(argv))


def _assert_same(got, want):
    assert got.layer == want.layer and got.count == want.count
    np.testing.assert_array_equal(got.image_ids, want.image_ids)
    np.testing.assert_array_equal(got.positions, want.positions)
    np.testing.assert_array_equal(got.values, want.values)


@pytest.mark.slow
def test_multiprocess_pipeline_equals_in_process(photos, tmp_path):
    folder, preset, prepared = photos
    args, beam_args = _args("--input", str(folder / "*.png"), "--output", str(tmp_path), "--model", "demo",
                            "--layer", "block2_conv2", "--k", "4", "--batch-size", "3", "--shard-size", "4",
                            "--maps", "3", "--cell", "32", "--runner", "DirectRunner",
                            "--direct_num_workers=2", "--direct_running_mode=multi_processing")
    summary = run(args, beam_args)
    want = top_activations(preset.model, prepared, "block2_conv2", k=4, batch_size=32)
    # the oracle has ties to break (image 4 and its three copies)
    assert any(len(set(row)) < len(row) for row in want.values.tolist())
    _assert_same(summary["result"], want)
    assert summary["shards"] == 3 and len(summary["computed"]) == 3  # 4 + 4 + 3 files
    table = json.loads((tmp_path / "topk_block2_conv2.json").read_text())
    first = table["maps"]["0"][0]
    assert first["image_id"] == want.image_ids[0, 0] and first["value"] == float(want.values[0, 0])
    assert first["image"].endswith(f"im{int(want.image_ids[0, 0]):02d}.png") and table["images"] == 11
    png = media.read_image(tmp_path / "topk_block2_conv2.png")
    assert png.shape[0] >= 3 * 32 and png.shape[1] >= 8 * 32 and png.std() > 10


def _tfrecords(folder, count_per_file):
    """PNG-encoded demo images as tf.train.Example records in TFRecord files."""
    images, _, _ = demo.shapes(sum(count_per_file), seed=9)
    rgb = [(img * 255).astype(np.uint8) for img in images]
    start = 0
    for f, n in enumerate(count_per_file):
        with tf.io.TFRecordWriter(str(folder / f"data-{f}.tfrecord")) as w:
            for img in rgb[start:start + n]:
                feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[media.png_bytes(img)]))}
                w.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
        start += n
    return rgb


def test_tfrecords_and_resume_skips_finished_shards(tmp_path):
    sizes = [5, 3, 4]
    rgb = _tfrecords(tmp_path, sizes)
    out = tmp_path / "out"
    argv = ("--input", str(tmp_path / "data-*.tfrecord"), "--tfrecord", "--output", str(out), "--model", "demo",
            "--layer", "block1_pool", "--k", "3", "--batch-size", "4", "--maps", "2", "--cell", "24")
    first = run(*_args(*argv))
    preset = load("demo")
    want = top_activations(preset.model, preset.prepare(rgb), "block1_pool", k=3)
    ids = {record_id(f, r): sum(sizes[:f]) + r for f in range(3) for r in range(sizes[f])}
    np.testing.assert_array_equal(np.vectorize(ids.get)(first["result"].image_ids), want.image_ids)
    np.testing.assert_array_equal(first["result"].values, want.values)
    (partial_dir,) = out.glob("partial-*")
    partials = sorted(partial_dir.glob("shard-*.npz"))
    assert len(partials) == 3 and len(first["computed"]) == 3
    # after a "failure": shard 1 never finished (and left a stale temporary); shard 0 is
    # tampered with, so a recomputation of it would show
    os.remove(partials[1])
    (partial_dir / "shard-00001.npz.tmp-dead").write_bytes(b"half")
    with np.load(partials[0]) as data:
        tampered = {name: data[name] for name in data.files}
    tampered["values"] = tampered["values"] + 1000.0
    with open(partials[0], "wb") as f:
        np.savez(f, **tampered)
    again = run(*_args(*argv))
    assert again["computed"] == [partials[1].stem]
    assert partials[1].exists()
    top = again["result"]
    assert np.all(top.values[:, 0] >= 1000.0)  # shard 0's table was reused, not recomputed
    assert all(int(i) >> 32 == 0 for i in top.image_ids.ravel())


def _save_table(key_table, folder):
    key, table = key_table
    np.savez(os.path.join(folder, f"{key}.npz"), values=table.values, ids=table.image_ids,
             positions=table.positions, count=table.count, layer=table.layer)


def _table_of(records, k, batch_size, folder, batched=False):
    """``TopActivations`` over ``records`` on Beam, keyed; ``{key: table}`` read back from ``folder``."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from keras_convviz.beam import TopActivations
    from keras_convviz.methods.topk import TopActivations as Table

    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])) as p:
        _ = (p | beam.Create(records, reshuffle=False)
             | TopActivations("demo", "block2_conv2", k, batch_size=batch_size, keyed=True, batched=batched)
             | beam.Map(_save_table, str(folder)))
    tables = {}
    for path in folder.glob("*.npz"):
        with np.load(path) as d:
            tables[path.stem] = Table(layer=str(d["layer"]), values=d["values"], image_ids=d["ids"],
                                      positions=d["positions"], count=int(d["count"]))
    return tables


def test_record_transform_equals_in_process_per_key_with_ties_and_partial_batches(photos, tmp_path):
    """The public per-record PTransform (the file pipeline now sends batches): two keys
    interleaved, ids out of order, image 4's copies tied, batches of 3 cut across keys."""
    _, preset, prepared = photos
    order = [10, 3, 0, 7, 4, 1, 9, 2, 8, 5, 6]
    records = [(i % 2, (int(i), prepared[i])) for i in order]
    tables = _table_of(records, k=4, batch_size=3, folder=tmp_path)
    assert sorted(tables) == ["0", "1"]
    for key in (0, 1):
        ids = np.asarray([i for i in range(len(prepared)) if i % 2 == key])
        want = top_activations(preset.model, prepared[ids], "block2_conv2", k=4)
        got = tables[str(key)]
        assert got.count == len(ids)
        np.testing.assert_array_equal(got.image_ids, ids[want.image_ids])
        np.testing.assert_array_equal(got.values, want.values)
        np.testing.assert_array_equal(got.positions, want.positions)


def test_batched_records_equal_in_process(photos, tmp_path):
    """``batched=True``: ready batches of uneven sizes (5, 1, 5), ids not in batch order."""
    _, preset, prepared = photos
    ids = np.asarray([6, 0, 9, 4, 2, 10, 1, 3, 7, 5, 8], np.int64)
    cuts = [ids[:5], ids[5:6], ids[6:]]
    tables = _table_of([("all", (c, prepared[c])) for c in cuts], k=4, batch_size=32, folder=tmp_path,
                       batched=True)
    want = top_activations(preset.model, prepared, "block2_conv2", k=4)
    _assert_same(tables["all"], want)
