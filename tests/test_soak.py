"""Short soak (issue 14): every method logged at every batch while ``tensorboard --load_fast=true`` serves the logdir.

benchmarks/soak_callback.py runs the same function for 200 steps and
reports the memory growth per step.
"""

import pytest

from fixtures import benchmark_module


@pytest.mark.slow
def test_soak_callback_every_method_served_live(tmp_path):
    soak_callback = benchmark_module("soak_callback")
    result = soak_callback.soak(steps=3, logdir=str(tmp_path / "logs"))
    soak_callback.check(result)  # trained, no method failed, every poll 200, every event reads back, every step
    assert set(result["methods"]) == set(soak_callback.OPTIONS)
    assert result["served_series_steps"] == {"saliency/predictions/heatmap": 3}
