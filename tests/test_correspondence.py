"""Zeiler & Fergus 2014 table 1 (correspondence): zero for identical images, brute force, object parts vs random."""

import json

import numpy as np
import pytest

from keras_convviz import correspondence, demo
from keras_convviz.methods.correspondence import delta


def test_identical_images_with_identical_occlusions_give_zero(demo_model):
    x = np.repeat(demo.shapes(1, seed=4)[0].astype(np.float32), 3, axis=0)
    r = correspondence(demo_model, x, np.tile([[[10, 12, 16, 16]]], (3, 1, 1)), "block3_conv2", random_trials=4)
    assert r.delta.tolist() == [0.0] and np.all(r.random == 0)


def test_delta_equals_brute_force_hamming(demo_model):
    import keras

    x = demo.shapes(4, seed=6)[0].astype(np.float32)
    parts = np.array([[[5, 5, 10, 12]], [[20, 8, 10, 12]], [[30, 40, 10, 12]], [[1, 50, 10, 12]]])
    r = correspondence(demo_model, x, parts, "block2_conv2", random_trials=0, fill=0.3)
    sub = keras.Model(demo_model.input, demo_model.get_layer("block2_conv2").output)
    occluded = x.copy()
    for i, (bx, by, bw, bh) in enumerate(parts[:, 0]):
        occluded[i, by:by + bh, bx:bx + bw] = 0.3
    signs = np.sign(sub.predict(x, verbose=0) - sub.predict(occluded, verbose=0)).reshape(4, -1)
    brute = sum(np.count_nonzero(signs[i] != signs[j]) for i in range(4) for j in range(4) if i != j)
    # float rounding may flip the sign of a near-zero change: a handful of positions out of 16384 x 12 pairs
    assert abs(r.delta[0] - brute) <= 0.002 * brute
    assert delta(signs) == brute
    assert r.normalized[0] == pytest.approx(r.delta[0] / (12 * signs.shape[1]))


def test_parts_of_an_object_the_model_relies_on_beat_random_places(demo_model):
    """A yellow triangle (the demo's class 2) at one place on six textured backgrounds: occluding its corners
    changes the pooled features the same way in every image; random boxes of the same size do not."""
    x = demo.shapes(6, seed=2)[0].astype(np.float32)
    mask = demo.shape_mask(2, (14, 14, 50, 50))
    x = x * (1 - mask) + mask * np.array([0.9, 0.85, 0.2], np.float32)
    assert np.sum(demo_model.predict(x, verbose=0).argmax(1) == 2) >= 5  # the model sees the triangle
    boxes = [[22, 14, 20, 20], [14, 34, 16, 16], [34, 34, 16, 16]]  # apex, base corners
    parts = np.tile(np.array(boxes)[None], (6, 1, 1))
    r = correspondence(demo_model, x, parts, "gap", random_trials=30, fill=0.5, seed=2,
                       part_names=["apex", "left corner", "right corner"])
    assert r.normalized.mean() < r.random_normalized.mean()
    assert r.normalized[1:].mean() < r.random_normalized[1:].mean() - 0.5 * r.random_normalized[1:].std()


def test_bad_input_and_cli(demo_model, tmp_path):
    x = demo.shapes(2, seed=1)[0].astype(np.float32)
    with pytest.raises(ValueError, match="inside"):
        correspondence(demo_model, x, [[[60, 60, 10, 10]], [[0, 0, 4, 4]]], "gap")
    with pytest.raises(ValueError, match="one box"):
        correspondence(demo_model, x, [[1, 2, 3]], "gap")
    with pytest.raises(ValueError, match="at least 2"):
        correspondence(demo_model, x[:1], [[[0, 0, 4, 4]]], "gap")
    from keras_convviz import cli
    from keras_convviz.media import save_png

    paths = []
    for i, im in enumerate(x):
        paths.append(str(tmp_path / f"s{i}.png"))
        save_png(paths[-1], (im * 255).astype(np.uint8))
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"parts": ["corner"], "boxes": [[[0, 0, 16, 16]], [[0, 0, 16, 16]]]}))
    args = ["correspondence", *paths, "--boxes", str(boxes), "--layer", "block3_conv2", "--random-trials", "3",
            "--out", str(tmp_path)]
    assert cli.main(args) == 0
    assert (tmp_path / "s0_correspondence.png").exists()
    boxes.write_text("{}")
    assert cli.main(args) == 2


