"""ConvVizCallback(max_overhead=...): scheduled logs skipped to keep logging within a share of training time."""

import warnings

import numpy as np
import pytest

from keras_convviz import budget
from keras_convviz.budget import OverheadBudget, check_max_overhead
from test_callback import compiled_model, read_events


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, True, "3%", float("nan")])
def test_a_bad_share_is_a_clear_error(bad, tmp_path):
    from keras_convviz import ConvVizCallback

    with pytest.raises(ValueError, match="max_overhead must be None"):
        check_max_overhead(bad)
    with pytest.raises(ValueError, match="max_overhead must be None"):
        ConvVizCallback(tmp_path, np.zeros((1, 64, 64, 3), np.float32), max_overhead=bad)


def test_the_budget_by_hand(monkeypatch):
    """A 1 s log with a 10 % budget: the first log runs; the next waits until the time spent, this log and one
    kept for the end of training (1 + 1 + 1 s) are within 10 % of the time trained."""
    clock = [0.0]
    monkeypatch.setattr(budget.time, "perf_counter", lambda: clock[0])
    b = OverheadBudget(0.1)
    b.start()
    clock[0] = 5.0
    assert b.allows(0)  # no cost known yet
    b.record(1.0)  # spent 1 s; trained 5 s
    clock[0] = 26.0  # trained 25 s: 1 + 1 + 1 <= 2.5? no
    with pytest.warns(RuntimeWarning, match="max_overhead=0.1"):
        assert not b.allows(1)
    clock[0] = 31.0  # trained 30 s: 3 <= 3.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        assert b.allows(2)
    b.record(1.0)
    assert b.skipped == [1] and b.spent == 2.0 and b.training_time() == 29.0
    assert OverheadBudget(None).allows(5)


@pytest.mark.parametrize("share, logged", [(None, [0, 1, 2, 3]), (0.001, [0, 3])])
def test_logs_skipped_within_budget_and_the_end_still_logged(share, logged, tmp_path):
    """On a tiny model a log costs far more than 0.1 % of an epoch: epochs 1 and 2 are skipped, the end is
    logged (log_at_train_end); without a budget every epoch is."""
    from keras_convviz import ConvVizCallback, demo

    x, y, _ = demo.shapes(32, seed=3)
    cb = ConvVizCallback(tmp_path, x[:2], methods=["saliency"], max_overhead=share)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled_model().fit(x, y, epochs=4, batch_size=16, verbose=0, callbacks=[cb])
    steps = sorted({step for events in read_events(tmp_path).values() for step, _, _ in events})
    assert steps == logged
    skipped_warnings = [w for w in caught if "max_overhead" in str(w.message)]
    assert len(skipped_warnings) == (share is not None)
    assert cb.budget.skipped == ([1, 2, 3] if share else [])  # epoch 3's scheduled log ran at on_train_end
