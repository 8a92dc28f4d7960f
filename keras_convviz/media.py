"""Read images and video frames; write outputs atomically.

Every reader returns RGB ``uint8`` arrays ``(H, W, 3)`` and raises
``ValueError`` with a message a user can act on. Writers go through a
temporary file in the target folder and ``os.replace``, so an interrupted run
never leaves a half-written PNG or GIF behind.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import uuid
import warnings

import numpy as np
from PIL import Image, ImageOps

# one list for the readers and the CLI's pre-flight (which runs before numpy is imported)
from .preflight import VIDEO_EXTENSIONS

__all__ = [
    "VIDEO_EXTENSIONS",
    "MAX_PIXELS",
    "open_image",
    "read_image",
    "read_frame",
    "read_input",
    "resize",
    "atomic_write",
    "save_png",
    "save_gif",
    "png_bytes",
    "capped",
    "MAX_PICTURE_SIDE",
    "discard_partial",
    "frame_count",
]


def _to_rgb8(img):
    """Any PIL image (grayscale, palette, RGBA, 16-bit, float) as RGB uint8."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        if img.mode == "F":
            top = max(float(arr.max()), 1e-12) if arr.max() > 1 else 1.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(canvas, rgba)
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return arr


def _check_file(path, what):
    if not os.path.exists(path):
        raise ValueError(f"{what} {path!r} does not exist")
    if not os.path.isfile(path):
        raise ValueError(f"{what} {path!r} is not a file")


# The largest image (in pixels) any reader decodes; more is refused as a
# decompression bomb. Change it here, or pass ``max_pixels=`` to a reader.
MAX_PIXELS = 89_478_485  # PIL's own default: 256 MiB of RGB, about 9459 x 9459


@contextlib.contextmanager
def open_image(path, max_pixels=None):
    """The one image-reading gate: ``Image.open`` whose every failure is a ``ValueError``.

    Decoder errors of any type, PIL's ``DecompressionBombWarning`` and
    ``DecompressionBombError``, and images above ``max_pixels`` (default
    :data:`MAX_PIXELS`) all become ``ValueError("cannot read image ...")``.
    The size is checked from the header, before any pixel is decoded.
    """
    path = os.fspath(path)
    _check_file(path, "image")
    limit = MAX_PIXELS if max_pixels is None else int(max_pixels)
    try:
        with _pil_limit(limit):
            img = Image.open(path)  # reads the header only
        with img:
            width, height = img.size
            if width * height > limit:
                raise ValueError(f"{width}x{height} pixels is over the limit of {limit} pixels "
                                 f"(media.MAX_PIXELS); a decompression bomb?")
            yield img
    except _Ours:
        raise
    except Exception as err:  # any decoder failure, DecompressionBombWarning/Error included
        raise ValueError(f"cannot read image {path!r}: {_first_line(err)}") from None


_PIL_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _pil_limit(limit):
    """PIL's own bomb check at ``limit`` while a header is read, its warning an error.

    PIL keeps its limit in a global (``Image.MAX_IMAGE_PIXELS``); the lock
    keeps readers on other threads (tf.data generators) from restoring it wrongly.
    """
    with _PIL_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, limit
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


class _Ours(ValueError):
    """A message of ours raised inside the gate: passed through as it is."""


def _first_line(err):
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_image(path, frame=0, max_pixels=None):
    """An image file (PNG, JPEG, ...) as RGB uint8 ``(H, W, 3)``, through :func:`open_image`.

    ``frame`` picks a frame of a multi-frame image (animated GIF/PNG, TIFF).
    """
    path = os.fspath(path)
    with open_image(path, max_pixels) as img:
        count = getattr(img, "n_frames", 1)
        if frame >= count:
            raise _Ours(
                f"frame {frame} is past the end of {path!r}, which has {count} "
                f"frame{'s' if count != 1 else ''} (0..{count - 1})"
            )
        img.seek(frame)
        img.load()
        # phones store the sensor's pixels plus an EXIF orientation tag; show the photo as it was taken
        return _to_rgb8(ImageOps.exif_transpose(img))


def _open_video(path):
    import imageio.v2 as iio

    try:
        return iio.get_reader(path, "ffmpeg")
    except Exception as err:  # imageio raises many types for a bad file
        raise ValueError(f"cannot read video {path!r}: {str(err).splitlines()[0]}") from None


def read_frame(path, frame):
    """Frame number ``frame`` (0-based) of a video, as RGB uint8 ``(H, W, 3)``."""
    path = os.fspath(path)
    _check_file(path, "video")
    if frame is None or int(frame) < 0:
        raise ValueError(f"frame must be a frame number >= 0, got {frame!r}")
    frame = int(frame)
    reader = _open_video(path)
    try:
        count = reader.count_frames()
        if frame >= count:
            raise ValueError(
                f"frame {frame} is past the end of {path!r}, which has {count} frames "
                f"(0..{count - 1})"
            )
        try:
            data = reader.get_data(frame)
        except (IndexError, RuntimeError) as err:
            raise ValueError(f"cannot decode frame {frame} of {path!r}: {err}") from None
    finally:
        reader.close()
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, -1)
    return np.ascontiguousarray(arr[..., :3]).astype(np.uint8)


