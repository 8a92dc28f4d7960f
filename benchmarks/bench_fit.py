"""Letterboxing against stretching: what ``fit="pad"`` costs beyond the resize (issue 11).

On real photographs (scikit-image's chelsea 451x300, coffee 600x400,
astronaut 512x512) for VGG16's caffe preprocessing at 224x224:

* ``stretch``: ``Preset.prepare(fit="stretch")`` (resize to 224x224, preprocess);
* ``pad``: ``Preset.prepare(fit="pad")`` (resize to 224x149, preprocess, paste on the
  preprocessed mean pixel);
* the resize alone to each target size (PIL bilinear), the floor of both.

The target: pad within 1.1x of stretch (no cost beyond the resize; it
resizes fewer pixels). The maps drawn back (``fit.map_to_photo`` of a 224x224
map at the photo's resolution) are timed too, as they are new work per picture.
"""

from __future__ import annotations

import numpy as np

from common import interleaved_medians, row


def rows(quick=False):
    from skimage import data

    from keras_convviz import fit, media
    from keras_convviz.presets import IMAGENET_MEAN_RGB, Preset

    class _Model:  # prepare needs only the input shape
        class _Input:
            shape = (None, 224, 224, 3)

        inputs = [_Input()]

    caffe = lambda x: x[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)  # noqa: E731
    preset = Preset("vgg16", _Model(), caffe, None, None, [], IMAGENET_MEAN_RGB)
    photos = [data.chelsea(), data.coffee(), data.astronaut()]
    placements = [fit.place(p.shape[:2], (224, 224), "pad") for p in photos]
    heat = np.random.default_rng(0).uniform(0, 1, (224, 224)).astype(np.float32)
    repeat = 5 if quick else 21

    def stretch():
        return [preset.prepare([p], fit="stretch") for p in photos]

    def pad():
        return [preset.prepare([p], fit="pad") for p in photos]

    def resize_stretch():
        return [media.resize(p, (224, 224)) for p in photos]

    def resize_pad():
        return [media.resize(p, pl.resized) for p, pl in zip(photos, placements)]

    def draw_back():
        return [fit.map_to_photo(heat, pl) for pl in placements]

    t_stretch, t_pad, r_stretch, r_pad, t_draw = interleaved_medians(
        [stretch, pad, resize_stretch, resize_pad, draw_back], repeat=repeat)
    ratio = t_pad / t_stretch
    detail = (f"3 photos: stretch {t_stretch * 1e3:.2f} ms (resize {r_stretch * 1e3:.2f}), pad {t_pad * 1e3:.2f} ms "
              f"(resize {r_pad * 1e3:.2f}); beyond the resize: stretch {(t_stretch - r_stretch) * 1e3:.2f} ms, "
              f"pad {(t_pad - r_pad) * 1e3:.2f} ms; maps drawn back at photo resolution {t_draw * 1e3:.2f} ms")
    return [row("fit=pad vs fit=stretch, VGG16 preprocessing, 3 skimage photos", f"{ratio:.2f}x", "<= 1.1x",
                ratio <= 1.1, detail)]


if __name__ == "__main__":
    for r in rows():
        print(r)
