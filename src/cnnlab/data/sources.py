"""Data named the way users name it: ``mnist`` or one or more class-per-folder roots."""

from __future__ import annotations

from collections.abc import Sequence

from cnnlab.data.dataset import ImageDataset
from cnnlab.data.folders import load_folders
from cnnlab.data.mnist import mnist
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


def format_description(description: dict) -> str:
    """A table of class counts (one column per dataset) followed by each dataset's geometry."""
    names = list(description)
    classes: list[str] = []
    for info in description.values():
        classes.extend(c for c in info["classes"] if c not in classes)
    width = max([len(c) for c in classes] + [5])
    columns = [max(len(n), 7) for n in names]
    lines = [
        "class".ljust(width) + "".join(f"  {n:>{w}}" for n, w in zip(names, columns, strict=True))
    ]
    for cls in classes:
        counts = [description[n]["classes"].get(cls, 0) for n in names]
        lines.append(
            cls.ljust(width) + "".join(f"  {c:>{w}}" for c, w in zip(counts, columns, strict=True))
        )
    totals = [description[n]["n"] for n in names]
    lines.append(
        "total".ljust(width) + "".join(f"  {t:>{w}}" for t, w in zip(totals, columns, strict=True))
    )
    lines.append("")
    for name, info in description.items():
        (h0, h1), (w0, w1) = info["height"], info["width"]
        size = f"{h0}x{w0}" if (h0, w0) == (h1, w1) else f"{h0}..{h1} x {w0}..{w1} (height x width)"
        lines.append(
            f"{name}: {info['n']} images, {size}, {info['channels']} channel(s), "
            f"{info['bit_depth']}-bit ({info['dtype']})"
        )
        counts = [c for c in info["classes"].values()]
        if counts and min(counts) == 0:
            empty = [c for c, k in info["classes"].items() if k == 0]
            lines.append(f"  warning: no images of {', '.join(empty)}")
        elif counts and max(counts) > 1.5 * min(counts):
            lines.append(
                f"  warning: classes are imbalanced ({min(counts)} to {max(counts)} images); "
                "consider --equalize"
            )
    return "\n".join(lines)
