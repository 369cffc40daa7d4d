"""The run folder contract: creating, checking, finishing, overwriting and finding runs.

A run folder is what ``cnnlab train`` leaves and every other tool reads: ``config.json``,
``split.csv``, ``history.csv``, ``metrics.json``, ``model.json``/``model.safetensors``,
``report.html``, ``checkpoints/`` and, written last, ``run.json``, which says the run finished.

A run is never built in place. It grows in a hidden sibling, ``.NAME.partial``, and only when
everything in it is written (``run.json`` last) is that folder renamed to ``NAME``. A run killed
at any instant therefore leaves either no ``NAME`` at all, or the complete earlier run that
``--overwrite`` was going to replace, untouched; the partial folder holds what ``--resume``
needs to finish the job. Replacing an old run takes two renames (old run aside to
``.NAME.replaced``, new run into place); a kill between them leaves the complete new run in the
partial folder, and resuming finishes the move.
"""

from __future__ import annotations

import fcntl
import glob
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.files import fsync_folder, read_json, replace

CONFIG = "config.json"
FINISHED = "run.json"
CHECKPOINTS = "checkpoints"
#: Everything cnnlab writes into a run folder: --overwrite replaces folders holding only these.
RUN_CONTENTS = frozenset(
    {
        CONFIG,
        "history.csv",
        "metrics.json",
        "model.json",
        "model.safetensors",
        FINISHED,
        "split.csv",
        "report.html",
        CHECKPOINTS,
        "plots",
        "tensorboard",
        "relabel.csv",  # the decisions of a review of this run (cnnlab serve)
        "relabel-applied.csv",  # the decisions it was trained with (--relabel)
        ".relabel.lock",  # held by a server while it writes relabel.csv
    }
)
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.partial$")
#: Temporary files of atomic writes (see :mod:`cnnlab.files`) that a kill left behind.
_TEMPORARY = re.compile(r"^\..+\.tmp$")
# What an extension copies of a finished run but must make anew.
_REMADE = ("report.html", "plots", FINISHED)


class FolderBusy(CnnlabError):
    """Another process is training into the run folder."""


def partial_of(out: Path) -> Path:
    """Where the run for ``out`` is built until it is complete."""
    return out.parent / f".{out.name}.partial"


def is_partial(path: str | os.PathLike) -> bool:
    """Whether ``path`` names the hidden folder of a run that is not finished yet."""
    return _PARTIAL.match(Path(path).name) is not None


def _replaced_of(out: Path) -> Path:
    return out.parent / f".{out.name}.replaced"


def target_of(path: str | os.PathLike) -> Path:
    """The run folder a path names: itself (a link followed), or the run a partial builds."""
    if not str(path).strip():
        raise CnnlabError("--out '': give a folder name")
    path = Path(os.path.abspath(Path(path).expanduser()))
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    match = _PARTIAL.match(path.name)
    return path.parent / match["name"] if match else path


def quoted(path: Path) -> str:
    """A path as it can be pasted into a shell."""
    return shlex.quote(str(path))


def read_config(folder: Path) -> dict:
    """The ``config.json`` of a run folder, as written."""
    path = folder / CONFIG
    if not path.exists():
        raise CnnlabError(f"{folder}: no {CONFIG}; is this a cnnlab run folder?")
    data = read_json(path, "run configuration")
    if not {"train", "resolved", "model"} <= data.keys():
        raise CnnlabError(f"{path}: not a cnnlab run configuration")
    return data


def is_run_folder(folder: Path) -> bool:
    """A folder whose config.json is one that cnnlab wrote (not any project's config.json)."""
    try:
        read_config(folder)
    except (CnnlabError, OSError):
        return False
    return True


def is_finished(folder: Path) -> bool:
    return (folder / FINISHED).is_file() and is_run_folder(folder)


def is_interrupted(out: Path) -> bool:
    """Whether an unfinished run for ``out`` waits in its partial folder."""
    return is_run_folder(partial_of(out))


def _replaceable(out: Path, overwrite: bool) -> str | None:
    """Why ``out`` may not be replaced by a new run (None: it may)."""
    if not out.exists():
        return None
    if not out.is_dir():
        return "exists and is not a folder; choose another path"
    contents = [c.name for c in out.iterdir() if not _TEMPORARY.match(c.name)]
    if not contents:
        return None
    foreign = sorted(name for name in contents if name not in RUN_CONTENTS)
    if foreign or not is_run_folder(out):
        # --overwrite would not help: say so before anyone tries it.
        extra = f" (it holds {', '.join(foreign[:3])})" if foreign else ""
        return (
            f"not a cnnlab run folder{extra}; choose another folder (--overwrite only replaces "
            "runs)"
        )
    if not overwrite:
        return "holds a run already; choose another folder or pass --overwrite to replace it"
    return None


