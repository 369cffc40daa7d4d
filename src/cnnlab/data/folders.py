"""Loading a labelled image collection laid out as one subfolder per class.

This is the layout ImageJ/Fiji users and most teaching material produce::

    crops/
        rod/    cell 001.tif  cell 002.tif ...
        coccus/ cell 001.tif ...

The class of an image is the name of its folder; several roots (e.g. two acquisition days) with
the same class folders are merged. Class order is sorted, so label numbers do not depend on the
order the file system happens to list folders in, and neither does the sample order.

Anything that would make the result silently wrong is an error naming the path: a missing root,
an empty class, a file that is not an image, images with different channel counts. With
``skip_bad=True`` unreadable files are skipped instead, with one warning and a record in
``dataset.meta["skipped"]``, because one corrupt file among thousands should not block a lesson.

Decoding runs on a thread pool when there are many files (``bench/load_folders.py --compare``
measures it). On the 2-core machine, 2,000 48x48 uint16 TIFFs took: serial 0.85 s, 2 threads
0.44 s, 2 forked processes 0.45 s while the machine was otherwise idle; with other jobs keeping
both cores busy no pool helped (serial 0.56-1.5 s, threads 1.0-1.3 s, processes 0.7-1.75 s).
Threads are as fast as processes when cores are free, because tifffile and Pillow release the
GIL while they read and decode, and they avoid the costs of processes: no pickling of pixels, no
start-up, no ``if __name__ == "__main__"`` guard needed in user scripts under the spawn and
forkserver start methods (macOS, Windows, Python 3.14), and no fork of a process that may already
run PyTorch threads.
"""

from __future__ import annotations

import fnmatch
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from cnnlab.data.cache import Decoded, Record, cache_file, default_cache_dir, read_cache
from cnnlab.data.cache import write_cache as _write_cache
from cnnlab.data.dataset import ImageDataset
from cnnlab.data.imageio import IMAGE_EXTENSIONS, read_array
from cnnlab.errors import CnnlabError

#: Below this many files to decode, a pool costs more than it saves.
PARALLEL_THRESHOLD = 256
_SHOWN_NAMES = 3


def load_folders(
    roots: str | os.PathLike | Sequence[str | os.PathLike],
    pattern: str | None = None,
    channels: int | None = None,
    plane: int | None = None,
    skip_bad: bool = False,
    cache: bool | str | os.PathLike = False,
    workers: int | None = None,
) -> ImageDataset:
    """The images under ``roots`` (one subfolder per class) as an :class:`ImageDataset`.

    ``pattern`` is a case-insensitive glob on file names (``"*.tif"``); without it every file
    with an image extension (.tif .tiff .png .jpg .jpeg .bmp) is taken. Hidden files and
    folders (starting with ".") are ignored. ``channels`` (1 or 3) converts every image;
    ``plane`` picks one plane of TIFF stacks. ``cache=True`` keeps decoded images in the
    default cache directory (see :mod:`cnnlab.data.cache`), ``cache=path`` in ``path``.
    ``workers`` sets the number of decoding threads (default: all cores when there are at
    least 256 files to decode, else one).

    Images of one size come as an ``(N, C, H, W)`` tensor, otherwise as a list. Files of
    different bit depths are promoted to a common dtype (8- and 16-bit to ``int32``) and
    ``bit_depth`` is the largest.
    """
    root_list = _as_roots(roots)
    if channels not in (None, 1, 3):
        raise CnnlabError(f"channels must be 1 or 3, not {channels}")
    if plane is not None and plane < 0:
        raise CnnlabError(f"plane must be 0 or more, not {plane}")
    if workers is not None and workers < 1:
        raise CnnlabError(f"workers must be 1 or more, not {workers}")

    scans = [_scan_root(root, pattern) for root in root_list]
    class_names = sorted({name for scan in scans for name in scan})
    folders: dict[str, list[Path]] = {name: [] for name in class_names}
    # (root index, class name, path relative to root, full path); plain strings because
    # pathlib joins dominate the time of a cached load of 20,000 files.
    files: list[tuple[int, str, str, str]] = []
    for name in class_names:
        for index, (root, scan) in enumerate(zip(root_list, scans, strict=True)):
            if name in scan:
                folders[name].append(root / name)
                prefix = os.path.join(root, name)
                files.extend(
                    (index, name, f"{name}/{file}", os.path.join(prefix, file))
                    for file in scan[name]
                )

    dropped = _check_classes(class_names, folders, files, skip_bad)
    decoded = _decode(root_list, files, pattern, channels, plane, cache, workers)

    bad = [(file[3], d.error) for file, d in zip(files, decoded, strict=True)]
    bad = [(path, error) for path, error in bad if error is not None]
    if bad and not skip_bad:
        more = f" (and {len(bad) - 1} more bad files)" if len(bad) > 1 else ""
        raise CnnlabError(f"{bad[0][1]}{more}; fix or remove it, or pass skip_bad=True")
    if bad:
        shown = ", ".join(str(path) for path, _ in bad[:_SHOWN_NAMES])
        warnings.warn(
            f"skipped {len(bad)} unreadable file{'s' if len(bad) > 1 else ''}: {shown}"
            + (", ..." if len(bad) > _SHOWN_NAMES else ""),
            stacklevel=2,
        )
    keep = [i for i, d in enumerate(decoded) if d.error is None]
    files = [files[i] for i in keep]
    arrays = [decoded[i] for i in keep]
    dropped += _check_classes(
        [n for n in class_names if n not in dropped], folders, files, skip_bad
    )
    class_names = [name for name in class_names if name not in dropped]

    images, bit_depth = _unify(arrays, [file[3] for file in files], channels)
    label_of = {name: label for label, name in enumerate(class_names)}
    labels = torch.tensor([label_of[file[1]] for file in files], dtype=torch.int64)
    meta: dict = {"roots": [str(root) for root in root_list]}
    if skip_bad:
        meta["skipped"] = [str(path) for path, _ in bad]
        meta["dropped_classes"] = list(dropped)
    return ImageDataset(
        images=images,
        labels=labels,
        class_names=tuple(class_names),
        paths=tuple(file[3] for file in files),
        subset=None,
        bit_depth=bit_depth,
        name="+".join(root.name or str(root) for root in root_list),
        meta=meta,
    )


