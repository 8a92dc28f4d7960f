"""Kill tests (issue 14): SIGINT and SIGTERM at random moments of a long CLI run leave only complete files.

One uninterrupted run times the command, then a SIGINT at a seeded moment
anywhere in the run and a SIGTERM in its last fifth (the writes and the
shutdown), through benchmarks/kill_cli.py; the benchmark runs more trials.
"""

import pytest

from fixtures import benchmark_module


@pytest.mark.slow
@pytest.mark.parametrize("seed", [14])
def test_kill_sigint_sigterm_at_random_moments_leave_only_complete_files(tmp_path, seed):
    kill_cli = benchmark_module("kill_cli")
    results = kill_cli.run(trials=2, seed=seed, workdir=str(tmp_path))
    for r in results:
        assert r["ok"], r
    calibration, *killed = results
    assert calibration["returncode"] == 0 and calibration["files"] == 4  # uninterrupted: every output written
    assert [r["signal"] for r in killed] == ["SIGINT", "SIGTERM"]
    assert all(r["returncode"] in (0, 130, 143) for r in killed)
