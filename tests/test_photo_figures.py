"""Issue 11, items 1, 2 and 4: deconv, box-filter and top-k pictures drawn on the ORIGINAL photo;
top-k on flexible-size models; blank-map lines for invert and the box-filter/top-k/class-model loggers.

Oracles: the photo's own pixels found unchanged in the pictures (undistorted, at its resolution);
a one-hot map and a crop landing where an independent affine formula (written here from the
placement's scale and offset, not through keras_convviz.fit's helpers) puts them; receptive
fields cut from each photo at that formula's window; exact zeros for the blank-map lines.
"""

import json
import math
import warnings

import keras
import numpy as np
import pytest
from PIL import Image
from skimage import data

from keras_convviz import fit, render
from keras_convviz.blank import BlankMapWarning
from keras_convviz.fields import receptive_fields
from keras_convviz.figures import boxfilter as box_figures
from keras_convviz.figures import deconv as deconv_figures
from keras_convviz.figures.topk import figure as topk_figure
from keras_convviz.methods.boxfilter import box_filter
from keras_convviz.methods.deconv import Projections, projections
from keras_convviz.methods.topk import top_activations

from fixtures import convviz

CHELSEA = data.chelsea()  # 300 x 451
COFFEE = data.coffee()  # 400 x 600
ASTRONAUT = data.astronaut()  # 512 x 512
CYAN = (0, 200, 255)  # render.outline's colour


def _unit(x):
    return np.asarray(x, np.float32) / 255.0


def _fitted(photo, size=(64, 64), policy="pad"):
    placement = fit.place(photo.shape[:2], size, policy)
    return fit.fit_input(photo, placement, _unit, fit.neutral_fill(_unit))[None], placement


def _photo_window(window, placement):
    """Independent oracle: an input window (y0, y1, x0, x1) in photo pixels, clipped to the photo
    (photo = (input - offset) / scale per axis, pixel edges)."""
    (sy, sx), (oy, ox), (h, w) = placement.scale, placement.offset, placement.photo
    y0, y1, x0, x1 = window
    top, bottom = max(0, math.floor((y0 - oy) / sy + 1e-6)), min(h, math.ceil((y1 - oy) / sy - 1e-6))
    left, right = max(0, math.floor((x0 - ox) / sx + 1e-6)), min(w, math.ceil((x1 - ox) / sx - 1e-6))
    return top, bottom, left, right


# ---------------------------------------------------------------- deconv
def test_deconv_pictures_are_the_photo_at_its_resolution_and_a_one_hot_lands_on_its_pixel(demo_model):
    x, p = _fitted(CHELSEA)
    assert p.offset[0] > 0  # letterboxed: margins above and below
    iy, ix = 30, 41
    onehot = np.zeros((1, 64, 64, 3), np.float32)
    onehot[0, iy, ix] = 1.0
    result = Projections("c", onehot, np.zeros((1, 1), np.int64), np.zeros((1, 1, 1, 2), np.int64),
                         np.ones((1, 1, 1), np.float32), True)
    picture = deconv_figures.joint_picture(CHELSEA, result, placement=p)
    body = picture[16:]  # under the title strip
    assert body.shape == (300, 451 * 2 + 2, 3)
    np.testing.assert_array_equal(body[:, :451], CHELSEA)  # the photo itself, undistorted, full resolution
    drawn = np.abs(body[:, 453:].astype(int) - 128).sum(-1)
    peak = np.unravel_index(np.argmax(drawn), drawn.shape)
    (sy, sx), (oy, ox) = p.scale, p.offset
    assert abs(peak[0] - ((iy + 0.5 - oy) / sy - 0.5)) <= 0.5 / sy + 1
    assert abs(peak[1] - ((ix + 0.5 - ox) / sx - 0.5)) <= 0.5 / sx + 1
    frames = deconv_figures.gif_frames(CHELSEA, onehot, "c", placement=p)
    np.testing.assert_array_equal(frames[0][16:], picture[16:])


def test_deconv_layer_grid_cuts_each_field_from_the_photo(demo_model):
    x, p = _fitted(CHELSEA)
    results = [projections(demo_model, x, "block3_conv2", maps=2, activations=1, joint=False)]
    cell = 48
    grid = deconv_figures.layer_grid(CHELSEA, results, demo_model, cell=cell, placement=p)
    from keras_convviz.methods.deconv import selection_boxes

    box = selection_boxes(demo_model, results[0], 0)[0]
    y0, y1, x0, x1 = _photo_window(box, p)
    assert (y1 - y0) > (box[1] - box[0])  # cut at the photo's resolution (451 px wide > 64)
    patch = render.fit_square(CHELSEA[y0:y1, x0:x1], cell)
    row_top = grid.shape[0] - cell
    np.testing.assert_array_equal(grid[row_top:, cell + 2:2 * cell + 2], patch)


