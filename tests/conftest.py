"""Test-session settings and fixtures shared by every test module.

TensorFlow 2.21's oneDNN kernels crash or return wrong gradients on some
small dilated/depthwise convolutions on AVX-512 CPUs (the random-model
receptive-field test reproduces it: a segfault, or a gradient support that
misses rows). The tests check numbers against exact references, so they run
TensorFlow's reference kernels. This must be set before TensorFlow loads.
"""

import os

import pytest

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

try:  # the fuzz suite's fixed profile (tests/test_fuzz.py): derandomized, bounded, no deadline (TF compiles)
    from hypothesis import HealthCheck, settings

    settings.register_profile("convviz", derandomize=True, deadline=None, database=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "convviz"))
except ImportError:  # hypothesis is in the test extra; without it only test_fuzz.py is skipped
    pass


@pytest.fixture(scope="module")
def demo_model():
    """The shipped demo CNN (one per test module: some tests change weights and restore them)."""
    from keras_convviz import demo

    return demo.load_model()
