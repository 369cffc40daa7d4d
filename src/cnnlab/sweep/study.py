"""A sweep's settings, its folder, and the Optuna study they live in.

A sweep folder holds ``sweep.json`` (the settings, written when the sweep starts), by default
the study's SQLite file ``sweep.db``, one run folder per trial under ``trials/`` and, once the
workers are done, the results. The study itself records the settings it was started with, so
that a second command (after a kill, or on another machine sharing a PostgreSQL study) can
only continue it with the same ones.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.files import read_json, to_json, write_text
from cnnlab.sweep.space import Param
from cnnlab.train.options import RunConfig, cli_options
from cnnlab.version import __version__

SETTINGS = "sweep.json"
DATABASE = "sweep.db"
TRIALS = "trials"
PRUNERS = ("median", "none")
#: The options a continuation may change: where things are, and how the machine is used.
_MAY_DIFFER = ("data", "threads", "out", "quiet", "report", "overwrite")
_MISSING_OPTUNA = "cnnlab sweep needs Optuna: pip install 'cnnlab[sweep]'"


def require_optuna():
    """The ``optuna`` module, made quiet, or the one-line hint to install it."""
    try:
        import optuna
    except ImportError:
        raise CnnlabError(_MISSING_OPTUNA) from None
    # cnnlab prints one line per trial; Optuna's own log lines and its warnings that the
    # plots are "experimental" would only drown them.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()
    root = logging.getLogger("optuna")  # without a handler, Python's last resort prints
    if not any(isinstance(h, logging.NullHandler) for h in root.handlers):
        root.addHandler(logging.NullHandler())
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


@dataclass
class Sweep:
    """Everything a worker needs: the fixed training options, the space and the study.

    ``options`` are :meth:`RunConfig.from_options` names (``threads`` included: the trials of
    ``jobs`` workers share the cores); ``trials`` counts the finished trials (complete or
    pruned) the study should hold when the sweep is done.
    """

    folder: Path
    options: dict
    params: list[Param]
    trials: int
    storage: str
    study: str
    pruner: str = "median"
    jobs: int = 1
    quiet: bool = False
    report: bool = True

    @property
    def monitor(self) -> str:
        return self.options.get("monitor") or "valid_loss"

    @property
    def direction(self) -> str:
        return "maximize" if self.monitor.endswith("accuracy") else "minimize"

    @property
    def seed(self) -> int:
        return int(self.options.get("seed") or 0)

    def trial_folder(self, number: int) -> Path:
        return self.folder / TRIALS / f"{number:04d}"

    def can_continue(self, trial: object) -> bool:
        """Whether another trial can continue the cut-short ``trial``: it holds all its values
        (and perhaps started its run). One cut short before it drew them holds nothing to
        continue: a new trial, with values of its own, takes its place."""
        values = values_of(trial)
        return all(param.name in values for param in self.params)

    def settings(self) -> dict:
        """What every command working on this study must agree on: the trials' options as a
        run records them (defaults filled in, so ``--seed 0`` equals no ``--seed``) and the
        space."""
        described = RunConfig.from_options(self.options).to_dict()
        options = {**described.pop("train"), **described}
        for key in _MAY_DIFFER:
            options.pop(key, None)
        # The data is compared by folder names: machines sharing a study keep it in
        # different places.
        options["data"] = [Path(d).name for d in described["data"]]
        return json.loads(to_json({"options": options, "space": [p.spec() for p in self.params]}))

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["folder"] = str(self.folder)
        data["cnnlab"] = __version__
        return data

    @classmethod
    def from_json(cls, data: dict) -> Sweep:
        data = {k: v for k, v in data.items() if k != "cnnlab"}
        data["folder"] = Path(data["folder"])
        data["params"] = [Param(**{**p, "choices": tuple(p["choices"])}) for p in data["params"]]
        return cls(**data)


def values_of(trial: object) -> dict:
    """A frozen trial's values: those it drew, or those queued for it (a trial that continues
    another holds them before it draws them)."""
    return {**trial.system_attrs.get("fixed_params", {}), **trial.params}


def default_storage(folder: Path) -> str:
    return f"sqlite:///{(folder / DATABASE).absolute()}"


def shown_url(url: str) -> str:
    """A storage URL as it may be printed and saved: without its password."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can read: it is refused when opened
        return url