# --------------------------------------------------------------------------------- scanning
def _as_roots(roots: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    if isinstance(roots, str | os.PathLike):
        roots = [roots]
    root_list = [Path(os.path.abspath(Path(root).expanduser())) for root in roots]
    if not root_list:
        raise CnnlabError("no folder given; pass at least one folder with one subfolder per class")
    return root_list


def _scan_root(root: Path, pattern: str | None) -> dict[str, list[str]]:
    """Class name -> sorted matching file names, for the class folders of ``root``."""
    if not root.exists():
        raise CnnlabError(f"{root}: folder not found")
    if not root.is_dir():
        raise CnnlabError(f"{root}: not a folder; pass a folder with one subfolder per class")
    try:
        class_dirs = sorted(
            entry.name
            for entry in os.scandir(root)
            if not entry.name.startswith(".") and entry.is_dir()
        )
        scan = {name: _matching_files(root / name, pattern) for name in class_dirs}
    except PermissionError as error:
        where = error.filename or root
        raise CnnlabError(f"{where}: permission denied; make it readable") from None
    if not scan:
        raise CnnlabError(
            f"{root}: no class folders; put the images of each class in a subfolder named "
            "after the class"
        )
    return scan


def _matching_files(folder: Path, pattern: str | None) -> list[str]:
    wanted = pattern.lower() if pattern else None
    names = []
    for entry in os.scandir(folder):
        name = entry.name
        if name.startswith(".") or not entry.is_file():
            continue
        lower = name.lower()
        if wanted is not None:
            if fnmatch.fnmatchcase(lower, wanted):
                names.append(name)
        elif os.path.splitext(lower)[1] in IMAGE_EXTENSIONS:
            names.append(name)
    return sorted(names)


def _check_classes(
    class_names: list[str],
    folders: dict[str, list[Path]],
    files: list[tuple[int, str, str, str]],
    skip_bad: bool,
) -> list[str]:
    """Names of empty classes to drop (only with ``skip_bad``); raise when that is not allowed."""
    counts = dict.fromkeys(class_names, 0)
    for _, name, _, _ in files:
        if name in counts:
            counts[name] += 1
    empty = [name for name, count in counts.items() if count == 0]
    if empty and not skip_bad:
        where = ", ".join(str(folder) for folder in folders[empty[0]])
        raise CnnlabError(
            f"{where}: class folder {empty[0]!r} holds no matching image files; add images, "
            "remove the folder, or check the pattern"
        )
    if empty:
        warnings.warn(
            f"dropped empty class folder{'s' if len(empty) > 1 else ''}: "
            + ", ".join(str(folder) for name in empty for folder in folders[name]),
            stacklevel=3,
        )
    remaining = [name for name in class_names if name not in empty]
    if len(remaining) < 2:
        where = ", ".join(str(f) for name in class_names for f in folders[name]) or "folder"
        raise CnnlabError(
            f"{where}: only {len(remaining)} class with images ({', '.join(remaining)}); a "
            "classifier needs at least two class folders"
        )
    return empty


# --------------------------------------------------------------------------------- decoding
def _decode(
    roots: list[Path],
    files: list[tuple[int, str, str, str]],
    pattern: str | None,
    channels: int | None,
    plane: int | None,
    cache: bool | str | os.PathLike,
    workers: int | None,
) -> list[Decoded]:
    """Every file decoded, from the cache where it is still valid."""
    results: list[Decoded | None] = [None] * len(files)
    stats: list[os.stat_result | None] = [None] * len(files)
    cache_dir = None if cache is False else default_cache_dir() if cache is True else Path(cache)
    cached: dict[int, dict[str, Record]] = {}
    if cache_dir is not None:
        for index, root in enumerate(roots):
            cached[index] = read_cache(cache_file(cache_dir, root, pattern, channels, plane))
        for position, (index, _, relative, path) in enumerate(files):
            try:
                stats[position] = os.stat(path)
            except OSError:
                continue
            record = cached[index].get(relative)
            stat = stats[position]
            if record and record.size == stat.st_size and record.mtime_ns == stat.st_mtime_ns:
                results[position] = record.decoded

    todo = [position for position, result in enumerate(results) if result is None]
    paths = [files[position][3] for position in todo]
    for position, result in zip(todo, _decode_paths(paths, channels, plane, workers), strict=True):
        results[position] = result

    if cache_dir is not None:
        for index, root in enumerate(roots):
            records = {
                relative: Record(stat.st_size, stat.st_mtime_ns, result)
                for (i, _, relative, _), stat, result in zip(files, stats, results, strict=True)
                # A failure is not cached: the user may fix the file (or its permissions)
                # without changing its size or time, and the next load must see that.
                if i == index and stat is not None and result.error is None
            }
            # Rewrite only when something was decoded or files disappeared.
            if todo or records.keys() != cached[index].keys():
                _write_cache(cache_file(cache_dir, root, pattern, channels, plane), records)
    return results  # type: ignore[return-value]


def _decode_paths(
    paths: list[str], channels: int | None, plane: int | None, workers: int | None
) -> list[Decoded]:
    if workers is None:
        workers = (os.cpu_count() or 1) if len(paths) >= PARALLEL_THRESHOLD else 1
    workers = min(workers, max(len(paths), 1))

    def decode(path: str) -> Decoded:
        try:
            array, bit_depth = read_array(path, channels=channels, plane=plane)
        except CnnlabError as error:
            return Decoded(None, 0, str(error))
        return Decoded(array, bit_depth)

    # A bar on a terminal for long reads; it stays silent in logs and for small folders.
    bar = tqdm(
        total=len(paths),
        desc="reading images",
        unit="file",
        disable=None if len(paths) >= PARALLEL_THRESHOLD else True,
        leave=False,
    )
    with bar:
        if workers == 1:
            results = []
            for path in paths:
                results.append(decode(path))
                bar.update()
            return results
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cnnlab-decode") as pool:
            results = []
            for result in pool.map(decode, paths):
                results.append(result)
                bar.update()
            return results


# --------------------------------------------------------------------------------- combining
def _unify(
    decoded: list[Decoded], paths: list[str], channels: int | None
) -> tuple[torch.Tensor | list[torch.Tensor], int]:
    """One tensor (or a list when sizes differ) in a common dtype, and the largest bit depth."""
    arrays = [d.array for d in decoded]
    by_channels: dict[int, str] = {}
    for array, path in zip(arrays, paths, strict=True):
        by_channels.setdefault(array.shape[0], path)
    if len(by_channels) > 1 and channels is None:
        examples = ", ".join(f"{path} has {c}" for c, path in sorted(by_channels.items()))
        raise CnnlabError(
            f"{examples} channels; pass channels=1 (gray) or channels=3 (RGB) to convert them"
        )
    dtype = _common_dtype({array.dtype for array in arrays})
    bit_depth = max(d.bit_depth for d in decoded)
    if len({array.shape for array in arrays}) == 1:
        return torch.from_numpy(np.stack(arrays).astype(dtype, copy=False)), bit_depth
    return [torch.from_numpy(array.astype(dtype, copy=False)) for array in arrays], bit_depth


def _common_dtype(dtypes: set[np.dtype]) -> np.dtype:
    """uint8 when all are 8-bit; float32 if any is float; else the widest integer type."""
    if len(dtypes) == 1:
        return dtypes.pop()
    if any(dtype.kind == "f" for dtype in dtypes):
        return np.dtype(np.float32)
    if np.dtype(np.int64) in dtypes:
        return np.dtype(np.int64)
    return np.dtype(np.int32)
