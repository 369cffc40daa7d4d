"""Reading one image file into a ``(C, H, W)`` tensor without losing bits.

Microscopy crops are usually 16-bit TIFFs written by ImageJ/Fiji; teaching sets are 8-bit PNG,
JPEG or BMP. The most common silent error with such data is a 16-bit image squeezed into 8 bits
on loading (Pillow's ``convert("L")`` clips "I;16" images to 255), which destroys exactly the
faint contrast a phase-contrast classifier needs. So every decoder here hands its pixels to NumPy
unchanged, and the only conversions are lossless ones:

=============  ===============  =========
source         tensor dtype     bit depth
=============  ===============  =========
uint8          ``uint8``        8
int8           ``int32``        8
uint16, int16  ``int32``        16
uint32, int32  ``int64``        32
int64          ``int64``        64
float          ``float32``      32
=============  ===============  =========

(PyTorch cannot flip or rotate ``uint16`` tensors, hence ``int32`` for 16-bit data.) Alpha
channels are dropped: a classifier sees gray or RGB. The format is recognised from the file's
first bytes, not its extension, so a PNG saved as ``.tif`` still loads correctly.

Pillow reads 16-bit *colour* PNGs (RGB, RGBA, gray+alpha) as 8-bit, so those are decoded by
:func:`_read_png16`, a small PNG decoder of our own, instead.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import tifffile
import torch
from PIL import Image

from cnnlab.errors import CnnlabError

#: File name extensions that :func:`read_image` understands (lower case).
IMAGE_EXTENSIONS = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PILLOW_FORMATS = {"PNG", "JPEG", "MPO", "BMP", "DIB"}
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601, as Pillow and ImageJ use


def read_image(
    path: str | os.PathLike, channels: int | None = None, plane: int | None = None
) -> tuple[torch.Tensor, int]:
    """The image at ``path`` as a ``(C, H, W)`` tensor, and the bit depth of the file.

    ``channels=1`` turns RGB into gray (ITU-R 601 luma, rounded back to the integer type),
    ``channels=3`` repeats a gray plane; ``None`` keeps what the file has. ``plane`` picks one
    2D plane of a TIFF stack; a stack without ``plane`` is an error, because silently taking
    the first slice of a z-stack or hyperstack is rarely what was meant.
    """
    array, bit_depth = read_array(path, channels=channels, plane=plane)
    return torch.from_numpy(array), bit_depth


def read_array(
    path: str | os.PathLike, channels: int | None = None, plane: int | None = None
) -> tuple[np.ndarray, int]:
    """Like :func:`read_image` but returns a NumPy array (cheap to send between processes)."""
    path = Path(path)
    if channels not in (None, 1, 3):
        raise CnnlabError(f"channels must be 1 or 3, not {channels}")
    head = _read_head(path)
    if head.startswith(_TIFF_MAGIC):
        pixels = _read_tiff(path, plane)
    else:
        if plane not in (None, 0):
            raise CnnlabError(f"{path}: not a TIFF stack, so there is no plane {plane}")
        pixels = _read_png16(path) if _is_png16_colour(head) else _read_pillow(path)
    array, bit_depth = _to_tensor_dtype(pixels, path)
    return _convert_channels(array, channels, path), bit_depth


# --------------------------------------------------------------------------------- sniffing
def _read_head(path: Path) -> bytes:
    try:
        with open(path, "rb") as file:
            head = file.read(64)
    except FileNotFoundError:
        raise CnnlabError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise CnnlabError(f"{path}: is a folder, not an image file") from None
    except PermissionError:
        raise CnnlabError(f"{path}: permission denied; make the file readable") from None
    except OSError as error:
        raise CnnlabError(f"{path}: cannot read ({error.strerror or error})") from None
    if not head:
        raise CnnlabError(f"{path}: empty file, not an image")
    return head


def _decoder_error(path: Path, error: Exception) -> CnnlabError:
    detail = " ".join(str(error).split())[:160] or type(error).__name__
    return CnnlabError(f"{path}: corrupt, truncated or not a supported image ({detail})")


# --------------------------------------------------------------------------------- TIFF
def _read_tiff(path: Path, plane: int | None) -> np.ndarray:
    """The pixels of one 2D plane as ``(H, W)`` or ``(H, W, S)`` (S samples per pixel)."""
    try:
        with tifffile.TiffFile(path) as tif:
            stacks = [_planes(series.asarray(), series.axes, path) for series in tif.series]
            axes = tif.series[0].axes if tif.series else ""
    except CnnlabError:
        raise
    except MemoryError:
        raise
    except Exception as error:
        # tifffile decodes compressed TIFFs through imagecodecs; should that be missing, Pillow
        # can stand in, but only for what it reads faithfully: one plane of 8-bit samples.
        # Anything else would come back silently cut to 8 bits or to its first plane.
        if not _pillow_reads_faithfully(path):
            raise _decoder_error(path, error) from None
        try:
            return _read_pillow(path)
        except CnnlabError:
            raise _decoder_error(path, error) from None
    if not stacks:
        raise CnnlabError(f"{path}: TIFF file holds no image")
    total = sum(len(stack) for stack in stacks)
    if plane is None:
        if total > 1:
            raise CnnlabError(
                f"{path}: is a stack of {total} planes (axes {axes}), not a single image; "
                f"choose one with plane=0..{total - 1} or save the planes as separate files"
            )
        plane = 0
    if not 0 <= plane < total:
        raise CnnlabError(
            f"{path}: has {total} planes, so plane must be 0..{total - 1}, not {plane}"
        )
    for stack in stacks:
        if plane < len(stack):
            return stack[plane]
        plane -= len(stack)
    raise AssertionError("unreachable")


def _pillow_reads_faithfully(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            bits = image.tag_v2.get(258, (8,)) if hasattr(image, "tag_v2") else (8,)
            bits = bits if isinstance(bits, tuple) else (bits,)
            return getattr(image, "n_frames", 1) == 1 and max(bits) <= 8
    except Exception:
        return False


def _planes(array: np.ndarray, axes: str, path: Path) -> np.ndarray:
    """``array`` reshaped to ``(planes, Y, X)`` or ``(planes, Y, X, S)``."""
    if "Y" not in axes or "X" not in axes or len(axes) != array.ndim:
        raise CnnlabError(f"{path}: TIFF with axes {axes!r} is not a 2D image")
    order = [i for i, axis in enumerate(axes) if axis not in "YXS"]
    order += [axes.index("Y"), axes.index("X")]
    if "S" in axes:
        order.append(axes.index("S"))
    array = array.transpose(order)
    planes = math.prod(array.shape[: len(order) - (3 if "S" in axes else 2)])
    return array.reshape((planes, *array.shape[-(3 if "S" in axes else 2) :]))


# --------------------------------------------------------------------------------- Pillow
def _read_pillow(path: Path) -> np.ndarray:
    """Pixels of a PNG, JPEG or BMP file as ``(H, W)`` or ``(H, W, S)``."""
    try:
        with Image.open(path) as image:
            if image.format not in _PILLOW_FORMATS | {"TIFF"}:
                raise CnnlabError(
                    f"{path}: unsupported image format {image.format}; "
                    "convert it to TIFF, PNG, JPEG or BMP"
                )
            image.load()
            return _pillow_pixels(image)
    except CnnlabError:
        raise
    except MemoryError:
        raise
    except Exception as error:
        raise _decoder_error(path, error) from None


def _pillow_pixels(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("P", "PA"):
        palette = np.asarray(image.getpalette() or [0, 0, 0]).reshape(-1, 3)
        gray = bool((palette == palette[:, :1]).all())
        image, mode = image.convert("L" if gray else "RGB"), "L" if gray else "RGB"
    elif mode == "1":
        image, mode = image.convert("L"), "L"
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        image, mode = image.convert("RGB"), "RGB"
    array = np.asarray(image)
    if mode == "I" and image.format == "PNG":
        # Pillow opens 16-bit gray PNGs as 32-bit "I" in some versions; the data is 16-bit.
        array = array.astype(np.uint16)
    if mode in ("LA", "La"):
        array = array[..., 0]
    elif mode in ("RGBA", "RGBa", "RGBX"):
        array = array[..., :3]
    return array


# --------------------------------------------------------------------------------- PNG 16
def _is_png16_colour(head: bytes) -> bool:
    """A 16-bit PNG that Pillow would cut to 8 bits (colour type 2, 4 or 6)."""
    is_png = head.startswith(_PNG_MAGIC) and len(head) >= 26
    return is_png and head[24] == 16 and head[25] in (2, 4, 6)


def _read_png16(path: Path) -> np.ndarray:
    """Pixels of a 16-bit RGB, RGBA or gray+alpha PNG, exactly (H, W, S) ``uint16``."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CnnlabError(f"{path}: cannot read ({error.strerror or error})") from None
    header, idat, pos = None, [], len(_PNG_MAGIC)
    while True:
        if pos + 8 > len(data):
            raise CnnlabError(f"{path}: truncated PNG file (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if len(chunk) < length:
            raise CnnlabError(f"{path}: truncated PNG file (chunk {kind!r} cut short)")
        pos += 12 + length
        if kind == b"IHDR":
            if len(chunk) < 13:
                raise CnnlabError(f"{path}: corrupt PNG file (IHDR chunk too short)")
            header = struct.unpack(">IIBBBBB", chunk[:13])
        elif kind == b"IDAT":
            idat.append(chunk)
        elif kind == b"IEND":
            break
    if header is None or not idat:
        raise CnnlabError(f"{path}: corrupt PNG file (no IHDR or IDAT chunk)")
    width, height, _depth, colour, _compression, _filter, interlace = header
    if interlace:
        raise CnnlabError(
            f"{path}: interlaced 16-bit colour PNG is not supported; save it without "
            "interlacing or as a 16-bit TIFF"
        )
    samples = {2: 3, 4: 2, 6: 4}[colour]
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as error:
        raise CnnlabError(f"{path}: corrupt PNG data ({error})") from None
    stride = width * samples * 2
    if len(raw) != height * (stride + 1):
        raise CnnlabError(f"{path}: corrupt or truncated PNG data")
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, stride + 1)
    pixels = _unfilter(rows, bytes_per_pixel=samples * 2, path=path)
    return pixels.view(">u2").reshape(height, width, samples)


