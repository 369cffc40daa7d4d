"""The ``cnnlab`` command: parses arguments and calls the public API, nothing more.

Every user error arrives here as a :class:`~cnnlab.errors.CnnlabError` and leaves as one line
on stderr with exit code 2; warnings are one line each; a bug shows one line and asks for
``CNNLAB_DEBUG=1`` to see its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from cnnlab.errors import CnnlabError, describe_os_error
from cnnlab.version import __version__


def _train_options(parser: argparse.ArgumentParser) -> None:
    """The flags of :class:`cnnlab.RunConfig` and :class:`cnnlab.TrainConfig`, from their fields.

    Every default is None so that a ``--config`` TOML file's values apply unless a flag is given.
    """
    from cnnlab.train.options import cli_options

    groups: dict[str, argparse._ArgumentGroup] = {}
    for option in cli_options():
        group = groups.get(option.group) or groups.setdefault(
            option.group, parser.add_argument_group(option.group)
        )
        common = {"dest": option.dest, "default": None, "help": option.help}
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
    run = groups["run folder"]
    run.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="finish an interrupted run, or with --epochs train a finished one further",
    )
    run.add_argument("--config", metavar="FILE", help="TOML file of options; flags override it")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnlab",
        description="Train, inspect and use small-image CNN classifiers (MNIST, microscopy crops).",
    )
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="look at data").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    summary = data.add_parser("summary", help="class counts, sizes, channels and bit depth")
    summary.add_argument(
        "specs", nargs="+", metavar="SPEC", help="mnist or folders of class folders (merged)"
    )
    summary.add_argument("--pattern", help="glob selecting image files, e.g. '*.tif'")
    summary.add_argument("--channels", type=int, choices=(1, 3))
    summary.add_argument("--skip-bad", action="store_true")
    summary.add_argument("--json", action="store_true", help="print JSON instead of a table")

    samples = data.add_parser("samples", help="a picture of sample images per class")
    samples.add_argument(
        "specs", nargs="+", metavar="SPEC", help="mnist or folders of class folders"
    )
    samples.add_argument("--pattern", help="glob selecting image files, e.g. '*.tif'")
    samples.add_argument("--per-class", type=int, default=8)
    samples.add_argument("--seed", type=int, default=0)
    samples.add_argument("--out", default="samples.png", help="PNG to write [samples.png]")
    samples.add_argument(
        "--histogram",
        action="store_true",
        help="draw each class's histogram of mean image intensity instead of sample images",
    )
    samples.add_argument("--bins", type=int, default=30, help="histogram bins [30]")

    synth = commands.add_parser("synth", help="make synthetic data").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    bacteria = synth.add_parser(
        "bacteria", help="16-bit phase-contrast crops in 1cell/2cell/groups/rien"
    )
    bacteria.add_argument("--out", required=True, help="folder to create")
    bacteria.add_argument("--per-class", type=int, default=100)
    bacteria.add_argument("--seed", type=int, default=0)
    bacteria.add_argument("--min-size", type=int, default=20)
    bacteria.add_argument("--max-size", type=int, default=80)
    bacteria.add_argument("--overwrite", action="store_true")

    train = commands.add_parser("train", help="train a network (default: LeNet-5 on MNIST)")
    _train_options(train)

    evaluate = commands.add_parser("evaluate", help="metrics of a trained model on data")
    evaluate.add_argument("model", metavar="RUN_OR_MODEL")
    evaluate.add_argument(
        "--data", action="append", metavar="SPEC", help="mnist or folders [the run's own subsets]"
    )
    evaluate.add_argument("--pattern")
    evaluate.add_argument("--json", action="store_true", help="print JSON")

    predict = commands.add_parser("predict", help="classify image files or folders")
    predict.add_argument("model", metavar="MODEL")
    predict.add_argument("paths", nargs="+", metavar="PATH")
    predict.add_argument("--pattern", help="glob selecting files inside folders")
    predict.add_argument(
        "--out", help="CSV file to write (refuses to overwrite without --overwrite)"
    )
    predict.add_argument("--overwrite", action="store_true")

    report = commands.add_parser("report", help="write RUN_DIR/report.html")
    report.add_argument("run", metavar="RUN_DIR")
    report.add_argument("--out", help="HTML file to write [RUN_DIR/report.html]")
    report.add_argument("--image", type=int, help="index of the test image to look inside with")

    run_plots = commands.add_parser("plots", help="a run's pictures as PNG files")
    run_plots.add_argument("run", metavar="RUN_DIR")
    run_plots.add_argument("--out", help="folder for the PNG files [RUN_DIR/plots]")

    look = commands.add_parser("inspect", help="activations, filters and saliency of one image")
    look.add_argument("model", metavar="MODEL")
    look.add_argument("image", metavar="IMAGE")
    look.add_argument("--out", default="inspect", help="folder for the pictures [inspect]")

    kernels = commands.add_parser("kernels", help="an image filtered by convolution kernels")
    kernels.add_argument("image", metavar="IMAGE")
    kernels.add_argument(
        "--kernel", action="append", help="a named kernel (repeatable) [the course's set]"
    )
    kernels.add_argument(
        "--matrix", action="append", help="a kernel typed as '1 0 -1; 0 0 0; -1 0 1'"
    )
    kernels.add_argument("--padding", default="valid", help="valid, same or a number of pixels")
    kernels.add_argument("--stride", type=int, default=1)
    kernels.add_argument("--pool", help="pooling after the convolution: max:2 or avg:2")
    kernels.add_argument("--out", default="kernels.png", help="PNG to write [kernels.png]")

    commands.add_parser("models", help="list the networks with their parameter counts")

    model_summary = commands.add_parser("summary", help="layer-by-layer summary of a network")
    model_summary.add_argument("model", metavar="MODEL_OR_NAME")
    model_summary.add_argument(
        "--size", default="28", help="input size H or HxW for a network name [28]"
    )
    model_summary.add_argument("--channels", type=int, default=1)
    model_summary.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the network, e.g. kernel=3 (repeatable)",
    )
    model_summary.add_argument("--classes", type=int, default=10)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _one_line_warning
    # Libraries (tifffile, PIL, ...) log through Python's logging; without a handler its last
    # resort prints their lines to stderr. cnnlab turns what matters into its own one-line
    # errors and warnings, so the command shows no library log lines.
    logging.getLogger().addHandler(logging.NullHandler())
    try:
        return COMMANDS[args.command](args)
    except CnnlabError as error:
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
    print(f"cnnlab: warning: {message}", file=sys.stderr)


def _data(args: argparse.Namespace) -> int:
    from cnnlab.data.sources import describe_sources, format_description, load_sources

    if args.action == "samples":
        from cnnlab.inspect.plots import plot_intensity_histograms, plot_samples

        if args.per_class < 1:
            raise CnnlabError(f"--per-class {args.per_class}: give 1 or more images per class")
        if args.seed < 0:
            raise CnnlabError(f"--seed {args.seed}: give 0 or more")
        if args.bins < 1:
            raise CnnlabError(f"--bins {args.bins}: give 1 or more")

        first = next(iter(load_sources(args.specs, pattern=args.pattern).values()))
        if args.histogram:
            print(plot_intensity_histograms(first, args.out, bins=args.bins))
        else:
            print(plot_samples(first, args.out, per_class=args.per_class, seed=args.seed))
        return 0
    datasets = load_sources(
        args.specs, pattern=args.pattern, channels=args.channels, skip_bad=args.skip_bad
    )
    if args.json:
        print(json.dumps(describe_sources(datasets), indent=2))
    else:
        print(format_description(datasets))
    return 0


def _synth(args: argparse.Namespace) -> int:
    from cnnlab.data.synth import synth_bacteria

    counts = synth_bacteria(
        args.out,
        per_class=args.per_class,
        seed=args.seed,
        min_size=args.min_size,
        max_size=args.max_size,
        overwrite=args.overwrite,
    )
    total = sum(counts.values())
    detail = ", ".join(f"{name} {count}" for name, count in counts.items())
    print(f"wrote {total} 16-bit TIFF crops to {args.out} ({detail})")
    return 0


def _train(args: argparse.Namespace) -> int:
    from cnnlab.train.run import RunConfig, load_toml, resume_training, run_training

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
                "(only --epochs and --quiet can be given)"
            )
        resume_training(args.resume, epochs=args.epochs, quiet=bool(args.quiet))
        return 0
    options = load_toml(args.config) if args.config else {}
    flags = {
        k: v
        for k, v in vars(args).items()
        if k not in ("command", "config", "resume") and v is not None
    }
    run_training(RunConfig.from_options({**options, **flags}))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from cnnlab.evaluate import format_metrics
    from cnnlab.export.evaluation import evaluate_saved

    results = evaluate_saved(args.model, data=args.data, pattern=args.pattern)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(
            "\n\n".join(
                format_metrics(m, title=f"{name} ({m['n']} images)") for name, m in results.items()
            )
        )
    return 0


def _predict(args: argparse.Namespace) -> int:
    from cnnlab.export import load, predict

    if args.out:
        out = Path(args.out)
        if out.is_dir():
            raise CnnlabError(f"--out {out}: is a folder; give a file name such as preds.csv")
        if out.parent.is_file():
            raise CnnlabError(f"--out {out}: {out.parent} is a file, not a folder")
        if not out.parent.is_dir():
            raise CnnlabError(
                f"--out {out}: the folder {out.parent} does not exist; create it first"
            )
        if out.is_file() and not args.overwrite:  # devices and pipes are streams
            raise CnnlabError(f"--out {out}: exists; choose another file or pass --overwrite")
    table = predict(load(args.model), args.paths, pattern=args.pattern)
    if args.out:
        table.to_csv(args.out)
        print(f"wrote {len(table)} predictions to {args.out}")
    else:
        table.to_csv(sys.stdout)
    return 0


def _report(args: argparse.Namespace) -> int:
    from cnnlab.inspect.report import write_report

    print(write_report(args.run, out=args.out, image_index=args.image))
    return 0


def _plots(args: argparse.Namespace) -> int:
    from cnnlab.inspect.run_plots import plot_run

    for path in plot_run(args.run, args.out):
        print(path)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from cnnlab.export import load
    from cnnlab.inspect.look import inspect_image

    for path in inspect_image(load(args.model), args.image, args.out):
        print(path)
    return 0


def _kernels(args: argparse.Namespace) -> int:
    from cnnlab.inspect.kernels import COURSE_KERNELS, plot_kernel_demo

    chosen = [*(args.kernel or []), *(args.matrix or [])] or list(COURSE_KERNELS)
    padding = int(args.padding) if args.padding.isdigit() else args.padding
    if padding not in ("valid", "same") and not isinstance(padding, int):
        raise CnnlabError(f"--padding {args.padding!r}: use valid, same or a number of pixels")
    pool = None
    if args.pool:
        kind, _, size = args.pool.partition(":")
        if kind not in ("max", "avg") or not (size or "2").isdigit():
            raise CnnlabError(f"--pool {args.pool!r}: write it as max:2 or avg:2")
        pool = (kind, int(size or 2))
    path = plot_kernel_demo(
        args.image, args.out, chosen, padding=padding, stride=args.stride, pool=pool
    )
    print(path)
    return 0


def _models(args: argparse.Namespace) -> int:
    from cnnlab.models import create_model, list_models, model_info
    from cnnlab.models.summary import count_parameters

    print(f"{'name':<14} {'params (1x28x28, 10 classes)':>28}  description")
    for name in list_models():
        params = count_parameters(
            create_model(name, in_chans=1, num_classes=10, input_size=(28, 28))
        )
        info = model_info(name)
        print(f"{name:<14} {params:>28,}  {info['description']}")
        if info["kwargs"]:
            print(f"{'':<14} {'':>28}  --model-option: {_option_text(info['kwargs'])}")
    return 0


def _option_text(options: dict) -> str:
    """``padding=auto, hidden=120,84``: options as they are typed."""

    def text(value: object) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, list | tuple):
            return ",".join(str(v) for v in value)
        return str(value)

    return ", ".join(f"{key}={text(value)}" for key, value in options.items())


def _summary(args: argparse.Namespace) -> int:
    from cnnlab.export.saved import load
    from cnnlab.models import create_model, list_models, parse_model_options
    from cnnlab.models.summary import model_summary
    from cnnlab.train.options import parse_size

    if args.model in list_models():
        size = parse_size(args.size)
        options = parse_model_options(args.model_option, args.model)
        try:
            model = create_model(
                args.model,
                in_chans=args.channels,
                num_classes=args.classes,
                input_size=size,
                **options,
            )
        except CnnlabError as error:
            flags = f"--size {args.size} --channels {args.channels} --classes {args.classes}"
            raise CnnlabError(f"{flags}: {error}") from None
    else:
        model = load(args.model)
    print(model_summary(model))
    return 0


COMMANDS = {
    "data": _data,
    "synth": _synth,
    "train": _train,
    "evaluate": _evaluate,
    "predict": _predict,
    "report": _report,
    "plots": _plots,
    "inspect": _inspect,
    "kernels": _kernels,
    "models": _models,
    "summary": _summary,
}


if __name__ == "__main__":
    sys.exit(main())
