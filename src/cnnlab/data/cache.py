"""A disk cache of decoded images, so a folder of 20,000 small TIFFs loads in seconds next time.

Opening and parsing 20,000 TIFF headers costs several seconds every time a notebook restarts,
although the files rarely change. The cache keeps the decoded pixels of one root folder (for one
combination of pattern, channels and plane) in a single ``.safetensors`` file in the cache
directory (``$CNNLAB_CACHE_DIR``, else ``~/.cache/cnnlab``):

* the pixels of all files, concatenated into one flat buffer per dtype (safetensors, never
  pickle: a cache file can be shared or tampered with, and loading it must not run code);
* a JSON index in the safetensors header: for every file its path relative to the root, its size
  and ``mtime_ns`` when decoded, where its pixels lie in the buffer (or the error it gave), its
  samples per pixel and a digest of its bytes (so that copies are found without reading them).

The index sits in the same file as the pixels so that one ``os.replace`` swaps both at once;
a separate JSON file could be left describing pixels it does not belong to after a crash.
On the next load every file is compared to its index entry: files whose size or mtime changed,
and new files, are decoded again; deleted files are dropped; all others come from the cache.
A cache file that cannot be parsed or does not add up is ignored and rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

#: Bump when decoding changes, so old cache files are not reused with new semantics.
#: 2: non-finite and damaged images refused; digest and samples per pixel recorded.
FORMAT_VERSION = 2
_DTYPES = ("uint8", "int32", "int64", "float32")


@dataclass(frozen=True)
class Decoded:
    """One decoded file: ``(C, H, W)`` pixels and bit depth, or the error it gave.

    ``digest`` identifies the file's bytes; ``samples`` is its samples per pixel (4 for RGBA,
    whose alpha is not in ``array``).
    """

    array: np.ndarray | None
    bit_depth: int = 0
    error: str | None = None
    digest: str | None = None
    samples: int = 0


@dataclass(frozen=True)
class Record:
    """A cache entry: the file's size and mtime when it was decoded, and the result."""

    size: int
    mtime_ns: int
    decoded: Decoded


def cache_file(
    cache_dir: str | os.PathLike,
    root: str | os.PathLike,
    pattern: str | None,
    channels: int | None,
    plane: int | None,
) -> Path:
    """The cache file for ``root`` read with these options (one file per combination)."""
    real_root = os.path.realpath(root)
    key = json.dumps([FORMAT_VERSION, real_root, pattern, channels, plane])
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.basename(real_root))[:40] or "root"
    return Path(cache_dir) / f"folder-{label}-{digest}.safetensors"


def read_cache(path: Path) -> dict[str, Record]:
    """The records in the cache file at ``path``; empty when missing, corrupt or inconsistent."""
    try:
        with safe_open(str(path), framework="np") as file:
            index = json.loads((file.metadata() or {})["index"])
            if index.get("version") != FORMAT_VERSION:
                return {}
            buffers = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
        return _records(index["entries"], buffers)
    except FileNotFoundError:
        return {}
    except Exception:
        # A truncated, hand-edited or foreign file: the cache is only an optimisation, so it is
        # rebuilt from the images rather than trusted.
        return {}


def _records(entries: list, buffers: dict[str, np.ndarray]) -> dict[str, Record]:
    records = {}
    for entry in entries:
        relative, size, mtime_ns, dtype, offset, shape, bit_depth, error, digest, samples = entry
        if error is not None:
            decoded = Decoded(None, 0, str(error))
        else:
            buffer = buffers[dtype]
            shape = tuple(int(s) for s in shape)
            count = math.prod(shape)
            if (
                len(shape) != 3
                or buffer.ndim != 1
                or buffer.dtype != np.dtype(dtype)
                or not 0 <= offset <= offset + count <= len(buffer)
                or bit_depth not in (8, 16, 32, 64)
                or not (isinstance(digest, str) and len(digest) == 32)
                or samples not in (1, 2, 3, 4)
            ):
                raise ValueError("cache index does not match its data")
            array = buffer[offset : offset + count].reshape(shape)
            decoded = Decoded(array, int(bit_depth), None, digest, int(samples))
        records[str(relative)] = Record(int(size), int(mtime_ns), decoded)
    return records


def write_cache(path: Path, records: dict[str, Record]) -> None:
    """Store ``records`` at ``path`` atomically; a failure only warns (caching is optional)."""
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in _DTYPES}
    offsets = dict.fromkeys(_DTYPES, 0)
    entries = []
    for relative, record in records.items():
        decoded = record.decoded
        if decoded.array is None:
            entries.append(
                [relative, record.size, record.mtime_ns, None, 0, None, 0, decoded.error, None, 0]
            )
            continue
        dtype = str(decoded.array.dtype)
        if dtype not in pieces:
            raise ValueError(f"cannot cache {dtype} images")
        entries.append(
            [
                relative,
                record.size,
                record.mtime_ns,
                dtype,
                offsets[dtype],
                list(decoded.array.shape),
                decoded.bit_depth,
                None,
                decoded.digest,
                decoded.samples,
            ]
        )
        pieces[dtype].append(decoded.array.reshape(-1))
        offsets[dtype] += decoded.array.size
    tensors = {
        name: np.concatenate(arrays) if arrays else np.zeros(0, dtype=name)
        for name, arrays in pieces.items()
    }
    index = json.dumps({"version": FORMAT_VERSION, "entries": entries}, separators=(",", ":"))
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.close(handle)
        save_file(tensors, temporary, metadata={"index": index})
        os.replace(temporary, path)
        temporary = None
    except OSError as error:
        warnings.warn(
            f"could not write the image cache {path} ({error.strerror or error}); "
            "images will be decoded again next time",
            stacklevel=3,
        )
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
