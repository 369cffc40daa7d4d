"""The search space of a sweep: which ``cnnlab train`` options vary, and over what.

A parameter is named as its ``cnnlab train`` flag is typed (``lr``, ``batch-size``, ``wd``,
``model``; ``-`` or ``_``) and given in one of three forms, on the command line
(``--search NAME=...``, repeatable) or in a TOML file (``--space FILE``)::

    lr=log:1e-3:0.3          log-uniform between the two ends
    momentum=0.8:0.99        uniform; whole numbers for an integer option (epochs=2:6)
    batch-size=32,64,128     one of the listed values (true,false for a switch)
    augment=none|flip|rotate:90,-90    '|' separates choices that hold commas

The TOML file holds the same strings (``lr = "log:1e-3:0.3"``) or a table per parameter::

    [lr]
    log = [1e-3, 0.3]
    [momentum]
    range = [0.8, 0.99]
    [batch-size]
    choices = [32, 64, 128]

Options that decide which images a trial is scored on (data, split, seed, ...) and the
objective itself (``--monitor``) cannot vary: the trials would not be comparable. Every value a
parameter can take is checked as ``cnnlab train`` would check it before any trial runs.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.train import finetune
from cnnlab.train.config import TrainConfig
from cnnlab.train.options import CliOption, RunConfig, check_run_options, cli_options
from cnnlab.train.run import check_options

#: Options a sweep keeps fixed, and why (the reason completes "--search NAME: ...").
FIXED = {
    **dict.fromkeys(
        (
            "data",
            "pattern",
            "plane",
            "split",
            "valid_on",
            "seed",
            "skip_bad",
            "convert_bit_depth",
        ),
        "it decides which images the trials are scored on, so it must be the same for all; "
        "give it as a plain flag",
    ),
    "monitor": "it is the sweep's objective; give it as --monitor",
    **dict.fromkeys(
        ("out", "overwrite", "quiet", "report", "tensorboard", "cache", "device", "threads"),
        "it is not a hyperparameter",
    ),
}
#: ``cnnlab train`` flags that are not run options, and why a sweep cannot search them.
_TRAIN_ONLY = {
    "resume": "it continues one interrupted run, and a sweep resumes its own cut-short trials "
    "by itself",
    "config": "it names a file of options; give --config to the sweep for fixed ones",
    "nproc": "a sweep trains each trial in one process; --jobs runs trials side by side",
}
_SWITCHES = ("true", "false", "both")
_FORMS = "write NAME=log:LOW:HIGH, NAME=LOW:HIGH or NAME=A,B,C"


@dataclass(frozen=True)
class Param:
    """One searched option: ``name`` as its flag is typed, ``dest`` its config field.

    ``kind`` is ``log`` (log-uniform), ``range`` (uniform) or ``choices``; ``integer`` says
    whether a range draws whole numbers; ``listed`` marks a repeatable option (``augment``),
    whose chosen value becomes a one-item list and ``none`` an empty one.
    """

    name: str
    dest: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    integer: bool = False
    listed: bool = False

    def suggest(self, trial: object) -> object:
        """The value Optuna's ``trial`` draws for this parameter."""
        if self.kind == "choices":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    @property
    def log(self) -> bool:
        return self.kind == "log"

    def option(self, value: object) -> object:
        """A drawn value as the training option takes it."""
        if self.listed:
            return [] if value == "none" else [value]
        return value

    def spec(self) -> str:
        """The parameter written as ``--search`` takes it."""
        if self.kind == "choices":
            texts = [_text(choice) for choice in self.choices]
            separator = "|" if any("," in text for text in texts) else ","
            return f"{self.name}={separator.join(texts)}"
        prefix = "log:" if self.log else ""
        return f"{self.name}={prefix}{_text(self.low)}:{_text(self.high)}"


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def searchable() -> dict[str, CliOption]:
    """Every ``cnnlab train`` option by the names a search may give it (``-`` spelled)."""
    names = {}
    for option in cli_options():
        names[option.dest.replace("_", "-")] = option
        if option.kind != "false":  # --no-cache is searched as cache=true,false
            names[option.flag[2:]] = option
    return names


def flag_name(option: CliOption) -> str:
    """The name a parameter is shown by: the flag without dashes (``cache`` for --no-cache)."""
    return option.dest.replace("_", "-") if option.kind == "false" else option.flag[2:]


def parse_search(
    specs: Iterable[str], fixed: dict | None = None, where: str = "--search"
) -> list[Param]:
    """``--search`` specs as parameters, every value checked with the ``fixed`` options."""
    params = []
    for spec in specs:
        name, sep, value = str(spec).partition("=")
        blame = f"{where} {spec}"
        if not sep or not name.strip() or not value.strip():
            raise CnnlabError(f"{blame}: {_FORMS}")
        params.append(_param(name.strip(), value.strip(), blame))
    _check(params, fixed or {}, lambda p: f"{where} {p.spec()}")
    return params


