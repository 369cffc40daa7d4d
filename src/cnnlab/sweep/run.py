"""``run_sweep``: check everything, start or continue the study, run its workers, report.

Nothing runs until every option and every value of the search space has been checked. With
``jobs=1`` the trials run in this process; with more, in that many worker processes on the same
storage, each given its share of the CPU cores, while this process waits, passes a Ctrl-C on,
and writes the results when they are done.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cnnlab.data.sources import BUILTIN as BUILTIN_DATA
from cnnlab.errors import CnnlabError
from cnnlab.sweep.results import SweepResult, write_results
from cnnlab.sweep.space import Param, check_unique, load_space, parse_search
from cnnlab.sweep.study import (
    PRUNERS,
    Sweep,
    default_storage,
    open_study,
    prepare_folder,
    record_settings,
    require_optuna,
    worker_threads,
)
from cnnlab.sweep.worker import SETTINGS_VARIABLE, recover, run_worker, say
from cnnlab.train import finetune
from cnnlab.train.options import RunConfig, check_run_options
from cnnlab.train.run import check_options

#: How long the workers get to stop after a Ctrl-C before they are killed.
_STOP_SECONDS = 30
#: Options that are the sweep's own, not its trials'.
_SWEEP_OWN = {"out": "out", "overwrite": "out", "quiet": "quiet", "report": "report"}


def run_sweep(
    out: str | os.PathLike,
    search: Sequence[str] = (),
    trials: int = 20,
    *,
    space: str | os.PathLike | None = None,
    storage: str | None = None,
    study: str | None = None,
    jobs: int = 1,
    pruner: str | object = "median",
    quiet: bool = False,
    report: bool = True,
    **options: object,
) -> SweepResult:
    """Runs (or continues) a sweep of ``cnnlab train`` runs into the folder ``out``.

    ``search`` holds ``--search`` specs and ``space`` a TOML file of more (see
    :mod:`cnnlab.sweep.space`); ``options`` are the training options every trial shares, named
    as for :meth:`RunConfig.from_options` (``data=["crops"], size=32, epochs=5``); ``monitor``
    among them is the objective. ``trials`` counts the finished trials the study should hold: a
    continuation runs only those still missing. ``storage`` is a database URL (default: the
    SQLite file ``out/sweep.db``); ``study`` its study name (default: the folder's name).
    ``pruner`` is ``median``, ``none`` or, with ``jobs=1``, an Optuna pruner object.
    """
    require_optuna()
    for name, value in (("trials", trials), ("jobs", jobs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CnnlabError(f"--{name} must be a positive integer, not {value!r}")
    if isinstance(pruner, str):
        if pruner not in PRUNERS:
            raise CnnlabError(f"--pruner {pruner!r}: choose one of {', '.join(PRUNERS)}")
        pruner_name, pruner_object = pruner, None
    elif jobs > 1:
        raise CnnlabError("a pruner object works in one process; with jobs > 1 name it")
    else:
        pruner_name, pruner_object = type(pruner).__name__, pruner
    fixed = _fixed_options(options, jobs)
    params = [*parse_search(search, fixed)]
    if space is not None:
        params += load_space(space, fixed)
    _check_space(params, fixed)
    if not str(out).strip():
        raise CnnlabError("--out '': give the sweep folder")
    folder = Path(out).expanduser().absolute()
    sweep = Sweep(
        folder=folder,
        options=fixed,
        params=params,
        trials=trials,
        storage=storage or default_storage(folder),
        study=study or folder.name,
        pruner=pruner_name,
        jobs=jobs,
        quiet=quiet,
        report=report,
    )
    prepare_folder(sweep)
    optuna_study = open_study(sweep, pruner=pruner_object)
    record_settings(sweep)
    for number, run, queued in recover(optuna_study, sweep):
        if not queued:
            what = " before it drew its values; a new trial takes its place"
        else:
            what = ": its values are queued again" + (f"; its run {run} is resumed" if run else "")
        say(sweep, f"trial {number} was cut short{what}")
    try:
        if jobs == 1:
            run_worker(sweep, 0, pruner_object)
        else:
            _run_workers(sweep)
    except KeyboardInterrupt:
        _results_so_far(optuna_study, sweep)
        raise KeyboardInterrupt(
            "the trials finished so far are kept; run the same command again to continue"
        ) from None
    result = write_results(optuna_study, sweep)
    _print_result(sweep, result)
    return result


def _fixed_options(options: dict, jobs: int) -> dict:
    """The trials' shared options, checked as ``cnnlab train`` checks them."""
    fixed = {key.replace("-", "_"): v for key, v in options.items() if v is not None}
    for key in fixed:
        if key in _SWEEP_OWN:
            flag = _SWEEP_OWN[key]
            raise CnnlabError(
                f"--{key.replace('_', '-')}: a sweep's trials get their own run folders; "
                f"give the sweep's --{flag} instead"
            )
    fixed.setdefault("threads", worker_threads(jobs))
    config = RunConfig.from_options(fixed)
    check_run_options(config)
    check_options(finetune.resolve(config)[0])
    fixed["data"] = list(config.data)  # absolute: workers and resumes start anywhere
    for data in config.data:
        if data not in BUILTIN_DATA and not Path(data).exists():
            # Every trial would fail on it; say so once, before the first.
            raise CnnlabError(f"--data {data}: no such folder")
    monitor = config.train.monitor
    if not monitor.startswith("valid_"):
        raise CnnlabError(
            f"--monitor {monitor}: a sweep is scored on the validation set; choose valid_loss or "
            "valid_accuracy"
        )
    if config.valid_on != "valid":
        raise CnnlabError(
            "--valid-on test: a sweep must never choose by the test set; leave --valid-on out"
        )
    if config.split is not None and config.split[1] == 0:
        raise CnnlabError(
            f"--split {','.join(f'{p:g}' for p in config.split)}: a sweep needs a validation "
            "share to score its trials on; give one, e.g. 60,30,10"
        )
    return fixed


def _check_space(params: list[Param], fixed: dict) -> None:
    if not params:
        raise CnnlabError("nothing to search: give parameters with --search or --space")
    check_unique(params)
    for param in params:
        if param.dest in fixed:
            raise CnnlabError(
                f"--search {param.spec()}: --{param.name} is also given a fixed value; give it once"
            )


def _run_workers(sweep: Sweep) -> None:
    """Runs ``sweep.jobs`` worker processes and waits for them; a Ctrl-C is passed on."""
    settings = {**sweep.to_json(), "parent": os.getpid()}
    env = {**os.environ, SETTINGS_VARIABLE: json.dumps(settings)}
    command = [sys.executable, "-m", "cnnlab.sweep"]
    # Each in a session of its own: a Ctrl-C at the terminal reaches this process only, which
    # passes it on once (a second one would cut short the worker's own tidying up).
    workers = [
        subprocess.Popen([*command, str(i)], env=env, start_new_session=True)
        for i in range(sweep.jobs)
    ]
    try:
        codes = [worker.wait() for worker in workers]
    except KeyboardInterrupt:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGINT)
        deadline = time.monotonic() + _STOP_SECONDS  # for all of them together
        for worker in workers:
            try:
                worker.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        raise
    failed = [(i, code) for i, code in enumerate(codes) if code != 0]
    if failed:
        index, code = failed[0]
        raise CnnlabError(
            f"sweep worker {index} stopped with exit code {code} (its message is above); the "
            "trials finished so far are kept, run the same command again to continue"
        )


