"""Mosaics of scikit-image photographs for the real ImageNet classifier (EfficientNet-Lite0).

Shared by ``tests/test_real_classifier.py`` and ``benchmarks/real_classifier_table.py``.
A mosaic is a 224x224 RGB image of 2x2 tiles of 112 px, one photo per tile,
each photo a class Lite0 recognizes on its own at tile size (measured with
the photo alone on a grey 224 canvas, see ``TILES``). The four mosaics are the
cyclic arrangements of the four tiles (a Latin square), so every photo sits
once in every quadrant; each (mosaic, tile) pair is one case whose target is
the tile's class and whose object box is the tile.
"""

from __future__ import annotations

import numpy as np

SIZE, TILE = 224, 112

# photo -> (ImageNet class, square crop (y, x, side) of the photo, None: the centred square); top-1 of
# Lite0 measured with the tile alone on a grey 224 canvas at 112 px: chelsea Egyptian cat 0.63, coffee
# espresso 0.33, camera tripod 0.85, colorwheel croquet ball 0.51 (scikit-image's synthetic colour disc).
# Not used: rocket (space shuttle 0.27 alone, but rank 16-45 inside the mosaics), coins (typewriter
# keyboard 0.42, a wrong class), astronaut crops (balance beam / lighter / soap dispenser, < 0.31).
TILES = {
    "chelsea": (285, None),     # Egyptian cat
    "coffee": (967, None),      # espresso
    "camera": (872, None),      # tripod
    "colorwheel": (522, None),  # croquet ball
}
NAMES = tuple(TILES)


def photo(name) -> np.ndarray:
    """A scikit-image photo as uint8 RGB ``(H, W, 3)``."""
    from skimage import data

    image = np.asarray(getattr(data, name)())
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return image[..., :3].astype(np.uint8)


def square(image, crop=None, size=TILE) -> np.ndarray:
    """The ``crop = (y, x, side)`` (default: the centred square) resized to ``size`` (float32 RGB 0..255)."""
    from skimage.transform import resize

    h, w = image.shape[:2]
    y, x, s = crop if crop is not None else ((h - min(h, w)) // 2, (w - min(h, w)) // 2, min(h, w))
    out = resize(image[y:y + s, x:x + s].astype(np.float32), (size, size), anti_aliasing=True,
                 preserve_range=True)
    return np.clip(out, 0, 255).astype(np.float32)


def tile(name, size=TILE) -> np.ndarray:
    return square(photo(name), TILES[name][1], size)


def tile_box(position, tile_size=TILE, grid=2) -> tuple:
    """``(y0, x0, y1, x1)`` (end exclusive) of tile ``position`` (row-major) in the mosaic."""
    r, c = divmod(position, grid)
    return (r * tile_size, c * tile_size, (r + 1) * tile_size, (c + 1) * tile_size)


def mosaics(names=NAMES, tile_size=TILE):
    """The cyclic arrangements of ``names`` (len = grid**2): ``(images (M, S, S, 3) float32 RGB 0..255,
    layouts [[name per position]])``."""
    grid = int(round(len(names) ** 0.5))
    assert grid * grid == len(names), "one photo per tile of a square grid"
    tiles = {n: tile(n, tile_size) for n in names}
    images, layouts = [], []
    for shift in range(len(names)):
        layout = [names[(p + shift) % len(names)] for p in range(len(names))]
        canvas = np.zeros((grid * tile_size, grid * tile_size, 3), np.float32)
        for p, n in enumerate(layout):
            y0, x0, y1, x1 = tile_box(p, tile_size, grid)
            canvas[y0:y1, x0:x1] = tiles[n]
        images.append(canvas)
        layouts.append(layout)
    return np.stack(images), layouts


def cases(names=NAMES, tile_size=TILE):
    """Every (mosaic, tile) pair: ``(images (K, S, S, 3) RGB 0..255, targets (K,), boxes (K, 4), labels)``
    with the mosaic repeated once per tile, the target the tile's class and the box the tile."""
    images, layouts = mosaics(names, tile_size)
    grid = int(round(len(names) ** 0.5))
    xs, targets, boxes, labels = [], [], [], []
    for image, layout in zip(images, layouts):
        for p, n in enumerate(layout):
            xs.append(image)
            targets.append(TILES[n][0])
            boxes.append(tile_box(p, tile_size, grid))
            labels.append(n)
    return np.stack(xs), np.asarray(targets), np.asarray(boxes), labels


def box_masks(boxes, size=SIZE) -> np.ndarray:
    masks = np.zeros((len(boxes), size, size), bool)
    for m, (y0, x0, y1, x1) in zip(masks, boxes):
        m[y0:y1, x0:x1] = True
    return masks


def positive_mass_inside(maps, boxes) -> np.ndarray:
    """Per map: the share of its positive mass inside its box."""
    maps = np.clip(np.asarray(maps, np.float64), 0, None)
    masks = box_masks(boxes, maps.shape[1])
    return (maps * masks).sum((1, 2)) / np.maximum(maps.sum((1, 2)), 1e-30)


COLOUR_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
                 "retina", "colorwheel", "logo")  # scikit-image's colour images (camera etc. are grey)


def photo_crops(size=SIZE, per_photo=4, names=COLOUR_PHOTOS) -> np.ndarray:
    """A small dataset: ``per_photo`` square crops of each colour photo (the centre square and the corner
    squares of side 3/4 of the short side), resized to ``size``; float32 RGB 0..255 ``(N, size, size, 3)``."""
    out = []
    for name in names:
        image = photo(name)
        h, w = image.shape[:2]
        s, t = min(h, w), (3 * min(h, w)) // 4
        crops = [((h - s) // 2, (w - s) // 2, s), (0, 0, t), (h - t, w - t, t), (0, w - t, t), (h - t, 0, t)]
        out += [square(image, c, size) for c in crops[:per_photo]]
    return np.stack(out)
