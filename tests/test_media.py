"""Reading images and video frames, writing outputs atomically (keras_convviz.media)."""

import os

import numpy as np
import pytest
from PIL import Image

from keras_convviz import media


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 7-frame 64x48 mp4 whose frame i has red = 30 * i (written with imageio's ffmpeg)."""
    import imageio.v2 as iio

    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = iio.get_writer(str(path), fps=10, macro_block_size=16)
    for i in range(7):
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[..., 0] = 30 * i
        frame[..., 1] = 100
        writer.append_data(frame)
    writer.close()
    return path


def test_read_frame_returns_the_requested_frame(video):
    for i in (0, 3, 6):
        frame = media.read_frame(video, i)
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
        # lossy h264: within a few levels of the drawn colour
        assert abs(float(frame[..., 0].mean()) - 30 * i) < 6, i
        assert abs(float(frame[..., 1].mean()) - 100) < 6


def test_frame_past_the_end_states_the_frame_count(video):
    with pytest.raises(ValueError, match=r"frame 7 is past the end .* has 7 frames \(0\.\.6\)"):
        media.read_frame(video, 7)
    with pytest.raises(ValueError, match="frame must be a frame number >= 0"):
        media.read_frame(video, -1)


def test_read_input_dispatches_on_extension_and_frame(video, tmp_path):
    assert media.read_input(video).shape == (48, 64, 3)  # a video without a frame: frame 0
    assert abs(float(media.read_input(video, 5)[..., 0].mean()) - 150) < 6
    png = tmp_path / "a.png"
    Image.new("RGB", (10, 8), (1, 2, 3)).save(png)
    assert media.read_input(png)[0, 0].tolist() == [1, 2, 3]
    assert media.read_input(png, 0)[0, 0].tolist() == [1, 2, 3]  # frame 0 of a still image
    with pytest.raises(ValueError, match=r"frame 1 is past the end .* has 1 frame \(0\.\.0\)"):
        media.read_input(png, 1)
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(ValueError, match="not an image, and not a video"):
        media.read_input(other, 0)


def test_animated_gif_frames(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (12, 10), (40 * i, 0, 0)) for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert media.read_input(path, 2)[0, 0, 0] == 80
    assert media.read_image(path)[0, 0, 0] == 0
    with pytest.raises(ValueError, match="has 3 frames"):
        media.read_input(path, 3)


def test_unreadable_or_missing_video_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(ValueError, match="cannot read video"):
        media.read_frame(bad, 0)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="cannot read video"):
        media.read_input(empty, 0)
    with pytest.raises(ValueError, match="does not exist"):
        media.read_frame(tmp_path / "missing.mp4", 0)
    with pytest.raises(ValueError, match="is not a file"):
        media.read_input(tmp_path, 0)


def test_grayscale_rgba_palette_and_16bit_images(tmp_path):
    gray = tmp_path / "gray.png"
    Image.fromarray(np.full((5, 6), 77, np.uint8), "L").save(gray)
    img = media.read_image(gray)
    assert img.shape == (5, 6, 3) and img.dtype == np.uint8 and (img == 77).all()

    # RGBA: composited over white, so a transparent pixel is white, an opaque one keeps its colour
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)
    rgba[0, 1] = (0, 0, 0, 0)
    rgba[0, 2] = (0, 0, 0, 128)
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    img = media.read_image(path)
    assert img.shape == (4, 4, 3)
    assert img[0, 0].tolist() == [255, 0, 0]
    assert img[0, 1].tolist() == [255, 255, 255]
    assert 120 <= img[0, 2, 0] <= 135  # half-transparent black over white: mid grey

    # 16-bit grayscale: the full 0..65535 range maps onto 0..255
    arr16 = np.array([[0, 65535], [32768, 257 * 10]], np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(arr16).save(path)
    assert Image.open(path).mode.startswith("I")
    img = media.read_image(path)
    assert img.dtype == np.uint8 and img.shape == (2, 2, 3)
    assert img[0, 0, 0] == 0 and img[0, 1, 0] == 255
    assert abs(int(img[1, 0, 0]) - 128) <= 1 and abs(int(img[1, 1, 0]) - 10) <= 1

    pal = tmp_path / "pal.png"
    Image.new("RGB", (3, 3), (10, 200, 30)).convert("P", palette=Image.ADAPTIVE).save(pal)
    assert media.read_image(pal)[1, 1].tolist() == [10, 200, 30]

    jpg = tmp_path / "a.jpg"
    Image.new("RGB", (16, 16), (200, 100, 50)).save(jpg, quality=95)
    assert np.abs(media.read_image(jpg).astype(int) - [200, 100, 50]).max() <= 3


def test_corrupt_and_missing_images_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="cannot read image"):
        media.read_image(bad)
    truncated = tmp_path / "trunc.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:60])
    with pytest.raises(ValueError, match="cannot read image"):
        media.read_input(truncated)
    with pytest.raises(ValueError, match="does not exist"):
        media.read_input(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="is not a file"):
        media.read_image(tmp_path)


def test_resize_and_atomic_png(tmp_path):
    img = np.zeros((10, 20, 3), np.uint8)
    assert media.resize(img, (5, 7)).shape == (5, 7, 3)
    assert media.resize(img, (10, 20)) is img
    out = tmp_path / "sub" / "x.png"
    media.save_png(out, np.ones((3, 4), np.float32))
    assert Image.open(out).size == (4, 3)
    assert not [p for p in os.listdir(out.parent) if p.endswith(".part")]
    # a failed write leaves neither the target nor a temporary file behind
    with pytest.raises(Exception):
        media.save_png(tmp_path / "sub" / "y.png", np.zeros((2, 2, 7), np.uint8))
    assert sorted(os.listdir(out.parent)) == ["x.png"]


# EXIF orientation (the tag phones write instead of rotating the pixels), by the EXIF 2.3 table:
# what to do to the stored pixels to show the photo as taken, written with numpy, not PIL
EXIF_DISPLAY = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
                5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
                7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1)}


def _photo_with_orientation(path, pixels, orientation, fmt):
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.save(path, format=fmt, exif=exif.tobytes())


def test_exif_orientation_is_applied_for_phone_photos(tmp_path):
    """Tags 3, 6 and 8 (upside down, on either side) and the mirrored ones: every reader sees the upright photo."""
    pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3) * 2
    for orientation, display in EXIF_DISPLAY.items():
        path = tmp_path / f"phone_{orientation}.png"
        _photo_with_orientation(path, pixels, orientation, "PNG")
        np.testing.assert_array_equal(media.read_image(path), display(pixels), err_msg=f"orientation {orientation}")
        np.testing.assert_array_equal(media.read_input(path), display(pixels))
    jpeg = tmp_path / "phone.jpg"  # JPEG is where phones write the tag: shape says the turn was applied
    _photo_with_orientation(jpeg, np.zeros((16, 32, 3), np.uint8), 6, "JPEG")
    assert media.read_image(jpeg).shape == (32, 16, 3)


def test_exif_orientation_property():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import given, strategies as st
    import tempfile

    @given(st.integers(1, 8), st.integers(1, 9), st.integers(1, 9), st.integers(0, 2 ** 31))
    def check(orientation, height, width, seed):
        pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "p.png")
            _photo_with_orientation(path, pixels, orientation, "PNG")
            np.testing.assert_array_equal(media.read_image(path), EXIF_DISPLAY[orientation](pixels))

    assert hypothesis
    check()
