"""How a config field is typed on the command line: its help, its group, its spelling.

Every field of :class:`~cnnlab.train.config.TrainConfig` and
:class:`~cnnlab.train.options.RunConfig` carries a :class:`Flag` in its metadata, and
:func:`cnnlab.train.options.cli_options` turns the fields into the ``cnnlab train`` flags: the
names, types, choices, defaults and help come from one place, the typed config.
"""

from __future__ import annotations

from dataclasses import dataclass

DATA = "data"
TRAINING = "model and training"
RUN = "run folder"


@dataclass(frozen=True)
class Flag:
    """``name`` is the flag when it is not the field's (``--wd``); ``negative`` a flag that
    sets a true-by-default field false (``--no-cache``); ``both`` gives ``--x`` and ``--no-x``;
    ``repeat`` collects every use into a list; ``choices`` are listed in the help."""

    help: str
    group: str
    name: str | None = None
    negative: str | None = None
    both: bool = False
    repeat: bool = False
    choices: tuple[str, ...] | None = None
    metavar: str | None = None


def flag(help: str, group: str, **details: object) -> dict:
    """Field metadata: ``field(default=..., metadata=flag("...", TRAINING))``."""
    return {"flag": Flag(help, group, **details)}
