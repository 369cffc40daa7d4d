"""One 2D field from a microscope file, with every choice made explicit.

A microscope file holds many planes: channels, Z planes, positions (scenes) and time points.
The silent error to avoid is the wrong one: a reader that returns "the first plane" when a file
has three channels hands a classifier DAPI instead of phase contrast. So :func:`read_field`
refuses whenever a dimension has more than one entry and no choice was given, refuses a choice
for a dimension the file does not have, and says in one line which flag to pass and what the
choices are.

Plain TIFF and ImageJ hyperstacks are read with tifffile (a core dependency). ``.nd2`` goes
through the ``nd2`` package, OME-TIFF, CZI and LIF through ``bioio`` and its plugins: the
``microscopy`` extra, imported only when such a file is read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.errors import CnnlabError, describe_os_error
from cnnlab.microscopy.formats_source import DIMENSIONS, Source, check_plane_size

#: File name endings of the microscope files :func:`read_field` reads (lower case, longest
#: first so that ``.ome.tif`` wins over ``.tif``).
MICROSCOPY_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".nd2", ".czi", ".lif")
_PLURALS = {"P": "positions", "T": "time points", "Z": "planes", "C": "channels"}


@dataclass(frozen=True)
class Field:
    """One 2D plane of a microscope file and how it was chosen."""

    #: ``(Y, X)`` pixels in the file's own dtype (machine byte order).
    image: np.ndarray
    #: 8, 16, 32 or 64: bits per pixel, as :mod:`cnnlab.data.imageio` reports them.
    bit_depth: int
    path: Path
    #: Only the choices that were made, e.g. ``{"channel": 0, "plane": 3}``.
    selection: dict[str, int]
    #: The file name and the choices as ImageJ titles them, e.g. ``"a.nd2 - C=0"``.
    label: str


def microscopy_suffix(path: str | Path) -> str | None:
    """The microscope-file ending of ``path`` (``".ome.tif"``, ``".nd2"``...), or None."""
    name = Path(path).name.lower()
    return next((suffix for suffix in MICROSCOPY_SUFFIXES if name.endswith(suffix)), None)


def is_microscopy_file(path: str | Path) -> bool:
    """Whether ``path`` names a microscope file (by its name; a folder never is)."""
    return microscopy_suffix(path) is not None and not Path(path).is_dir()


def read_field(
    path: str | Path,
    *,
    channel: int | str | None = None,
    plane: int | None = None,
    position: int | None = None,
    time: int | None = None,
) -> Field:
    """One 2D plane of the microscope file at ``path``.

    ``channel`` is an index or a channel name (case-insensitive); ``plane`` a Z index,
    ``position`` a scene or stage position, ``time`` a time point, all from 0. Every dimension
    with more than one entry must be chosen, and only those.
    """
    path = Path(path)
    choices = {"P": position, "T": time, "Z": plane, "C": channel}
    with open_source(path) as source:
        source, index = _choose(source, choices, path)
        image = source.read_plane(index)
    image = _checked_plane(image, source, path)
    selection = {DIMENSIONS[dim]: index[dim] for dim in DIMENSIONS if choices[dim] is not None}
    label = " - ".join(
        [path.name, *(f"{dim}={index[dim]}" for dim in DIMENSIONS if choices[dim] is not None)]
    )
    bit_depth = 8 if image.dtype == np.bool_ else image.dtype.itemsize * 8
    if image.dtype == np.bool_:  # 1-bit TIFFs: the same 0/255 as cnnlab.data.imageio
        image = image.astype(np.uint8) * np.uint8(255)
    return Field(image, bit_depth, path, selection, label)


def describe_microscopy_file(path: str | Path) -> dict:
    """What ``cnnlab data summary FILE`` shows about a microscope file.

    Format, the sizes of its dimensions (only those longer than one, plus Y and X), channel and
    position names, dtype and bit depth, pixel size when the file records it, and, when the file
    is a single 2D plane, the min/median/max of its pixels.
    """
    path = Path(path)
    with open_source(path) as source:
        sizes = {dim: size for dim, size in source.sizes.items() if dim in "YX" or size > 1}
        description: dict = {
            "path": str(path),
            "format": source.format,
            "dims": sizes,
            "channel_names": list(source.channel_names),
            "dtype": source.dtype.name,
            "bit_depth": 8 if source.dtype == np.bool_ else source.dtype.itemsize * 8,
            "pixel_size": source.pixel_size,
        }
        if source.position_names:
            description["position_names"] = list(source.position_names)
        if set(sizes) == {"Y", "X"}:
            image = _checked_plane(source.read_plane(dict.fromkeys("PTZC", 0)), source, path)
            low, median, high = np.percentile(image, [0, 50, 100])
            description["intensity"] = {
                "min": float(low),
                "median": float(median),
                "max": float(high),
            }
    return description


# --------------------------------------------------------------------------------- opening
@contextlib.contextmanager
def open_source(path: Path) -> Iterator[Source]:
    """The reader for ``path``'s format, with missing files and wrong names refused first."""
    if path.is_dir():
        raise CnnlabError(f"{path}: is a folder, not a microscope file; give one file")
    suffix = microscopy_suffix(path)
    if suffix is None:
        raise CnnlabError(
            f"{path}: not a microscope file cnnlab reads; give a .tif, .tiff, .ome.tif, .nd2, "
            ".czi or .lif file"
        )
    try:
        if path.stat().st_size == 0:
            raise CnnlabError(f"{path}: empty file, not an image")
        if suffix in (".tif", ".tiff"):
            from cnnlab.microscopy.formats_tiff import open_tiff as opener
        elif suffix == ".nd2":
            from cnnlab.microscopy.formats_extra import open_nd2 as opener
        else:
            from cnnlab.microscopy.formats_extra import open_bioio as opener
        with opener(path) as source:
            yield source
    except OSError as error:
        if error.filename is None:
            error.filename = str(path)
        raise CnnlabError(describe_os_error(error)) from None


