"""Finishing a run stopped at any point, or training a finished run further.

A run that was cut short (Ctrl-C, a kill, a power cut, a full disk) resumes from its partial
folder's checkpoint to the result it would have had; a finished run whose schedule allows it is
trained for more epochs in a copy that replaces it when done. In a data-parallel run the first
process finds what to resume, and every process trains it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import torch

from cnnlab.errors import CnnlabError
from cnnlab.files import read_json, write_json
from cnnlab.runs import folder as runs
from cnnlab.runs.reading import load_run_split
from cnnlab.train import distributed
from cnnlab.train.checkpoint import read_checkpoint_meta
from cnnlab.train.finish import print_result, write_run_report
from cnnlab.train.run import (
    RunConfig,
    build_model,
    check_options,
    execute_run,
    read_run_config,
)


def resume_training(
    run_dir: str | Path,
    epochs: int | None = None,
    quiet: bool = False,
    callbacks: Sequence[object] = (),
) -> Path:
    """Finishes a run stopped at any point, or trains a finished run for more ``epochs``.

    The result is the same, bit for bit, as if the run had never stopped (same seeds, same
    order of batches, same thread count): weights, metrics and history alike.
    """
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)):
        raise CnnlabError(f"--epochs must be a positive integer, not {epochs!r}")
    out = runs.target_of(run_dir)
    if distributed.launched():
        return _resume_together(out, epochs, quiet, callbacks)
    with runs.lock(out):
        out, partial = runs.locate(out)
        if partial.exists() and not runs.is_run_folder(partial):
            raise CnnlabError(
                f"{out}: the run was stopped before it wrote its configuration; start it again "
                "with the same options"
            )
        if runs.is_run_folder(partial) and not (partial / runs.FINISHED).is_file():
            return _resume_interrupted(out, partial, epochs, quiet, callbacks)
        if runs.is_run_folder(partial):
            # Everything was written; at most the report and the move into place were cut short.
            saved = read_run_config(partial)
            if saved.report and not (partial / "report.html").exists():
                write_run_report(partial)
            runs.complete(partial, out, saved.overwrite)
            if epochs is None:
                print_result(out, quiet)
                return out
        if not runs.is_finished(out):
            what = "no such run folder" if not out.exists() else "no interrupted run to resume"
            raise CnnlabError(f"{out}: {what}; start a new run with cnnlab train --out")
        return _extend(out, epochs, quiet, callbacks)


def _resume_together(
    out: Path, epochs: int | None, quiet: bool, callbacks: Sequence[object]
) -> Path:
    """``resume_training`` in a data-parallel run: the first process finds what to resume (and
    holds the run's lock); every process then trains it."""
    distributed.setup(torch.device("cpu"))
    with ExitStack() as held:

        def plan() -> dict:
            held.enter_context(runs.lock(out))
            found, partial = runs.locate(out)
            if partial.exists() and runs.is_run_folder(partial):
                if not (partial / runs.FINISHED).is_file():
                    return {"how": "interrupted", "out": str(found), "partial": str(partial)}
                # Trained and saved; only the move into place was cut short.
                raise CnnlabError(
                    f"{found}: the run is trained and saved, only not moved into place; "
                    "'cnnlab train --resume' without --nproc finishes it"
                )
            if not runs.is_finished(found):
                what = "no such run folder" if not found.exists() else "no interrupted run"
                raise CnnlabError(f"{found}: {what} to resume; start a new run with --out")
            saved = read_run_config(found)
            if epochs is None or epochs <= (saved.train.epochs or 0):
                raise CnnlabError(
                    f"{found}: this run already finished (all epochs done); start a new run"
                    + (", or pass a larger --epochs to train on" if _stretchable(saved) else "")
                )
            return {"how": "extend", "out": str(found), "partial": ""}

        how = distributed.agree(plan)
        found = Path(how["out"])
        if how["how"] == "interrupted":
            return _resume_interrupted(found, Path(how["partial"]), epochs, quiet, callbacks)
        return _extend(found, epochs, quiet, callbacks)


def _resume_interrupted(
    out: Path, partial: Path, epochs: int | None, quiet: bool, callbacks: Sequence[object]
) -> Path:
    saved = read_run_config(partial)
    done = read_checkpoint_meta(partial / runs.CHECKPOINTS)
    _check_epochs(out, saved, epochs, done["epoch"] if done else 0)
    train = saved.train if epochs is None else dataclasses.replace(saved.train, epochs=epochs)
    config = dataclasses.replace(saved, out=str(out), quiet=quiet, train=train)
    split = load_run_split(partial)
    model = build_model(config, split)
    return execute_run(config, out, partial, split, model, resume=True, callbacks=callbacks)


def _extend(out: Path, epochs: int | None, quiet: bool, callbacks: Sequence[object]) -> Path:
    """Trains the finished run ``out`` further, in a copy that replaces it when done."""
    saved = read_run_config(out)
    finished = read_json(out / runs.FINISHED, "run record")
    if finished.get("stop_reason"):
        raise CnnlabError(
            f"{out}: this run already finished ({finished['stop_reason']}); start a new run"
        )
    if epochs is None or epochs <= (saved.train.epochs or 0):
        raise CnnlabError(
            f"{out}: this run already finished (all epochs done); start a new run"
            + (", or pass a larger --epochs to train on" if _stretchable(saved) else "")
        )
    state = read_checkpoint_meta(out / runs.CHECKPOINTS)
    if state is None or state["epoch"] != finished.get("epochs_run"):
        raise CnnlabError(
            f"{out}: no checkpoint of its last epoch in {runs.CHECKPOINTS}/; it cannot be trained "
            "further, start a new run"
        )
    _check_epochs(out, saved, epochs, state["epoch"], finished=True)
    train = dataclasses.replace(saved.train, epochs=epochs)
    # The longer run replaces the shorter one when it is done.
    config = dataclasses.replace(saved, out=str(out), quiet=quiet, overwrite=True, train=train)
    check_options(config)
    split = load_run_split(out)
    model = build_model(config, split)

    def record_plan(copy: Path) -> None:
        described = runs.read_config(copy)
        described["train"]["epochs"], described["overwrite"] = epochs, True
        write_json(copy / runs.CONFIG, described)

    partial = Path(distributed.agree(lambda: str(runs.begin_extension(out, record_plan))))
    return execute_run(config, out, partial, split, model, resume=True, callbacks=callbacks)


def _stretchable(saved: RunConfig) -> bool:
    """Whether more epochs can be added: cosine and one-cycle schedules end at their plan."""
    return saved.train.schedule not in ("cosine", "onecycle")


def _check_epochs(
    out: Path, saved: RunConfig, epochs: int | None, trained: int, finished: bool = False
) -> None:
    """A new epoch count must be reachable: not fewer than trained, no schedule stretched.

    A ``finished`` run has nothing left to resume without ``--epochs``: the hint says so.
    """
    planned = saved.train.epochs
    if epochs is None or epochs == planned:
        return
    if epochs < max(trained, 1):
        raise CnnlabError(
            f"--epochs {epochs}: {out} has trained {trained} epochs already; give more"
        )
    if not _stretchable(saved):
        raise CnnlabError(
            f"--epochs {epochs}: the {saved.train.schedule} schedule of {out} was planned for "
            f"{planned} epochs and cannot be stretched; "
            + (
                f"start a new run with --epochs {epochs}"
                if finished
                else "resume without --epochs, or start a new run"
            )
        )
