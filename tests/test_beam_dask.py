"""keras_convviz.beam's pipeline on Beam's DaskRunner, against a real dask.distributed cluster.

A ``LocalCluster`` of 2 worker processes on 127.0.0.1 (no dashboard) runs the
end-to-end pipeline (PNG folder, shards, partial tables, merge) on the demo
model; its table must equal DirectRunner's exactly: values, image ids and
positions, ties included. Needs the ``dask`` extra (``pip install -e
'.[dask]'``); skipped without it. Beam names no ``DaskRunner`` alias:
``--runner`` takes the class's full name.
"""

import sys

import numpy as np
import pytest

pytest.importorskip("apache_beam", reason="apache-beam is in the test extra: pip install -e '.[test]'")
distributed = pytest.importorskip("distributed", reason="the dask extra: pip install -e '.[dask]'")
pytest.importorskip("apache_beam.runners.dask.dask_runner", reason="the dask extra: pip install -e '.[dask]'")

from keras_convviz import demo, media  # noqa: E402
from keras_convviz.beam.pipeline import parser, run  # noqa: E402

DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"


def _mine(folder, out, *runner):
    args, beam_args = parser().parse_known_args([
        "--input", str(folder / "*.png"), "--output", str(out), "--model", "demo", "--layer", "block2_conv2",
        "--k", "4", "--batch-size", "3", "--shard-size", "4", "--maps", "3", "--cell", "32", *runner])
    return run(args, beam_args)


def _worker_mined():
    return "keras_convviz.beam.transforms" in sys.modules


@pytest.mark.slow
def test_dask_runner_on_a_local_cluster_equals_direct_runner(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    images, _, _ = demo.shapes(8, seed=7)
    rgb = [(img * 255).astype(np.uint8) for img in images] + [(images[4] * 255).astype(np.uint8)] * 3  # ties
    for i, img in enumerate(rgb):
        media.save_png(folder / f"im{i:02d}.png", img)

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    try:
        got = _mine(folder, tmp_path / "dask", "--runner", DASK_RUNNER,
                    f"--dask_client_address={cluster.scheduler_address}")
        with distributed.Client(cluster.scheduler_address) as client:
            assert len(client.scheduler_info()["workers"]) == 2
            assert any(client.run(_worker_mined).values())  # the DoFns ran in the worker processes
    finally:
        try:  # the runner's own client: closed before its scheduler, or it retries for 30 s
            distributed.default_client().close()
        except ValueError:
            pass
        cluster.close()

    want = _mine(folder, tmp_path / "direct", "--runner", "DirectRunner")
    assert got["shards"] == want["shards"] == 3 and len(got["computed"]) == 3
    a, b = got["result"], want["result"]
    assert a.layer == b.layer and a.count == b.count == 11
    assert any(len(set(row)) < len(row) for row in b.values.tolist())  # ties to break
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.image_ids, b.image_ids)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert (tmp_path / "dask" / "topk_block2_conv2.json").read_text() == \
        (tmp_path / "direct" / "topk_block2_conv2.json").read_text()
