"""What every microscope-file reader hands to :mod:`cnnlab.microscopy.formats`.

A reader (plain TIFF, ``nd2``, ``bioio``) describes its file as one :class:`Source`: the sizes of
the four dimensions a user can choose from, the names it knows, and a function that reads one 2D
plane. Choosing, checking and labelling happen once, in ``formats``, so every format refuses the
same ambiguous choices with the same words.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.errors import CnnlabError

#: The dimensions a user chooses from, in the order ImageJ titles them, with their flag names.
DIMENSIONS = {"P": "position", "T": "time", "Z": "plane", "C": "channel"}
#: Largest plane side, and largest block of pixels read at once (a plane, or a whole TIFF series
#: when its planes are not stored one per page): a header may declare any size.
MAX_SIDE = 20_000
MAX_BYTES = 2 << 30
#: Names of the samples of an RGB(A) pixel, used as channel names.
RGB_NAMES = ("red", "green", "blue", "alpha")


@dataclass
class Source:
    """One opened microscope file.

    ``sizes`` holds the four choosable dimensions (``P``, ``T``, ``Z``, ``C``; 1 when the file
    lacks one) and ``Y``, ``X``. ``read_plane`` takes one index per choosable dimension and
    returns that ``(Y, X)`` plane in the file's dtype.
    """

    format: str
    sizes: dict[str, int]
    dtype: np.dtype
    read_plane: Callable[[dict[str, int]], np.ndarray]
    channel_names: tuple[str, ...] = ()
    position_names: tuple[str, ...] = ()
    #: ``{"y": ..., "x": ..., "unit": "µm"}`` when the file says how large a pixel is.
    pixel_size: dict[str, float | str] | None = None
    #: The source of another position, for formats whose positions differ in shape (scenes).
    for_position: Callable[[int], Source] | None = None


def check_plane_size(path: Path, height: int, width: int, dtype: np.dtype) -> None:
    """Refuse planes that could not be meant: a damaged header, or a whole-slide scan."""
    nbytes = height * width * np.dtype(dtype).itemsize
    if height <= 0 or width <= 0:
        raise CnnlabError(f"{path}: image of {height}x{width} pixels holds nothing; it is damaged")
    if max(height, width) > MAX_SIDE or nbytes > MAX_BYTES:
        raise CnnlabError(
            f"{path}: planes of {height:,}x{width:,} pixels are larger than cnnlab reads "
            f"({MAX_SIDE:,} pixels a side, {MAX_BYTES >> 30} GiB); crop or tile the field first"
        )


def check_block_size(path: Path, shape: tuple[int, ...], dtype: np.dtype, what: str) -> None:
    """Refuse reading more than :data:`MAX_BYTES` at once (``what`` says what it would be)."""
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    if nbytes > MAX_BYTES:
        raise CnnlabError(
            f"{path}: reading one plane means reading {what} of {nbytes / (1 << 30):.1f} GiB, "
            f"more than the {MAX_BYTES >> 30} GiB cnnlab reads at once; save the plane you "
            "need as its own TIFF"
        )


def native_order(plane: np.ndarray) -> np.ndarray:
    """A contiguous copy in the machine's byte order (ImageJ writes big-endian TIFFs)."""
    plane = np.asarray(plane)
    if not plane.dtype.isnative:
        plane = plane.astype(plane.dtype.newbyteorder("="))
    return np.ascontiguousarray(plane)
