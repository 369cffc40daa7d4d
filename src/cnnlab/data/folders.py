"""Loading a labelled image collection laid out as one subfolder per class.

This is the layout ImageJ/Fiji users and most teaching material produce::

    crops/
        rod/    cell 001.tif  cell 002.tif ...
        coccus/ cell 001.tif ...

The class of an image is the name of its folder; several roots (e.g. two acquisition days) with
the same class folders are merged. Class order is sorted, so label numbers do not depend on the
order the file system happens to list folders in, and neither does the sample order.

Anything that would make the result silently wrong is an error naming the path: a missing root,
an empty class, a file that is not an image, images with different channel counts or bit
depths (see :mod:`cnnlab.data.combine`). With ``skip_bad=True`` unreadable files are skipped
instead, with one warning and a record in ``dataset.meta["skipped"]``, because one corrupt file
among thousands should not block a lesson.

A file reached twice (a root given twice, a root or file reached again through a symbolic link,
or a byte-identical copy under another name) is counted once, with one warning and the dropped
paths in ``dataset.meta["duplicates"]``: the same image in the training and the test set would
inflate the test accuracy. Identical copies filed under different classes cannot both be right,
so they are an error, or with ``skip_bad=True`` all left out.

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

import errno
import fnmatch
import os
import stat
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

# Not tqdm.auto: importing it alone prints "IProgress not found" in a notebook without
# ipywidgets, and this bar (disable=None) never shows in notebooks, whose streams are no TTYs.
from tqdm import tqdm

from cnnlab.data.cache import Decoded, Record, cache_file, read_cache
from cnnlab.data.cache import write_cache as _write_cache
from cnnlab.data.combine import unify
from cnnlab.data.dataset import ImageDataset
from cnnlab.data.imageio import IMAGE_EXTENSIONS, os_error, read_image_file
from cnnlab.errors import CnnlabError
from cnnlab.files import default_cache_dir

#: Below this many files to decode, a pool costs more than it saves.
PARALLEL_THRESHOLD = 256
_SHOWN_NAMES = 3
_SKIP_BAD = "--skip-bad (skip_bad=True)"
#: (root index, class name, path relative to the root, full path, real path) of one file.
File = tuple[int, str, str, str, str]


def load_folders(
    roots: str | os.PathLike | Sequence[str | os.PathLike],
    pattern: str | None = None,
    channels: int | None = None,
    plane: int | None = None,
    skip_bad: bool = False,
    cache: bool | str | os.PathLike = False,
    workers: int | None = None,
    convert_bit_depth: bool = False,
    allow_mixed_bit_depths: bool = False,
    min_classes: int = 2,
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
    different bit depths (8-bit JPEGs among 16-bit TIFFs, float among integer images) are an
    error naming one of each; ``convert_bit_depth`` scales integer images to the deepest depth
    instead (8 to 16 bits: x257), with a warning. ``allow_mixed_bit_depths`` keeps them as read,
    in a common dtype, for describing the data only (``cnnlab data summary``); the counts per
    depth are in ``meta["bit_depths"]`` (see :mod:`cnnlab.data.combine`). Fewer than
    ``min_classes`` classes with images are refused: two to train a classifier, one to score a
    trained model on new images of a class it knows.
    """
    root_list = _as_roots(roots)
    if channels not in (None, 1, 3):
        raise CnnlabError(f"--channels (channels=) must be 1 or 3, not {channels}")
    if plane is not None and plane < 0:
        raise CnnlabError(f"--plane (plane=) must be 0 or more, not {plane}")
    if workers is not None and workers < 1:
        raise CnnlabError(f"workers must be 1 or more, not {workers}")

    scans = [_scan_root(root, pattern) for root in root_list]
    class_names = sorted({name for scan in scans for name in scan})
    files, folders = _list_files(root_list, scans, class_names)
    dropped = _check_classes(class_names, folders, files, skip_bad, min_classes)
    decoded = _decode_once(root_list, files, pattern, channels, plane, cache, workers)
    keep, meta = _screen(files, decoded, skip_bad)
    files = [files[i] for i in keep]
    arrays = [decoded[i] for i in keep]
    dropped += _check_classes(
        [n for n in class_names if n not in dropped], folders, files, skip_bad, min_classes
    )
    class_names = [name for name in class_names if name not in dropped]

    images, bit_depth, depth_meta = unify(
        arrays,
        [file[3] for file in files],
        channels,
        convert_bit_depth=convert_bit_depth,
        allow_mixed_bit_depths=allow_mixed_bit_depths,
    )
    label_of = {name: label for label, name in enumerate(class_names)}
    labels = torch.tensor([label_of[file[1]] for file in files], dtype=torch.int64)
    meta = {"roots": [str(root) for root in root_list], **meta, **depth_meta}
    if alpha := sum(d.samples in (2, 4) for d in arrays):
        meta["alpha_dropped"] = alpha
    if skip_bad:
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


