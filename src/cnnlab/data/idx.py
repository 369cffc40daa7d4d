"""Reading and writing IDX files, the format MNIST is distributed in.

An IDX file is a tiny header followed by raw big-endian numbers: two zero bytes, a type code, the
number of dimensions, one big-endian ``uint32`` per dimension, then the data. Because the header
says exactly how many bytes must follow, a download that was cut short or a file that was
concatenated with something else can be recognised; both are refused rather than read as a
silently shorter or shifted array. Files are often gzipped; gzip is detected by its magic bytes,
not by the file name, because renamed downloads are common.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from cnnlab.errors import CnnlabError

GZIP_MAGIC = b"\x1f\x8b"

#: IDX type code -> big-endian NumPy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CnnlabError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise CnnlabError(f"{path}: is a directory, not an IDX file") from None
    except OSError as error:
        raise CnnlabError(f"{path}: cannot read ({error.strerror or error})") from None
    if data[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise CnnlabError(
                f"{path}: corrupt or truncated gzip data ({error}); download the file again"
            ) from None
    return data


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """The array stored in the (uncompressed) IDX bytes ``data``; ``source`` names it in errors.

    The result is in native byte order and writable, so it can go straight to
    ``torch.from_numpy`` without a copy.
    """
    if len(data) < 4:
        raise CnnlabError(f"{source}: too short to be an IDX file ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise CnnlabError(
            f"{source}: not an IDX file (bad magic number 0x{data[:4].hex()}; "
            "the first two bytes must be zero)"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise CnnlabError(f"{source}: unknown IDX data type code 0x{code:02X}")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise CnnlabError(f"{source}: truncated IDX header ({ndim} dimensions announced)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    actual = len(data) - header_size
    if actual < expected:
        raise CnnlabError(
            f"{source}: truncated IDX data: shape {shape} needs {expected} bytes but only "
            f"{actual} follow the header; download the file again"
        )
    if actual > expected:
        raise CnnlabError(
            f"{source}: {actual - expected} bytes of extra data after the {shape} array; "
            "the header does not match the data"
        )
    flat = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header_size)
    # astype copies into native order; the copy also makes the array writable.
    return flat.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array in the IDX file at ``path`` (gzipped or raw), in native byte order."""
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzipped when ``path`` ends in ``.gz``.

    Only the six IDX types can be stored; anything else is refused instead of being converted
    behind the caller's back.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        supported = ", ".join(str(d.newbyteorder("=")) for d in IDX_DTYPES.values())
        raise CnnlabError(f"{path}: IDX cannot store {array.dtype} data (only {supported})")
    if array.ndim > 255:
        raise CnnlabError(f"{path}: IDX stores at most 255 dimensions, not {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    body = np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    data = header + body
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    path.write_bytes(data)
