"""Data named the way users name it: ``mnist`` or one or more class-per-folder roots."""

from __future__ import annotations

from collections.abc import Sequence

from cnnlab.data.dataset import ImageDataset
from cnnlab.data.folders import load_folders
from cnnlab.data.mnist import mnist
from cnnlab.data.split import balance_warnings, format_class_table
from cnnlab.errors import CnnlabError

BUILTIN = ("mnist",)


def load_sources(
    specs: Sequence[str],
    pattern: str | None = None,
    channels: int | None = None,
    skip_bad: bool = False,
    plane: int | None = None,
    cache: bool = False,
) -> dict[str, ImageDataset]:
    """The datasets behind ``specs``: {"train", "test"} for mnist, {"all"} for folders merged."""
    specs = list(specs)
    if not specs:
        raise CnnlabError("name at least one data source: mnist or a folder of class folders")
    if "mnist" in specs:
        if len(specs) > 1:
            raise CnnlabError("mnist cannot be merged with folders; name one or the other")
        train, test = mnist()
        found = {"train": train, "test": test}
        if channels is not None:
            found = {k: v.to_channels(channels) for k, v in found.items()}
        return found
    dataset = load_folders(
        specs, pattern=pattern, channels=channels, skip_bad=skip_bad, plane=plane, cache=cache
    )
    return {"all": dataset}


def describe_sources(datasets: dict[str, ImageDataset]) -> dict:
    """Class counts, size range, channels and bit depth of each dataset, as plain data."""
    return {name: dataset.summary() for name, dataset in datasets.items()}


def format_description(datasets: dict[str, ImageDataset]) -> str:
    """Images per class and dataset, each dataset's geometry, and any balance problems."""
    lines = [format_class_table(datasets), ""]
    for name, info in describe_sources(datasets).items():
        (h0, h1), (w0, w1) = info["height"], info["width"]
        size = f"{h0}x{w0}" if (h0, w0) == (h1, w1) else f"{h0}..{h1} x {w0}..{w1} (height x width)"
        # An RGBA file is read as RGB: say so rather than call the file "3 channels".
        alpha = datasets[name].meta.get("alpha_dropped", 0)
        dropped = f" (alpha channel dropped from {alpha} file{'s' if alpha > 1 else ''})"
        lines.append(
            f"{name}: {info['n']} images, {size}, {info['channels']} channel(s)"
            f"{dropped if alpha else ''}, {info['bit_depth']}-bit ({info['dtype']})"
        )
    lines.extend(f"warning: {problem}" for problem in balance_warnings(datasets))
    return "\n".join(lines)
