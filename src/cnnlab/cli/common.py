"""Argument checks that several command groups share."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.errors import CnnlabError


def check_out_file(flag: str, value: str, overwrite: bool, example: str) -> Path:
    """A file to write: its folder exists, and it is not a folder nor an existing file.

    Checked before any work starts, so a long job never ends on an output it cannot write.
    """
    out = Path(value)
    if out.is_dir():
        raise CnnlabError(f"{flag} {out}: is a folder; give a file name such as {example}")
    if out.parent.is_file():
        raise CnnlabError(f"{flag} {out}: {out.parent} is a file, not a folder")
    if not out.parent.is_dir():
        raise CnnlabError(f"{flag} {out}: the folder {out.parent} does not exist; create it first")
    if out.is_file() and not overwrite:  # devices and pipes are streams
        raise CnnlabError(f"{flag} {out}: exists; choose another file or pass --overwrite")
    return out


def add_plane_flags(parser: argparse.ArgumentParser) -> None:
    """Which 2D image of a microscope file to read (needed when the file holds several)."""
    group = parser.add_argument_group("which image of a microscope file")
    group.add_argument("--channel", help="channel index or name")
    group.add_argument("--plane", type=int, help="Z plane index")
    group.add_argument("--position", type=int, help="position (scene) index")
    group.add_argument("--time", type=int, help="time point index")


def plane_choice(args: argparse.Namespace) -> dict:
    """The plane flags as keyword arguments.

    ``--channel`` stays text: the reader matches a channel name first and takes digits as an
    index only when no channel has that name.
    """
    return {
        "channel": args.channel,
        "plane": args.plane,
        "position": args.position,
        "time": args.time,
    }


def add_object_flags(parser: argparse.ArgumentParser) -> None:
    """Where the objects of a field are, and how a crop frames each of them."""
    # No argparse choices or mutually exclusive group here: argparse would refuse with its usage
    # text on several lines, and cnnlab's rule is one line (object_choice and the library check).
    group = parser.add_argument_group("objects and their crops (one of --rois and --labels)")
    group.add_argument("--rois", metavar="ZIP", help="ImageJ RoiSet.zip (or one .roi file)")
    group.add_argument("--labels", metavar="TIF", help="label image: one integer per object")
    group.add_argument(
        "--margin",
        type=int,
        help="pixels added around each object's box [0 for ROIs: the crop is the ROI, as ImageJ "
        "cuts it; 5 for labels, which cover only the cell body]",
    )
    group.add_argument("--size", help="a fixed crop size N or HxW centred on each object")
    group.add_argument(
        "--border",
        metavar="{skip,pad,clip}",
        default="skip",
        help="objects whose crop leaves the field: skip them, pad with the edge, or clip [skip]",
    )


def object_choice(args: argparse.Namespace, command: str) -> dict:
    """The object flags as keyword arguments, with exactly one of ``--rois`` and ``--labels``."""
    if not args.rois and not args.labels:
        raise CnnlabError(f"{command}: say where the objects are with --rois ZIP or --labels TIF")
    if args.rois and args.labels:
        raise CnnlabError(
            f"--rois {args.rois} and --labels {args.labels}: give the objects by one of them"
        )
    from cnnlab.microscopy.cutting import BORDERS

    if args.border not in BORDERS:
        raise CnnlabError(f"--border {args.border}: choose one of {', '.join(BORDERS)}")
    if args.margin is not None and args.margin < 0:
        raise CnnlabError(f"--margin {args.margin}: give 0 or more pixels")
    size = None
    if args.size is not None:
        from cnnlab.train.options import parse_size

        size = parse_size(args.size)
    return {
        "rois": args.rois,
        "labels": args.labels,
        "margin": args.margin,
        "size": size,
        "border": args.border,
    }