def _results_so_far(study: object, sweep: Sweep) -> None:
    """The results of an interrupted sweep: what finished is worth seeing."""
    # Interrupted again, or the storage is gone: the study still holds it all.
    with contextlib.suppress(Exception):
        write_results(study, sweep)


def _print_result(sweep: Sweep, result: SweepResult) -> None:
    counts = result.counts
    finished = counts["complete"] + counts["pruned"]
    if result.best_trial is not None and not sweep.quiet:
        values = " ".join(f"{k}={v}" for k, v in result.best_params.items())
        print(f"cnnlab: best trial {result.best_trial}: {values}")
        print(f"cnnlab: its run {result.best_run}; train it again with:\n  {result.command}")
    best = (
        "no trial completed"
        if result.best_trial is None
        else f"best {sweep.monitor} {result.best_value:.4f} (trial {result.best_trial})"
    )
    trials = f"{finished} trial{'' if finished == 1 else 's'} finished"
    # Interrupted trials are continued by others, which the finished ones count; failed ones
    # refused their values or could not train. Neither is shown when there is none.
    others = "".join(
        f", {counts[state]} {word}"
        for state, word in (("interrupted", "interrupted"), ("fail", "failed"))
        if counts[state]
    )
    print(
        f"cnnlab: {trials} ({counts['complete']} complete, {counts['pruned']} pruned){others}, "
        f"{best}; results in {sweep.folder / 'sweep.html'}",
        flush=True,
    )
