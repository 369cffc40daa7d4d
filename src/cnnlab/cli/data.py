"""``cnnlab data`` and ``cnnlab synth``: look at data, make synthetic data."""

from __future__ import annotations

import argparse
import json

from cnnlab.errors import CnnlabError


def add_commands(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="look at data")
    data.set_defaults(handler=_data)
    data = data.add_subparsers(dest="action", required=True, metavar="ACTION")
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

    synth = commands.add_parser("synth", help="make synthetic data")
    synth.set_defaults(handler=_synth)
    synth = synth.add_subparsers(dest="action", required=True, metavar="ACTION")
    bacteria = synth.add_parser(
        "bacteria", help="16-bit phase-contrast crops in 1cell/2cell/groups/rien"
    )
    bacteria.add_argument("--out", required=True, help="folder to create")
    bacteria.add_argument("--per-class", type=int, default=100)
    bacteria.add_argument("--seed", type=int, default=0)
    bacteria.add_argument("--min-size", type=int, default=20)
    bacteria.add_argument("--max-size", type=int, default=80)
    bacteria.add_argument("--overwrite", action="store_true")


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
