"""A sweep's results: the table of trials, the best trial, Optuna's plots and the report.

Everything is made from the study (which every worker wrote to) and written atomically into
the sweep folder: ``trials.csv``, ``best.json``, ``plots/*.png`` and ``sweep.html``. They are
made again whenever the sweep command ends, so they always show the whole study, trials of
other machines sharing it included.
"""

from __future__ import annotations

import csv
import io
import shlex
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.files import write_bytes, write_json, write_text
from cnnlab.inspect.figures import figure_png
from cnnlab.runs import folder as runs
from cnnlab.sweep.study import Sweep, require_optuna
from cnnlab.train.options import cli_options

TABLE = "trials.csv"
BEST = "best.json"
PLOTS = "plots"
#: Settings that belong to how a sweep ran, not to the training run they stand for.
_NOT_TRAIN_FLAGS = ("out", "quiet", "report", "overwrite")


@dataclass
class SweepResult:
    """What a sweep found: the trials by state, the best trial, its run and command line."""

    folder: Path
    study: str
    monitor: str
    direction: str
    counts: dict[str, int]
    rows: list[dict] = field(repr=False)
    best_trial: int | None = None
    best_value: float | None = None
    best_params: dict = field(default_factory=dict)
    best_run: Path | None = None
    command: str | None = None
    plots: dict[str, str] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {state}" for state, n in self.counts.items() if n)
        best = (
            "no complete trial"
            if self.best_trial is None
            else f"best trial {self.best_trial}: {self.monitor} {self.best_value:.4f}"
        )
        return f"SweepResult({counts or 'no trials'}; {best}; {self.folder})"


def collect(study: object, sweep: Sweep) -> SweepResult:
    """The study's trials as table rows, and its best trial, without writing anything."""
    rows = trial_rows(study, sweep)
    states = ("complete", "pruned", "interrupted", "fail", "running", "waiting")
    counts = dict.fromkeys(states, 0)
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    result = SweepResult(sweep.folder, sweep.study, sweep.monitor, sweep.direction, counts, rows)
    try:
        best = study.best_trial
    except ValueError:  # no complete trial
        return result
    result.best_trial, result.best_value = best.number, best.value
    result.best_params = dict(best.params)
    run = best.user_attrs.get("run")
    result.best_run = Path(run) if run else None
    options = {k: v for k, v in sweep.options.items() if k not in _NOT_TRAIN_FLAGS}
    for param in sweep.params:
        if param.name in best.params:
            options[param.dest] = param.option(best.params[param.name])
    result.command = train_command(options)
    return result


def trial_rows(study: object, sweep: Sweep) -> list[dict]:
    """One row per trial: number, state, value, epochs, seconds, values, run folder, note.

    A trial cut short by a Ctrl-C or a kill is ``interrupted`` (Optuna holds it as failed:
    it has no state of its own for that); the trial that continues it trains with the same
    values and, when it had one, resumes its run folder, so two rows can name the same run.
    """
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("surplus")]
    by_number = {t.number: t for t in trials}
    continued = {}
    for trial in trials:
        source = by_number.get(trial.user_attrs.get("continues"))
        if source is not None and sweep.can_continue(source):
            continued[source.number] = trial.number
    rows = []
    for trial in trials:
        state = trial_state(trial)
        seconds = None
        if trial.datetime_start and trial.datetime_complete:
            seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
        notes = []
        source = by_number.get(trial.user_attrs.get("continues"))
        if source is not None and source.number in continued:
            notes.append(_continues(trial, source))
        if state == "pruned":
            notes.append(f"pruned after epoch {trial.last_step}")
        if state == "interrupted":
            notes.append(_interrupted(trial, sweep, continued.get(trial.number)))
        elif trial.user_attrs.get("error"):
            notes.append(trial.user_attrs["error"])
        rows.append(
            {
                "number": trial.number,
                "state": state,
                sweep.monitor: trial.value if state in ("complete", "pruned") else None,
                "epochs": len(trial.intermediate_values),
                "seconds": seconds,
                **{param.name: trial.params.get(param.name) for param in sweep.params},
                "run": trial.user_attrs.get("run"),
                "host": trial.user_attrs.get("host"),
                "note": "; ".join(notes),
            }
        )
    return rows


def trial_state(trial: object) -> str:
    """``complete``, ``pruned``, ``fail``, ``interrupted``, ``running`` or ``waiting``.

    A trial fails with an ``error`` (the run refused its values, or could not train); every
    other failed trial was cut short: a worker fails it only to queue it again.
    """
    state = trial.state.name.lower()
    if state == "fail" and not trial.user_attrs.get("error"):
        return "interrupted"
    return state


def _continues(trial: object, source: object) -> str:
    if trial.user_attrs.get("resume_from"):
        return f"continues trial {source.number}, resuming its run folder"
    return f"continues trial {source.number} with its values, in a run folder of its own"


def _interrupted(trial: object, sweep: Sweep, successor: int | None) -> str:
    if successor is not None:
        return f"interrupted; trial {successor} continues it"
    if not sweep.can_continue(trial):
        return "interrupted before its values were drawn; nothing to continue"
    return "interrupted; the same sweep command again continues it"


