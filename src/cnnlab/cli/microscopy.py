"""``cnnlab crops``: one crop per object of a whole microscope field."""

from __future__ import annotations

import argparse

from cnnlab.cli.common import add_object_flags, add_plane_flags, object_choice, plane_choice


def add_commands(commands: argparse._SubParsersAction) -> None:
    crops = commands.add_parser(
        "crops", help="cut one 16-bit crop per ROI or labelled object of a field image"
    )
    crops.set_defaults(handler=_crops)
    crops.add_argument(
        "field",
        metavar="FIELD",
        help="the field image (TIFF, or with the microscopy extra .nd2, OME-TIFF, CZI, LIF)",
    )
    crops.add_argument("--out", required=True, help="folder to create for the crops")
    crops.add_argument(
        "--overwrite", action="store_true", help="replace a folder that cnnlab crops made"
    )
    add_object_flags(crops)
    add_plane_flags(crops)


def _crops(args: argparse.Namespace) -> int:
    from cnnlab.microscopy.crops import cut_crops

    summary = cut_crops(
        args.field,
        args.out,
        overwrite=args.overwrite,
        **object_choice(args, "crops"),
        **plane_choice(args),
    )
    print(summary)
    return 0
