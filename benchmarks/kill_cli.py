"""Kill test: SIGINT / SIGTERM at random moments of a long ``convviz`` run (issue 14).

Each trial starts ``convviz deconv`` (imports, model, four PNGs written one
after another: about ten seconds on two busy cores), sends SIGINT or SIGTERM
after a random delay, and checks the contract: exit 130 / 143 with one line
on stderr (or 0 when the run finished first), every file in ``--out``
complete (it decodes), and no ``.convviz-*.part`` temporary left.

    python benchmarks/kill_cli.py --trials 20 --seed 0

tests/test_kill.py runs a calibration run and two trials of the same function.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

EXPECTED = {signal.SIGINT: 130, signal.SIGTERM: 143}


def make_image(path):
    import numpy as np

    from keras_convviz import media

    media.save_png(path, (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8))
    return path


def complete(path):
    """True when the file decodes completely (PNG/GIF through PIL, JSON through json)."""
    if path.endswith(".json"):
        import json

        with open(path) as f:
            json.load(f)
        return True
    from PIL import Image

    with Image.open(path) as img:
        img.load()
    return True


def trial(workdir, image, signum, delay):
    """One run killed after ``delay`` seconds; a dict describing what it left."""
    name = signal.Signals(signum).name if signum is not None else "none"
    out = os.path.join(workdir, f"out-{name}-{delay:.2f}")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.Popen([sys.executable, "-m", "keras_convviz.cli", "deconv", image, "--model", "demo",
                             "--out", out], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(delay)
    finished_first = signum is None or proc.poll() is not None
    if not finished_first:
        proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    names = sorted(os.listdir(out)) if os.path.isdir(out) else []
    partial = [n for n in names if n.startswith(".convviz-") or n.endswith(".part")]
    broken = []
    for file_name in names:
        if file_name in partial:
            continue
        try:
            complete(os.path.join(out, file_name))
        except Exception as err:  # noqa: BLE001 - any decoding failure is a broken file
            broken.append(f"{file_name}: {err}")
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    code_ok = proc.returncode == 0 if finished_first else proc.returncode in (0, EXPECTED[signum])
    message_ok = proc.returncode == 0 or (len(lines) == 1 and "Traceback" not in stderr)
    return {"signal": name, "delay": round(delay, 2), "returncode": proc.returncode,
            "files": len(names) - len(partial), "partial": partial, "broken": broken, "stderr": stderr.strip(),
            "ok": code_ok and message_ok and not partial and not broken}


def run(trials, seed, max_delay=None, workdir=None):
    """``trials`` killed runs; ``max_delay`` None: measured first with one uninterrupted run (returned first).

    Odd trials draw their moment anywhere in the run, even ones in its last
    fifth (the writes and the interpreter's shutdown), where a file is most
    likely half written.
    """
    rng = random.Random(seed)
    workdir = workdir or tempfile.mkdtemp(prefix="convviz-kill-")
    image = make_image(os.path.join(workdir, "input.png"))
    results = []
    if max_delay is None:
        start = time.monotonic()
        results.append(trial(workdir, image, None, 0.0))  # the calibration run: it must simply succeed
        max_delay = time.monotonic() - start
    for i in range(trials):
        signum = (signal.SIGINT, signal.SIGTERM)[i % 2]
        low = 0.15 if i % 2 == 0 else 0.8 * max_delay
        results.append(trial(workdir, image, signum, rng.uniform(low, 1.05 * max_delay)))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-delay", type=float, default=None, help="default: one uninterrupted run's time")
    args = parser.parse_args()
    results = run(args.trials, args.seed, args.max_delay)
    for r in results:
        print(f"{r['signal']:8s} at {r['delay']:5.2f} s -> exit {r['returncode']:4d}, {r['files']} complete files, "
              f"{len(r['partial'])} partial, {len(r['broken'])} broken {'ok' if r['ok'] else 'FAIL ' + r['stderr']}")
    bad = [r for r in results if not r["ok"]]
    print(f"{len(results) - len(bad)}/{len(results)} trials kept the contract")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
