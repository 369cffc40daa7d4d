"""Images in and out of the server: uploads decoded, drawings made MNIST-like, PNGs for the page.

Uploads go through cnnlab's own file reader (:func:`cnnlab.data.imageio.read_image_file`), so a
16-bit TIFF keeps its bits and a damaged file is refused exactly as ``cnnlab predict`` refuses
it. The reader takes a path, so the bytes pass through a private temporary file that is removed
at once; the user's folders are never written.

A drawing on the page's canvas is not an MNIST digit yet: MNIST's digits were cropped to their
ink, scaled (anti-aliased) so that the longer side is 20 pixels, and placed in a 28x28 field so
that their centre of mass is at its centre (LeCun et al.). :func:`prepare_drawing` does the
same, so that a digit drawn anywhere on the canvas, of any size, reaches the network as the
digits it learned on did.
"""

from __future__ import annotations

import base64
import binascii
import io
import tempfile
from pathlib import Path

import matplotlib as mpl
import numpy as np
import tifffile
from PIL import Image

from cnnlab.data.channels import convert_array
from cnnlab.data.imageio import read_image_file
from cnnlab.errors import CnnlabError
from cnnlab.inspect.display import display_pixels
from cnnlab.serve.errors import NOT_AN_IMAGE, TOO_LARGE, UNPROCESSABLE, RequestError

