"""The figures and numbers of docs/zeiler-fergus-analyses.md: fig. 5, fig. 6 and table 1 on EfficientNet-Lite0.

    python benchmarks/zeiler_fergus_figures.py   # writes docs/zf-*.png, prints the numbers
"""

from __future__ import annotations

import numpy as np


def main(out="docs"):
    import skimage.data as sd

    from keras_convviz import correspondence, filters, invariance, presets
    from keras_convviz.figures import correspondence as fc, filters as ff, invariance as fi
    from keras_convviz.fit import neutral_fill
    from keras_convviz.media import save_png

    p = presets.load("efficientnet-lite0")
    fill = neutral_fill(p.preprocess, p.mean_pixel)
    photos = [sd.chelsea(), sd.coffee(), sd.astronaut(), sd.stereo_motorcycle()[0]]
    x = p.prepare(photos, fit="pad")
    r = invariance(p.model, x, fill=fill, steps=21, batch_size=32)
    shown = {t: fi.examples(x, r, t, p.deprocess) for t in r.transforms}
    save_png(f"{out}/zf-invariance.png", fi.figure(r, shown, p.class_names))
    for layer in r.layers:
        print(f"fig5 {layer}: relative distance at +30 px", r.at("translate", 30, layer).round(3),
              "at scale 1.4", r.at("scale", 1.4, layer).round(3), "at 90 deg", r.at("rotate", 90, layer).round(3))
    for t in r.transforms:
        print(f"fig5 p(target) {t}: min", r.probability[t].min(1).round(3), "base", r.base_probability.round(3))
    f = filters(p.model)
    save_png(f"{out}/zf-filters.png", ff.figure(f))
    print("fig6", f.summary())
    # table 1: five square crops of chelsea, boxes placed by hand on the photo (x, y, w, h)
    crops = [(105, 25, 240), (115, 40, 250), (125, 30, 245), (100, 50, 250), (130, 45, 240)]
    eyes = {"left eye": (135, 85, 70, 60), "right eye": (295, 105, 50, 60), "nose": (235, 220, 60, 45)}
    cat = sd.chelsea()
    xc = p.prepare([cat[oy:oy + s, ox:ox + s] for ox, oy, s in crops], fit="pad")
    parts = np.array([[[round((bx - ox) * 224 / s), round((by - oy) * 224 / s), round(bw * 224 / s),
                        round(bh * 224 / s)] for bx, by, bw, bh in eyes.values()] for ox, oy, s in crops])
    for layer in ("block4a_expand_activation", "top_activation"):
        c = correspondence(p.model, xc, parts, layer, random_trials=20, fill=fill, part_names=list(eyes))
        save_png(f"{out}/zf-correspondence-{layer.split('_')[0]}.png", fc.figure(c, p.deprocess(xc.copy())))
        for name, d, m, s in c.rows():
            print(f"table1 {layer} {name}: {d:.4f} vs random {m:.4f} +- {s:.4f}")


if __name__ == "__main__":
    main()