def _screen(files: list[File], decoded: list[Decoded], skip_bad: bool) -> tuple[list[int], dict]:
    """Positions of the files to keep, and what was left out, for ``dataset.meta``.

    Unreadable files and copies of one image in different classes are errors, or with
    ``skip_bad`` left out with a warning; a second copy in the same class is always dropped.
    """
    duplicates, conflicts = _find_copies(files, decoded)
    left_out = {i for i, _ in duplicates} | {i for group in conflicts for i in group}
    bad = [(files[i][3], d.error) for i, d in enumerate(decoded) if d.error and i not in left_out]
    if bad and not skip_bad:
        if len(bad) == len(files):
            # Every file failed (an option none of them fits, such as --plane 3 for single
            # images): leaving the bad ones out would leave nothing, so that is not the advice.
            first = bad[0][1].split(", or pass --skip-bad")[0]
            others = {0: "", 1: " (and so did the other file)"}.get(
                len(bad) - 1, f" (and so did all {len(bad) - 1} other files)"
            )
            raise CnnlabError(f"{first}{others}")
        more = f" (and {len(bad) - 1} more bad files)" if len(bad) > 1 else ""
        advice = "" if "--skip-bad" in bad[0][1] else "; fix or remove it, or pass " + _SKIP_BAD
        raise CnnlabError(f"{bad[0][1]}{more}{advice}")
    if conflicts and not skip_bad:
        first, other = _conflicting_pair(files, conflicts[0])
        more = f" (and {len(conflicts) - 1} more such images)" if len(conflicts) > 1 else ""
        raise CnnlabError(
            f"{first[3]} (class {first[1]!r}) and {other[3]} (class {other[1]!r}) are the same "
            f"image (identical bytes) in two classes{more}; remove the copy in the wrong class, "
            f"or pass {_SKIP_BAD} to leave out all copies"
        )
    if bad:
        warnings.warn(f"skipped {_count(len(bad), 'unreadable file')}: {_names(bad)}", stacklevel=3)
    conflicted = [(files[i][3], files[i][1]) for group in conflicts for i in group]
    if conflicted:
        warnings.warn(
            f"left out {_count(len(conflicted), 'identical copy', 'identical copies')} of images "
            f"filed under different classes: {_names(conflicted)}",
            stacklevel=3,
        )
    if duplicates:
        copy, original = files[duplicates[0][0]][3], files[duplicates[0][1]][3]
        were = "were" if len(duplicates) > 1 else "was"
        # The same path twice: a folder given twice (not a link or a copy under another name).
        example = f"{copy} is {original}"
        if copy == original:
            example = f"{copy}, in a folder given twice"
        warnings.warn(
            f"{_count(len(duplicates), 'file')} {were} reached twice (the same file, a link to it "
            f"or an identical copy) and counted once; e.g. {example}",
            stacklevel=3,
        )
    keep = [i for i, d in enumerate(decoded) if d.error is None and i not in left_out]
    meta: dict = {"duplicates": [files[i][3] for i, _ in duplicates]}
    if skip_bad:
        meta["skipped"] = [path for path, _ in bad]
        meta["conflicts"] = [path for path, _ in conflicted]
    return keep, meta


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _names(items: list[tuple[str, str]]) -> str:
    """The first few paths of ``(path, detail)`` pairs, for a warning."""
    shown = ", ".join(str(path) for path, _ in items[:_SHOWN_NAMES])
    return shown + (", ..." if len(items) > _SHOWN_NAMES else "")


