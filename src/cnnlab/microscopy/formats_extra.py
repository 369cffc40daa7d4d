"""``.nd2`` through the ``nd2`` package; OME-TIFF, CZI and LIF through ``bioio`` and its plugins.

These packages are the optional ``microscopy`` extra, so they are imported here, only when such
a file is read, and their absence is one line that says what to install. Each file becomes a
:class:`~cnnlab.microscopy.formats_source.Source` whose planes are read lazily (dask arrays under
both libraries), so choosing one plane of a large acquisition reads only that plane.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.data.headers import LogCapture
from cnnlab.errors import CnnlabError
from cnnlab.microscopy.formats_source import RGB_NAMES, Source, check_plane_size, native_order

_EXTRA = "pip install 'cnnlab[microscopy]'"
# The bioio plugin (module, package) that reads each ending; passed explicitly so that a file is
# never read by a fallback plugin that sees other dimensions.
_PLUGINS = {
    ".ome.tif": ("bioio_ome_tiff", "bioio-ome-tiff", "OME-TIFF"),
    ".ome.tiff": ("bioio_ome_tiff", "bioio-ome-tiff", "OME-TIFF"),
    ".czi": ("bioio_czi", "bioio-czi", "CZI"),
    ".lif": ("bioio_lif", "bioio-lif", "LIF"),
}
# bioio-czi reads a Z stack per dask chunk by default, and aicspylibczi (4.0) then places the
# planes of a scene whose size differs from the first scene's at the first scene's stride:
# wrong pixels, no error. One plane per chunk reads each plane by its own coordinates.
_READER_OPTIONS: dict[str, dict[str, Any]] = {".czi": {"chunk_dims": "YX"}}
_ARTICLES = {"CZI": "a", "LIF": "a"}  # "an ND2", "an OME-TIFF"
_PREAMBLE = re.compile(r"^Reader: .+? does not support the image: '[^']*'\.\s*")
# Kept off the user's terminal: bioio logs each reader it tries (a logger's filter sees only
# the records of that very logger, hence the module names).
_LIBRARY_LOG = LogCapture(
    "bioio.bio_image",
    "bioio.plugins",
    "bioio.ome_utils",
    "bioio_base.reader",
    "bioio_base.standard_metadata",
    "bioio_ome_tiff.reader",
    "bioio_ome_tiff.utils",
    "bioio_czi.aicspylibczi_reader.reader",
    "bioio_czi.aicspylibczi_reader.subblock_metadata",
    "bioio_czi.pylibczirw_reader.reader",
    "bioio_czi.channels",
    "bioio_czi.standard_metadata",
    "bioio_lif.reader",
    "liffile",
)


def _import(name: str, path: Path, suffix: str, package: str | None = None) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        how = (
            f"the {package} plugin: pip install {package}"
            if package
            else (f"the microscopy extra: {_EXTRA}")
        )
        raise CnnlabError(f"{path}: reading {suffix} files needs {how}") from None


def _damaged(path: Path, kind: str, error: Exception) -> CnnlabError:
    # bioio lists every reader it tried, one a line; the last line holds the plugin's reason,
    # after a preamble naming the reader and the absolute path, which the message already says.
    lines = [line.strip(" -") for line in str(error).splitlines() if line.strip(" -")]
    detail = re.sub(_PREAMBLE, "", lines[-1]) if lines else ""
    for name in {str(path), str(path.absolute())}:
        detail = detail.replace(f"'{name}'", "it")
    detail = " ".join(detail.split())[:160] or type(error).__name__
    article = _ARTICLES.get(kind, "an")
    return CnnlabError(
        f"{path}: damaged or not {article} {kind} file ({detail}); re-export or replace it"
    )


# --------------------------------------------------------------------------------- nd2
@contextlib.contextmanager
def open_nd2(path: Path) -> Iterator[Source]:
    """An ``.nd2`` file through ``nd2.ND2File`` (sizes T, P, Z, C, Y, X and S for RGB)."""
    nd2 = _import("nd2", path, ".nd2")
    with _LIBRARY_LOG.capture():
        try:
            file = nd2.ND2File(path)
        except (FileNotFoundError, PermissionError, IsADirectoryError):
            raise
        except Exception as error:  # nd2 raises a bare OSError for a file it does not recognise
            raise _damaged(path, "ND2", error) from None
        with contextlib.closing(file):
            axes = dict(file.sizes)
            names = _nd2_channel_names(file)
            sizes, sample_channels = _sizes(axes, path, "ND2", np.dtype(file.dtype))
            data = None

            def read_plane(index: dict[str, int]) -> np.ndarray:
                nonlocal data
                if data is None:
                    data = file.to_dask()
                key = _key(axes, index, sample_channels)
                try:
                    return native_order(np.asarray(data[key]))
                except (CnnlabError, MemoryError):
                    raise
                except Exception as error:
                    raise _damaged(path, "ND2", error) from None

            yield Source(
                format="ND2",
                sizes=sizes,
                dtype=np.dtype(file.dtype),
                read_plane=read_plane,
                channel_names=RGB_NAMES[: sizes["C"]] if sample_channels else names,
                pixel_size=_nd2_pixel_size(file),
            )


def _nd2_channel_names(file: Any) -> tuple[str, ...]:
    channels = getattr(getattr(file, "metadata", None), "channels", None) or ()
    return tuple(str(channel.channel.name) for channel in channels)


def _nd2_pixel_size(file: Any) -> dict[str, float | str] | None:
    try:
        size = file.voxel_size()
    except Exception:  # legacy files may lack calibration; the size is then simply unknown
        return None
    if not size or not size.x or not size.y or (size.x, size.y) == (1, 1):
        return None  # nd2 reports 1 µm when the file is uncalibrated
    return {"y": float(size.y), "x": float(size.x), "unit": "µm"}


# --------------------------------------------------------------------------------- bioio
@contextlib.contextmanager
def open_bioio(path: Path) -> Iterator[Source]:
    """An OME-TIFF, CZI or LIF file through ``bioio.BioImage`` (scenes are positions)."""
    suffix = next(ending for ending in _PLUGINS if path.name.lower().endswith(ending))
    module, package, kind = _PLUGINS[suffix]
    bioio = _import("bioio", path, suffix)
    plugin = _import(module, path, suffix, package)
    with _LIBRARY_LOG.capture(), warnings.catch_warnings():
        # bioio-ome-tiff passes ome-types an argument it deprecated: noise, not the user's concern
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            image = bioio.BioImage(path, reader=plugin.Reader, **_READER_OPTIONS.get(suffix, {}))
            scenes = tuple(str(scene) for scene in image.scenes)
        except (FileNotFoundError, PermissionError, IsADirectoryError):
            raise
        except Exception as error:
            raise _damaged(path, kind, error) from None
        yield _bioio_scene(image, 0, scenes, kind, path)


def _bioio_scene(image: Any, number: int, scenes: tuple[str, ...], kind: str, path: Path) -> Source:
    """Scene ``number`` as a source; scenes may differ in shape, so each is described anew."""
    try:
        image.set_scene(number)
        axes = dict(zip(image.dims.order, image.dims.shape, strict=True))
        dtype = np.dtype(image.dtype)
        channel_names = tuple(str(name) for name in (image.channel_names or ()))
        pixels = image.physical_pixel_sizes
    except Exception as error:
        raise _damaged(path, kind, error) from None
    axes.pop("P", None)  # positions are scenes here
    sizes, sample_channels = _sizes(axes, path, kind, dtype)
    sizes["P"] = len(scenes)

    def read_plane(index: dict[str, int]) -> np.ndarray:
        key = {dim: index[dim] for dim in "TZC" if dim in axes and not sample_channels}
        order = "YX" + ("S" if "S" in axes else "")
        try:
            image.set_scene(number)
            block = np.asarray(image.get_image_dask_data(order, **key))
        except Exception as error:
            raise _damaged(path, kind, error) from None
        if "S" in axes:
            block = block[..., index["C"] if sample_channels else 0]
        return native_order(block)

    return Source(
        format=kind,
        sizes=sizes,
        dtype=dtype,
        read_plane=read_plane,
        channel_names=RGB_NAMES[: sizes["C"]] if sample_channels else channel_names,
        position_names=scenes if len(scenes) > 1 else (),
        pixel_size=_bioio_pixel_size(pixels),
        for_position=lambda p: _bioio_scene(image, p, scenes, kind, path),
    )


def _bioio_pixel_size(pixels: Any) -> dict[str, float | str] | None:
    y, x = getattr(pixels, "Y", None), getattr(pixels, "X", None)
    if not y or not x:
        return None
    return {"y": float(y), "x": float(x), "unit": "µm"}


# --------------------------------------------------------------------------------- shared
def _sizes(
    axes: dict[str, int], path: Path, kind: str, dtype: np.dtype
) -> tuple[dict[str, int], bool]:
    """The choosable sizes of a library's named axes, and whether RGB samples are the channels."""
    unknown = {axis: size for axis, size in axes.items() if axis not in "PTZCYXS" and size > 1}
    if unknown:
        axis, size = next(iter(unknown.items()))
        raise CnnlabError(
            f"{path}: {kind} axis {axis!r} of size {size} (axes {axes}) is not one cnnlab can "
            "choose from; export the file with T, Z and C only"
        )
    if "Y" not in axes or "X" not in axes:
        raise CnnlabError(f"{path}: {kind} file with axes {axes} is not made of 2D images")
    samples, channels = axes.get("S", 1), axes.get("C", 1)
    if samples > 1 and channels > 1:
        raise CnnlabError(
            f"{path}: has both {channels} channels and {samples} colour samples; cnnlab reads "
            "one or the other: export each channel as gray"
        )
    sizes = {dim: axes.get(dim, 1) for dim in "PTZC"}
    sizes["Y"], sizes["X"] = axes["Y"], axes["X"]
    sample_channels = samples > 1
    if sample_channels:
        sizes["C"] = samples
    check_plane_size(path, sizes["Y"], sizes["X"], dtype)
    return sizes, sample_channels


def _key(axes: dict[str, int], index: dict[str, int], sample_channels: bool) -> tuple:
    """The index into an array whose axes are ``axes`` (in order) that selects the plane."""
    key = []
    for axis in axes:
        if axis in "YX":
            key.append(slice(None))
        elif axis == "S":
            key.append(index["C"] if sample_channels else 0)
        else:
            key.append(index.get(axis, 0))
    return tuple(key)