# --------------------------------------------------------------------------------- choosing
def _choose(source: Source, choices: dict, path: Path) -> tuple[Source, dict[str, int]]:
    """One index per dimension, or a one-line refusal naming the flags still needed.

    The position is chosen first: in some formats each position (scene) has its own shape, and
    the other choices are checked against the chosen one's.
    """
    index: dict[str, int] = {}
    missing = []
    for dim, flag in DIMENSIONS.items():
        if dim == "T" and index["P"] and source.for_position is not None:
            source = source.for_position(index["P"])
        size, choice = source.sizes.get(dim, 1), choices[dim]
        if choice is None:
            if size > 1:
                missing.append(dim)
            index[dim] = 0
        elif size <= 1:
            raise CnnlabError(
                f"{path}: has {'one' if size == 1 else 'no'} {_PLURALS[dim][:-1]}, so there is "
                f"nothing to choose; leave out --{flag}"
            )
        else:
            index[dim] = _index(source, dim, choice, path)
    if missing:
        what = _and([_describe(source, dim) for dim in missing])
        how = _and([_flag_range(source, dim) for dim in missing])
        raise CnnlabError(f"{path}: has {what}; choose with {how}")
    return source, index


def _index(source: Source, dim: str, choice: int | str, path: Path) -> int:
    size, flag = source.sizes[dim], DIMENSIONS[dim]
    if dim == "C" and isinstance(choice, str):
        wanted = choice.strip().casefold()
        matches = [i for i, name in enumerate(source.channel_names) if name.casefold() == wanted]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise CnnlabError(
                f"{path}: channels {', '.join(map(str, matches))} are all named {choice!r}; "
                f"choose one by number with --channel 0-{size - 1}"
            )
        if not wanted.isdigit():
            known = (
                f"its channels are {_names(source)}"
                if source.channel_names
                else ("its channels have no names")
            )
            raise CnnlabError(
                f"{path}: no channel named {choice!r}; {known} (or --channel 0-{size - 1})"
            )
        choice = int(wanted)
    if isinstance(choice, bool) or not isinstance(choice, int | np.integer):
        raise CnnlabError(f"{path}: --{flag} must be a whole number, not {choice!r}")
    if not 0 <= choice < size:
        raise CnnlabError(
            f"{path}: --{flag} {choice} is out of range; it has {_describe(source, dim)}, "
            f"so choose {_flag_range(source, dim)}"
        )
    return int(choice)


def _describe(source: Source, dim: str) -> str:
    size = source.sizes[dim]
    names = _names(source) if dim == "C" else ", ".join(source.position_names) if dim == "P" else ""
    return f"{size} {_PLURALS[dim]}" + (f" ({names})" if names else "")


def _flag_range(source: Source, dim: str) -> str:
    text = f"--{DIMENSIONS[dim]} 0-{source.sizes[dim] - 1}"
    return text + " or a name" if dim == "C" and source.channel_names else text


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _names(source: Source) -> str:
    return ", ".join(source.channel_names)


def _checked_plane(image: np.ndarray, source: Source, path: Path) -> np.ndarray:
    """The plane a reader returned, refused unless it is the finite 2D image it promised."""
    image = np.asarray(image)
    if image.ndim != 2 or image.shape != (source.sizes["Y"], source.sizes["X"]):
        raise CnnlabError(
            f"{path}: the reader returned pixels of shape {image.shape}, not the "
            f"{source.sizes['Y']}x{source.sizes['X']} plane its header declares; the file is "
            "damaged or its layout is not supported"
        )
    check_plane_size(path, *image.shape, image.dtype)
    if image.dtype.kind == "f":
        bad = image.size - int(np.count_nonzero(np.isfinite(image)))
        if bad:
            raise CnnlabError(
                f"{path}: {bad:,} of {image.size:,} pixels of the plane are not finite (NaN or "
                "infinite); fix the image or choose another plane"
            )
    elif image.dtype.kind not in "biu":
        raise CnnlabError(f"{path}: pixel type {image.dtype} is not supported")
    return image