# --------------------------------------------------------------------------------- scanning
def _as_roots(roots: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    if isinstance(roots, str | os.PathLike):
        roots = [roots]
    root_list = [Path(os.path.abspath(Path(root).expanduser())) for root in roots]
    if not root_list:
        raise CnnlabError("no folder given; pass at least one folder with one subfolder per class")
    return root_list


def _scan_root(root: Path, pattern: str | None) -> dict[str, list[tuple[str, bool]]]:
    """Class name -> sorted (file name, is a link) of matching files, per class folder."""
    try:
        if not stat.S_ISDIR(os.stat(root).st_mode):
            raise CnnlabError(f"{root}: not a folder; pass a folder with one subfolder per class")
    except OSError as error:
        if error.errno == errno.ENOENT and not os.path.islink(root):
            raise CnnlabError(
                f"{root}: folder not found; give a folder with one subfolder per class, or mnist"
            ) from None
        raise os_error(root, error) from None
    try:
        class_dirs = sorted(
            entry.name
            for entry in os.scandir(root)
            if not entry.name.startswith(".") and _is_dir(entry)
        )
        scan = {name: _matching_files(root / name, pattern) for name in class_dirs}
    except OSError as error:
        raise os_error(error.filename or root, error) from None
    if not scan:
        raise CnnlabError(
            f"{root}: no class folders; put the images of each class in a subfolder named "
            "after the class"
        )
    return scan


def _list_files(
    roots: list[Path], scans: list[dict[str, list[tuple[str, bool]]]], class_names: list[str]
) -> tuple[list[File], dict[str, list[Path]]]:
    """Every file, class by class and root by root, and the folders of each class."""
    folders: dict[str, list[Path]] = {name: [] for name in class_names}
    # Plain strings, because pathlib joins dominate the time of a cached load of 20,000 files.
    files: list[File] = []
    for name in class_names:
        for index, (root, scan) in enumerate(zip(roots, scans, strict=True)):
            if name not in scan:
                continue
            if root / name not in folders[name]:
                folders[name].append(root / name)
            prefix = os.path.join(root, name)
            real_prefix = os.path.realpath(prefix)  # once per folder: an lstat per component
            for file, is_link in scan[name]:
                path = os.path.join(prefix, file)
                if is_link:
                    real = os.path.realpath(path)
                else:
                    real = path if real_prefix == prefix else f"{real_prefix}{os.sep}{file}"
                files.append((index, name, f"{name}/{file}", path, real))
    return files, folders


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError as error:  # a symbolic link loop, say: name it rather than skip it
        raise os_error(entry.path, error) from None


def _matching_files(folder: Path, pattern: str | None) -> list[tuple[str, bool]]:
    wanted = pattern.lower() if pattern else None
    names = []
    for entry in os.scandir(folder):
        name, lower = entry.name, entry.name.lower()
        if name.startswith("."):
            continue
        if wanted is not None:
            if not fnmatch.fnmatchcase(lower, wanted):
                continue
        elif os.path.splitext(lower)[1] not in IMAGE_EXTENSIONS:
            continue
        try:
            is_file = entry.is_file()
        except OSError:  # a link loop or an unreadable entry: reading it will say which
            is_file = True
        # A link to nothing is kept too, so that it is reported instead of silently missing.
        if is_file or (entry.is_symlink() and not entry.is_dir()):
            names.append((name, entry.is_symlink()))
    return sorted(names)


def _check_classes(
    class_names: list[str],
    folders: dict[str, list[Path]],
    files: list[File],
    skip_bad: bool,
    min_classes: int = 2,
) -> list[str]:
    """Names of empty classes to drop (only with ``skip_bad``); raise when that is not allowed."""
    counts = dict.fromkeys(class_names, 0)
    for _, name, *_ in files:
        if name in counts:
            counts[name] += 1
    empty = [name for name, count in counts.items() if count == 0]
    if empty and not skip_bad:
        where = ", ".join(str(folder) for folder in folders[empty[0]])
        raise CnnlabError(
            f"{where}: class folder {empty[0]!r} holds no matching image files; add images, "
            "remove the folder, or check the file pattern (--pattern, pattern=)"
        )
    if empty:
        warnings.warn(
            f"dropped empty class folder{'s' if len(empty) > 1 else ''}: "
            + ", ".join(str(folder) for name in empty for folder in folders[name]),
            stacklevel=3,
        )
    remaining = [name for name in class_names if name not in empty]
    if len(remaining) < min_classes:
        where = ", ".join(str(f) for name in class_names for f in folders[name]) or "folder"
        if min_classes == 1:
            raise CnnlabError(f"{where}: no class folder holds images; add some")
        raise CnnlabError(
            f"{where}: only {len(remaining)} class with images ({', '.join(remaining)}); a "
            "classifier needs at least two class folders"
        )
    return empty


# --------------------------------------------------------------------------------- decoding
def _decode_once(
    roots: list[Path],
    files: list[File],
    pattern: str | None,
    channels: int | None,
    plane: int | None,
    cache: bool | str | os.PathLike,
    workers: int | None,
) -> list[Decoded]:
    """Every file decoded; a file reached under several paths (links, a root twice) once."""
    first: dict[str, int] = {}
    owner = [first.setdefault(file[4], position) for position, file in enumerate(files)]
    unique = [position for position, of in enumerate(owner) if of == position]
    results = _decode(roots, [files[i] for i in unique], pattern, channels, plane, cache, workers)
    by_position = dict(zip(unique, results, strict=True))
    return [by_position[of] for of in owner]


def _find_copies(
    files: list[File], decoded: list[Decoded]
) -> tuple[list[tuple[int, int]], list[list[int]]]:
    """(copy, original) positions of repeated files, and groups of copies in different classes.

    A file is the same as an earlier one when its bytes are (the digest of a decoded file), or,
    for files that could not be decoded, when its real path is.
    """
    first: dict[str, int] = {}  # a digest (32 hex digits) or a real path (absolute) -> position
    repeats: dict[int, list[int]] = {}
    for position, (file, result) in enumerate(zip(files, decoded, strict=True)):
        original = first.setdefault(result.digest or file[4], position)
        if original != position:
            repeats.setdefault(original, []).append(position)
    copies, conflicts = [], []
    for original, others in repeats.items():
        members = [original, *others]
        if decoded[original].error is None and len({files[i][1] for i in members}) > 1:
            conflicts.append(members)
        else:
            copies.extend((other, original) for other in others)
    return sorted(copies), conflicts


def _conflicting_pair(files: list[File], members: list[int]) -> tuple[File, File]:
    first = files[members[0]]
    return first, next(files[i] for i in members if files[i][1] != first[1])


def _decode(
    roots: list[Path],
    files: list[File],
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
    # Roots that are one folder (given twice, or under two spellings) share one cache file.
    # Strings, not paths: comparing 20,000 Path objects takes longer than the rest of a load.
    stores = [
        str(cache_file(cache_dir, root, pattern, channels, plane)) if cache_dir else ""
        for root in roots
    ]
    cached = {store: read_cache(Path(store)) for store in stores if store}
    if cache_dir is not None:
        for position, (index, _, relative, path, _) in enumerate(files):
            try:
                stats[position] = os.stat(path)
            except OSError:
                continue
            record = cached[stores[index]].get(relative)
            stat = stats[position]
            if record and record.size == stat.st_size and record.mtime_ns == stat.st_mtime_ns:
                results[position] = record.decoded

    todo = [position for position, result in enumerate(results) if result is None]
    paths = [files[position][3] for position in todo]
    for position, result in zip(todo, _decode_paths(paths, channels, plane, workers), strict=True):
        results[position] = result

    for store, old in cached.items():
        records = {
            relative: Record(stat.st_size, stat.st_mtime_ns, result)
            for (i, _, relative, _, _), stat, result in zip(files, stats, results, strict=True)
            # A failure is not cached: the user may fix the file (or its permissions)
            # without changing its size or time, and the next load must see that.
            if stores[i] == store and stat is not None and result.error is None
        }
        # Rewrite only when something was decoded or files disappeared.
        if todo or records.keys() != old.keys():
            _write_cache(Path(store), records)
    return results  # type: ignore[return-value]


def _decode_paths(
    paths: list[str], channels: int | None, plane: int | None, workers: int | None
) -> list[Decoded]:
    if workers is None:
        workers = (os.cpu_count() or 1) if len(paths) >= PARALLEL_THRESHOLD else 1
    workers = min(workers, max(len(paths), 1))

    def decode(path: str) -> Decoded:
        try:
            image = read_image_file(path, channels=channels, plane=plane)
        except CnnlabError as error:
            return Decoded(None, 0, str(error))
        return Decoded(image.array, image.bit_depth, None, image.digest, image.samples)

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