def test_window_on_view_never_leaves_the_photo():
    p = fit.place(CHELSEA.shape[:2], (224, 224), "pad")
    # a field over the whole input, margins included, is the whole photo
    assert fit.window_on_view((0, 224, 0, 224), p, (300, 451)) == (0, 300, 0, 451)
    assert fit.window_on_view((0, 20, 0, 20), p, (300, 451)) == (0, 1, 0, 41)  # all margin: one photo row at the edge
    for window in [(40, 90, 10, 70), (100, 186, 150, 224)]:
        assert fit.window_on_view(window, p, (300, 451)) == _photo_window(window, p)


# ---------------------------------------------------------------- box filter
def _bounds(mask):
    ys, xs = np.nonzero(mask)
    return ys.min(), ys.max() + 1, xs.min(), xs.max() + 1


def test_box_filter_panels_are_the_photo_with_the_crop_where_the_placement_puts_it(demo_model):
    p = fit.place(CHELSEA.shape[:2], (64, 64), "pad")
    crop = p.box_to_input((130, 100, 90, 60))  # around the left eye, in photo pixels
    result = box_filter(demo_model, "block1_conv2", crop, mode="forward")
    frac, _ = box_figures.pictures(result, placement=p, columns=1)
    over, _ = box_figures.pictures(result, image=CHELSEA, overlay=True, placement=p, columns=1)
    panel_h = 300 + 16 + 4
    assert frac.shape == (4 + len(result.panels) * panel_h, 4 + 451 + 4, 3)  # photo-sized panels
    first = frac[4 + 16:4 + 16 + 300, 4:4 + 451]
    cx, cy, cw, ch = crop
    top, bottom, left, right = _photo_window((cy, cy + ch, cx, cx + cw), p)
    # the crop's outline and its fraction-1 inside (inferno's top colour) lie where the placement puts it
    outline = np.all(first == CYAN, -1)
    ob = _bounds(outline)
    assert all(abs(a - b) <= 1 for a, b in zip(ob, (top, bottom, left, right))), (ob, (top, bottom, left, right))
    bright = (first[..., 0] > 200) & (first[..., 1] > 200) & ~outline
    bb = _bounds(bright)
    half = 0.5 / min(p.scale)  # nearest sampling: within half an input pixel (3.5 photo px), 2 px under the outline
    assert all(abs(a - b) <= half + 0.5 for a, b in zip(bb, (top, bottom, left, right))), bb
    # overlay: inside the crop the photo itself (weight 1), the letterbox margins nowhere
    d = int(np.ceil(half)) + 1  # bilinear weights reach 1 half an input pixel inside the crop's edge
    inside = over[4 + 16 + top + d:4 + 16 + bottom - d, 4 + left + d:4 + right - d]
    np.testing.assert_allclose(inside, CHELSEA[top + d:bottom - d, left + d:right - d], atol=1)


# ---------------------------------------------------------------- top-k
def test_topk_patches_are_cut_from_each_original_photo(demo_model):
    photos = [CHELSEA, COFFEE, ASTRONAUT]
    fitted = [_fitted(ph) for ph in photos]
    batch = np.concatenate([x for x, _ in fitted])
    result = top_activations(demo_model, batch, "block1_conv1", k=3)
    cell = 40
    grid, chosen = topk_figure(demo_model, result, batch, maps=2, cell=cell,
                               photos=lambda i: (photos[i], fitted[i][1]))
    rf = receptive_fields(demo_model)["block1_conv1"]
    for m, c in enumerate(chosen):
        for r in range(3):
            i = int(result.image_ids[c, r])
            y, x = (int(v) for v in result.positions[c, r])
            y0, y1, x0, x1 = _photo_window(rf.window(y, x, clip_to=(64, 64)), fitted[i][1])
            expected = render.fit_square(photos[i][y0:y1, x0:x1], cell)
            top, left = 4 + m * (cell + 16 + 4) + 16, 4 + (3 + r) * (cell + 4)
            np.testing.assert_array_equal(grid[top:top + cell, left:left + cell], expected)


def _folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, photo in (("chelsea", CHELSEA), ("coffee", COFFEE), ("astronaut", ASTRONAUT)):
        Image.fromarray(photo).save(folder / f"{name}.png")
    return folder


@pytest.mark.slow
def test_cli_topk_photo_boxes_follow_each_photos_placement(tmp_path):
    folder = _folder(tmp_path)
    out = tmp_path / "out"
    proc = convviz("topk", folder, "--model", "demo", "--layer", "block2_conv2", "--k", "3", "--maps", "2",
                   "--out", out)
    assert proc.returncode == 0, proc.stderr
    table = json.loads((out / "topk_block2_conv2.json").read_text())
    rf = receptive_fields(_demo())["block2_conv2"]
    photos = {"chelsea": CHELSEA, "coffee": COFFEE, "astronaut": ASTRONAUT}
    for rows in table["maps"].values():
        for row in rows:
            photo = photos[row["image"].rsplit("/", 1)[1][:-4]]
            p = fit.place(photo.shape[:2], (64, 64), "pad")
            y0, y1, x0, x1 = rf.window(row["y"], row["x"], clip_to=(64, 64))
            (sy, sx), (oy, ox) = p.scale, p.offset
            h, w = photo.shape[:2]  # clipped to the photo: a field all in the margin has no height
            want = [min(max((x0 - ox) / sx, 0), w), min(max((y0 - oy) / sy, 0), h),
                    min(max((x1 - ox) / sx, 0), w), min(max((y1 - oy) / sy, 0), h)]
            np.testing.assert_allclose(row["photo_box"], want, atol=0.06)
    grid = np.asarray(Image.open(out / "topk_block2_conv2.png"))
    assert grid.shape[0] > 2 * 64 and grid.std() > 20


