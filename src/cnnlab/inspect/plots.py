"""The pictures of the data and of training: samples, class counts, intensities, curves, times.

Every figure is built with matplotlib's object API (see :mod:`cnnlab.inspect.figures`), by a
``*_figure`` function that returns it; the ``plot_*`` function beside it writes it as a PNG and
returns the path. The figures are meant to be read by people who are not looking at numbers: few
colours, labelled axes, values written where the eye is (on bars, in cells).

The confusion matrix lives in :mod:`cnnlab.inspect.confusion`, the worst cases and confused
pairs in :mod:`cnnlab.inspect.mistakes`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from cnnlab.data.dataset import ImageDataset
from cnnlab.errors import CnnlabError
from cnnlab.inspect.display import display_pixels
from cnnlab.inspect.figures import (
    message_figure,
    new_figure,
    plain,
    saved_if,
    styled,
    tile_grid,
)

SUBSET_COLOURS = {"train": "#4e79a7", "valid": "#f28e2b", "test": "#59a14f"}
EXTRA_COLOURS = ("#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#e15759")
HISTOGRAM_COLOUR = "#4e79a7"


def _colour(subset: str, index: int) -> str:
    return SUBSET_COLOURS.get(subset, EXTRA_COLOURS[index % len(EXTRA_COLOURS)])


# ------------------------------------------------------------------------------ samples
def sample_rows(
    dataset: ImageDataset, per_class: int, seed: int = 0
) -> list[tuple[str, int, np.ndarray]]:
    """(class name, images in the class, up to ``per_class`` random positions) per class."""
    if per_class < 1:
        raise CnnlabError(f"per_class must be at least 1, not {per_class}")
    rng = np.random.default_rng(seed)
    labels = dataset.labels.numpy()
    rows = []
    for index, name in enumerate(dataset.class_names):
        members = np.flatnonzero(labels == index)
        chosen = rng.choice(members, size=min(per_class, len(members)), replace=False)
        rows.append((str(name), len(members), chosen))
    return rows


@styled
def samples_figure(dataset: ImageDataset, per_class: int = 8, seed: int = 0) -> Figure:
    """A grid of random images, one row per class labelled with its name and count.

    Seeing the classes side by side is the first check of a dataset: wrong folders, empty
    crops and classes that differ only by brightness show at a glance. The grid is one
    composed picture (:func:`~cnnlab.inspect.figures.tile_grid`) drawn with a single ``imshow``.
    """
    rows = sample_rows(dataset, per_class, seed)
    if len(dataset) == 0:
        return message_figure(f"{dataset.name}: no images")
    dataset = dataset.raw()
    tiles = [[display_pixels(dataset.images[int(i)]) for i in chosen] for _, _, chosen in rows]
    grid = tile_grid(tiles, per_class, gap=2)
    cell = 0.95 if per_class <= 10 else 0.75
    figure = new_figure(1.6 + per_class * cell, 0.3 + len(rows) * cell, constrained=True)
    ax = figure.add_subplot()
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=255)
    row_height = (grid.shape[0] + 2) / len(rows)
    ax.set_yticks(
        [row_height * (r + 0.5) - 1.5 for r in range(len(rows))],
        [f"{plain(name)}\n({count})" for name, count, _ in rows],
        fontsize=10,
    )
    ax.set_xticks([])
    ax.tick_params(length=0, pad=8)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return figure


def plot_samples(
    dataset: ImageDataset, path: str | Path | None = None, per_class: int = 8, seed: int = 0
) -> Figure:
    """The :func:`samples_figure`; with ``path``, also written to that PNG file."""
    return saved_if(samples_figure(dataset, per_class, seed), path)


# ------------------------------------------------------------------------------ counts
@styled
def class_counts_figure(
    datasets: Mapping[str, ImageDataset | None] | Mapping[str, Mapping[str, int]],
) -> Figure:
    """Grouped bars of images per class, one colour per subset, counts written on the bars.

    ``datasets`` maps subset names to datasets, or to ``{class: count}`` tables such as
    :func:`cnnlab.data.split.class_table` returns.
    """
    table: dict[str, dict[str, int]] = {}
    for subset, value in datasets.items():
        if value is None:
            continue
        table[str(subset)] = dict(
            value.class_counts() if isinstance(value, ImageDataset) else value
        )
    if not table:
        raise CnnlabError("plot_class_counts needs at least one subset")
    classes: list[str] = []
    for counts in table.values():
        classes += [c for c in counts if c not in classes]
    subsets = list(table)
    width = 0.8 / len(subsets)
    x = np.arange(len(classes))
    figure = new_figure(
        max(5.0, 1.0 + 0.9 * len(classes) * max(1, len(subsets) / 2)), 3.4, constrained=True
    )
    ax = figure.add_subplot()
    highest = max(max(counts.values(), default=0) for counts in table.values())
    for index, subset in enumerate(subsets):
        values = [table[subset].get(c, 0) for c in classes]
        bars = ax.bar(
            x + (index - (len(subsets) - 1) / 2) * width,
            values,
            width * 0.92,
            label=f"{subset} ({sum(values)})",
            color=_colour(subset, index),
        )
        ax.bar_label(bars, fontsize=9 if len(classes) * len(subsets) < 30 else 6.5, padding=2)
    ax.set_xticks(
        x, [plain(c) for c in classes], rotation=0 if len(classes) <= 8 else 45, fontsize=9
    )
    ax.tick_params(axis="y", labelsize=8.5)
    ax.set_ylabel("images", fontsize=9)
    ax.set_ylim(0, max(1, highest) * 1.15)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(
        frameon=False,
        ncols=len(subsets),
        loc="upper center",
        bbox_to_anchor=(0.5, 1.13),
        fontsize=9,
    )
    return figure


def plot_class_counts(
    datasets: Mapping[str, ImageDataset | None] | Mapping[str, Mapping[str, int]],
    path: str | Path | None = None,
) -> Figure:
    """The :func:`class_counts_figure`; with ``path``, also written to that PNG file."""
    return saved_if(class_counts_figure(datasets), path)


# ------------------------------------------------------------------------------ intensities
def mean_intensities(dataset: ImageDataset) -> np.ndarray:
    """The mean pixel value of every image, over all its pixels and channels, in float64.

    The values are in the images' own units (0-255 for 8-bit files, counts up to 65,535 for
    16-bit ones); a z-scored dataset is taken back to those units first.
    """
    images = dataset.raw().images
    if isinstance(images, torch.Tensor):
        # In slices: a float64 copy of all of MNIST would take 400 MB.
        means = [
            images[start : start + 4096].to(torch.float64).flatten(1).mean(dim=1)
            for start in range(0, len(images), 4096)
        ]
        return torch.cat(means).numpy() if means else np.zeros(0)
    return np.array([float(image.to(torch.float64).mean()) for image in images])


def intensity_units(dataset: ImageDataset) -> str:
    """How the axis of raw intensities is labelled for ``dataset``'s bit depth."""
    return {8: "8-bit values, 0–255", 16: "16-bit counts, 0–65,535"}.get(
        dataset.bit_depth, "raw values"
    )


