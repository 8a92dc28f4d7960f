"""Issue 11, real photos: the fit geometry (pad / crop / stretch), maps drawn back on the photo.

Oracles: the photo's known pixels found again in the model input (a placed
marker), exact coordinate round trips, the preprocessed mean pixel in the
letterbox margins, and the aspect ratio of what is drawn.
"""

import numpy as np
import pytest
from skimage import data

from keras_convviz import fit
from keras_convviz.presets import IMAGENET_MEAN_RGB, Preset, load

from fixtures import convviz, unframe

PHOTO = data.chelsea()  # 300 x 451 RGB, a real photograph


def _caffe(x):
    return x[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)


def _identity(x):
    return np.asarray(x, np.float32)


@pytest.mark.parametrize("policy", fit.POLICIES)
@pytest.mark.parametrize("photo,size", [((300, 451), (224, 224)), ((512, 128), (64, 96)), ((40, 40), (224, 224))])
def test_coordinates_round_trip_exactly(policy, photo, size):
    p = fit.place(photo, size, policy)
    ys, xs = np.meshgrid(np.arange(photo[0]), np.arange(photo[1]), indexing="ij")
    iy, ix = p.to_input(ys, xs)
    by, bx = p.to_photo(iy, ix)
    np.testing.assert_allclose(by, ys, atol=1e-9)
    np.testing.assert_allclose(bx, xs, atol=1e-9)
    # the photo's corners land on the resized rectangle's corners
    (y0, x0), (y1, x1) = p.to_input(0, 0, centre=False), p.to_input(photo[0], photo[1], centre=False)
    assert (y0, x0) == p.offset and (y1 - y0, x1 - x0) == pytest.approx(p.resized)
    if policy == "pad":
        assert p.resized[0] / p.resized[1] == pytest.approx(photo[0] / photo[1], rel=0.03)
        assert p.region == (p.offset[0], p.offset[0] + p.resized[0], p.offset[1], p.offset[1] + p.resized[1])
    else:
        assert p.region == (0, size[0], 0, size[1])


@pytest.mark.parametrize("policy", fit.POLICIES)
def test_a_photo_pixel_lands_on_its_model_input_pixel(policy):
    # Nearest-exact oracle: a 3x upscale (pad and crop of a 60x90 photo into 180x180 use factor 3 or 2)
    # puts a marker pixel's block where to_input says its centre is.
    photo = np.zeros((60, 90, 3), np.uint8)
    photo[21, 50] = 255
    p = fit.place(photo.shape[:2], (180, 180), policy)
    x = fit.fit_input(photo, p, _identity, fill=[0, 0, 0])[..., 0]
    cy, cx = p.to_input(21, 50)
    peak = np.unravel_index(np.argmax(x), x.shape)
    assert abs(peak[0] - cy) <= 1.0 and abs(peak[1] - cx) <= 1.0
    weights = x / x.sum()
    yy, xx = np.indices(x.shape)
    # bilinear resizing spreads the marker symmetrically about its mapped centre
    assert (weights * yy).sum() == pytest.approx(cy, abs=0.35)
    assert (weights * xx).sum() == pytest.approx(cx, abs=0.35)
    back = p.to_photo(*peak)
    assert abs(back[0] - 21) <= 1.0 / p.scale[0] and abs(back[1] - 50) <= 1.0 / p.scale[1]


def test_letterbox_margins_hold_the_preprocessed_mean_pixel():
    p = fit.place(PHOTO.shape[:2], (224, 224), "pad")
    fill = fit.neutral_fill(_caffe, IMAGENET_MEAN_RGB)
    np.testing.assert_allclose(fill, 0.0, atol=1e-4)  # VGG's caffe preprocessing: the mean pixel is 0
    x = fit.fit_input(PHOTO, p, _caffe, fill)
    y0, y1, x0, x1 = p.region
    assert (y0, y1, x0, x1) == (37, 186, 0, 224)
    np.testing.assert_allclose(x[:y0], 0.0, atol=1e-4)
    np.testing.assert_allclose(x[y1:], 0.0, atol=1e-4)
    assert np.abs(x[y0:y1]).mean() > 10  # the photo itself
    tf_fill = fit.neutral_fill(lambda v: v / 127.5 - 1.0)
    np.testing.assert_allclose(tf_fill, 0.0)  # MobileNet's [-1, 1]: grey is 0


def test_preset_prepare_defaults_to_the_letterbox(demo_model):
    preset = Preset("demo", demo_model, lambda v: v / 255.0, lambda v: v, None, ["c"])
    x = preset.prepare([PHOTO])
    p = preset.placement(PHOTO)
    assert x.shape == (1, 64, 64, 3) and p.policy == "pad" and p.resized == (43, 64)
    np.testing.assert_allclose(x[0, : p.offset[0]], 0.5)  # grey 127.5 / 255
    stretched = preset.prepare([PHOTO], fit="stretch")
    assert not np.allclose(stretched[0, :5], 0.5)
    with pytest.raises(ValueError, match="fit must be one of pad, crop, stretch"):
        preset.prepare([PHOTO], fit="squash")