def _unfilter(rows: np.ndarray, bytes_per_pixel: int, path: Path) -> np.ndarray:
    """Undo the PNG row filters (None, Sub, Up, Average, Paeth) of each row."""
    height, stride = rows.shape[0], rows.shape[1] - 1
    out = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.uint8)
    bpp = bytes_per_pixel
    for y in range(height):
        kind, line = int(rows[y, 0]), rows[y, 1:]
        if kind == 0:
            current = line.copy()
        elif kind == 1:
            current = np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:
            current = line + previous
        elif kind in (3, 4):
            current_list = line.tolist()
            above = previous.tolist()
            for i in range(stride):
                left = current_list[i - bpp] if i >= bpp else 0
                if kind == 3:
                    predicted = (left + above[i]) >> 1
                else:
                    upper_left = above[i - bpp] if i >= bpp else 0
                    estimate = left + above[i] - upper_left
                    pa, pb, pc = (
                        abs(estimate - left),
                        abs(estimate - above[i]),
                        abs(estimate - upper_left),
                    )
                    if pa <= pb and pa <= pc:
                        predicted = left
                    elif pb <= pc:
                        predicted = above[i]
                    else:
                        predicted = upper_left
                current_list[i] = (current_list[i] + predicted) & 0xFF
            current = np.array(current_list, dtype=np.uint8)
        else:
            raise CnnlabError(f"{path}: corrupt PNG data (unknown row filter {kind})")
        out[y] = current
        previous = current
    return out


