"""Invariance (Zeiler & Fergus fig. 5) on the demo CNN: 3 transforms x 20 steps x 8 images = 480 copies.

Side by side in one process:
* ours: ``invariance()`` (copies warped in the graph, distances at two layers and
  the target's probability, one compiled call in batches of 64);
* one batched ``model.predict`` of the 480 pre-transformed copies (built outside
  the timed region; the floor for any method);
* 480 single ``model.predict`` calls (one copy each), the naive loop.
Target: ours <= 1.2x the batched predict.
"""

from __future__ import annotations

import numpy as np

from common import interleaved_medians, row


def rows(quick=False):
    from keras_convviz import demo
    from keras_convviz.methods.invariance import default_values, invariance, transformed

    model = demo.load_model()
    x = demo.shapes(8, seed=0)[0].astype(np.float32)
    plan = {t: default_values(t, (64, 64), 20) for t in ("translate", "scale", "rotate")}
    copies = np.concatenate([transformed(x, t, v, 0.5).reshape(-1, 64, 64, 3) for t, v in plan.items()])
    assert len(copies) == 480

    def ours():
        return invariance(model, x, transforms=plan, fill=0.5, batch_size=64)

    def batched():
        return model.predict(copies, batch_size=64, verbose=0)

    def single():
        for c in copies[: 48 if quick else 480]:
            model.predict(c[None], verbose=0)

    t_ours, t_batched = interleaved_medians([ours, batched], repeat=3 if quick else 7)
    t_single = interleaved_medians([single], repeat=1, warmup=1)[0] * (10 if quick else 1)
    ratio = t_ours / t_batched
    return [
        row("invariance 480 copies (demo CNN, 8 images x 3 transforms x 20 steps)", f"{ratio:.2f}x batched predict",
            "<= 1.2x", ratio <= 1.2,
            f"ours {t_ours * 1e3:.0f} ms, one batched predict {t_batched * 1e3:.0f} ms, "
            f"480 single predicts {t_single * 1e3:.0f} ms{' (48 timed, x10)' if quick else ''}"),
    ]


if __name__ == "__main__":
    for r in rows(quick=False):
        print(r)
