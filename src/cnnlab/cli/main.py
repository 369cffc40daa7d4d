"""The ``cnnlab`` command's entry point: one parser of every command group, one error policy.

Every user error arrives here as a :class:`~cnnlab.errors.CnnlabError` and leaves as one line
on stderr with exit code 2; warnings are one line each; a bug shows one line and asks for
``CNNLAB_DEBUG=1`` to see its traceback.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import gc
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from typing import NoReturn

from cnnlab.cli import data, deploy, look, microscopy, serve, sweep, train, use
from cnnlab.errors import CnnlabError, describe_os_error
from cnnlab.version import __version__

#: How long a later process of a data-parallel run waits, after a user error, for the first
#: process to tell it: the launcher stops the rest when the first exits. One still running
#: after this met an error of its own (its share of the data, say) and tells it itself.
FIRST_PROCESS_TELLS_S = 10.0

#: The command groups, in the order ``cnnlab --help`` lists their commands.
GROUPS = (data, microscopy, train, sweep, use, look, deploy, serve)


class CommandParser(argparse.ArgumentParser):
    """argparse with cnnlab's error policy, for the command and every subcommand.

    A mistyped value or flag gets one line naming it and exit code 2, like every other user
    error, instead of a usage block. Flags are never abbreviated: argparse would otherwise read
    ``--channel`` as ``--channels`` where only the latter exists, and answer about the wrong one.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"cnnlab: error: {message}; see '{self.prog} --help'", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    # Subparsers are made with the parser's own class, so they share its error policy.
    parser = CommandParser(
        prog="cnnlab",
        description="Train, inspect and use small-image CNN classifiers (MNIST, microscopy crops).",
    )
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(commands)
    return parser


@functools.cache
def skip_final_collection() -> None:
    """Lets the process end without a last garbage collection over everything it imported.

    Python's exit collects the whole heap, and with PyTorch loaded that is hundreds of
    thousands of objects: measured, 0.43 s after ``import torch`` and 0.90 s after the main
    job (``bench/phases.py``, "exit"). Frozen objects are left out of that collection: those
    outside reference cycles are still freed as the modules are torn down, those in cycles are
    left to the operating system without their finalizers. cnnlab closes what it writes
    (``with`` and ``finally``), and the ``atexit`` handlers registered before this one still
    run after it. Registered once, and acting only at exit, so an in-process caller (a test,
    a notebook) keeps its collector as it was. Sweep workers (``python -m cnnlab.sweep``) do
    not pass through here and exit as Python does.
    """
    atexit.register(gc.freeze)


def main(argv: Sequence[str] | None = None) -> int:
    skip_final_collection()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse hands an optional list of paths nothing typed after an option
    # (`predict RUN --skip-bad FOLDER`): such leftovers belong to that list.
    if hasattr(args, "paths"):
        args.paths = [*args.paths, *(part for part in extra if not part.startswith("-"))]
        extra = [part for part in extra if part.startswith("-")]
    if extra:
        # Named by the command's own parser, so that the hint points at its own --help.
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        commands.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    # The command as typed, for commands that start copies of themselves (train --nproc).
    args.argv = list(sys.argv[1:] if argv is None else argv)
    warnings.showwarning = _one_line_warning
    # Libraries (tifffile, PIL, ...) log through Python's logging; without a handler its last
    # resort prints their lines to stderr. cnnlab turns what matters into its own one-line
    # errors and warnings, so the command shows no library log lines.
    logging.getLogger().addHandler(logging.NullHandler())
    try:
        # The handler is not an option: take it out so commands see only their own flags.
        return vars(args).pop("handler")(args)
    except CnnlabError as error:
        # The processes of a data-parallel run meet the same user errors: the first one tells.
        # A later one that exited at once could have the launcher stop the first before it
        # printed (a busy machine, a first process a moment behind): so it waits its turn.
        if os.environ.get("RANK", "0") != "0":
            time.sleep(FIRST_PROCESS_TELLS_S)
        print(f"cnnlab: error: {error}", file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:
        # The reader of stdout went away (`cnnlab models | head`): nothing to say. Python
        # would complain again when it flushes stdout at exit, so point that at /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:
        print(f"cnnlab: error: {describe_os_error(error)}", file=sys.stderr)
        return CnnlabError.exit_code
    except KeyboardInterrupt as interrupt:
        if os.environ.get("RANK", "0") != "0":
            return 130  # the first process of a data-parallel run says how to go on
        hint = f"; {interrupt}" if str(interrupt) else ""
        print(f"cnnlab: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as error:  # a bug, not a user error: keep it to one line unless debugging
        if os.environ.get("CNNLAB_DEBUG"):
            raise
        print(
            f"cnnlab: internal error: {type(error).__name__}: {error} "
            "(rerun with CNNLAB_DEBUG=1 for details and report it)",
            file=sys.stderr,
        )
        return 1


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # The processes of a data-parallel run read the same data: the first one tells.
    if os.environ.get("RANK", "0") == "0":
        print(f"cnnlab: warning: {message}", file=sys.stderr)
