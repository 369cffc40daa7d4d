"""Data named the way users name it: ``mnist`` or one or more class-per-folder roots.

:class:`DataSpec` holds everything that decides which images a run sees and how (sources,
pattern, size, channels, plane, split, seed); :func:`load_split` turns it into the train, valid
and test subsets, and :func:`load_manifest_split` puts a run's own images back into the subsets
its ``split.csv`` records.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cnnlab.data.dataset import ImageDataset
from cnnlab.data.folders import load_folders
from cnnlab.data.mnist import mnist
from cnnlab.data.relabel import relabel_dataset, relabel_split
from cnnlab.data.split import (
    Split,
    apply_manifest,
    balance_warnings,
    carve_validation,
    format_class_table,
    split_dataset,
)
from cnnlab.errors import CnnlabError

BUILTIN = ("mnist",)
DEFAULT_FOLDER_SIZE = (32, 32)
MAX_UPSCALE = 2.0  # enlarging an image more than this invents no detail: refuse by default


@dataclass(frozen=True)
class DataSpec:
    """Which images a run reads and how it shapes and splits them.

    ``split`` holds percentages: train/valid/test for folders (default 60, 30, 10), train/valid
    of MNIST's 60,000 training images (default 90, 10; its test set is fixed). ``size`` is
    (height, width), or None for the data's own size (mixed sizes then go to 32x32).
    """

    data: tuple[str, ...] = ("mnist",)
    pattern: str | None = None
    size: tuple[int, int] | None = None
    channels: int | None = None
    plane: int | None = None
    split: tuple[float, ...] | None = None
    equalize: bool = False
    #: "test" validates on MNIST's test set (with a 100,0 split), as the Keras notebooks do.
    valid_on: str = "valid"
    seed: int = 0
    skip_bad: bool = False
    cache: bool = True
    #: Scale images of smaller bit depths to the largest instead of refusing mixed depths.
    convert_bit_depth: bool = False


def load_split(spec: DataSpec) -> Split:
    """Reads, converts, resizes and splits the data named in ``spec``."""
    if not spec.data:
        raise CnnlabError("--data: name at least one data source (mnist or a folder)")
    if "mnist" in spec.data:
        if len(spec.data) > 1:
            raise CnnlabError(
                "--data mnist cannot be merged with folders; train on one or the other"
            )
        return _mnist_split(spec)
    dataset = shape_dataset(_load_folders(spec), spec)
    return split_dataset(
        dataset, spec.split or (60, 30, 10), seed=spec.seed, equalize=spec.equalize
    )


def load_manifest_split(
    spec: DataSpec, manifest: Path | None, relabel: Path | None = None
) -> Split:
    """The split a run recorded in ``manifest`` (its ``split.csv``), re-read from the folders.

    MNIST runs record none: their split is re-made from the seed. ``relabel`` is the copy of
    the label decisions a run was trained with (:func:`cnnlab.data.relabel.applied_decisions`):
    they are applied as the run applied them, and before the manifest, which records the new
    classes and leaves the excluded images out.
    """
    if manifest is None or not manifest.exists():
        split = load_split(spec)
        return split if relabel is None else relabel_split(split, relabel)[0]
    dataset = shape_dataset(_load_folders(spec), spec)
    if relabel is not None:
        dataset = relabel_dataset(dataset, relabel)
    return apply_manifest(dataset, manifest)


def shape_dataset(dataset: ImageDataset, spec: DataSpec) -> ImageDataset:
    """``dataset`` converted to the spec's channels and resized to its size.

    Images more than ``MAX_UPSCALE`` times too small are refused (or left out with
    ``skip_bad``): enlarging them invents no detail.
    """
    if spec.channels is not None:
        dataset = dataset.to_channels(spec.channels)
    size = spec.size
    if size is None and not dataset.uniform:
        size = DEFAULT_FOLDER_SIZE
        lo, hi = min(dataset.sizes()), max(dataset.sizes())
        warnings.warn(
            f"images range from {lo[0]}x{lo[1]} to {hi[0]}x{hi[1]}; resizing all to "
            f"{size[0]}x{size[1]} (choose with --size)",
            stacklevel=2,
        )
    if size is None:
        return dataset
    small = dataset.too_small(size, MAX_UPSCALE)
    if small and not spec.skip_bad:
        h, w = dataset.sizes()[small[0]]
        raise CnnlabError(
            f"{dataset.paths[small[0]]}: {h}x{w} pixels is too small for --size "
            f"{size[0]}x{size[1]} (more than {MAX_UPSCALE:g}x enlargement; {len(small)} such "
            "image(s)); choose a smaller --size, or --skip-bad to leave them out"
        )
    if small:
        warnings.warn(
            f"left out {len(small)} image(s) too small for {size[0]}x{size[1]}, e.g. "
            f"{dataset.paths[small[0]]}",
            stacklevel=2,
        )
        dataset = dataset.select(sorted(set(range(len(dataset))) - set(small)))
    return dataset.resize(size)


def _mnist_split(spec: DataSpec) -> Split:
    train, test = mnist()
    train, test = shape_dataset(train, spec), shape_dataset(test, spec)
    shares = spec.split or (90.0, 10.0)
    if len(shares) == 3:
        raise CnnlabError(
            "--split for mnist takes train,valid shares of its training set (e.g. 90,10); "
            "its test set is fixed"
        )
    if shares[1] == 0:
        valid = test.with_subset("valid") if spec.valid_on == "test" else None
        return Split(train=train.with_subset("train"), valid=valid, test=test)
    train, valid = carve_validation(train, shares[1], seed=spec.seed)
    return Split(train=train, valid=valid, test=test)


def _load_folders(spec: DataSpec) -> ImageDataset:
    return load_folders(
        list(spec.data),
        pattern=spec.pattern,
        channels=spec.channels,
        plane=spec.plane,
        skip_bad=spec.skip_bad,
        cache=spec.cache,
        convert_bit_depth=spec.convert_bit_depth,
    )


def load_sources(
    specs: Sequence[str],
    pattern: str | None = None,
    channels: int | None = None,
    skip_bad: bool = False,
    plane: int | None = None,
    cache: bool = False,
    convert_bit_depth: bool = False,
    allow_mixed_bit_depths: bool = False,
    min_classes: int = 2,
) -> dict[str, ImageDataset]:
    """The datasets behind ``specs``: {"train", "test"} for mnist, {"all"} for folders merged.

    Mixed bit depths are refused, scaled with ``convert_bit_depth``, or, with
    ``allow_mixed_bit_depths``, kept as read so that :func:`format_description` can describe
    them (never train on such a dataset); see :func:`cnnlab.data.folders.load_folders`, also for
    ``min_classes``.
    """
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
        specs,
        pattern=pattern,
        channels=channels,
        skip_bad=skip_bad,
        plane=plane,
        cache=cache,
        convert_bit_depth=convert_bit_depth,
        allow_mixed_bit_depths=allow_mixed_bit_depths,
        min_classes=min_classes,
    )
    return {"all": dataset}


def describe_sources(datasets: dict[str, ImageDataset]) -> dict:
    """Class counts, size range, channels and bit depth of each dataset, as plain data.

    Folder data adds ``bit_depths``, the images per depth of the files (``{"8-bit": 12,
    "16-bit": 340}``), and, where they differ, ``mixed_bit_depths``: why training refuses them.
    """
    described = {}
    for name, dataset in datasets.items():
        info = dataset.summary()
        for key in ("bit_depths", "mixed_bit_depths", "converted_bit_depth"):
            if key in dataset.meta:
                info[key] = dataset.meta[key]
        described[name] = info
    return described


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
            # The tensor type, which differs from the files' (16-bit files are held as int32).
            f"{dropped if alpha else ''}, {_depths(info)}, held as {info['dtype']}"
        )
    lines.extend(f"warning: {problem}" for problem in balance_warnings(datasets))
    lines.extend(
        f"warning: {info['mixed_bit_depths']}"
        for info in describe_sources(datasets).values()
        if "mixed_bit_depths" in info
    )
    return "\n".join(lines)


def _depths(info: dict) -> str:
    """``16-bit``, or for mixed files ``mixed bit depths: 12 8-bit, 340 16-bit``, or for scaled
    ones ``16-bit (12 8-bit images scaled)``."""
    counts = info.get("bit_depths") or {}
    if "mixed_bit_depths" in info:
        return "mixed bit depths: " + ", ".join(f"{n} {label}" for label, n in counts.items())
    if converted := info.get("converted_bit_depth"):
        scaled = " and ".join(f"{n} {label}" for label, n in converted["scaled"].items())
        images = "image" if sum(converted["scaled"].values()) == 1 else "images"
        return f"{info['bit_depth']}-bit ({scaled} {images} scaled to it)"
    return f"{info['bit_depth']}-bit"