def check_target(out: Path, overwrite: bool) -> None:
    """Everything about ``--out`` that can be checked before a single file is written."""
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CnnlabError(f"--out {out}: {parent} is a file; choose another path")
            break
    here = Path.cwd()
    if out == here or out in here.parents:
        raise CnnlabError(
            f"--out {out}: holds the current folder, which a run cannot replace; name a folder "
            "inside it"
        )
    problem = _replaceable(out, overwrite)
    if problem:
        raise CnnlabError(f"--out {out}: {problem}")
    if is_interrupted(out) and not overwrite:
        raise CnnlabError(
            f"--out {out}: an interrupted run of this folder waits in {partial_of(out)}; continue "
            f"it with --resume {quoted(out)}, or pass --overwrite to start over"
        )


@contextmanager
def lock(out: Path) -> Iterator[None]:
    """Holds ``.NAME.lock`` beside the run for as long as one process trains into it.

    Two processes training into one folder would mix their files; the second is refused. The
    lock dies with its process, so a killed run never leaves a stale one.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.parent / f".{out.name}.lock"
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:  # name the folder the user chose, not the hidden lock
            raise OSError(error.errno, error.strerror, str(out.parent)) from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderBusy(
                f"--out {out}: another cnnlab process is training into this folder; wait for it "
                "to end or choose another folder"
            ) from None
        # The holder before us may have removed the file after we opened it: lock the new one.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        Path(path).unlink(missing_ok=True)
        os.close(fd)


def begin(out: Path) -> Path:
    """A fresh, empty partial folder for a new run of ``out`` (after :func:`check_target`)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(out)
    partial = partial_of(out)
    if partial.exists():
        discard(partial)
    partial.mkdir()
    fsync_folder(out.parent)
    return partial


def begin_extension(out: Path, edit: Callable[[Path], None]) -> Path:
    """A partial folder holding a copy of the finished run ``out``, to train it further.

    The copy is made under a temporary name and renamed when complete, without what the longer
    run makes anew (``run.json``, the report, the plots), and after ``edit`` has recorded the
    new plan in it: the finished run stays as it is until the longer one replaces it.
    """
    _clean_leftovers(out)
    partial = partial_of(out)
    if partial.exists():
        discard(partial)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".copy", dir=out.parent))
    try:
        shutil.copytree(out, staging, dirs_exist_ok=True)
        for name in _REMADE:
            target = staging / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        edit(staging)
        os.sync()  # the copied files are on disk before the copy counts as the run
        replace(staging, partial)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return partial


def complete(partial: Path, out: Path, overwrite: bool) -> None:
    """Moves the finished run in ``partial`` to ``out``, replacing the run that was there.

    What is at ``out`` is checked again: something put there while the run trained is never
    deleted, and the finished run waits in ``partial`` until it is moved away.
    """
    if not (partial / FINISHED).is_file():
        raise CnnlabError(
            f"{partial}: the run is not finished; continue it with --resume {quoted(out)}"
        )
    tidy(partial)
    problem = _replaceable(out, overwrite)
    if problem:
        raise CnnlabError(
            f"{out}: the finished run cannot take its place ({problem.split(';')[0]}); move that "
            f"away, then 'cnnlab train --resume {quoted(out)}' puts the run there"
        )
    if out.exists() and any(out.iterdir()):
        replaced = _replaced_of(out)
        if replaced.exists():
            discard(replaced)
        replace(out, replaced)
        replace(partial, out)
        discard(replaced)
    else:
        replace(partial, out)  # also over an empty folder
        _clean_leftovers(out)


def locate(run_dir: str | os.PathLike) -> tuple[Path, Path]:
    """The run folder named by ``run_dir`` and its partial folder (which may not exist).

    An old run left aside by a replacement that was cut short after the new run took its
    place is removed here, and so are temporary files a kill left in the partial folder.
    """
    out = target_of(run_dir)
    _clean_leftovers(out)
    partial = partial_of(out)
    if partial.is_dir():
        tidy(partial)
    return out, partial


def tidy(folder: Path) -> None:
    """Removes the temporary files that a kill in the middle of a write left in ``folder``."""
    for path in folder.rglob(".*.tmp"):
        if _TEMPORARY.match(path.name) and path.is_file():
            path.unlink()


def discard(folder: Path) -> None:
    """Removes a folder cnnlab made (a partial, replaced or copied run)."""
    if folder.is_symlink():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)


def _clean_leftovers(out: Path) -> None:
    """Old runs and copies left aside by replacements or extensions that were cut short."""
    for copy in out.parent.glob(f".{glob.escape(out.name)}.*.copy"):
        discard(copy)
    replaced = _replaced_of(out)
    if replaced.exists() and is_finished(out):
        discard(replaced)
