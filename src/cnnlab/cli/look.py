"""``cnnlab report``, ``plots``, ``inspect``, ``kernels``, ``models`` and ``summary``: look at
runs, images and networks."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.cli.common import check_out_file
from cnnlab.errors import CnnlabError

#: ``cnnlab.inspect.kernels.KERNELS``' names, for ``--help`` without importing matplotlib (a
#: test keeps the two lists equal).
KERNEL_NAMES = (
    "identity",
    "edge1",
    "edge2",
    "edge3",
    "sobel_x",
    "sobel_y",
    "sharpen",
    "box_blur",
    "gaussian_blur",
    "gaussian_blur5",
    "vertical_edge",
    "vertical_line",
    "diagonal_line",
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="write RUN_DIR/report.html")
    report.set_defaults(handler=_report)
    report.add_argument("run", metavar="RUN_DIR")
    report.add_argument(
        "--out", help="HTML file to write [RUN_DIR/report.html, which is always rewritten]"
    )
    report.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    report.add_argument(
        "--image",
        type=int,
        help="index of the test image (else validation image) followed through the network [0]",
    )

    run_plots = commands.add_parser("plots", help="a run's pictures as PNG files")
    run_plots.set_defaults(handler=_plots)
    run_plots.add_argument("run", metavar="RUN_DIR")
    run_plots.add_argument(
        "--out", help="folder for the PNG files [RUN_DIR/plots, which is always redrawn]"
    )
    run_plots.add_argument(
        "--overwrite", action="store_true", help="replace pictures of the same names in --out"
    )

    look = commands.add_parser("inspect", help="activations, filters and saliency of one image")
    look.set_defaults(handler=_inspect)
    look.add_argument("model", metavar="MODEL")
    look.add_argument("image", metavar="IMAGE")
    look.add_argument("--out", help="folder for the pictures [inspect, redrawn if there]")
    look.add_argument(
        "--overwrite", action="store_true", help="replace pictures of the same names in --out"
    )

    kernels = commands.add_parser("kernels", help="an image filtered by convolution kernels")
    kernels.set_defaults(handler=_kernels)
    kernels.add_argument("image", metavar="IMAGE", help="the image to filter")
    kernels.add_argument(
        "--kernel",
        action="append",
        help="a named kernel (repeatable): " + ", ".join(KERNEL_NAMES) + " [identity, edge1, "
        "edge2, edge3, sharpen and gaussian_blur, the course's]",
    )
    kernels.add_argument(
        "--matrix", action="append", help="a kernel typed as '1 0 -1; 0 0 0; -1 0 1'"
    )
    kernels.add_argument("--padding", default="valid", help="valid, same or a number of pixels")
    kernels.add_argument("--stride", type=int, default=1, help="step between positions [1]")
    kernels.add_argument("--pool", help="pooling after the convolution: max:2 or avg:2")
    kernels.add_argument("--out", help="PNG to write [kernels.png, replaced if there]")
    kernels.add_argument("--overwrite", action="store_true", help="replace an existing --out")

    models = commands.add_parser("models", help="list the networks with their parameter counts")
    models.set_defaults(handler=_models)

    model_summary = commands.add_parser("summary", help="layer-by-layer summary of a network")
    model_summary.set_defaults(handler=_summary)
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


def _report(args: argparse.Namespace) -> int:
    from cnnlab.inspect.report import write_report

    own = Path(args.run) / "report.html"  # the run's own report is the run's to rewrite
    if args.out is not None and Path(args.out).resolve() != own.resolve():
        check_out_file("--out", args.out, args.overwrite, "report.html")
    print(write_report(args.run, out=args.out, image_index=args.image))
    return 0


def _plots(args: argparse.Namespace) -> int:
    from cnnlab.inspect.run_plots import plot_run

    for path in plot_run(args.run, args.out, overwrite=args.overwrite):
        print(path)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from cnnlab.export import load
    from cnnlab.inspect.look import inspect_image

    # Pictures in a folder named with --out are replaced only with --overwrite.
    out, overwrite = args.out or "inspect", args.overwrite or args.out is None
    for path in inspect_image(load(args.model), args.image, out, overwrite):
        print(path)
    return 0


def _kernels(args: argparse.Namespace) -> int:
    from cnnlab.inspect.kernels import COURSE_KERNELS, plot_kernel_demo

    if args.out is not None:  # a file named with --out is replaced only with --overwrite
        check_out_file("--out", args.out, args.overwrite, "kernels.png")
    out = args.out or "kernels.png"
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
    plot_kernel_demo(args.image, out, chosen, padding=padding, stride=args.stride, pool=pool)
    print(out)
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
    from cnnlab.models import create_model, list_models, model_info, parse_model_options
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
        if not Path(args.model).exists() and not any(part in args.model for part in "/\\."):
            # A bare word that names no network: the names and a close one, as train gives them.
            try:
                model_info(args.model)
            except CnnlabError as error:
                raise CnnlabError(f"{error} Or give a run folder or its model.json.") from None
        model = load(args.model)
    print(model_summary(model))
    return 0
