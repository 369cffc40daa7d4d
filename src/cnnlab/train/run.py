"""The main job: from data specs to a finished run folder.

The run folder's contract (its files, where a run grows until it is complete, how it replaces
an old run) belongs to :mod:`cnnlab.runs.folder`; this module orchestrates a run through it:
check every option, read the data and build the model before anything is written, train in the
partial folder with a checkpoint after every epoch, evaluate, save, report, and only then move
the finished run into place. ``resume_training`` finishes a run stopped at any point.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import itertools
import os
import sys
import threading
import warnings
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import torch

from cnnlab import kernels
from cnnlab.data import relabel
from cnnlab.data.augment import augment, parse_specs
from cnnlab.data.sources import load_split
from cnnlab.data.split import Split, balance_warnings, format_class_table, write_manifest
from cnnlab.errors import CnnlabError, RunInterrupted, TrainingDiverged, describe_os_error
from cnnlab.files import write_json
from cnnlab.models import create_model, model_info, parse_model_options
from cnnlab.runs import folder as runs
from cnnlab.train import distributed, finetune
from cnnlab.train.batches import augmenter_for
from cnnlab.train.busy import BusyMachineHint
from cnnlab.train.callbacks import CSVLogger, progress
from cnnlab.train.checkpoint import read_checkpoint_meta
from cnnlab.train.finish import finish_run, format_subset_table, print_result, write_run_report
from cnnlab.train.freeze import freeze
from cnnlab.train.loop import fit, fit_normalizer, resolve_device
from cnnlab.train.options import (
    RunConfig,
    check_run_options,
    load_toml,
    parse_size,
    parse_split,
)
from cnnlab.version import __version__

__all__ = [
    "RunConfig",
    "finish_run",
    "format_subset_table",
    "load_toml",
    "parse_size",
    "parse_split",
    "run_training",
]

# --------------------------------------------------------------------------------- run


def run_training(config: RunConfig, callbacks: Sequence[object] = ()) -> Path:
    """Trains, evaluates and saves one run into a new run folder; returns the folder.

    Every option, the data and the model are checked before anything is written, so a typo
    never leaves a folder behind, and never touches a run that ``overwrite`` would replace:
    the new run replaces the old one only once it is complete. With ``init_from`` the run
    starts from another run's weights (see :mod:`cnnlab.train.finetune`).
    """
    config, source = check_run(config)
    distributed.setup(resolve_device(config.train.device))
    if config.out is not None and distributed.is_main():  # fail fast; again under the lock
        runs.check_target(runs.target_of(config.out), config.overwrite)
    with ExitStack() as held:
        # The import runs beside the data loading; an import cut short by the end of the
        # process aborts it, so even a run that fails waits for it.
        held.callback(warm_up_optimizers().join)
        split = load_split(config.data_spec())
        decided = None  # after the split, so that it is drawn as in the reviewed run
        if config.relabel is not None:
            split, decided = relabel.relabel_split(split, config.relabel)
            if distributed.is_main() and not config.quiet:
                print(relabel.summary_line(decided), file=sys.stderr, flush=True)
        model = build_model(config, split)
        start = finetune.starting_point(source, model, split) if source else None

        def claim() -> str:
            out = _claim_out_folder(config, held)
            runs.check_target(out, config.overwrite)
            runs.begin(out)
            return str(out)

        # In a data-parallel run the first process names, locks and starts the folder.
        out = Path(distributed.agree(claim))
        config = dataclasses.replace(config, out=str(out))
        partial = runs.partial_of(out)
        return execute_run(
            config,
            out,
            partial,
            split,
            model,
            resume=False,
            callbacks=callbacks,
            start=start,
            decided=decided,
        )


def check_run(config: RunConfig) -> tuple[RunConfig, finetune.Source | None]:
    """Every check of the options that needs no data; the config with the fine-tuning source's
    choices filled in, and that source."""
    check_run_options(config)
    config, source = finetune.resolve(config)
    check_options(config)
    return config, source


def check_options(config: RunConfig) -> None:
    """Options that need more than a type check: augmentation specs, device, model name."""
    if config.augment:
        parse_specs(config.augment)
    resolve_device(config.train.device)
    if config.tensorboard:
        from cnnlab.train.tensorboard import summary_writer

        summary_writer()  # the optional package is there, or a one-line hint now
    try:
        model_info(config.model)
    except CnnlabError as error:
        raise CnnlabError(f"--model: {error}") from None
    parse_model_options(config.model_option, config.model)


def _claim_out_folder(config: RunConfig, held: ExitStack) -> Path:
    """The run folder, locked against other processes for as long as ``held`` lasts.

    Without ``--out`` the name is the time, the model and the data, with a number added when
    that is taken, by a finished run, an interrupted one or a run starting at the same moment.
    """
    if config.out is not None:
        out = runs.target_of(config.out)
        held.enter_context(runs.lock(out))
        return out
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    data = "mnist" if "mnist" in config.data else Path(config.data[0]).name or "data"
    base = Path("runs").absolute() / f"{stamp}-{config.model}-{data}"
    for suffix in itertools.count(1):
        out = base if suffix == 1 else base.with_name(f"{base.name}-{suffix}")
        if out.exists() or runs.partial_of(out).exists():
            continue
        try:
            held.enter_context(runs.lock(out))
        except runs.FolderBusy:
            continue
        if not out.exists() and not runs.partial_of(out).exists():
            return out
    raise AssertionError("unreachable")


def build_model(config: RunConfig, split: Split) -> torch.nn.Module:
    """The run's network for ``split``, with what ``--freeze`` names frozen (resumes too)."""
    reference = split.train
    model = create_model(
        config.model,
        in_chans=reference.channels,
        num_classes=reference.num_classes,
        input_size=reference.image_size,
        **parse_model_options(config.model_option, config.model),
    )
    freeze(model, config.freeze)
    return model