def test_maps_are_drawn_at_the_photos_resolution_and_aspect():
    p = fit.place(PHOTO.shape[:2], (224, 224), "pad")
    # a map that is 1 on the photo's region, 0 on the margins: cut back, it is all ones
    m = np.zeros((224, 224), np.float32)
    y0, y1, x0, x1 = p.region
    m[y0:y1, x0:x1] = 1.0
    out = fit.map_to_photo(m, p)
    assert out.shape == PHOTO.shape[:2]
    assert out.min() > 0.95
    # a coarse 7x7 map (Grad-CAM cells) too, and a left-right ramp keeps its direction
    ramp = np.tile(np.linspace(0, 1, 7, dtype=np.float32), (7, 1))
    coarse = fit.map_to_photo(ramp, p)
    assert coarse.shape == PHOTO.shape[:2] and np.all(np.diff(coarse[150]) >= -1e-6)
    assert fit.photo_view(PHOTO, p) is PHOTO
    big = fit.place((3000, 4500), (224, 224), "pad")
    shown = fit.map_to_photo(m, big)
    assert shown.shape == (683, 1024)  # capped at MAX_DISPLAY_SIDE, aspect kept
    crop = fit.place(PHOTO.shape[:2], (224, 224), "crop")
    view = fit.photo_view(PHOTO, crop)
    assert view.shape[:2] == fit.map_to_photo(m, crop).shape == (300, 300)  # the visible centre square


def test_flexible_input_runs_at_the_photos_size_capped():
    p = fit.place((300, 451), (None, None), "pad")
    assert p.size == (300, 451) and p.offset == (0, 0) and p.scale == (1.0, 1.0)
    big = fit.place((1500, 2000), (None, None), "crop")
    assert big.size == (384, 512) and big.region == (0, 384, 0, 512)


def test_box_to_input_covers_the_photo_box():
    p = fit.place(PHOTO.shape[:2], (224, 224), "pad")
    assert p.box_to_input((0, 0, 451, 300)) == (0, 37, 224, 149)
    x, y, w, h = p.box_to_input((100, 100, 50, 60))
    (ty, tx) = p.to_input(100, 100, centre=False)
    assert x <= tx < x + 1 and y <= ty < y + 1 and w >= 50 * p.scale[1] and h >= 60 * p.scale[0]
    with pytest.raises(ValueError, match="--fit pad"):
        fit.place(PHOTO.shape[:2], (224, 224), "crop").box_to_input((0, 0, 20, 20))


@pytest.mark.slow
def test_cli_draws_gradcam_on_the_photo(tmp_path):
    from PIL import Image

    src = tmp_path / "chelsea.png"
    Image.fromarray(PHOTO).save(src)
    for policy, shape in (("pad", (300, 451)), ("crop", (300, 300)), ("stretch", (300, 451))):
        out = tmp_path / policy
        proc = convviz("gradcam", src, "--fit", policy, "--out", out)
        assert proc.returncode == 0, proc.stderr
        assert f"fit {policy}: 451x300 photo" in proc.stdout
        overlay = unframe(Image.open(out / "chelsea_gradcam_overlay.png"))  # titled, with its colour bar
        assert abs(overlay.shape[0] - shape[0]) <= 1 and abs(overlay.shape[1] - shape[1]) <= 1  # rounding of the crop


def test_flexible_model_file_runs_at_the_photo_size(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(x))
    path = tmp_path / "flex.keras"
    model.save(path)
    preset = load(str(path))
    assert preset.input_size == (None, None)
    assert preset.prepare([PHOTO]).shape == (1, 300, 451, 3)


def test_occlusion_class_squares_sit_on_their_occluders():
    """The most-probable-class panel on the photo: each input pixel takes the class of the occluder
    centred nearest to it. 64 px occluders at stride 48 over 320 px: centres 31.5 + 48 k, so input
    column 190 belongs to occluder 3 (a stretched 7-cell grid would put it in cell 4)."""
    from keras_convviz.figures.occlusion import figure
    from keras_convviz.methods.occlusion import Occlusion

    origins = np.arange(0, 257, 48)
    top = np.zeros((1, 7, 7), np.int64)
    top[0, :, 4] = 1  # only occluder column 4 (input x 192..255, centre 223.5) changes the class
    zeros = np.zeros((1, 7, 7))
    result = Occlusion(probability=zeros + 0.5, top_class=top, activation=zeros, target=np.array([0]),
                       layer="c", map_index=np.array([0]), base_probability=np.array([0.5]),
                       base_class=np.array([0]), base_activation=np.array([0.0]), patch=(64, 64),
                       stride=(48, 48), origins_y=origins, origins_x=origins, image_size=(320, 320),
                       fill=np.zeros(3))
    photo = np.full((320, 320, 3), 128, np.uint8)
    canvas = figure(photo, result, placement=fit.place((320, 320), (320, 320), "pad"))
    y, x0 = 4 + 16 + 80, 4 + 2 * (160 + 4)  # third panel (160 px for 320 input px), its middle row
    at = (lambda input_x: tuple(canvas[y, x0 + input_x // 2]))
    assert at(190) == at(20) != at(224)  # nearest to occluder 3: class 0
    assert at(206) == at(224) == at(244) != at(252)  # occluder 4 (pixels 200..247): class 1
