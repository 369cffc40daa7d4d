"""Plain TIFF and ImageJ hyperstacks through tifffile, one plane at a time.

tifffile names each axis of a series (``TZCYX`` for an ImageJ hyperstack, ``IYX`` or ``QYX`` for
a stack saved without hyperstack information, ``YXS`` for RGB). Here ``T``, ``Z`` and ``C`` map to
the same choosable dimensions; an unnamed stack (``I``, ``Q``) counts as Z planes, because that is
what ImageJ calls the slices of a plain stack; RGB(A) samples count as channels. Several series of
one shape are positions. Any other axis longer than one is refused rather than guessed at.

When a series stores one plane per page, only that page is read; otherwise the whole series is
read (within :data:`~cnnlab.microscopy.formats_source.MAX_BYTES`) and indexed.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile

from cnnlab.data.headers import LogCapture, logged_damage
from cnnlab.errors import CnnlabError
from cnnlab.microscopy.formats_source import (
    RGB_NAMES,
    Source,
    check_block_size,
    check_plane_size,
    native_order,
)

_LIBRARY_LOG = LogCapture("tifffile", "imagecodecs")
# tifffile's axis letters that hold what a user chooses with --time, --plane and --channel.
_AXES = {"T": "T", "Z": "Z", "C": "C", "I": "Z", "Q": "Z"}


@contextlib.contextmanager
def open_tiff(path: Path) -> Iterator[Source]:
    """The TIFF at ``path`` as a :class:`Source` (kept open while the caller reads planes)."""
    with _LIBRARY_LOG.capture() as records:
        try:
            tif = tifffile.TiffFile(path)
        except (CnnlabError, MemoryError):
            raise
        except OSError:
            raise
        except Exception as error:
            raise _damaged(path, records, error) from None
        with tif:
            yield _source(tif, path, records)


def _damaged(path: Path, records: list, error: Exception) -> CnnlabError:
    if (damage := logged_damage(path, records)) is not None:
        return damage
    detail = " ".join(str(error).split())[:160] or type(error).__name__
    return CnnlabError(f"{path}: damaged or not a TIFF file ({detail}); re-export or replace it")


def _source(tif: tifffile.TiffFile, path: Path, records: list) -> Source:
    try:
        series = [item for item in tif.series if item.dtype is not None]
        if (damage := logged_damage(path, records)) is not None:
            raise damage
    except CnnlabError:
        raise
    except Exception as error:
        raise _damaged(path, records, error) from None
    if not series:
        raise CnnlabError(f"{path}: TIFF file holds no image it can read")
    first = series[0]
    if any(item.shape != first.shape or item.axes != first.axes for item in series[1:]):
        raise CnnlabError(
            f"{path}: holds {len(series)} images of different shapes "
            f"({', '.join(f'{item.axes} {item.shape}' for item in series[:3])}); save each as "
            "its own TIFF"
        )
    dims = _axis_dims(first.axes, first.shape, path)
    sizes = {letter: 1 for letter in "PTZC"}
    sizes["P"] = len(series)
    for axis, dim in dims.items():
        if dim is not None:
            sizes[dim] = first.shape[first.axes.index(axis)]
    sizes["Y"], sizes["X"] = first.shape[first.axes.index("Y")], first.shape[first.axes.index("X")]
    check_plane_size(path, sizes["Y"], sizes["X"], first.dtype)
    names: tuple[str, ...] = ()
    if dims.get("S") == "C" and first.keyframe.photometric == tifffile.PHOTOMETRIC.RGB:
        names = RGB_NAMES[: sizes["C"]]

    def read_plane(index: dict[str, int]) -> np.ndarray:
        item = series[index["P"]]
        try:
            block, axes = _read_block(tif, item, index["P"], dims, index, path)
        except (CnnlabError, MemoryError):
            raise
        except Exception as error:
            raise _damaged(path, records, error) from None
        if (damage := logged_damage(path, records)) is not None:
            raise damage
        key = tuple(
            slice(None) if axis in "YX" else index[dims[axis]] if dims[axis] else 0 for axis in axes
        )
        return native_order(block[key])

    return Source(
        format="ImageJ TIFF" if tif.is_imagej else "TIFF",
        sizes=sizes,
        dtype=np.dtype(first.dtype),
        read_plane=read_plane,
        channel_names=names,
        pixel_size=_pixel_size(tif),
    )


def _axis_dims(axes: str, shape: tuple[int, ...], path: Path) -> dict[str, str | None]:
    """Each axis other than Y and X mapped to the dimension it holds (None: of size one)."""
    dims: dict[str, str | None] = {}
    taken: dict[str, str] = {}
    for axis, size in zip(axes, shape, strict=True):
        if axis in "YX":
            continue
        dim = _AXES.get(axis, "C" if axis == "S" else None)
        if size == 1:
            dims[axis] = None
            continue
        if dim is None:
            raise CnnlabError(
                f"{path}: TIFF axis {axis!r} of size {size} (axes {axes}, shape {shape}) is not "
                "one cnnlab can choose from; save the file with T, Z and C axes only"
            )
        if dim in taken:
            raise CnnlabError(
                f"{path}: TIFF axes {taken[dim]} and {axis} both hold "
                f"{'channels' if dim == 'C' else 'planes'} (axes {axes}, shape {shape}); save "
                "them as one axis, or split the file"
            )
        taken[dim] = axis
        dims[axis] = dim
    if "Y" not in axes or "X" not in axes:
        raise CnnlabError(f"{path}: TIFF with axes {axes!r} is not made of 2D images")
    return dims


def _read_block(
    tif: tifffile.TiffFile,
    item: tifffile.TiffPageSeries,
    number: int,
    dims: dict[str, str | None],
    index: dict[str, int],
    path: Path,
) -> tuple[np.ndarray, str]:
    """The page that holds the plane, or the whole series when planes span pages."""
    size = tif.filehandle.size
    if item.dataoffset is not None and item.dataoffset + item.nbytes > size:
        raise CnnlabError(f"{path}: truncated TIFF (pixel data runs past the end of the file)")
    page_axes = item.keyframe.axes
    leading = item.axes[: len(item.axes) - len(page_axes)]
    count = math.prod(item.shape[: len(leading)])
    if item.axes.endswith(page_axes) and len(item.pages) == count:
        shape = tuple(item.shape[: len(leading)])
        at = tuple(index[dims[axis]] if dims[axis] else 0 for axis in leading)
        key = int(np.ravel_multi_index(at, shape)) if shape else 0
        check_block_size(path, item.keyframe.shape, item.dtype, "a TIFF page")
        _check_strips(item.pages[key], size, path)
        block = tif.asarray(key=key, series=number)
        return block.reshape(item.shape[len(leading) :]), page_axes
    check_block_size(path, item.shape, item.dtype, f"a whole TIFF series {item.axes}")
    for page in item.pages:
        _check_strips(page, size, path)
    return item.asarray(), item.axes


def _check_strips(
    page: tifffile.TiffPage | tifffile.TiffFrame | None, size: int, path: Path
) -> None:
    """Refuse a page whose strips are missing or lie past the end: tifffile would fill zeros."""
    if page is None:
        raise CnnlabError(f"{path}: damaged TIFF (a page of the image is missing)")
    for offset, count in zip(page.dataoffsets, page.databytecounts, strict=False):
        if offset <= 0 or count <= 0:
            raise CnnlabError(f"{path}: damaged TIFF (a strip or tile has no data)")
        if offset + count > size:
            raise CnnlabError(f"{path}: truncated TIFF (a strip ends past the end of the file)")


def _pixel_size(tif: tifffile.TiffFile) -> dict[str, float | str] | None:
    """Pixel size from the resolution tags; ImageJ keeps the unit in its own metadata."""
    page = tif.pages.first
    tags = page.tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return None
    try:
        (xn, xd), (yn, yd) = tags["XResolution"].value, tags["YResolution"].value
    except (TypeError, ValueError):
        return None
    if not (xn and yn and xd and yd):
        return None
    unit = (tif.imagej_metadata or {}).get("unit")
    if unit is None:
        unit = {2: "inch", 3: "cm"}.get(int(page.resolutionunit))
    if unit is None or (xn, xd, yn, yd) == (1, 1, 1, 1):
        return None
    unit = {"micron": "µm", "um": "µm", "\\u00B5m": "µm"}.get(unit, unit)
    return {"y": yd / yn, "x": xd / xn, "unit": unit}