def warm_up_optimizers() -> threading.Thread:
    """Loads cnnlab's native kernels and imports ``torch._dynamo`` in the background while the
    data loads.

    PyTorch's optimizers import ``torch._dynamo`` on first use, which takes over a second, and
    the kernels are found (or compiled, the first time on a machine) by a compiler run;
    reading and checksumming the data mostly waits in zlib and hashlib, which let other
    threads run, so doing all at once hides most of that time.
    """

    def warm_up() -> None:
        kernels.library()
        importlib.import_module("torch._dynamo")

    thread = threading.Thread(target=warm_up, daemon=True, name="warm-up")
    thread.start()
    return thread


def execute_run(
    config: RunConfig,
    out: Path,
    partial: Path,
    split: Split,
    model: torch.nn.Module,
    resume: bool,
    callbacks: Sequence[object],
    start: finetune.Start | None = None,
    decided: dict | None = None,
) -> Path:
    """Runs in ``partial`` and moves the result to ``out``; on failure keeps what can resume.

    A new run that fails before it saved an epoch, or that diverged (resuming would diverge
    again), is removed; anything else keeps the partial folder, and the error says how to go on.
    """
    if not distributed.is_main():
        # The other processes of a data-parallel run only train; the first one owns the folder.
        _run(config, partial, split, model, resume, callbacks, start)
        distributed.finish_together()
        return out
    try:
        _run(config, partial, split, model, resume, callbacks, start, decided)
        runs.complete(partial, out, config.overwrite)
    except KeyboardInterrupt:
        if not resume and not runs.is_run_folder(partial):
            runs.discard(partial)
            raise RunInterrupted("the run had not started; nothing was kept") from None
        raise RunInterrupted(_resume_hint(out, partial)) from None
    except BaseException as error:
        saved = read_checkpoint_meta(partial / runs.CHECKPOINTS) is not None
        if not resume and (not saved or isinstance(error, TrainingDiverged)):
            runs.discard(partial)
            raise
        if isinstance(error, OSError):
            raise CnnlabError(
                f"{describe_os_error(error)}; the run so far is kept: {_resume_hint(out, partial)}"
            ) from error
        if isinstance(error, CnnlabError) and "--resume" not in str(error):
            raise CnnlabError(
                f"{error}; the run so far is kept: {_resume_hint(out, partial)}"
            ) from error
        raise
    distributed.finish_together()
    print_result(out, config.quiet)
    return out


def _resume_hint(out: Path, partial: Path) -> str:
    try:
        saved = read_checkpoint_meta(partial / runs.CHECKPOINTS)
        done = "nothing saved yet" if saved is None else f"epoch {saved['epoch']} saved"
    except (CnnlabError, OSError):
        done = "its checkpoint is unreadable"
    return f"'cnnlab train --resume {runs.quoted(out)}' continues it ({done})"