def test_photo_boxes_go_through_the_photos_placement():
    """--boxes are photo pixels: a box on a letterboxed (pad) or cropped photo maps to the model-input box."""
    from keras_convviz.commands.correspondence import input_boxes

    # a 64x32 (WxH) photo in a 64x64 input: pad keeps scale 1 and moves it 16 px down
    assert input_boxes([(32, 64, 3)], (64, 64), "pad", [[[10, 4, 8, 6]]]).tolist() == [[[10, 20, 8, 6]]]
    # crop scales it 2x to 128x64 and cuts 32 px off each side: x' = 2x - 32
    assert input_boxes([(32, 64, 3)], (64, 64), "crop", [[[20, 4, 8, 6]]]).tolist() == [[[8, 8, 16, 12]]]
    # stretch: a 128x32 photo squeezed 0.5x across, 2x down
    assert input_boxes([(32, 128, 3)], (64, 64), "stretch", [[[40, 8, 20, 10]]]).tolist() == [[[20, 16, 10, 20]]]
    # each photo has its own placement
    two = input_boxes([(32, 64, 3), (64, 64, 3)], (64, 64), "pad", [[[0, 0, 8, 8]], [[0, 0, 8, 8]]])
    assert two.tolist() == [[[0, 16, 8, 8]], [[0, 0, 8, 8]]]
    with pytest.raises(ValueError, match="inside its 64x32"):
        input_boxes([(32, 64, 3)], (64, 64), "pad", [[[60, 0, 8, 8]]])
    with pytest.raises(ValueError, match="outside the part of the photo"):
        input_boxes([(32, 64, 3)], (64, 64), "crop", [[[0, 0, 8, 8]]])
    with pytest.raises(ValueError, match="2 images, but 1"):
        input_boxes([(32, 64, 3)], (64, 64), "pad", [[[0, 0, 8, 8]], [[0, 0, 8, 8]]])


def test_cli_boxes_on_padded_photos_equal_the_api_on_mapped_boxes(demo_model, tmp_path):
    """convviz correspondence on 64x32 photos (letterboxed into the 64x64 demo input) with boxes in photo
    pixels gives the Delta of the API on the same inputs with the boxes moved 16 px down."""
    from keras_convviz import cli, presets
    from keras_convviz.media import save_png

    x = demo.shapes(3, seed=5)[0].astype(np.float32)
    paths = []
    for i, im in enumerate(x):
        paths.append(str(tmp_path / f"w{i}.png"))
        save_png(paths[-1], (im[16:48] * 255).astype(np.uint8))  # 64 wide, 32 high
    photo_boxes = [[[20, 4, 16, 16]], [[22, 6, 16, 16]], [[18, 8, 16, 16]]]
    (tmp_path / "b.json").write_text(json.dumps({"parts": ["middle"], "boxes": photo_boxes}))
    assert cli.main(["correspondence", *paths, "--boxes", str(tmp_path / "b.json"), "--layer", "gap",
                     "--random-trials", "2", "--out", str(tmp_path)]) == 0
    got = np.load(tmp_path / "w0_correspondence.npz")
    preset = presets.load("demo")
    from keras_convviz.media import read_input

    inputs = preset.prepare([read_input(p, None) for p in paths], fit="pad")
    mapped = np.array([[[bx, by + 16, bw, bh] for bx, by, bw, bh in img] for img in photo_boxes])
    want = correspondence(preset.model, inputs, mapped, "gap", random_trials=0,
                          fill=np.asarray(inputs)[0, 0, 0])
    assert got["delta"].tolist() == pytest.approx(want.delta.tolist())