#: Largest image (pixels of one plane) the server decodes: a small PNG can declare a huge one.
MAX_PIXELS = 4096 * 4096
#: MNIST's geometry: the digit's longer side, inside the field's side.
DIGIT_BOX = 20
DIGIT_FIELD = 28
#: Share of the brightest stroke below which a pixel does not count as ink for the crop box.
INK_THRESHOLD = 0.1
#: ``--max-upload-mb`` counts mebibytes.
MIB = 1024 * 1024

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_HEAT = (mpl.colormaps["inferno"](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)
_MAPS = (mpl.colormaps["viridis"](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


# ----------------------------------------------------------------------------- decoding
def limit_text(limit: int) -> str:
    """``limit`` bytes as ``--max-upload-mb`` gives it: ``the 10 MiB limit (--max-upload-mb)``."""
    return f"the {limit / MIB:.4g} MiB limit (--max-upload-mb)"


def check_size(size: int, limit: int, name: str) -> None:
    """Refuses an upload above ``limit`` bytes, before anything of it is decoded."""
    if size > limit:
        raise RequestError(
            f"{name} ({size:,} bytes) is larger than {limit_text(limit)}; send a smaller "
            "image, or start cnnlab serve with a larger --max-upload-mb",
            TOO_LARGE,
        )


def decode_upload(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """An uploaded image file as a ``(C, H, W)`` array in the reader's dtype, and its bit depth.

    Not an image (or a damaged one) is 415; an image larger than :data:`MAX_PIXELS` is 413.
    Errors name the upload by ``name``, never by the temporary file's path.
    """
    if not data:
        raise RequestError(f"{name}: empty upload, not an image", NOT_AN_IMAGE)
    _check_pixels(data, name)
    with tempfile.TemporaryDirectory(prefix="cnnlab-serve-") as folder:
        path = Path(folder) / "upload"
        with open(path, "wb") as file:
            file.write(data)
        try:
            image = read_image_file(path)
        except CnnlabError as error:
            message = str(error).replace(str(path), name)
            raise RequestError(message, NOT_AN_IMAGE) from None
    return image.array, image.bit_depth


def _check_pixels(data: bytes, name: str) -> None:
    """Reads only the header's size, so that a decompression bomb is refused undecoded."""
    try:
        if data.startswith(_TIFF_MAGIC):
            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                sizes = [int(np.prod(series.shape[-3:])) for series in tif.series]
            pixels = max(sizes, default=0)
        else:
            with Image.open(io.BytesIO(data)) as image:
                pixels = image.width * image.height
    except Exception:  # the reader names what is wrong with the file
        return
    if pixels > MAX_PIXELS:
        raise RequestError(
            f"{name}: {pixels:,} pixels is more than this server decodes ({MAX_PIXELS:,}); send "
            "a smaller image",
            TOO_LARGE,
        )


def decode_data_url(url: str, name: str = "image") -> tuple[np.ndarray, int]:
    """A ``data:image/...;base64,`` URL (as the page sends back) decoded like an upload."""
    head, comma, payload = url.partition(",") if isinstance(url, str) else ("", "", "")
    if not comma or not head.startswith("data:image/") or not head.endswith(";base64"):
        raise RequestError(
            f"{name}: not a data URL of an image; send 'data:image/png;base64,...'", NOT_AN_IMAGE
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{name}: the data URL is not valid base64", NOT_AN_IMAGE) from None
    return decode_upload(data, name)


def gray_plane(array: np.ndarray) -> np.ndarray:
    """One ``(H, W)`` plane of a ``(C, H, W)`` image (RGB made gray as training does)."""
    return convert_array(array, 1)[0]


# ----------------------------------------------------------------------------- drawings
def prepare_drawing(gray: np.ndarray) -> np.ndarray:
    """A drawing as an MNIST digit: ``uint8`` 28x28, white strokes on black, centred by mass.

    Dark strokes on a light background are inverted first (judged by the image's border). The
    ink's bounding box is cropped, scaled with anti-aliasing so that its longer side is 20
    pixels (keeping the aspect), and placed in the 28x28 field at the whole-pixel shift that
    brings its centre of mass nearest the field's centre (13.5, 13.5). A blank drawing gives a
    black field.
    """
    pixels = np.asarray(gray, dtype=np.float64)
    if pixels.ndim != 2 or min(pixels.shape) < 1:
        raise RequestError(f"a drawing is one 2-D plane, not shape {pixels.shape}", UNPROCESSABLE)
    pixels = np.nan_to_num(pixels, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(pixels.min()), float(pixels.max())
    field = np.zeros((DIGIT_FIELD, DIGIT_FIELD), dtype=np.uint8)
    if high <= low:
        return field
    pixels = (pixels - low) / (high - low)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if np.median(border) > 0.5:
        pixels = 1.0 - pixels
    rows = np.flatnonzero((pixels >= INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((pixels >= INK_THRESHOLD).any(axis=0))
    if not rows.size:
        return field
    ink = pixels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = DIGIT_BOX / max(ink.shape)
    height = max(1, round(ink.shape[0] * scale))
    width = max(1, round(ink.shape[1] * scale))
    # Lanczos in Pillow widens its kernel by the reduction factor: a true anti-aliasing filter.
    image = Image.fromarray(np.float32(ink * 255.0), mode="F")
    digit = np.asarray(image.resize((width, height), Image.Resampling.LANCZOS), dtype=np.float64)
    digit = np.clip(digit, 0.0, 255.0)
    if digit.sum() <= 0:
        return field
    centre = (DIGIT_FIELD - 1) / 2
    mass = digit / digit.sum()
    row_mass = (mass.sum(axis=1) * np.arange(height)).sum()
    col_mass = (mass.sum(axis=0) * np.arange(width)).sum()
    top = int(np.floor(centre - row_mass + 0.5))
    left = int(np.floor(centre - col_mass + 0.5))
    _paste(field, np.round(digit).astype(np.uint8), top, left)
    return field


def _paste(field: np.ndarray, patch: np.ndarray, top: int, left: int) -> None:
    """Copies ``patch`` into ``field`` at (top, left), clipping what falls outside."""
    rows = slice(max(top, 0), min(top + patch.shape[0], field.shape[0]))
    cols = slice(max(left, 0), min(left + patch.shape[1], field.shape[1]))
    if rows.start < rows.stop and cols.start < cols.stop:
        field[rows, cols] = patch[
            rows.start - top : rows.stop - top, cols.start - left : cols.stop - left
        ]


# ----------------------------------------------------------------------------- display
def png_data_url(pixels: np.ndarray) -> str:
    """``uint8`` ``(H, W)`` or ``(H, W, 3)`` pixels as a PNG ``data:`` URL for an ``<img>``."""
    buffer = io.BytesIO()
    # Level 1: these PNGs are tiny and made on every stroke; speed matters more than bytes.
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def input_pixels(image: np.ndarray, bit_depth: int) -> np.ndarray:
    """A model's ``(C, H, W)`` input as screen pixels: 8-bit as it is, deeper ones stretched.

    A 16-bit crop shown at its raw scale is a flat grey square, so it gets the percentile
    stretch of :func:`cnnlab.inspect.display.display_pixels`; an 8-bit digit is shown unchanged.
    """
    array = np.asarray(image)
    if bit_depth == 8:
        clipped = np.clip(np.round(array), 0, 255).astype(np.uint8)
        return clipped[0] if clipped.shape[0] == 1 else np.moveaxis(clipped, 0, -1)
    return display_pixels(array if array.shape[0] == 3 else array[0])


def scaled(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``values`` mapped from [low, high] to 0..255 (mid-grey when the range is empty)."""
    if not high > low:
        return np.full(values.shape, 128, dtype=np.uint8)
    return np.round(np.clip((values - low) / (high - low), 0.0, 1.0) * 255.0).astype(np.uint8)


def feature_map_pixels(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """One feature map in viridis, on a scale shared by its layer so maps compare."""
    return _MAPS[scaled(np.nan_to_num(values), low, high)]


def heat_overlay(shown: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The heat map (values in [0, 1]) in inferno, blended over the input as shown."""
    base = shown if shown.ndim == 3 else np.repeat(shown[..., np.newaxis], 3, axis=-1)
    colour = _HEAT[scaled(heat, 0.0, 1.0)].astype(np.float64)
    alpha = 0.35 + 0.5 * np.clip(heat, 0.0, 1.0)[..., np.newaxis]
    return np.round(base * (1.0 - alpha) + colour * alpha).astype(np.uint8)
