"""Decoded files combined into one dataset: one channel count, one bit depth, one dtype.

A dataset's pixel values mean one thing only when every image has the same bit depth. Promoting
8-bit JPEGs and 16-bit TIFFs to a common integer type would keep every value exact, yet put the
8-bit images at 1/257 of the brightness of the 16-bit ones: the network would learn "dark" as a
class feature, silently. So images of different depths are refused, naming one file of each
depth; on request (``convert_bit_depth``) the shallower ones are scaled to the deepest, by the
factor that maps full scale onto full scale exactly (8 to 16 bits: x257, so 255 becomes 65,535).
Float images among integer ones have no such factor (a float image has no full scale), so they
are always refused.

The conversion is applied after decoding and after the disk cache, which keeps each file's own
values: one cache file serves both choices, and a warm cache refuses or converts exactly as a
cold one does.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from cnnlab.data.cache import Decoded
from cnnlab.data.channels import describe_channels
from cnnlab.errors import CnnlabError

#: How the flag is spelled in errors: on the command line, and in Python.
CONVERT_FLAG = "--convert-bit-depth (convert_bit_depth=True)"
#: Integer depths that can be scaled to (64-bit integers have no headroom for the product).
SCALABLE_TO = (16, 32)
_DTYPE_OF_DEPTH = {8: np.uint8, 16: np.int32, 32: np.int64}


def depth_label(decoded: Decoded) -> str:
    """``"8-bit"``, ``"16-bit"`` or ``"32-bit float"``: what kind of image a file holds."""
    is_float = decoded.array is not None and decoded.array.dtype.kind == "f"
    return f"{decoded.bit_depth}-bit" + (" float" if is_float else "")


def depth_counts(decoded: list[Decoded]) -> dict[str, int]:
    """Images per kind (``{"8-bit": 12, "16-bit": 340}``), shallowest first, floats last."""
    counts: dict[str, int] = {}
    order = sorted(decoded, key=lambda d: (d.array.dtype.kind == "f", d.bit_depth))
    for d in order:
        label = depth_label(d)
        counts[label] = counts.get(label, 0) + 1
    return counts


def unify(
    decoded: list[Decoded],
    paths: list[str],
    channels: int | None,
    convert_bit_depth: bool = False,
    allow_mixed_bit_depths: bool = False,
) -> tuple[torch.Tensor | list[torch.Tensor], int, dict]:
    """One tensor (or a list when sizes differ), the dataset's bit depth, and facts for ``meta``.

    Mixed channel counts without ``channels`` are an error naming one file of each. Mixed bit
    depths are an error (see the module's docstring), scaled to the deepest with
    ``convert_bit_depth``, or with ``allow_mixed_bit_depths`` kept as read, in a common dtype,
    for a description of the data only (``meta["mixed_bit_depths"]`` then holds the error a
    load for training gives).
    """
    _check_channels(decoded, paths, channels)
    counts = depth_counts(decoded)
    meta: dict = {"bit_depths": counts}
    arrays = [d.array for d in decoded]
    if len(counts) > 1:
        problem = _mixed_depths(decoded, paths, counts)
        convertible = convert_bit_depth and " float" not in "".join(counts)
        if convertible:  # asked for: describing the data shows it as training will see it
            arrays, meta["converted_bit_depth"] = _scale_all(decoded, paths, counts)
        elif allow_mixed_bit_depths:
            meta["mixed_bit_depths"] = problem
        else:
            raise CnnlabError(problem)
    bit_depth = max(d.bit_depth for d in decoded)
    dtype = _common_dtype({array.dtype for array in arrays})
    if len({array.shape for array in arrays}) == 1:
        return torch.from_numpy(np.stack(arrays).astype(dtype, copy=False)), bit_depth, meta
    images = [torch.from_numpy(array.astype(dtype, copy=False)) for array in arrays]
    return images, bit_depth, meta


def scale_to_depth(array: np.ndarray, depth: int, target: int) -> np.ndarray:
    """Integer pixels of ``depth`` bits scaled to ``target`` bits, full scale onto full scale.

    ``(2**target - 1) / (2**depth - 1)`` is a whole number when ``depth`` divides ``target``
    (8 to 16: 257), so the scaling is exact and 0 stays 0.
    """
    if target not in SCALABLE_TO or target % depth:
        raise CnnlabError(f"cannot scale {depth}-bit images to {target}-bit exactly")
    scaled = array.astype(_DTYPE_OF_DEPTH[target])
    scaled *= _factor(depth, target)
    return scaled


def _check_channels(decoded: list[Decoded], paths: list[str], channels: int | None) -> None:
    by_channels: dict[int, tuple[str, int]] = {}
    for d, path in zip(decoded, paths, strict=True):
        if (have := d.array.shape[0]) not in by_channels:
            by_channels[have] = (path, d.samples or have)
    if len(by_channels) > 1 and channels is None:
        examples = ", ".join(
            f"{path} has {describe_channels(samples)}"
            for _, (path, samples) in sorted(by_channels.items())
        )
        raise CnnlabError(
            f"{examples}; pass --channels 1 (gray) or --channels 3 (RGB) to convert them "
            "(channels= in Python)"
        )


def _mixed_depths(decoded: list[Decoded], paths: list[str], counts: dict[str, int]) -> str:
    """The one-line refusal: the first file of the first and of the last kind, and the way out."""
    (low, low_path), (high, high_path) = _first_files(decoded, paths, counts)
    tally = " and ".join(f"{count} {label}" for label, count in counts.items())
    if high.endswith(" float"):
        return (
            f"{low_path} is {low} integer but {high_path} is {high} ({tally} images): one "
            "dataset must hold integer or float images, not both; convert the files to one "
            "type (--convert-bit-depth scales integer images only)"
        )
    return (
        f"{low_path} is {low} but {high_path} is {high} ({tally} images): one dataset must "
        f"have one bit depth; convert the files, or pass {CONVERT_FLAG} to scale every image "
        f"to {high}"
    )


def _first_files(
    decoded: list[Decoded], paths: list[str], counts: dict[str, int]
) -> tuple[tuple[str, str], tuple[str, str]]:
    """(label, first path) of the shallowest and of the last kind in ``counts``."""
    first_of: dict[str, str] = {}
    for d, path in zip(decoded, paths, strict=True):
        first_of.setdefault(depth_label(d), path)
    low, high = next(iter(counts)), list(counts)[-1]
    return (low, first_of[low]), (high, first_of[high])


def _scale_all(
    decoded: list[Decoded], paths: list[str], counts: dict[str, int]
) -> tuple[list[np.ndarray], dict]:
    """Every image at the deepest depth, with one warning giving the counts."""
    target = max(d.bit_depth for d in decoded)
    if target not in SCALABLE_TO:
        (low, low_path), (high, high_path) = _first_files(decoded, paths, counts)
        raise CnnlabError(
            f"{low_path} is {low} but {high_path} is {high}: {target}-bit integers leave no "
            "room to scale the others to; convert the files to one bit depth"
        )
    arrays = [
        d.array if d.bit_depth == target else scale_to_depth(d.array, d.bit_depth, target)
        for d in decoded
    ]
    depths = sorted({d.bit_depth for d in decoded} - {target})
    scaled = {f"{depth}-bit": counts[f"{depth}-bit"] for depth in depths}
    factors = ", ".join(f"{depth}-bit x{_factor(depth, target)}" for depth in depths)
    images = "image" if sum(scaled.values()) == 1 else "images"
    warnings.warn(
        f"scaled {' and '.join(f'{n} {label}' for label, n in scaled.items())} {images} to "
        f"{target}-bit ({factors}: full scale onto full scale) to match the "
        f"{counts[f'{target}-bit']} {target}-bit images, as --convert-bit-depth asks",
        stacklevel=4,
    )
    return arrays, {"to": target, "scaled": scaled}


def _factor(depth: int, target: int) -> int:
    return ((1 << target) - 1) // ((1 << depth) - 1)


def _common_dtype(dtypes: set[np.dtype]) -> np.dtype:
    """uint8 when all are 8-bit; float32 if any is float; else the widest integer type."""
    if len(dtypes) == 1:
        return dtypes.pop()
    if any(dtype.kind == "f" for dtype in dtypes):
        return np.dtype(np.float32)
    if np.dtype(np.int64) in dtypes:
        return np.dtype(np.int64)
    return np.dtype(np.int32)