def table_csv(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow("" if row.get(c) is None else row[c] for c in columns)
    return buffer.getvalue()


def columns(sweep: Sweep) -> list[str]:
    names = [param.name for param in sweep.params]
    return ["number", "state", sweep.monitor, "epochs", "seconds", *names, "run", "host", "note"]


def train_command(options: dict) -> str:
    """The ``cnnlab train`` command line that trains a run with ``options`` again.

    Numbers are written in full (``repr``), so that the command repeats the trial exactly.
    """
    parts = ["cnnlab", "train"]
    for option in cli_options():
        value = options.get(option.dest)
        if value is None:
            continue
        if option.kind == "append":
            for item in value:
                parts += [option.flag, str(item)]
        elif option.kind == "true":
            parts += [option.flag] if value else []
        elif option.kind == "false":
            parts += [] if value else [option.flag]
        elif option.kind == "both":
            parts.append(option.flag if value else f"--no-{option.flag[2:]}")
        elif isinstance(value, list | tuple):
            separator = "x" if option.dest == "size" else ","
            parts += [option.flag, separator.join(str(v) for v in value)]
        else:
            parts += [option.flag, repr(value) if isinstance(value, float) else str(value)]
    return shlex.join(parts)


# ------------------------------------------------------------------------------ plots
def _complete(study: object) -> list:
    return [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]


def _can_rank(study: object) -> str | None:
    """Why parameter importances cannot be computed (None: they can)."""
    complete = _complete(study)
    if len(complete) < 2:
        return "parameter importances need at least 2 complete trials"
    varied = any(
        len({repr(t.params.get(name)) for t in complete}) > 1 for name in complete[0].params
    )
    return None if varied else "no parameter took different values in the complete trials"


def _none_complete(study: object) -> str | None:
    return None if _complete(study) else "no complete trial yet"


def _no_curves(study: object) -> str | None:
    finished = ("COMPLETE", "PRUNED")
    for trial in study.get_trials(deepcopy=False):
        if trial.intermediate_values and trial.state.name in finished:
            return None
    return "no finished trial yet"


#: (file name, title, when it cannot be drawn, the Optuna function's name, caption).
FIGURES: tuple[tuple[str, str, Callable[[object], str | None], str, str], ...] = (
    (
        "optimization_history",
        "Optimization history",
        _none_complete,
        "plot_optimization_history",
        "The objective of every complete trial in the order they finished, and the best so far.",
    ),
    (
        "param_importances",
        "Parameter importances",
        _can_rank,
        "plot_param_importances",
        "How much of the objective's variation each parameter explains (Optuna's PED-ANOVA "
        "over the complete trials); a guide, not a test, with few trials.",
    ),
    (
        "slice",
        "Slices",
        _none_complete,
        "plot_slice",
        "The objective against each parameter's value, one point per complete trial, darker "
        "for later trials.",
    ),
    (
        "intermediate_values",
        "Learning curves",
        _no_curves,
        "plot_intermediate_values",
        "The monitored metric after every epoch of every trial: what the pruner compares.",
    ),
)


def draw_plots(study: object) -> dict[str, bytes | str]:
    """Each figure of :data:`FIGURES` as PNG bytes, or the reason it is missing."""
    import matplotlib as mpl
    import numpy as np

    optuna = require_optuna()
    drawn: dict[str, bytes | str] = {}
    for name, _, problem, function, _ in FIGURES:
        reason = problem(study)
        if reason is not None:
            drawn[name] = reason
            continue
        try:
            # Optuna switches pyplot to its own style; the context puts the caller's back.
            # Its warnings about few or equal values say what the figure shows anyway.
            with mpl.rc_context(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = getattr(optuna.visualization.matplotlib, function)(study)
                figure = np.ravel(axes)[0].figure
                drawn[name] = figure_png(figure)
        except Exception as error:  # one plot Optuna cannot draw must not lose the results
            text = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            drawn[name] = f"could not be drawn: {text}"
    return drawn


def write_results(study: object, sweep: Sweep) -> SweepResult:
    """Writes the table, the best trial, the plots and ``sweep.html``; returns the result."""
    from cnnlab.sweep.report import write_sweep_report

    result = collect(study, sweep)
    folder = sweep.folder
    write_text(folder / TABLE, table_csv(result.rows, columns(sweep)))
    if result.best_trial is not None:
        write_json(
            folder / BEST,
            {
                "study": sweep.study,
                "trial": result.best_trial,
                "monitor": sweep.monitor,
                "direction": sweep.direction,
                "value": result.best_value,
                "params": result.best_params,
                "run": None if result.best_run is None else str(result.best_run),
                "command": result.command,
            },
        )
    drawn = draw_plots(study)
    for name, figure in drawn.items():
        if isinstance(figure, bytes):
            path = folder / PLOTS / f"{name}.png"
            path.parent.mkdir(exist_ok=True)
            write_bytes(path, figure)
            result.plots[name] = str(path)
    best_report = None
    if result.best_run is not None and runs.is_finished(result.best_run):
        best_report = result.best_run / "report.html"
        if sweep.report and not best_report.exists():
            from cnnlab.train.finish import write_run_report

            write_run_report(result.best_run)
    write_sweep_report(folder / "sweep.html", sweep, result, drawn, best_report)
    return result
