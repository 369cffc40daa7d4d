"""``cnnlab train``: its flags come from the fields of the run and training configurations."""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable

from cnnlab.errors import CnnlabError


def add_commands(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train a network (default: LeNet-5 on MNIST)")
    train.set_defaults(handler=_train)
    _train_options(train)


def add_train_flags(
    parser: argparse.ArgumentParser,
    skip: tuple[str, ...] = (),
    dest: Callable[[str], str] = str,
    title: Callable[[str], str] = str,
) -> dict[str, argparse._ArgumentGroup]:
    """The flags of :class:`cnnlab.RunConfig` and :class:`cnnlab.TrainConfig`, from their fields,
    in groups named by ``title``; ``skip`` leaves fields out and ``dest`` names their results
    (``cnnlab sweep`` passes them on to its trials). Returns the groups by their names.

    Every default is None so that a ``--config`` TOML file's values apply unless a flag is given.
    """
    from cnnlab.train.options import cli_options

    groups: dict[str, argparse._ArgumentGroup] = {}
    for option in cli_options():
        if option.dest in skip:
            continue
        group = groups.get(option.group) or groups.setdefault(
            option.group, parser.add_argument_group(title(option.group))
        )
        common = {"dest": dest(option.dest), "default": None, "help": option.help}
        if option.kind == "true":
            group.add_argument(option.flag, action="store_true", **common)
        elif option.kind == "false":
            group.add_argument(option.flag, action="store_false", **common)
        elif option.kind == "both":
            group.add_argument(option.flag, action=argparse.BooleanOptionalAction, **common)
        else:
            action = "append" if option.kind == "append" else "store"
            group.add_argument(
                option.flag, action=action, type=option.type, metavar=option.metavar, **common
            )
    return groups


def _train_options(parser: argparse.ArgumentParser) -> None:
    """Every training flag, and those of the run folder only ``cnnlab train`` has."""
    groups = add_train_flags(parser)
    run = groups["run folder"]
    run.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="finish an interrupted run, or with --epochs train a finished one further",
    )
    run.add_argument("--config", metavar="FILE", help="TOML file of options; flags override it")
    run.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train one model with N processes on this machine (data-parallel, as "
        "'torchrun --nproc-per-node N -m cnnlab train ...')",
    )


def _train(args: argparse.Namespace) -> int:
    from cnnlab.train import distributed
    from cnnlab.train.launch import check_nproc, launch, strip_nproc
    from cnnlab.train.resume import resume_training
    from cnnlab.train.run import RunConfig, check_run, load_toml, run_training

    argv, nproc = vars(args).pop("argv"), vars(args).pop("nproc")
    if nproc is not None:
        check_nproc(nproc, args.device or "auto")
        if distributed.launched():
            raise CnnlabError("--nproc: this process was started by torchrun already; leave it out")
    if args.resume:
        # A resumed run continues exactly as it was configured; other flags would be ignored.
        given = [
            key
            for key, value in vars(args).items()
            if value is not None and key not in ("command", "resume", "epochs", "quiet")
        ]
        if given:
            negative = {"cache": "--no-cache", "report": "--no-report"}
            flag = negative.get(given[0], "--" + given[0].replace("_", "-"))
            raise CnnlabError(
                f"--resume continues a run as it was configured; {flag} cannot be changed "
                "(only --epochs, --quiet and --nproc can be given)"
            )
        if nproc is not None and nproc > 1:
            return launch(strip_nproc(argv), nproc)
        try:
            resume_training(args.resume, epochs=args.epochs, quiet=bool(args.quiet))
        finally:
            distributed.shutdown()
        return 0
    options = load_toml(args.config) if args.config else {}
    flags = {
        k: v
        for k, v in vars(args).items()
        if k not in ("command", "config", "resume") and v is not None
    }
    config = RunConfig.from_options({**options, **flags}, recipe=True)
    if nproc is not None and nproc > 1:
        check_run(config)  # a typo is told once, before any process starts
        return launch(strip_nproc(argv), nproc)
    if distributed.is_main():  # once, by the first of several processes
        given = [key.replace("-", "_") for key in {**options, **flags}]
        for line in config.train.idle(given):
            warnings.warn(line, stacklevel=1)
    try:
        run_training(config)
    finally:
        distributed.shutdown()
    return 0