def load_space(path: str | Path, fixed: dict | None = None) -> list[Param]:
    """The parameters of a ``--space`` TOML file (see the module's docstring for its form)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise CnnlabError(f"--space {path}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise CnnlabError(f"--space {path}: not a valid TOML file ({error})") from None
    params = []
    for name, entry in data.items():
        blame = f"{path}: [{name}]"
        if isinstance(entry, str):
            params.append(_param(name, entry, blame))
        elif isinstance(entry, dict):
            params.append(_table_param(name, entry, blame))
        else:
            raise CnnlabError(f'{blame}: give a string such as "log:1e-3:0.3" or a table')
    if not params:
        raise CnnlabError(f"--space {path}: names no parameter; see 'cnnlab sweep --help'")
    _check(params, fixed or {}, lambda p: f"{path}: [{p.name}]")
    return params


def _table_param(name: str, entry: dict, blame: str) -> Param:
    keys = set(entry)
    if len(keys) != 1 or not keys <= {"log", "range", "choices"}:
        raise CnnlabError(
            f"{blame}: give exactly one of log = [LOW, HIGH], range = [LOW, HIGH] "
            "or choices = [A, B, ...]"
        )
    ((form, values),) = entry.items()
    if not isinstance(values, list) or not values:
        raise CnnlabError(f"{blame}: {form} takes a list, e.g. {form} = [1, 2]")
    if form == "choices":
        return _param(name, "|".join(_text(v) for v in values), blame)
    if len(values) != 2:
        raise CnnlabError(f"{blame}: {form} takes two numbers, [LOW, HIGH]")
    prefix = "log:" if form == "log" else ""
    return _param(name, f"{prefix}{_text(values[0])}:{_text(values[1])}", blame)


def _param(name: str, value: str, blame: str) -> Param:
    option = searchable().get(name.replace("_", "-"))
    if option is None and name.replace("_", "-") in _TRAIN_ONLY:
        flag = name.replace("_", "-")
        raise CnnlabError(
            f"{blame}: --{flag} is a 'cnnlab train' option but cannot be searched: "
            f"{_TRAIN_ONLY[flag]}"
        )
    if option is None:
        raise CnnlabError(f"{blame}: {name} is not a 'cnnlab train' option; see its --help")
    if option.dest in FIXED:
        raise CnnlabError(f"{blame}: --{name} cannot be searched: {FIXED[option.dest]}")
    shown = flag_name(option)
    numeric = option.kind == "value" and option.type in (int, float)
    parts = value.split(":")
    if numeric and parts[0] == "log":
        parts = parts[1:]
        kind = "log"
    else:
        kind = "range"
    if numeric and len(parts) == 2 and all(_is_number(p) for p in parts):
        integer = option.type is int
        try:
            low, high = (int(p) if integer else float(p) for p in parts)
        except ValueError:
            raise CnnlabError(f"{blame}: --{shown} takes whole numbers, e.g. 2:6") from None
        if not low < high:
            raise CnnlabError(f"{blame}: the low end must be below the high end")
        if kind == "log" and low <= 0:
            raise CnnlabError(f"{blame}: a log range needs a positive low end")
        return Param(shown, option.dest, kind, low, high, integer=integer)
    if kind == "log":
        raise CnnlabError(f"{blame}: log:LOW:HIGH takes two numbers, e.g. log:1e-4:0.1")
    choices = _choices(option, value.split("|") if "|" in value else value.split(","), blame)
    if len(choices) == 1:
        raise CnnlabError(
            f"{blame}: one value is not a search; it is a fixed option: pass "
            f"{_fixed(option, choices[0])}"
        )
    return Param(shown, option.dest, "choices", choices=choices, listed=option.kind == "append")


def _fixed(option: CliOption, value: object) -> str:
    """The flag that gives every trial ``value`` (``--lr 0.1``, ``--no-cache``)."""
    if option.kind == "true":
        return option.flag if value else f"nothing (leave {option.flag} out)"
    if option.kind == "false":
        return f"nothing (leave {option.flag} out)" if value else option.flag
    if option.kind == "both":
        return option.flag if value else f"--no-{option.flag[2:]}"
    return f"{option.flag} {_text(value)}"


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _choices(option: CliOption, texts: Sequence[str], blame: str) -> tuple:
    texts = [text.strip() for text in texts]
    if not all(texts):
        raise CnnlabError(f"{blame}: an empty choice; {_FORMS}")
    if len(set(texts)) != len(texts):
        raise CnnlabError(f"{blame}: a choice is listed twice")
    if option.kind in _SWITCHES:
        words = {"true": True, "false": False}
        if not set(texts) <= set(words):
            raise CnnlabError(f"{blame}: --{flag_name(option)} is a switch; choose true,false")
        return tuple(words[text] for text in texts)
    if option.type in (int, float):
        try:
            return tuple(option.type(text) for text in texts)
        except ValueError:
            kind = "whole numbers" if option.type is int else "numbers"
            raise CnnlabError(f"{blame}: --{flag_name(option)} takes {kind}") from None
    return tuple(texts)


def _check(params: Sequence[Param], fixed: dict, blame: Callable[[Param], str]) -> None:
    """Every value each parameter can take makes a valid run with the fixed options.

    The ends of a range stand for it: every check of a number is a bound or a type. The model
    and data checks build networks, so each distinct run-level setting is checked once.
    """
    checked: set[str] = set()
    for param in params:
        values = param.choices if param.kind == "choices" else (param.low, param.high)
        for value in values:
            options = {**fixed, param.dest: param.option(value), "out": None}
            try:
                config = RunConfig.from_options(options)
                check_run_options(config)
                config, _ = finetune.resolve(config)
                key = repr(replace(config, train=TrainConfig(device=config.train.device)))
                if key not in checked:
                    check_options(config)
                    checked.add(key)
            except CnnlabError as error:
                raise CnnlabError(f"{blame(param)}: {_text(value)}: {error}") from None


def check_unique(params: Sequence[Param]) -> None:
    """One parameter per option, across --search and --space."""
    seen: dict[str, str] = {}
    for param in params:
        if param.dest in seen:
            raise CnnlabError(
                f"--search {param.spec()}: {param.name} is searched twice "
                f"(also {seen[param.dest]}); give each option once"
            )
        seen[param.dest] = param.spec()
