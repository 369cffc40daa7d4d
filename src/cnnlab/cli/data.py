"""``cnnlab data`` and ``cnnlab synth``: look at data, make synthetic data."""

from __future__ import annotations

import argparse
import json

from cnnlab.cli.common import check_out_file
from cnnlab.errors import CnnlabError


def add_commands(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="look at data")
    data.set_defaults(handler=_data)
    data = data.add_subparsers(dest="action", required=True, metavar="ACTION")
    summary = data.add_parser("summary", help="class counts, sizes, channels and bit depth")
    summary.add_argument(
        "specs",
        nargs="+",
        metavar="SPEC",
        help="mnist or folders of class folders (merged), or microscope files to describe",
    )
    summary.add_argument("--pattern", help="glob selecting image files, e.g. '*.tif'")
    summary.add_argument("--channels", type=int, choices=(1, 3))
    summary.add_argument(
        "--skip-bad", action="store_true", help="leave unusable files out, with a count"
    )
    summary.add_argument(
        "--convert-bit-depth",
        action="store_true",
        help="describe mixed 8/16-bit data as training with --convert-bit-depth would see it",
    )
    summary.add_argument("--json", action="store_true", help="print JSON instead of a table")

    samples = data.add_parser("samples", help="a picture of sample images per class")
    samples.add_argument(
        "specs", nargs="+", metavar="SPEC", help="mnist or folders of class folders"
    )
    samples.add_argument("--pattern", help="glob selecting image files, e.g. '*.tif'")
    samples.add_argument(
        "--skip-bad", action="store_true", help="leave unusable files out, with a count"
    )
    samples.add_argument("--per-class", type=int, default=8)
    samples.add_argument("--seed", type=int, default=0)
    samples.add_argument("--out", help="PNG to write [samples.png, replaced if there]")
    samples.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    samples.add_argument(
        "--histogram",
        action="store_true",
        help="draw each class's histogram of mean image intensity instead of sample images",
    )
    samples.add_argument("--bins", type=int, default=30, help="histogram bins [30]")
    samples.add_argument(
        "--convert-bit-depth",
        action="store_true",
        help="scale 8-bit images among 16-bit ones to 16-bit (x257) instead of refusing",
    )

    synth = commands.add_parser("synth", help="make synthetic data")
    synth.set_defaults(handler=_synth)
    synth = synth.add_subparsers(dest="action", required=True, metavar="ACTION")
    bacteria = synth.add_parser(
        "bacteria", help="16-bit phase-contrast crops in 1cell/2cell/groups/rien"
    )
    bacteria.add_argument("--out", required=True, help="folder to create")
    bacteria.add_argument("--per-class", type=int, default=100, help="crops of each class [100]")
    bacteria.add_argument("--seed", type=int, default=0, help="random seed [0]")
    bacteria.add_argument(
        "--min-size",
        type=int,
        default=24,
        help="smallest crop side: a limit for lab crops, which follow their object; classic "
        "crops draw their sides uniformly between the two [24]",
    )
    bacteria.add_argument("--max-size", type=int, default=80, help="largest crop side [80]")
    bacteria.add_argument(
        "--style",
        default="lab",
        metavar="{lab,classic}",
        help="lab: fat blurred cells, tight ROIs, bright 16-bit background, like the course's "
        "ImageJ crops; classic: cnnlab's first look, thin rods in loose crops [lab]",
    )
    bacteria.add_argument(
        "--overwrite", action="store_true", help="replace a folder that cnnlab synth made"
    )

    field = synth.add_parser(
        "field",
        help="a whole 16-bit phase-contrast field with its label image, RoiSet.zip and answers",
    )
    field.add_argument("--out", required=True, help="folder to create")
    field.add_argument("--size", default="1024", help="field size N or HxW [1024]")
    field.add_argument("--seed", type=int, default=0, help="random seed [0]")
    field.add_argument(
        "--per-class", type=int, help="objects of each class [about 40 per 1024x1024]"
    )
    field.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a folder that holds only a field's files (field.tif, field_labels.tif, "
        "RoiSet.zip, objects.csv)",
    )


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
        # A file named with --out is the user's: replaced only with --overwrite.
        if args.out is not None:
            check_out_file("--out", args.out, args.overwrite, "samples.png")
        out = args.out or "samples.png"

        loaded = load_sources(
            args.specs,
            pattern=args.pattern,
            skip_bad=args.skip_bad,
            convert_bit_depth=args.convert_bit_depth,
        )
        first = next(iter(loaded.values()))
        if args.histogram:
            plot_intensity_histograms(first, out, bins=args.bins)
        else:
            plot_samples(first, out, per_class=args.per_class, seed=args.seed)
        print(out)
        return 0
    from cnnlab.microscopy.formats import is_microscopy_file

    fields = [spec for spec in args.specs if is_microscopy_file(spec)]
    if fields:
        if len(fields) != len(args.specs):
            raise CnnlabError(
                f"data summary: {fields[0]} is a microscope file and the other SPECs are not; "
                "describe files and datasets in separate commands"
            )
        # These flags shape how a dataset is loaded; a microscope file is described as it is.
        for flag in ("pattern", "channels", "skip_bad", "convert_bit_depth"):
            if getattr(args, flag):
                name = "--" + flag.replace("_", "-")
                raise CnnlabError(
                    f"{name} is for datasets, not for the microscope file {fields[0]}; leave it out"
                )
        from cnnlab.microscopy.describe import (
            describe_microscopy_file,
            format_microscopy_description,
        )

        if args.json:
            print(json.dumps([describe_microscopy_file(f) for f in fields], indent=2))
        else:
            print("\n\n".join(format_microscopy_description(f) for f in fields))
        return 0
    # A summary describes mixed bit depths (and warns) rather than refusing them: seeing the
    # mix is how a user finds out about it.
    datasets = load_sources(
        args.specs,
        pattern=args.pattern,
        channels=args.channels,
        skip_bad=args.skip_bad,
        convert_bit_depth=args.convert_bit_depth,
        allow_mixed_bit_depths=True,
    )
    if args.json:
        print(json.dumps(describe_sources(datasets), indent=2))
    else:
        print(format_description(datasets))
    return 0


def _synth(args: argparse.Namespace) -> int:
    from cnnlab.synth import CLASSES, synth_bacteria, synth_field

    if args.action == "field":
        from cnnlab.train.options import parse_size

        if args.per_class is not None and args.per_class < 0:
            raise CnnlabError(f"--per-class {args.per_class}: give 0 or more objects")
        counts = None if args.per_class is None else dict.fromkeys(CLASSES, args.per_class)
        summary = synth_field(
            args.out,
            size=parse_size(args.size),
            seed=args.seed,
            counts=counts,
            overwrite=args.overwrite,
        )
        detail = ", ".join(f"{name} {count}" for name, count in summary["counts"].items())
        print(
            f"wrote a {summary['size'][0]}x{summary['size'][1]} 16-bit field with "
            f"{summary['objects']} objects ({detail}) to {args.out}: {', '.join(summary['files'])}"
        )
        return 0
    counts = synth_bacteria(
        args.out,
        per_class=args.per_class,
        seed=args.seed,
        min_size=args.min_size,
        max_size=args.max_size,
        overwrite=args.overwrite,
        style=args.style,
    )
    total = sum(counts.values())
    detail = ", ".join(f"{name} {count}" for name, count in counts.items())
    print(f"wrote {total} 16-bit TIFF crops to {args.out} ({detail})")
    return 0