# --------------------------------------------------------------------------------- dtypes
def _to_tensor_dtype(pixels: np.ndarray, path: Path) -> tuple[np.ndarray, int]:
    """``(C, H, W)`` array in the dtype the tensor will have, and the bit depth."""
    if pixels.ndim == 2:
        pixels = pixels[np.newaxis]
    elif pixels.ndim == 3:
        samples = pixels.shape[-1]
        if samples == 2:  # gray + alpha
            pixels = pixels[..., :1]
        elif samples == 4:  # RGBA
            pixels = pixels[..., :3]
        elif samples not in (1, 3):
            raise CnnlabError(
                f"{path}: {samples} samples per pixel; only gray and RGB (with optional "
                "alpha) are supported"
            )
        pixels = pixels.transpose(2, 0, 1)
    else:
        raise CnnlabError(f"{path}: image of shape {pixels.shape} is not 2D")
    kind, size = pixels.dtype.kind, pixels.dtype.itemsize
    if pixels.dtype == np.bool_:
        array, bit_depth = pixels.astype(np.uint8) * np.uint8(255), 8
    elif kind == "u" and size == 1:
        array, bit_depth = pixels.astype(np.uint8), 8
    elif kind in "iu" and size <= 2:
        array, bit_depth = pixels.astype(np.int32), 8 * size
    elif (kind in "iu" and size <= 4) or (kind == "i" and size == 8):
        array, bit_depth = pixels.astype(np.int64), 8 * size
    elif kind == "f":
        array, bit_depth = pixels.astype(np.float32), 32
    else:
        raise CnnlabError(f"{path}: pixel type {pixels.dtype} is not supported")
    return np.ascontiguousarray(array), bit_depth


def _convert_channels(array: np.ndarray, channels: int | None, path: Path) -> np.ndarray:
    have = array.shape[0]
    if channels is None or channels == have:
        return array
    if channels == 3 and have == 1:
        return np.repeat(array, 3, axis=0)
    if channels == 1 and have == 3:
        gray = np.tensordot(_LUMA, array.astype(np.float64), axes=1)[np.newaxis]
        if array.dtype.kind == "f":
            return gray.astype(array.dtype)
        info = np.iinfo(array.dtype)
        return np.clip(np.rint(gray), info.min, info.max).astype(array.dtype)
    raise CnnlabError(f"{path}: cannot convert {have} channels to {channels}")
