"""``show`` and the results' ``_repr_png_``: the CLI's picture, framed with a title and a colour bar.

Oracles: the PNG decodes to a picture that contains, pixel for pixel, what
the CLI's figure code (``figures.gradients.pictures`` + ``enlarge``,
``figures.occlusion.figure``, ``figures.optimize.sheet``) draws for the
same inputs; the colour bar's strip is the palette the map is drawn with;
a result's ``_repr_png_`` equals ``show(result)``.
"""

import io

import numpy as np
import pytest
from PIL import Image

import keras_convviz as kc
from keras_convviz import render
from keras_convviz.figures import panel
from keras_convviz.figures.gradients import enlarge, pictures
from keras_convviz.fit import map_to_photo, photo_view, place


def decode(png):
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def block(img, top, left, like):
    return img[top:top + like.shape[0], left:left + like.shape[1]]


def strip_row(img, width, picture_height):
    """The colour bar's gradient strip (its middle row), right below the titled picture."""
    return img[panel.TITLE_HEIGHT + picture_height + 2 + panel.BAR_HEIGHT // 2, 8:width - 8]


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    sal = rng.random((2, 48, 48)).astype(np.float32)
    return photo, sal


def test_show_is_public_and_returns_a_displayable_figure(scene):
    photo, sal = scene
    fig = kc.show(sal, image=photo, method="saliency", title="my saliency")
    assert isinstance(fig, kc.Figure) and fig.title == "my saliency"
    assert np.array_equal(decode(fig._repr_png_()), fig.image)
    assert "show" in kc.__all__ and callable(kc.show)


@pytest.mark.parametrize("method", ["saliency", "gradcam"])
def test_a_map_on_a_photo_is_the_cli_picture_and_overlay_with_its_palette(scene, method):
    photo, sal = scene
    img = decode(kc.show(sal, image=photo, method=method, index=1)._repr_png_())
    placement = place(photo.shape[:2], sal.shape[1:], "pad")  # as Preset.prepare and the CLI place the photo
    picture, blended = pictures(method, photo_view(photo, placement), map_to_photo(sal[1], placement))
    left, right = enlarge(picture), enlarge(blended)
    assert np.array_equal(block(img, panel.TITLE_HEIGHT, 0, left), left)
    assert np.array_equal(block(img, panel.TITLE_HEIGHT, left.shape[1] + 4, right), right)
    strip = strip_row(img, img.shape[1], left.shape[0])
    assert np.array_equal(strip, render.colormap(np.linspace(0, 1, strip.shape[0])))
    bar = panel.BAR_HEIGHT + 16 + 4  # one line of labels, or two when the meaning does not fit between the ends
    assert img.shape[0] - panel.TITLE_HEIGHT - left.shape[0] in (bar, bar + 16)


def test_the_title_strip_carries_text_and_maps_differ(scene):
    photo, sal = scene
    a = kc.show(sal, method="saliency", title="A").image
    b = kc.show(sal, method="saliency", title="BBBBBBBB").image
    assert not np.array_equal(a[:panel.TITLE_HEIGHT], b[:panel.TITLE_HEIGHT])
    assert np.array_equal(a[panel.TITLE_HEIGHT:], b[panel.TITLE_HEIGHT:])
    assert not np.array_equal(kc.show(sal, index=0).image, kc.show(sal, index=1).image)


def test_guided_maps_use_the_grey_projection_scale(scene):
    photo, _ = scene
    guided = np.random.default_rng(1).normal(size=(1, 48, 48, 3))
    img = kc.show(guided, method="guided_backprop").image
    picture, _ = pictures("guided", np.zeros((48, 48, 3), np.uint8), guided[0])
    assert np.array_equal(block(img, panel.TITLE_HEIGHT, 0, enlarge(picture)), enlarge(picture))
    strip = strip_row(img, img.shape[1], enlarge(picture).shape[0])
    assert np.array_equal(strip, render.colormap(np.linspace(0, 1, strip.shape[0]), "grey"))


def test_save_writes_the_same_png(scene, tmp_path):
    photo, sal = scene
    fig = kc.show(sal, image=photo, method="smoothgrad")
    fig.save(tmp_path / "f.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "f.png").convert("RGB")), fig.image)


def _occlusion(rng):
    from keras_convviz.methods.occlusion import Occlusion

    g = 5
    return Occlusion(probability=rng.random((1, g, g)), top_class=rng.integers(0, 3, (1, g, g)),
                     activation=rng.random((1, g, g)), target=np.array([2]), layer="conv",
                     map_index=np.array([7]), base_probability=np.array([0.9]), base_class=np.array([2]),
                     base_activation=np.array([1.0]), patch=(16, 16), stride=(8, 8),
                     origins_y=np.arange(0, 40, 8), origins_x=np.arange(0, 40, 8), image_size=(48, 48),
                     fill=np.zeros(3))


def test_an_occlusion_result_renders_itself_as_the_cli_panel(scene):
    from keras_convviz.figures.occlusion import figure

    photo, _ = scene
    occ = _occlusion(np.random.default_rng(2))
    names = ["cat", "dog", "Egyptian cat"]
    img = decode(kc.show(occ, image=photo, class_names=names)._repr_png_())
    cli = figure(photo, occ, 0, class_names=names, placement=place(photo.shape[:2], (48, 48), "pad"))
    assert np.array_equal(block(img, panel.TITLE_HEIGHT, 0, cli), cli)
    assert np.array_equal(decode(occ._repr_png_()), kc.show(occ).image)


def test_class_models_render_the_cli_sheet():
    from keras_convviz.figures.optimize import sheet
    from keras_convviz.methods.classmodel import ClassModel

    rng = np.random.default_rng(3)
    images = rng.normal(size=(2, 32, 32, 3)).astype(np.float32)
    probs = rng.dirichlet(np.ones(4), 2)
    result = ClassModel(images, np.zeros((3, 2)), np.array([1, 3]), np.array([2.0, 3.0]), np.zeros((2, 4)),
                        probs, np.zeros(2))
    img = decode(result._repr_png_())
    titles = [f"class {t} {s:.3g} p={float(p.max()):.2f}" for t, s, p in zip([1, 3], [2.0, 3.0], probs)]
    cli = sheet(result.rgb(), titles)
    assert np.array_equal(block(img, panel.TITLE_HEIGHT, 0, cli), cli)
    assert img.shape[0] == panel.TITLE_HEIGHT + cli.shape[0]  # pictures, not maps: no colour bar


def test_plain_objects_are_refused_with_the_kinds_it_draws():
    with pytest.raises(TypeError, match="Occlusion"):
        kc.show(object())
    with pytest.raises(ValueError, match="shape"):
        kc.show(np.zeros(5))