def _run(
    config: RunConfig,
    folder: Path,
    split: Split,
    model: torch.nn.Module,
    resume: bool,
    callbacks: Sequence[object],
    start: finetune.Start | None,
    decided: dict | None = None,
) -> None:
    """Trains and finishes the run in ``folder``, the run's partial folder.

    A fine-tuning run's starting weights are copied into the folder before its ``config.json``
    (a resumed run takes them from there, never from the source again).
    """
    out, main = config.out, distributed.is_main()
    if not config.quiet and main:
        print(f"cnnlab: run folder {out}", flush=True)
        print(format_class_table(split), flush=True)
    for problem in balance_warnings(split) if main else ():
        warnings.warn(problem, stacklevel=2)
    if resume:
        start = finetune.saved_start(folder)
    elif start is not None and main:
        finetune.save_start(folder / runs.CHECKPOINTS, start)
    if start is not None:
        normalizer = start.normalizer()
    else:
        normalizer = fit_normalizer(split.train, config.train.normalize)
    train, on_the_fly, passes = split.train, None, 1
    if config.augment and config.augment_mode == "on-the-fly":
        # Every batch transformed afresh by fit; an epoch as long as the static set.
        on_the_fly = augmenter_for(config.augment, train)
        passes = on_the_fly.variants
    elif config.augment:
        # On a GPU the augmented copies are made there, from images moved to it once.
        device = resolve_device(config.train.device)
        if device.type != "cpu" and isinstance(train.images, torch.Tensor):
            train = train.replace(images=train.images.to(device))
        train = augment(train, config.augment, seed=config.train.seed)
    config = dataclasses.replace(config, train=config.train.resolved(len(train) * passes))
    if config.augment and main and not config.quiet:
        how = "afresh every batch" if on_the_fly else "copies made once"
        print(
            f"augmented ({config.augment_mode}, {how}): {len(split.train):,} training images "
            f"become {len(train) * passes:,} an epoch",
            flush=True,
        )
    if not main:
        fit(
            model,
            train,
            split.valid,
            config.train,
            normalizer=normalizer,
            checkpoint_dir=folder / runs.CHECKPOINTS,
            resume=resume,
            initial_state=start.state if start is not None else None,
            augment=on_the_fly,
            verbose=0,
        )
        return
    if not resume and "mnist" not in config.data:
        write_manifest(split, folder / "split.csv")
    # Rewritten on resume too: a finished run trained further records its new epoch count
    # before it trains, in its partial copy, so that resuming that goes on to the same end.
    described = _describe(config, split, finetune.describe(start, model, config))
    if resume:  # the label decisions it started with; load_run_split applied their copy
        decided = (runs.read_config(folder).get("resolved") or {}).get("relabel")
    elif decided is not None:
        relabel.keep_copy(decided, folder)
    if decided is not None:
        described["resolved"]["relabel"] = decided
    write_json(folder / runs.CONFIG, described)

    # A bar on a terminal, one line per epoch in a log; on stderr, so that stdout keeps only
    # the results.
    hooks: list[object] = [] if config.quiet else [progress(1, sys.stderr)]
    # Said to someone watching a CPU run on its default threads; a log or a notebook keeps
    # its lines as they were.
    watched = not config.quiet and config.train.threads is None and sys.stderr.isatty()
    if watched and resolve_device(config.train.device).type == "cpu":
        hooks.append(BusyMachineHint(torch.get_num_threads()))
    hooks.append(CSVLogger(folder / "history.csv"))
    if config.tensorboard:
        from cnnlab.train.tensorboard import TensorBoardLogger

        hooks.append(
            TensorBoardLogger(
                folder / "tensorboard", class_names=split.train.class_names, valid=split.valid
            )
        )
    hooks.extend(callbacks)
    history = fit(
        model,
        train,
        split.valid,
        config.train,
        hooks,
        normalizer=normalizer,
        checkpoint_dir=folder / runs.CHECKPOINTS,
        resume=resume,
        initial_state=start.state if start is not None else None,
        augment=on_the_fly,
        verbose=0,  # the progress above, or nothing with --quiet
    )
    if distributed.group() is not None and not config.train.threads:
        # The other processes only trained: evaluating and reporting may use every core.
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    # Scored, saved and reported on the CPU, where cnnlab evaluate, predict and report load a
    # run's model later: the same numbers wherever it trained (a no-op after CPU training).
    model.to("cpu")
    scores = finish_run(folder, model, config, split, history)
    if config.report:
        write_run_report(folder, model=model, split=split, scores=scores)


def _describe(config: RunConfig, split: Split, init: dict | None) -> dict:
    described = config.to_dict()
    if init is not None:
        described["init"] = init
    reference = split.train
    device = resolve_device(config.train.device)
    described["resolved"] = {
        "class_names": list(reference.class_names),
        "channels": reference.channels,
        "size": list(reference.image_size),
        "bit_depth": reference.bit_depth,
        "subsets": {name: len(ds) for name, ds in split.items()},
        "cnnlab": __version__,
        "torch": torch.__version__,
        # Several processes train the same model up to the order of float additions.
        "processes": group.world if (group := distributed.group()) else 1,
        # Where it trained: a resumed run repeats the result bit for bit only on the same kind
        # of device (and GPU), whose kernels add in their own order.
        "device": device.type,
        **({"gpu": torch.cuda.get_device_name(device)} if device.type == "cuda" else {}),
        # Whether this machine's native kernels were there to train conv -> pool -> ReLU
        # stages (another order of float additions than PyTorch's operators): CPUs only.
        "native_kernels": device.type == "cpu" and kernels.library() is not None,
    }
    return described


def read_run_config(folder: Path) -> RunConfig:
    data = runs.read_config(folder)
    data.pop("resolved", None)
    data.pop("init", None)
    train = data.pop("train")
    data.pop("out", None)
    # Runs from before on-the-fly augmentation made their augmented copies before training.
    data.setdefault("augment_mode", "static")
    return RunConfig.from_options({**data, **train})
