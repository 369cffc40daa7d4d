"""``cnnlab export``: a trained model as a file for other tools (ONNX, TorchScript, bioimage.io)."""

from __future__ import annotations

import argparse

from cnnlab.errors import CnnlabError


def add_commands(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export",
        help="write a trained model for other tools: ONNX, TorchScript or a bioimage.io package",
    )
    export.set_defaults(handler=_export)
    export.add_argument("run", metavar="RUN", help="a finished run folder")
    # No argparse choices: its refusal spans several lines, cnnlab's is one (export_model's).
    export.add_argument(
        "--format",
        required=True,
        metavar="{onnx,torchscript,bioimageio}",
        help="onnx (ONNX Runtime and other ONNX tools), torchscript (torch.jit.load), "
        "bioimageio (a model package for Fiji/deepImageJ, ilastik, QuPath)",
    )
    export.add_argument(
        "--out",
        metavar="PATH",
        help="file to write [beside the run: RUN.onnx, RUN.pt, RUN.zip; the run folder is left "
        "as it is]",
    )
    export.add_argument(
        "--overwrite", action="store_true", help="replace an existing file at --out"
    )
    package = export.add_argument_group("bioimage.io package (--format bioimageio)")
    package.add_argument(
        "--author",
        action="append",
        default=[],
        metavar="NAME",
        help="an author's name, required (bioimage.io names a model's authors); repeat for more",
    )
    package.add_argument(
        "--license",
        metavar="SPDX",
        help="license of the model, an SPDX id such as MIT or CC0-1.0 [CC-BY-4.0]",
    )
    package.add_argument(
        "--cite",
        action="append",
        default=[],
        metavar="'TEXT|DOI'",
        help="a citation as 'TEXT|DOI' or 'TEXT|URL'; repeat for more "
        "(a URL is checked online when the package is tested)",
    )
    package.add_argument("--name", help="the package's name [cnnlab MODEL classifier (N classes)]")
    package.add_argument(
        "--tag", action="append", default=[], metavar="TAG", help="an extra tag; repeat for more"
    )


def _export(args: argparse.Namespace) -> int:
    from cnnlab.deploy import export_model

    # export_model's keyword for each bioimage.io flag.
    package = {
        "authors": ("--author", args.author),
        "license": ("--license", args.license),
        "cite": ("--cite", args.cite),
        "name": ("--name", args.name),
        "tags": ("--tag", args.tag),
    }
    options = {key: value for key, (_, value) in package.items()}
    if args.format != "bioimageio":
        for flag, value in package.values():
            if value:
                raise CnnlabError(
                    f"{flag}: describes a bioimage.io package; add --format bioimageio"
                )
        options = {}
    path = export_model(args.run, args.format, out=args.out, overwrite=args.overwrite, **options)
    print(f"wrote {path}")
    return 0