def prepare_folder(sweep: Sweep) -> None:
    """Creates the sweep folder, or checks that an existing one holds this sweep.

    A folder of other files is never used; a sweep folder is continued only with its own study
    and storage, which ``sweep.json`` names.
    """
    folder = sweep.folder
    if folder.exists() and not folder.is_dir():
        raise CnnlabError(f"--out {folder}: exists and is not a folder; choose another")
    record = folder / SETTINGS
    if record.is_file():
        saved = read_json(record, "sweep settings")
        for key, flag, now in (
            ("study", "--study", sweep.study),
            ("storage", "--storage", shown_url(sweep.storage)),
        ):
            if saved.get(key) != now:
                raise CnnlabError(
                    f"--out {folder}: holds the sweep of {flag} {saved.get(key)}, not {now}; "
                    f"give {flag} {saved.get(key)} to continue it, or choose another --out"
                )
    elif folder.is_dir() and any(
        child.name not in (DATABASE, TRIALS) for child in folder.iterdir()
    ):
        raise CnnlabError(
            f"--out {folder}: the folder is not empty and holds no cnnlab sweep; choose another"
        )
    folder.mkdir(parents=True, exist_ok=True)


def record_settings(sweep: Sweep) -> None:
    """``sweep.json``: the settings of the last command that worked on the sweep (no
    password: the storage URL is saved as printed)."""
    saved = sweep.to_json()
    saved["storage"] = shown_url(sweep.storage)
    write_text(sweep.folder / SETTINGS, to_json(saved))


def open_storage(url: str):
    """Optuna's database storage for ``url``, or one line saying why it cannot be reached."""
    optuna = require_optuna()
    kwargs = {}
    if url.startswith("sqlite"):
        # Several workers write to one SQLite file: wait for its lock rather than fail.
        kwargs = {"engine_kwargs": {"connect_args": {"timeout": 120}}}
    try:
        return optuna.storages.RDBStorage(url, **kwargs)
    except ImportError as error:
        raise CnnlabError(
            f"--storage {shown_url(url)}: its database driver is missing ({error}); "
            "pip install 'cnnlab[sweep]'"
        ) from None
    except Exception as error:  # SQLAlchemy's errors for bad URLs, refused connections, ...
        reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise CnnlabError(f"--storage {shown_url(url)}: cannot open it ({reason})") from None


def open_study(sweep: Sweep, sampler: object = None, pruner: object = None):
    """The sweep's study, created on first use; refused if it was started otherwise.

    ``pruner`` is an Optuna pruner object; by default the one ``sweep.pruner`` names.
    """
    optuna = require_optuna()
    storage = open_storage(sweep.storage)
    study = optuna.create_study(
        storage=storage,
        study_name=sweep.study,
        direction=sweep.direction,
        sampler=sampler,
        pruner=pruner if pruner is not None else make_pruner(sweep.pruner),
        load_if_exists=True,
    )
    settings = sweep.settings()
    saved = study.user_attrs.get("cnnlab")
    if saved is None:
        study.set_user_attr("cnnlab", settings)
    elif saved != settings:
        raise CnnlabError(
            f"--study {sweep.study} in {shown_url(sweep.storage)}: started with other settings "
            f"({_difference(saved, settings)}); continue it with the same options, or choose "
            "another --study"
        )
    if study.direction.name.lower() != sweep.direction:
        raise CnnlabError(
            f"--study {sweep.study}: it is {study.direction.name.lower()}d, but --monitor "
            f"{sweep.monitor} is to {sweep.direction}; choose another --study"
        )
    return study


def _difference(saved: dict, now: dict) -> str:
    if saved.get("space") != now.get("space"):
        return f"--search {' '.join(saved.get('space') or [])}"
    before, after = saved.get("options") or {}, now.get("options") or {}
    flags = {option.dest: option.flag for option in cli_options()}
    for key in sorted(before.keys() | after.keys()):
        if before.get(key) != after.get(key):
            flag = flags.get(key, f"--{key.replace('_', '-')}")
            return f"{flag} {before.get(key)!r}, now {after.get(key)!r}"
    return "another version of cnnlab"


def make_pruner(name: str):
    """``median``: stop a trial whose epoch is worse than the median of earlier trials at the
    same epoch (after 5 finished trials, from epoch 2 on); ``none`` never stops one."""
    optuna = require_optuna()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise CnnlabError(f"--pruner {name!r}: choose one of {', '.join(PRUNERS)}")


def make_sampler(seed: int, started: int, worker: int):
    """TPE, seeded by the sweep's seed, the trials already started and the worker.

    The same command gives the same trials; a continuation, or a second worker, draws its
    own random start instead of repeating the first trials' values.
    """
    optuna = require_optuna()
    import numpy as np

    state = np.random.SeedSequence([seed, started, worker]).generate_state(1)[0]
    return optuna.samplers.TPESampler(seed=int(state), constant_liar=True)


def worker_threads(jobs: int) -> int:
    """The CPU threads of each of ``jobs`` workers: the cores shared out, at least one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // jobs)
