"""``cnnlab sweep``: hyperparameter sweeps with Optuna over ``cnnlab train`` runs.

Every ``cnnlab train`` flag that is not about the run folder passes through to every trial; the
sweep adds its own: where it lives, what it searches, how many trials, and who runs them.
"""

from __future__ import annotations

import argparse

from cnnlab.errors import CnnlabError

DESCRIPTION = """\
Train many runs with values drawn by Optuna (TPE) and keep the best by the validation metric
--monitor (valid_loss or valid_accuracy; never the test set). Each trial is an ordinary run
folder in SWEEP_DIR/trials/; the median pruner stops hopeless trials. The study is kept in
SWEEP_DIR/sweep.db (or --storage), so the same command again continues an interrupted sweep up
to --trials finished trials. Results: trials.csv, best.json, plots/*.png and sweep.html.

A search parameter is a 'cnnlab train' option (lr, batch-size, wd, model, optimizer, epochs,
augment, ...) with a range or choices:
  --search lr=log:1e-3:0.3          log-uniform
  --search momentum=0.8:0.99        uniform (whole numbers for integer options: epochs=2:6)
  --search batch-size=32,64,128     one of these (true,false for a switch)
  --search 'augment=none|flip|rotate:90,-90'   '|' separates choices holding commas
A --space TOML file holds the same strings (lr = "log:1e-3:0.3") or a table per parameter:
[lr] with log = [1e-3, 0.3], [momentum] with range = [0.8, 0.99], [model] with
choices = ["lenet5", "lenet5_bn"]. Every other flag below is given to every trial.
"""
#: Flags of ``cnnlab train`` that the sweep sets for its trials or replaces with its own.
_NOT_PASSED = ("out", "overwrite", "quiet", "report")


def add_commands(commands: argparse._SubParsersAction) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="search hyperparameters with Optuna: many training runs, the best kept",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep.set_defaults(handler=_sweep)
    own = sweep.add_argument_group("sweep")
    own.add_argument("--out", metavar="SWEEP_DIR", help="the sweep folder (required)")
    own.add_argument(
        "--search",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="a parameter to search (repeatable): log:LOW:HIGH, LOW:HIGH or A,B,C (one value is a "
        "fixed option: give its flag)",
    )
    own.add_argument("--space", metavar="FILE", help="TOML file of parameters to search")
    own.add_argument(
        "--trials",
        type=int,
        default=20,
        metavar="N",
        help="finished (complete or pruned) trials [20]",
    )
    own.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="worker processes on this machine, sharing its cores [1]",
    )
    own.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna database, e.g. postgresql://user:pass@host/db to share the study between "
        "machines [sqlite in SWEEP_DIR]",
    )
    own.add_argument("--study", metavar="NAME", help="study name [the folder's name]")
    own.add_argument(
        "--pruner", default="median", metavar="{median,none}", help="stop hopeless trials [median]"
    )
    own.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        help="no HTML report of the best trial's run (sweep.html is always written)",
    )
    own.add_argument("--quiet", action="store_true", help="print only the final line")
    own.add_argument("--config", metavar="FILE", help="TOML file of training options")
    _passed_options(sweep)


def _passed_options(parser: argparse.ArgumentParser) -> None:
    """The ``cnnlab train`` flags every trial shares, from the same fields as train's own.

    Their dest is prefixed, so that they never mix with the sweep's own (``--out``).
    """
    from cnnlab.cli.train import add_train_flags

    add_train_flags(
        parser,
        skip=_NOT_PASSED,
        dest=lambda name: f"train_{name}",
        title=lambda group: f"every trial: {group}",
    )


def _sweep(args: argparse.Namespace) -> int:
    from cnnlab.sweep.study import require_optuna

    require_optuna()  # the one-line hint before anything else
    from cnnlab.sweep import run_sweep
    from cnnlab.train.options import load_toml

    if not args.out:
        raise CnnlabError("cnnlab sweep: give the sweep folder with --out SWEEP_DIR")
    options = load_toml(args.config) if args.config else {}
    for key in _NOT_PASSED:
        if key in {k.replace("-", "_") for k in options}:
            raise CnnlabError(
                f"{args.config}: {key} is the sweep's own setting; leave it out of the file"
            )
    prefix = "train_"
    flags = {
        key[len(prefix) :]: value
        for key, value in vars(args).items()
        if key.startswith(prefix) and value is not None
    }
    run_sweep(
        args.out,
        args.search,
        args.trials,
        space=args.space,
        storage=args.storage,
        study=args.study,
        jobs=args.jobs,
        pruner=args.pruner,
        quiet=args.quiet,
        report=args.report,
        **{**options, **flags},
    )
    return 0