def frame_count(path) -> int:
    """How many frames a video or an image file holds (1 for a still image)."""
    path = os.fspath(path)
    if path.lower().endswith(VIDEO_EXTENSIONS):
        _check_file(path, "video")
        reader = _open_video(path)
        try:
            return int(reader.count_frames())
        finally:
            reader.close()
    with open_image(path) as img:
        return int(getattr(img, "n_frames", 1))


def read_input(path, frame=None):
    """An image, or frame ``frame`` of a video (chosen by extension or by ``frame``)."""
    is_video = os.fspath(path).lower().endswith(VIDEO_EXTENSIONS)
    if is_video:
        return read_frame(path, 0 if frame is None else frame)
    if frame is None:
        return read_image(path)
    if int(frame) < 0:
        raise ValueError(f"frame must be a frame number >= 0, got {frame!r}")
    _check_file(os.fspath(path), "input")
    try:  # an image file (possibly multi-frame) with a frame number; read_image checks the rest
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.open(path).close()
    except Exception:  # UnidentifiedImageError, OSError, DecompressionBombError, ...
        raise ValueError(
            f"cannot read {os.fspath(path)!r}: not an image, and not a video "
            f"({' '.join(VIDEO_EXTENSIONS)})"
        ) from None
    return read_image(path, int(frame))


def resize(image, size):
    """Resize an RGB uint8 image to ``size = (H, W)`` (bilinear)."""
    h, w = int(size[0]), int(size[1])
    if image.shape[:2] == (h, w):
        return image
    return np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))


def atomic_write(path, data):
    """Write ``data`` (bytes) to ``path`` through a temporary file and rename."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # The name is registered before the file exists, so a signal at any moment finds it (discard_partial).
    tmp = os.path.join(folder, f".convviz-{uuid.uuid4().hex}.part")
    try:  # any exit (an OSError, KeyboardInterrupt, ...) removes the temporary
        with _signals_held():  # registered and created as one step: no signal sees a file not in WRITING
            WRITING.add(tmp)
            # 0o666 through the umask, as open() would give; mkstemp's 0600 would ignore the user's umask
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        with _signals_held():  # removed, then forgotten: never forgotten while it still exists
            if os.path.exists(tmp):
                os.unlink(tmp)
            WRITING.discard(tmp)
    return path


@contextlib.contextmanager
def _signals_held():
    """SIGINT/SIGTERM held back (delivered on exit) in the main thread, where the CLI's handler runs."""
    import signal

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    saved = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, saved)


# Temporary files being written right now (atomic_write); the CLI's signal handler removes them.
WRITING = set()


def discard_partial() -> int:
    """Remove every temporary file an interrupted ``atomic_write`` leaves; returns how many.

    Safe from a signal handler: the CLI calls it on SIGINT/SIGTERM before it
    exits, since an exception raised there could corrupt TensorFlow's C++ state.
    """
    removed = 0
    for tmp in list(WRITING):
        try:
            os.unlink(tmp)
            removed += 1
        except OSError:  # not created yet, or already renamed into place
            pass
    return removed


def _as_uint8(image):
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(arr * (255.0 if arr.max(initial=0) <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return arr


# No written picture is longer than this a side: an extreme-aspect photo (1000x1) would otherwise
# give strips of hundreds of thousands of pixels once panels are enlarged or put side by side.
MAX_PICTURE_SIDE = 1024


def capped(image, max_side=None):
    """A uint8 picture whose every side is at most ``max_side`` (:data:`MAX_PICTURE_SIDE`), aspect kept.

    Larger pictures are scaled down (Lanczos; at least 1 px a side); smaller ones pass unchanged.
    """
    arr = _as_uint8(image)
    limit = MAX_PICTURE_SIDE if max_side is None else int(max_side)
    h, w = arr.shape[:2]
    if max(h, w) <= limit:
        return arr
    factor = limit / max(h, w)
    size = (max(1, min(limit, round(w * factor))), max(1, min(limit, round(h * factor))))
    return np.asarray(Image.fromarray(arr).resize(size, Image.LANCZOS))


def png_bytes(image):
    """PNG-encode an RGB/gray image (uint8, or float in [0, 1]), capped at :data:`MAX_PICTURE_SIDE` a side."""
    buf = io.BytesIO()
    Image.fromarray(capped(image)).save(buf, format="PNG")
    return buf.getvalue()


def save_png(path, image):
    return atomic_write(path, png_bytes(image))


def save_gif(path, frames, duration=0.5):
    """Write frames (uint8 RGB) as a looping GIF with imageio."""
    import imageio.v3 as iio

    buf = io.BytesIO()
    frames = [capped(f) for f in frames]
    iio.imwrite(buf, np.stack(frames), extension=".gif", duration=int(duration * 1000), loop=0)
    return atomic_write(path, buf.getvalue())