@styled
def intensity_histograms_figure(dataset: ImageDataset, bins: int = 30) -> Figure:
    """Per class, the histogram of the images' mean intensities, on one shared axis.

    Classes that differ in brightness alone are what a network learns first and a microscope's
    drifting illumination fakes; one row per class with the same bins makes such a difference
    visible before any training. The values are :func:`mean_intensities`, in the images' own
    units (16-bit counts stay counts).
    """
    if bins < 1:
        raise CnnlabError(f"bins must be at least 1, not {bins}")
    if len(dataset) == 0:
        return message_figure(f"{dataset.name}: no images")
    means = mean_intensities(dataset)
    labels = dataset.labels.numpy()
    edges = np.histogram_bin_edges(means, bins=bins)
    names = dataset.class_names
    row = 1.0 if len(names) <= 6 else 0.75
    figure = new_figure(7.0, 0.9 + row * len(names), constrained=True)
    axes = figure.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    for index, (ax, name) in enumerate(zip(axes, names, strict=True)):
        values = means[labels == index]
        ax.hist(values, bins=edges, color=HISTOGRAM_COLOUR, edgecolor="white", linewidth=0.5)
        summary = f"{plain(name)} ({len(values)})"
        if len(values):
            mean = float(values.mean())
            summary += f"\nmean {mean:,.0f}" if abs(mean) >= 100 else f"\nmean {mean:.3g}"
        ax.set_ylabel(summary, rotation=0, ha="right", va="center", fontsize=8.5)
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(axis="y", labelsize=7)
        ax.yaxis.get_major_locator().set_params(integer=True)
    axes[-1].set_xlabel(f"mean intensity per image ({intensity_units(dataset)})")
    figure.suptitle("Mean intensity of the images, per class", fontsize=10)
    return figure


def plot_intensity_histograms(
    dataset: ImageDataset, path: str | Path | None = None, bins: int = 30
) -> Figure:
    """The :func:`intensity_histograms_figure`; with ``path``, also written to that PNG file."""
    return saved_if(intensity_histograms_figure(dataset, bins), path)


