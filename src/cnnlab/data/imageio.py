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
channels are dropped: a classifier sees gray or RGB (converted by :mod:`cnnlab.data.channels`).
The format is recognised from the file's first bytes, not its extension, so a PNG saved as
``.tif`` still loads correctly.

Pillow reads 16-bit *colour* PNGs (RGB, RGBA, gray+alpha) as 8-bit, so those are decoded by
libpng through imagecodecs, a dependency of cnnlab that tifffile also uses for compressed TIFFs.

A damaged file is refused rather than read as a wrong image: PNG chunks must pass their CRC, a
TIFF's strips must lie inside the file (tifffile fills missing strips with zeros), any warning
tifffile logs while reading counts as damage (and is kept off the user's terminal), and float
pixels must be finite. A header may declare any size, so the size is checked against
:data:`MAX_IMAGE_BYTES` (and, for the formats Pillow decodes, Pillow's ``MAX_IMAGE_PIXELS``)
before anything of that size is allocated.
"""

from __future__ import annotations

import errno
import hashlib
import io
import math
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
import torch
from PIL import Image

from cnnlab.data.channels import convert_array
from cnnlab.data.headers import PNG_MAGIC as _PNG_MAGIC
from cnnlab.data.headers import LogCapture, check_png_chunks, jpeg_size, logged_damage
from cnnlab.errors import CnnlabError

#: File name extensions that :func:`read_image` understands (lower case).
IMAGE_EXTENSIONS = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
#: Largest file, and largest decoded image (all planes, in the file's dtype), that is read.
MAX_IMAGE_BYTES = 1 << 30

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PILLOW_FORMATS = ("PNG", "JPEG", "BMP", "DIB")  # Pillow reports some JPEGs as "MPO"
_OS_ERRORS = {
    errno.ENOENT: "not found",
    errno.EACCES: "permission denied; make it readable",
    errno.EPERM: "permission denied; make it readable",
    errno.ELOOP: "symbolic link loop (too many levels of symbolic links); fix or remove the link",
    errno.EIO: "input/output error while reading it; check the disk or network share",
}


@dataclass(frozen=True)
class FileImage:
    """One decoded file: pixels as returned by :func:`read_array`, and facts about the file."""

    array: np.ndarray
    bit_depth: int
    samples: int  #: samples per pixel in the file, alpha included (4 for RGBA)
    digest: str  #: BLAKE2b of the file's bytes, to recognise copies


def read_image(
    path: str | os.PathLike, channels: int | None = None, plane: int | None = None
) -> tuple[torch.Tensor, int]:
    """The image at ``path`` as a ``(C, H, W)`` tensor, and the bit depth of the file.

    ``channels=1`` turns RGB into gray, ``channels=3`` repeats a gray plane (both by
    :func:`cnnlab.data.channels.convert_array`); ``None`` keeps what the file has. ``plane``
    picks one 2D plane of a TIFF stack; a stack without ``plane`` is an error, because silently
    taking the first slice of a z-stack or hyperstack is rarely what was meant.
    """
    array, bit_depth = read_array(path, channels=channels, plane=plane)
    return torch.from_numpy(array), bit_depth


def read_array(
    path: str | os.PathLike, channels: int | None = None, plane: int | None = None
) -> tuple[np.ndarray, int]:
    """Like :func:`read_image` but returns a NumPy array (cheap to send between processes)."""
    image = read_image_file(path, channels=channels, plane=plane)
    return image.array, image.bit_depth


def read_image_file(
    path: str | os.PathLike, channels: int | None = None, plane: int | None = None
) -> FileImage:
    """Like :func:`read_array`, with the file's samples per pixel and a digest of its bytes."""
    path = Path(path)
    if channels not in (None, 1, 3):
        raise CnnlabError(f"--channels (channels=) must be 1 or 3, not {channels}")
    data = _read_bytes(path)
    try:
        if data.startswith(_TIFF_MAGIC):
            pixels = _read_tiff(data, path, plane)
        else:
            if plane not in (None, 0):
                raise CnnlabError(f"{path}: not a TIFF stack, so there is no plane {plane}")
            if data.startswith(_PNG_MAGIC):
                check_png_chunks(data, path)
            _check_declared_size(data, path)
            pixels = _read_png16(data, path) if _is_png16_colour(data) else _read_pillow(data, path)
        samples = pixels.shape[2] if pixels.ndim == 3 else 1
        array, bit_depth = _to_tensor_dtype(pixels, path)
        array = array if channels is None else convert_array(array, channels)
    except MemoryError:
        raise CnnlabError(f"{path}: not enough memory to decode it; free memory") from None
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    return FileImage(array, bit_depth, samples, digest)


# --------------------------------------------------------------------------------- files
def os_error(path: str | os.PathLike, error: OSError) -> CnnlabError:
    """A failed file-system call on ``path`` as a one-line error that says what to do."""
    if error.errno == errno.ENOENT and os.path.islink(path):
        return CnnlabError(
            f"{path}: broken symbolic link (its target is missing); fix or remove it"
        )
    what = _OS_ERRORS.get(error.errno or 0, f"cannot read it ({error.strerror or error})")
    return CnnlabError(f"{path}: {what}")


def _read_bytes(path: Path) -> bytes:
    """The whole file: it is hashed anyway, and decoding from memory never over-allocates."""
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise CnnlabError(f"{path}: is a folder, not an image file")
        if not stat.S_ISREG(info.st_mode):
            raise CnnlabError(f"{path}: not a regular file, so not an image file")
        if info.st_size > MAX_IMAGE_BYTES:
            raise CnnlabError(
                f"{path}: file of {info.st_size:,} bytes is larger than the "
                f"{MAX_IMAGE_BYTES:,} bytes cnnlab reads; crop or split the image"
            )
        with open(path, "rb", buffering=0) as file:
            data = file.readall()
    except OSError as error:
        raise os_error(path, error) from None
    if not data:
        raise CnnlabError(f"{path}: empty file, not an image")
    return data


def _decoder_error(path: Path, error: Exception) -> CnnlabError:
    detail = " ".join(str(error).split())[:160] or type(error).__name__
    return CnnlabError(f"{path}: corrupt, truncated or not a supported image ({detail})")


def _too_large(path: Path, what: str, nbytes: int, pixels: int, limit: int | None) -> None:
    if nbytes > MAX_IMAGE_BYTES or (limit is not None and pixels > limit):
        limits = f"{MAX_IMAGE_BYTES >> 20} MiB" + (f" and {limit:,} pixels" if limit else "")
        raise CnnlabError(
            f"{path}: its header declares {what} ({pixels:,} pixels, {nbytes:,} bytes decoded), "
            f"more than cnnlab decodes ({limits}); the file is damaged, or crop or shrink it"
        )


# --------------------------------------------------------------------------------- TIFF
_LIBRARY_LOG = LogCapture("tifffile", "imagecodecs")


def _read_tiff(data: bytes, path: Path, plane: int | None) -> np.ndarray:
    """The pixels of one 2D plane as ``(H, W)`` or ``(H, W, S)`` (S samples per pixel)."""
    with _LIBRARY_LOG.capture() as records:
        try:
            with tifffile.TiffFile(io.BytesIO(data), name=path.name) as tif:
                series = list(tif.series)
                if (damage := logged_damage(path, records)) is not None:
                    raise damage
                _check_tiff_layout(series, len(data), path)
                stacks = [_planes(item.asarray(), item.axes, path) for item in series]
                axes = series[0].axes if series else ""
        except (CnnlabError, MemoryError):
            raise
        except Exception as error:
            if (damage := logged_damage(path, records)) is not None:
                raise damage from None
            raise _decoder_error(path, error) from None
    if (damage := logged_damage(path, records)) is not None:
        raise damage
    if not stacks:
        raise CnnlabError(f"{path}: TIFF file holds no image")
    total = sum(len(stack) for stack in stacks)
    if plane is None:
        if total > 1:
            raise CnnlabError(
                f"{path}: is a stack of {total} planes (axes {axes}), not a single image; choose "
                f"one with --plane 0..{total - 1} (plane=) or save the planes as separate files"
            )
        plane = 0
    if not 0 <= plane < total:
        raise CnnlabError(
            f"{path}: has {total} planes, so --plane (plane=) must be 0..{total - 1}, not {plane}"
        )
    for stack in stacks:
        if plane < len(stack):
            return stack[plane]
        plane -= len(stack)
    raise AssertionError("unreachable")


def _check_tiff_layout(series: list, size: int, path: Path) -> None:
    """Refuse sizes over the limit and strips or tiles that are missing or outside the file."""
    total = 0
    for item in series:
        if item.dtype is None:
            raise CnnlabError(f"{path}: TIFF with an unsupported pixel type")
        total += math.prod(item.shape) * item.dtype.itemsize
        what = f"a TIFF image of shape {tuple(item.shape)} ({item.axes})"
        _too_large(path, what, total, math.prod(item.shape), None)
        if item.dataoffset is not None and item.dataoffset + item.nbytes > size:
            raise CnnlabError(f"{path}: truncated TIFF (pixel data runs past the end of the file)")
        for page in item.pages:
            if page is None:  # tifffile would fill it with zeros
                raise CnnlabError(f"{path}: damaged TIFF (a page of the image is missing)")
            for offset, count in zip(page.dataoffsets, page.databytecounts, strict=False):
                if offset <= 0 or count <= 0:
                    raise CnnlabError(f"{path}: damaged TIFF (a strip or tile has no data)")
                if offset + count > size:
                    raise CnnlabError(f"{path}: truncated TIFF (a strip ends past the end of file)")


def _planes(array: np.ndarray, axes: str, path: Path) -> np.ndarray:
    """``array`` reshaped to ``(planes, Y, X)`` or ``(planes, Y, X, S)``."""
    if "Y" not in axes or "X" not in axes:
        raise CnnlabError(f"{path}: TIFF with axes {axes!r} is not a 2D image")
    if len(axes) != array.ndim:
        raise CnnlabError(f"{path}: damaged TIFF (pixels of shape {array.shape}, axes {axes})")
    order = [i for i, axis in enumerate(axes) if axis not in "YXS"]
    order += [axes.index("Y"), axes.index("X")]
    if "S" in axes:
        order.append(axes.index("S"))
    array = array.transpose(order)
    planes = math.prod(array.shape[: len(order) - (3 if "S" in axes else 2)])
    return array.reshape((planes, *array.shape[-(3 if "S" in axes else 2) :]))


# --------------------------------------------------------------------------------- Pillow
def _check_declared_size(data: bytes, path: Path) -> None:
    """Refuse a PNG, BMP or JPEG whose header declares more than will be decoded.

    Checked here, before Pillow opens the file, because Pillow's own check prints a warning
    (``DecompressionBombWarning``) from whichever thread happens to decode.
    """
    declared = None
    if data.startswith(_PNG_MAGIC) and len(data) >= 26:
        width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
        samples = {0: 1, 2: 3, 3: 3, 4: 2}.get(colour, 4)
        declared = width, height, samples * (2 if depth == 16 else 1)
    elif data.startswith(b"BM") and len(data) >= 26:
        core = int.from_bytes(data[14:18], "little") == 12
        width, height = struct.unpack("<HH" if core else "<ii", data[18 : 22 if core else 26])
        declared = abs(width), abs(height), 4
    elif data.startswith(b"\xff\xd8"):
        declared = jpeg_size(data)
    if declared is not None:
        width, height, depth = declared
        what = f"a {width}x{height} image"
        _too_large(path, what, width * height * depth, width * height, Image.MAX_IMAGE_PIXELS)


def _read_pillow(data: bytes, path: Path) -> np.ndarray:
    """Pixels of a PNG, JPEG or BMP file as ``(H, W)`` or ``(H, W, S)``."""
    try:
        with Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS) as image:
            image.load()
            return _pillow_pixels(image)
    except Image.UnidentifiedImageError:
        raise CnnlabError(
            f"{path}: not a TIFF, PNG, JPEG or BMP image (or damaged beyond recognition); "
            "convert it to one of these"
        ) from None
    except Image.DecompressionBombError as error:
        raise CnnlabError(f"{path}: image too large to decode ({error})") from None
    except (CnnlabError, MemoryError):
        raise
    except Exception as error:
        raise _decoder_error(path, error) from None


def _pillow_pixels(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("P", "PA"):
        # Looked up here rather than with convert(), which warns about some transparency.
        palette = np.zeros((256, 3), dtype=np.uint8)
        colours = np.asarray(image.getpalette("RGB") or [0, 0, 0], dtype=np.uint8)
        palette[: len(colours) // 3] = colours[: len(colours) // 3 * 3].reshape(-1, 3)[:256]
        indices = np.asarray(image)
        indices = indices[..., 0] if indices.ndim == 3 else indices
        gray = bool((palette == palette[:, :1]).all())
        return palette[indices, 0] if gray else palette[indices]
    if mode == "1":
        image, mode = image.convert("L"), "L"
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        image, mode = image.convert("RGB"), "RGB"
    array = np.asarray(image)
    if mode == "I" and image.format == "PNG":
        # Pillow opens 16-bit gray PNGs as 32-bit "I" in some versions; the data is 16-bit.
        array = array.astype(np.uint16)
    if mode == "RGBX":
        array = array[..., :3]
    return array


# --------------------------------------------------------------------------------- PNG
def _is_png16_colour(head: bytes) -> bool:
    """A 16-bit PNG that Pillow would cut to 8 bits (colour type 2, 4 or 6)."""
    is_png = head.startswith(_PNG_MAGIC) and len(head) >= 26
    return is_png and head[24] == 16 and head[25] in (2, 4, 6)


def _read_png16(data: bytes, path: Path) -> np.ndarray:
    """Pixels of a 16-bit RGB, RGBA or gray+alpha PNG, exactly: (H, W, S) ``uint16`` (libpng)."""
    import imagecodecs  # imported when first needed: it is slow to import

    with _LIBRARY_LOG.capture() as records:
        try:
            pixels = imagecodecs.png_decode(data)
        except MemoryError:
            raise
        except Exception as error:
            raise logged_damage(path, records, "PNG") or _decoder_error(path, error) from None
    if (damage := logged_damage(path, records, "PNG")) is not None:  # libpng's warnings
        raise damage
    return pixels


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
    return tensor_dtype(pixels, path)


def tensor_dtype(pixels: np.ndarray, name: str | os.PathLike) -> tuple[np.ndarray, int]:
    """A ``(C, H, W)`` array in the dtype its tensor has (table above), and that bit depth.

    Shared by the file reader and :func:`cnnlab.export.predict_arrays`, so that an array given
    in memory is held exactly as the same pixels read from a file. ``name`` names the image in
    errors. The result is a new array: it never shares memory with a caller's pixels.
    """
    if 0 in pixels.shape:
        height, width = pixels.shape[-2:]
        raise CnnlabError(f"{name}: image of {height}x{width} pixels holds nothing; it is damaged")
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
        with np.errstate(over="ignore", invalid="ignore"):  # counted below instead
            array, bit_depth = pixels.astype(np.float32), 32
        _check_finite(array, size, name)
    else:
        raise CnnlabError(f"{name}: pixel type {pixels.dtype} is not supported")
    return np.ascontiguousarray(array), bit_depth


def _check_finite(array: np.ndarray, source_size: int, name: str | os.PathLike) -> None:
    """Refuse NaN and infinity: one such pixel turns a whole batch's loss into NaN."""
    bad = array.size - int(np.count_nonzero(np.isfinite(array)))
    if bad:
        what = "NaN or infinite" + (" or beyond the float32 range" if source_size > 4 else "")
        raise CnnlabError(
            f"{name}: {bad:,} of {array.size:,} pixels are not finite ({what}); fix the image, "
            "or pass --skip-bad (skip_bad=True) to leave it out"
        )
