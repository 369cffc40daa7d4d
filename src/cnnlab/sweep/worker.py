"""A sweep's worker: asks Optuna for a trial, trains it as an ordinary run, tells the result.

Every trial is a ``cnnlab train`` run into ``SWEEP/trials/NNNN``. A callback reports the
monitored validation metric to the trial after every epoch and, when the pruner finds the trial
hopeless, stops training: the run still finishes into a complete run folder, its stop reason
"pruned by the sweep". The trial's value is the monitored metric of the epoch the run kept.

A worker holds a lock file in ``SWEEP/.workers`` for as long as it lives and names it in its
trials. A trial still RUNNING whose worker's lock is free was cut short (a kill, a power cut):
:func:`recover` ends it (failed, without an error: the results show it as interrupted) and
queues its values again with its run folder, and the worker that takes them resumes that run
from its last checkpoint, so the result is the one the uninterrupted trial would have had, bit
for bit. The continuing trial has a number of its own but trains in the cut trial's folder. A
trial cut short before it drew its values is not continued: a new trial draws its own. The
lock folder is removed when its last worker ends.

``python -m cnnlab.sweep INDEX`` runs one worker of ``cnnlab sweep --jobs N``; the
sweep's settings come in the environment (they may hold a database password).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import io
import json
import math
import os
import secrets
import socket
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.files import read_json
from cnnlab.inspect.plots import read_history
from cnnlab.runs import folder as runs
from cnnlab.sweep.study import Sweep, make_sampler, open_study, require_optuna, values_of
from cnnlab.train.callbacks import Callback
from cnnlab.train.resume import resume_training
from cnnlab.train.run import RunConfig, run_training

HOST = socket.gethostname()
PRUNED = "pruned by the sweep"
WORKERS = ".workers"
#: The environment variable that hands a worker process its sweep.
SETTINGS_VARIABLE = "CNNLAB_SWEEP"
#: A worker gives up after this many failed trials in a row: the cause is rarely the values.
MAX_FAILURES = 3
#: A RUNNING trial that names no worker this long after it started was cut short.
_UNNAMED_GRACE = dt.timedelta(minutes=10)


class TrialReporter(Callback):
    """Reports the monitored metric to the Optuna trial after every epoch; stops it when the
    pruner says so (never after the last epoch: a trial that trained fully is complete)."""

    def __init__(self, trial: object, monitor: str) -> None:
        self.trial = trial
        self.monitor = monitor

    def report(self, row: dict) -> None:
        value = row.get(self.monitor)
        if value is not None and math.isfinite(value):
            self.trial.report(float(value), int(row["epoch"]))

    def on_fit_start(self, logs: dict) -> None:
        for row in self.context.history:  # the epochs a resumed run trained before
            self.report(row)

    def on_epoch_end(self, logs: dict) -> None:
        self.report(logs)
        if logs["epoch"] < self.context.epochs and self.trial.should_prune():
            self.context.stop_training = True
            self.context.stop_reason = PRUNED


@dataclass(frozen=True)
class Outcome:
    """How a trial's run ended: ``pruned`` or not, and the metric of the epoch it kept."""

    pruned: bool
    value: float
    epochs: int


def read_outcome(run: Path, monitor: str) -> Outcome:
    """The trial's result from its finished run folder: ``monitor`` at the kept epoch."""
    finished = read_json(run / runs.FINISHED, "run record")
    rows = read_history(run / "history.csv")
    kept = finished.get("kept_epoch")
    row = next((r for r in rows if r.get("epoch") == kept), None)
    value = None if row is None else row.get(monitor)
    if value is None or not math.isfinite(value):
        raise CnnlabError(f"{run}: no {monitor} for its kept epoch {kept}; the trial has no value")
    return Outcome(finished.get("stop_reason") == PRUNED, float(value), len(rows))


def run_trial(sweep: Sweep, trial: object) -> tuple[Outcome, dict]:
    """Draws the trial's values, trains its run, and returns its outcome and values."""
    values = {param.name: param.suggest(trial) for param in sweep.params}
    options = {**sweep.options}
    for param in sweep.params:
        options[param.dest] = param.option(values[param.name])
    resumed = trial.user_attrs.get("resume_from")
    out = Path(resumed) if resumed else sweep.trial_folder(trial.number)
    trial.set_user_attr("run", str(out))
    reporter = TrialReporter(trial, sweep.monitor)
    # A run prints its final line even when quiet; it names the test accuracy, which a sweep
    # must neither choose by nor tempt anyone to.
    with contextlib.redirect_stdout(io.StringIO()):
        if resumed and runs.is_finished(out):  # cut short after its run was complete
            for row in read_history(out / "history.csv"):
                reporter.report(row)
        elif resumed and runs.is_interrupted(out):
            resume_training(out, quiet=True, callbacks=[reporter])
        else:
            config = {**options, "out": str(out), "quiet": True, "report": False}
            run_training(RunConfig.from_options(config), callbacks=[reporter])
    return read_outcome(out, sweep.monitor), values