# ------------------------------------------------------------------------------ training
def read_history(history: str | Path | Sequence[Mapping[str, object]]) -> list[dict]:
    """History rows as dicts of floats (None for empty cells) from rows or a history.csv."""
    if isinstance(history, str | Path):
        path = Path(history)
        try:
            with path.open(newline="") as handle:
                rows = list(csv.DictReader(handle))
        except FileNotFoundError:
            raise CnnlabError(f"{path}: no such history file") from None
    else:
        rows = [dict(row) for row in history]
    parsed = []
    for row in rows:
        clean = {}
        for key, value in row.items():
            if value is None or value == "":
                clean[key] = None
                continue
            try:
                clean[key] = float(value)
            except (TypeError, ValueError):
                clean[key] = value
        parsed.append(clean)
    return parsed


def _series(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    epochs, values = [], []
    for row in rows:
        value = row.get(key)
        if isinstance(value, float) and math.isfinite(value):
            epochs.append(row["epoch"])
            values.append(value)
    return epochs, values


@styled
def learning_curves_figure(
    history: str | Path | Sequence[Mapping[str, object]], best_epoch: int | None = None
) -> Figure:
    """Loss and accuracy per epoch, training against validation, the best epoch marked.

    A validation loss that turns upwards while the training loss keeps falling is what
    overfitting looks like; the marked best epoch is the one whose weights the run kept.
    """
    rows = read_history(history)
    if not rows:
        return message_figure("no epochs in the history")
    figure = new_figure(10, 3.6, constrained=True)
    axes = figure.subplots(1, 2)
    for ax, metric, label in (
        (axes[0], "loss", "loss (cross-entropy)"),
        (axes[1], "accuracy", "accuracy"),
    ):
        for subset in ("train", "valid"):
            epochs, values = _series(rows, f"{subset}_{metric}")
            if epochs:
                ax.plot(
                    epochs,
                    values,
                    marker="o" if len(epochs) <= 30 else None,
                    markersize=3.5,
                    linewidth=1.8,
                    color=SUBSET_COLOURS[subset],
                    label="training" if subset == "train" else "validation",
                )
        if best_epoch is not None:
            _mark_best(ax, rows, metric, int(best_epoch))
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.25)
        ax.spines[["top", "right"]].set_visible(False)
        last = max(row["epoch"] for row in rows)
        ax.set_xlim(0.5, last + 0.5)
        if last <= 20:
            ax.set_xticks(range(1, int(last) + 1))
    axes[0].legend(frameon=False)
    return figure


def plot_learning_curves(
    history: str | Path | Sequence[Mapping[str, object]],
    path: str | Path | None = None,
    best_epoch: int | None = None,
) -> Figure:
    """The :func:`learning_curves_figure`; with ``path``, also written to that PNG file."""
    return saved_if(learning_curves_figure(history, best_epoch), path)


def _mark_best(ax, rows: list[dict], metric: str, best_epoch: int) -> None:
    ax.axvline(best_epoch, color="#444", linestyle="--", linewidth=1, alpha=0.7)
    row = next((r for r in rows if r.get("epoch") == best_epoch), None)
    if row is None:
        return
    subset = "valid" if row.get(f"valid_{metric}") is not None else "train"
    value = row.get(f"{subset}_{metric}")
    if value is None:
        return
    ax.plot([best_epoch], [value], marker="*", markersize=14, color="#222", zorder=5)
    text = f"best epoch {best_epoch}\n{value:.3f}" if metric == "loss" else f"{value:.1%}"
    ax.annotate(
        text,
        (best_epoch, value),
        xytext=(8, 10 if metric == "loss" else -22),
        textcoords="offset points",
        fontsize=9,
        color="#222",
    )


@styled
def epoch_times_figure(history: str | Path | Sequence[Mapping[str, object]]) -> Figure:
    """Seconds per epoch as bars: a slow first epoch or a growing time shows at once."""
    rows = read_history(history)
    epochs, seconds = _series(rows, "seconds")
    if not epochs:
        return message_figure("no epoch times in the history")
    figure = new_figure(10, 2.2, constrained=True)
    ax = figure.add_subplot()
    ax.bar(epochs, seconds, color="#8fa9c9", width=0.7)
    mean = float(np.mean(seconds))
    ax.axhline(mean, color="#444", linestyle=":", linewidth=1)
    ax.annotate(f"mean {mean:.2f} s", (epochs[-1] + 0.4, mean), va="bottom", ha="right", fontsize=9)
    ax.set_xlabel("epoch")
    ax.set_ylabel("seconds")
    ax.spines[["top", "right"]].set_visible(False)
    if len(epochs) <= 20:
        ax.set_xticks([int(e) for e in epochs])
    return figure


def plot_epoch_times(
    history: str | Path | Sequence[Mapping[str, object]], path: str | Path | None = None
) -> Figure:
    """The :func:`epoch_times_figure`; with ``path``, also written to that PNG file."""
    return saved_if(epoch_times_figure(history), path)