def _demo():
    from keras_convviz import demo

    return demo.load_model()


def _flexible(path):
    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 5, strides=2, padding="same", activation="relu", name="c1")(inp)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inp, keras.layers.Dense(2, activation="softmax")(x)).save(path)
    return path


@pytest.mark.slow
def test_cli_topk_on_a_flexible_size_model_mines_at_size(tmp_path):
    folder, model = _folder(tmp_path), _flexible(tmp_path / "flex.keras")
    out = tmp_path / "out"
    proc = convviz("topk", folder, "--model", model, "--layer", "c2", "--k", "2", "--maps", "2",
                   "--size", "96,128", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "fitted (--fit pad) to 96x128 for mining" in proc.stdout
    table = json.loads((out / "topk_c2.json").read_text())
    assert table["images"] == 3
    row = table["maps"]["0"][0]
    assert 0 <= row["y"] < 48 and 0 <= row["x"] < 64  # positions on the 96x128 input's 48x64 map
    default = convviz("topk", folder, "--model", model, "--layer", "c2", "--k", "2", "--maps", "1",
                      "--out", tmp_path / "d")
    assert default.returncode == 0, default.stderr
    assert "to 512x512 for mining" in default.stdout
    fixed = convviz("topk", folder, "--model", "demo", "--k", "2", "--size", "96,128", "--out", tmp_path / "x")
    assert fixed.returncode == 2
    lines = fixed.stderr.strip().splitlines()
    assert len(lines) == 1 and "--size is for models with a flexible input size" in lines[0], fixed.stderr


# ---------------------------------------------------------------- blank maps
def _save(model, path):
    model.save(path)
    return path


@pytest.mark.slow
def test_cli_invert_says_when_the_reconstruction_never_changes_or_nothing_is_there(tmp_path):
    src = tmp_path / "chelsea.png"
    Image.fromarray(CHELSEA[::4, ::4]).save(src)
    inp = keras.Input((16, 16, 3))
    flat = keras.layers.Conv2D(2, 3, padding="same", kernel_initializer="zeros", bias_initializer="ones",
                               name="flat")(inp)  # ignores its input: the loss can never change
    dead = keras.layers.Conv2D(2, 3, padding="same", activation="relu", bias_initializer=keras.initializers.Constant(-1e3),
                               name="dead")(inp)  # never fires
    model = _save(keras.Model(inp, [flat, dead]), tmp_path / "m.keras")
    proc = convviz("invert", src, "--model", model, "--layer", "flat", "--steps", "3", "--l-alpha", "0", "--tv", "0",
                   "--out", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("convviz invert: warning: the change of the flat reconstruction "
                                                   "loss is exactly zero"), proc.stderr
    proc = convviz("invert", src, "--model", model, "--layer", "dead", "--steps", "3", "--out", tmp_path / "o2")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "outputs all zeros" in lines[0] and "untrained weights or dead units" in lines[0]


def _dead_model():
    """A conv layer that never fires, a crop that keeps only the top-left corner, a classifier."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="live")(inp)
    dead = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="dead",
                               bias_initializer=keras.initializers.Constant(-1e3))(x)
    corner = keras.layers.Cropping2D(((0, 13), (0, 13)), name="corner")(x)
    x = keras.layers.Conv2D(4, 1, name="after")(corner)
    x = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(dead), keras.layers.GlobalAveragePooling2D()(x)])
    model = keras.Model(inp, keras.layers.Dense(3, name="scores")(keras.layers.Lambda(lambda t: t[:, :4])(x)))
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def test_callback_warns_once_for_blank_boxfilter_topk_and_classmodel(tmp_path):
    from keras_convviz import ConvVizCallback

    model = _dead_model()
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (8, 16, 16, 3)).astype(np.float32), rng.integers(0, 3, 8)
    cb = ConvVizCallback(str(tmp_path), x[:2], heldout=x, maps=1,
                         methods={"boxfilter": {}, "topk": {"k": 2}, "classmodel": {"steps": 2, "classes": [0]}},
                         layers={"boxfilter": ["after"], "topk": ["dead"]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, epochs=2, verbose=0, callbacks=[cb])
    assert not cb.failed, cb.failed
    lines = [str(w.message) for w in caught if issubclass(w.category, BlankMapWarning)]
    assert all("\n" not in line for line in lines)
    assert len([m for m in lines if m.startswith("ConvVizCallback: boxfilter at after is exactly zero")
                and "the crop does not reach this layer" in m]) == 1, lines
    assert len([m for m in lines if m.startswith("ConvVizCallback: topk at dead is exactly zero")
                and "dead units" in m]) == 1, lines
    assert len([m for m in lines if m.startswith("ConvVizCallback: classmodel: the change of the maximized")
                and "exactly zero" in m]) == 1, lines