def run_worker(sweep: Sweep, worker: int = 0, pruner: object = None) -> None:
    """Runs trials until the study holds ``sweep.trials`` finished or running ones."""
    optuna = require_optuna()
    state = optuna.trial.TrialState
    study = open_study(sweep, pruner=pruner)
    study.sampler = make_sampler(sweep.seed, len(study.get_trials(deepcopy=False)), worker)
    failures = 0
    with _worker_lock(sweep.folder) as lock, warnings.catch_warnings():
        # Every trial reads the same data: say what is wrong with it once, not per trial.
        warnings.simplefilter("once")
        while _claimed(study) < sweep.trials:
            trial = study.ask()
            trial.set_user_attr("host", HOST)
            trial.set_user_attr("worker", lock)
            if _claimed(study, before=trial.number) >= sweep.trials:
                # Another worker asked at the same moment and took the last place.
                trial.set_user_attr("surplus", True)
                study.tell(trial, state=state.FAIL)
                break
            try:
                outcome, values = run_trial(sweep, trial)
            except KeyboardInterrupt:
                frozen = study.get_trials(deepcopy=False)
                _requeue(study, next(t for t in frozen if t.number == trial.number), sweep)
                raise
            except CnnlabError as error:
                trial.set_user_attr("error", str(error))
                study.tell(trial, state=state.FAIL)
                say(sweep, f"trial {trial.number} failed: {error}")
                failures += 1
                if failures >= MAX_FAILURES:
                    raise CnnlabError(
                        f"{failures} trials in a row failed, the last with: {error}"
                    ) from None
                continue
            failures = 0
            if outcome.pruned:
                study.tell(trial, state=state.PRUNED)
            else:
                study.tell(trial, outcome.value)
            say(sweep, trial_line(study, trial, sweep.monitor, values, outcome))


def trial_line(study: object, trial: object, monitor: str, values: dict, outcome: Outcome) -> str:
    """``trial 3 complete: valid_loss 0.4123 after 3 epochs, lr=0.0123 batch-size=64``."""
    number = trial.number
    shown = " ".join(f"{name}={_short(value)}" for name, value in values.items())
    what = f"pruned at epoch {outcome.epochs}" if outcome.pruned else "complete"
    line = f"trial {number} {what}: {monitor} {outcome.value:.4f}"
    line += f" after {outcome.epochs} epochs, {shown}"
    if "resume_from" in trial.user_attrs:
        line += f", the run of trial {trial.user_attrs['continues']} resumed"
    elif "continues" in trial.user_attrs:
        line += f", the values of trial {trial.user_attrs['continues']} again"
    try:
        if not outcome.pruned and study.best_trial.number == number:
            line += " (best so far)"
    except ValueError:  # no complete trial yet
        pass
    return line


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value).lower()


def say(sweep: Sweep, text: str) -> None:
    if not sweep.quiet:
        print(f"cnnlab: {text}", flush=True)


def _claimed(study: object, before: int | None = None) -> int:
    """Trials finished (complete or pruned) or running, of numbers below ``before``."""
    states = {"COMPLETE", "PRUNED", "RUNNING"}
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state.name in states and (before is None or t.number < before)
    )


def recover(study: object, sweep: Sweep) -> list[tuple[int, str | None, bool]]:
    """Ends the trials cut short on this machine and queues those that can be continued.

    Returns (number, run folder, whether it is queued again) of each. A trial another command
    recovers at the same moment is left to it: the study refuses to finish one trial twice.
    """
    recovered = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state.name == "RUNNING" and _cut_short(trial):
            queued = _requeue(study, trial, sweep)
            if queued is not None:
                recovered.append((trial.number, trial.user_attrs.get("run"), queued))
    return recovered


def _requeue(study: object, trial: object, sweep: Sweep) -> bool | None:
    """Ends the cut-short ``trial`` and queues its values again, with its run folder to resume.

    Optuna has no state for an interrupted trial: it is failed without an ``error``, which the
    results show as interrupted. A trial cut short before it drew its values is not queued
    (False): a new one draws its own. None: another command ended it first.
    """
    optuna = require_optuna()
    try:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
        return None
    if not sweep.can_continue(trial):
        return False
    attrs = {"continues": trial.number}
    # A continuation cut short before it named its run still holds the run it was to resume.
    run = trial.user_attrs.get("run") or trial.user_attrs.get("resume_from")
    if run:
        attrs["resume_from"] = run
    study.enqueue_trial(values_of(trial), user_attrs=attrs)
    return True


def _cut_short(trial: object) -> bool:
    """Whether a RUNNING trial's worker is gone: its lock free, on this machine."""
    lock = trial.user_attrs.get("worker")
    if lock is None:
        started = trial.datetime_start
        return started is not None and dt.datetime.now() - started > _UNNAMED_GRACE
    if trial.user_attrs.get("host") != HOST:
        return False  # its own machine's next command will know
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        Path(lock).unlink(missing_ok=True)  # the file of a killed worker
        return True
    finally:
        os.close(fd)


@contextlib.contextmanager
def _worker_lock(folder: Path) -> Iterator[str]:
    """A lock file held while the worker lives; it dies with the process, however it ends."""
    locks = folder / WORKERS
    path = locks / f"{HOST}-{os.getpid()}-{secrets.token_hex(4)}.lock"
    for attempt in range(10):
        locks.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            break
        except FileNotFoundError:  # the last worker of another command removed the folder
            if attempt == 9:
                raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield str(path.absolute())
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)
        # The last worker out leaves no empty folder behind; one still holding a lock stays.
        with contextlib.suppress(OSError):
            locks.rmdir()


def _die_with_parent(parent: int) -> None:
    """A worker of ``--jobs`` ends with the command that started it, even a killed one."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the line above
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> int:
    """One worker process of ``cnnlab sweep --jobs``: ``python -m cnnlab.sweep INDEX``."""
    argv = sys.argv[1:] if argv is None else argv
    settings = json.loads(os.environ[SETTINGS_VARIABLE])
    _die_with_parent(int(settings.pop("parent")))
    warnings.showwarning = _one_line_warning
    try:
        run_worker(Sweep.from_json(settings), int(argv[0]))
    except CnnlabError as error:
        print(f"cnnlab: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"cnnlab: warning: {message}", file=sys.stderr)
