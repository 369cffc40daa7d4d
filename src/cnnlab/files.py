"""Atomic, durable file writes: a reader sees the old file or the new one, never half of one.

Every file a user relies on (run folders, models, checkpoints, prediction tables) is written
here: into a temporary file beside the target, flushed and fsynced, then renamed over the
target, and the folder fsynced so the rename itself survives a power cut. Renames go through
:func:`replace`, the one place that moves finished files into place.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import save as safetensors_bytes

from cnnlab.errors import CnnlabError


def default_cache_dir() -> Path:
    """cnnlab's cache folder (decoded images, built kernels): ``$CNNLAB_CACHE_DIR`` if set,
    else ``~/.cache/cnnlab``."""
    configured = os.environ.get("CNNLAB_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "cnnlab"


def fsync_folder(folder: str | os.PathLike) -> None:
    """Makes the folder's entries (a rename, a new file) durable."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # some systems (and network file systems) cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Renames ``source`` over ``target`` atomically and makes the rename durable."""
    os.replace(source, target)
    fsync_folder(Path(target).parent)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (temporary file, fsync, rename).

    A link is followed, so the file it points to is replaced and the link stays. A path that
    is not a regular file (``/dev/stdout``, a pipe) is written as a stream: renaming over it
    would replace the device itself.
    """
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    with naming(path):
        if path.exists() and not path.is_file() and not path.is_dir():
            with path.open("wb") as stream:
                stream.write(data)
            return
        _write_and_replace(path, data)


@contextmanager
def naming(path: str | os.PathLike) -> Iterator[None]:
    """Gives an OSError that names no file (a failed write, fsync or flush) ``path``."""
    try:
        yield
    except OSError as error:
        if error.filename is None:
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise


def _write_and_replace(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates files readable by the owner only; give them the usual permissions.
        os.chmod(tmp, 0o666 & ~_UMASK)
        replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def _json_default(value: object) -> object:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def to_json(data: object) -> str:
    return json.dumps(data, indent=2, default=_json_default, allow_nan=True) + "\n"


def write_json(path: str | os.PathLike, data: object) -> None:
    """Atomic JSON write: a reader never sees half a file, even after a crash."""
    write_text(path, to_json(data))


def parse_json(text: str) -> object:
    """JSON as :func:`to_json` writes it (``NaN`` and ``Infinity`` included)."""
    constants = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}
    return json.loads(text, parse_constant=constants.__getitem__)


def read_json(path: str | os.PathLike, what: str = "file") -> dict:
    """A JSON object from ``path``, or a one-line error naming the file."""
    path = Path(path)
    try:
        data = parse_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CnnlabError(f"{path}: missing {what}") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise CnnlabError(f"{path}: damaged {what}, not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise CnnlabError(f"{path}: damaged {what}, not a JSON object")
    return data


def write_tensors(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict | None = None
) -> None:
    """Atomic safetensors write; ``metadata`` values must be strings."""
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    write_bytes(path, safetensors_bytes(contiguous, metadata=metadata))


def write_folder(
    out: str | os.PathLike,
    files: Mapping[str, bytes],
    check: Callable[[], None] | None = None,
) -> None:
    """Writes a folder of files as a unit: ``out`` holds the old folder or the whole new one.

    ``files`` maps paths inside the folder (``"1cell/a.tif"``) to their bytes. The folder is
    built in a hidden sibling, every file and folder fsynced, and renamed to ``out`` only once
    complete. An existing ``out`` is set aside first and deleted only after the new folder is in
    place, so a crash at any instant leaves the old folder or the new one (at worst, the old one
    under its hidden ``.NAME.*.replaced`` name). ``check`` runs again just before the swap, so
    that the caller can refuse what appeared at ``out`` meanwhile.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        # mkdtemp makes folders for the owner only; give the result the usual permissions.
        os.chmod(staging, 0o777 & ~_UMASK)
        folders = {staging}
        for name, data in files.items():
            target = staging / name
            if target.parent not in folders:
                target.parent.mkdir(parents=True, exist_ok=True)
                folders.add(target.parent)
            with naming(target), open(target, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
            fsync_folder(folder)
        if check is not None:
            check()
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            aside = Path(
                tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".replaced", dir=out.parent)
            )
            replace(out, aside)  # over the empty folder mkdtemp made
            replace(staging, out)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            replace(staging, out)  # also over an empty folder
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _read_umask() -> int:
    # The umask can only be read by setting it: done once, at import, before other threads.
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()
