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

import os
import re
import shutil
import tempfile
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.runs.files import fsync_folder, parse_json, replace

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
    }
)
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.partial$")


def partial_of(out: Path) -> Path:
    """Where the run for ``out`` is built until it is complete."""
    return out.parent / f".{out.name}.partial"


def _replaced_of(out: Path) -> Path:
    return out.parent / f".{out.name}.replaced"


def target_of(path: str | os.PathLike) -> Path:
    """The run folder a path names: itself, or the run a ``.NAME.partial`` folder builds."""
    path = Path(os.path.abspath(Path(path).expanduser()))
    match = _PARTIAL.match(path.name)
    return path.parent / match["name"] if match else path


def read_config(folder: Path) -> dict:
    """The ``config.json`` of a run folder, as written."""
    path = folder / CONFIG
    try:
        data = parse_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CnnlabError(f"{folder}: no {CONFIG}; is this a cnnlab run folder?") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise CnnlabError(f"{path}: damaged, not valid JSON ({error})") from error
    if not isinstance(data, dict) or not {"train", "resolved", "model"} <= data.keys():
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


def check_target(out: Path, overwrite: bool) -> None:
    """Everything about ``--out`` that can be checked before a single file is written."""
    for parent in [out, *out.parents]:
        if parent.exists():
            if not parent.is_dir():
                what = "exists and is not a folder" if parent == out else f"{parent} is a file"
                raise CnnlabError(f"--out {out}: {what}; choose another path")
            break
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise CnnlabError(
                f"--out {out}: the folder is not empty; choose another folder or pass --overwrite"
            )
        foreign = sorted(c.name for c in out.iterdir() if c.name not in RUN_CONTENTS)
        if foreign or not is_run_folder(out):
            extra = f" (it holds {', '.join(foreign[:3])})" if foreign else ""
            raise CnnlabError(
                f"--out {out}: not a cnnlab run folder{extra}; --overwrite only replaces runs"
            )
    if is_interrupted(out) and not overwrite:
        raise CnnlabError(
            f"--out {out}: an interrupted run of this folder waits in {partial_of(out)}; continue "
            f"it with --resume {out}, or pass --overwrite to start over"
        )


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


def begin_extension(out: Path) -> Path:
    """A partial folder holding a copy of the finished run ``out``, to train it further.

    The copy is made under a temporary name and renamed when complete, without ``run.json``:
    the finished run stays as it is until the longer one replaces it.
    """
    _clean_leftovers(out)
    partial = partial_of(out)
    if partial.exists():
        discard(partial)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".copy", dir=out.parent))
    try:
        shutil.copytree(out, staging, dirs_exist_ok=True)
        (staging / FINISHED).unlink()
        replace(staging, partial)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return partial


def complete(partial: Path, out: Path) -> None:
    """Moves the finished run in ``partial`` to ``out``, replacing the run that was there."""
    if not (partial / FINISHED).is_file():
        raise CnnlabError(f"{partial}: the run is not finished; continue it with --resume {out}")
    if out.exists():
        replaced = _replaced_of(out)
        if replaced.exists():
            discard(replaced)
        replace(out, replaced)
        replace(partial, out)
        discard(replaced)
    else:
        replace(partial, out)
        _clean_leftovers(out)


def locate(run_dir: str | os.PathLike) -> tuple[Path, Path]:
    """The run folder named by ``run_dir`` and its partial folder (which may not exist).

    An old run left aside by a replacement that was cut short after the new run took its
    place is removed here.
    """
    out = target_of(run_dir)
    _clean_leftovers(out)
    return out, partial_of(out)


def discard(folder: Path) -> None:
    """Removes a folder cnnlab made (a partial or replaced run)."""
    shutil.rmtree(folder, ignore_errors=True)
    if folder.exists():  # e.g. a file inside was made read-only by hand: a clear error
        shutil.rmtree(folder)


def _clean_leftovers(out: Path) -> None:
    """An old run set aside by an interrupted replacement, once the new one is in place."""
    replaced = _replaced_of(out)
    if replaced.exists() and is_finished(out):
        discard(replaced)
