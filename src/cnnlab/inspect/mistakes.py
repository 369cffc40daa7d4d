"""What the model gets wrong: the worst cases and the most confused pairs of classes.

Both pictures put the file name under every image, so a surprising mistake can be traced back to
its source file (and a mislabelled one fixed). The ``*_figure`` functions return the figure; the
``plot_*`` functions write it as a PNG and return the path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from cnnlab.data.dataset import ImageDataset
from cnnlab.errors import CnnlabError
from cnnlab.evaluate.metrics import confusion_matrix
from cnnlab.inspect.display import show_image
from cnnlab.inspect.figures import (
    message_figure,
    new_figure,
    plain,
    saved_if,
    shorten_middle,
    styled,
)

TRUE_COLOUR = "#2e7d32"
PREDICTED_COLOUR = "#c62828"
OTHER_COLOUR = "#b0b7c3"


def worst_indices(losses: Sequence[float] | np.ndarray, count: int) -> np.ndarray:
    """Positions of the ``count`` highest losses, highest first (ties: earlier image first)."""
    losses = np.asarray(losses, dtype=np.float64)
    return np.argsort(-losses, kind="stable")[:count]


def confused_pairs(
    labels: Sequence[int] | np.ndarray,
    predictions: Sequence[int] | np.ndarray,
    num_classes: int,
    pairs: int = 3,
) -> list[tuple[int, int, int]]:
    """The ``pairs`` most frequent mistakes as (true class, predicted class, count).

    Ties keep the row-major order of the confusion matrix, as ``metrics.json`` does.
    """
    confusion = confusion_matrix(
        np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64), num_classes
    )
    np.fill_diagonal(confusion, 0)
    order = np.argsort(-confusion, axis=None, kind="stable")[:pairs]
    return [
        (*divmod(int(i), num_classes), int(confusion.flat[int(i)]))
        for i in order
        if confusion.flat[int(i)] > 0
    ]


def sample_results(model: torch.nn.Module, dataset: ImageDataset) -> dict:
    """Per-image probabilities, predictions and losses (see ``cnnlab.evaluate.per_sample``)."""
    from cnnlab.evaluate import per_sample

    return per_sample(model, dataset)


def pair_members(
    samples: dict, true: int, predicted: int, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` most confident images of ``true`` taken for ``predicted``, and every
    image's probability of its predicted class."""
    labels, predictions = samples["labels"], samples["predictions"]
    confidence = samples["probabilities"][np.arange(len(labels)), predictions]
    members = np.flatnonzero((labels == true) & (predictions == predicted))
    return members[np.argsort(-confidence[members], kind="stable")][:count], confidence


@styled
def confused_pairs_figure(
    model: torch.nn.Module,
    dataset: ImageDataset,
    pairs: int = 3,
    per_pair: int = 4,
    samples: dict | None = None,
) -> Figure:
    """The most frequent (true, predicted) mix-ups, each with its most confident mistakes.

    ``samples`` is a precomputed :func:`sample_results` of ``model`` on ``dataset``.
    """
    samples = samples if samples is not None else sample_results(model, dataset)
    dataset = dataset.raw()
    chosen = confused_pairs(samples["labels"], samples["predictions"], dataset.num_classes, pairs)
    if not chosen:
        return message_figure("no mistakes: no pair of classes is confused")
    figure = new_figure(2.6 + per_pair * 1.25, 0.2 + 1.45 * len(chosen), constrained=True)
    grid = figure.add_gridspec(len(chosen), per_pair + 1, width_ratios=[2.2] + [1] * per_pair)
    for row, (true, predicted, count) in enumerate(chosen):
        members, confidence = pair_members(samples, true, predicted, per_pair)
        label_ax = figure.add_subplot(grid[row, 0])
        label_ax.axis("off")
        label_ax.text(
            1.0,
            0.5,
            f"true {plain(dataset.class_names[true])}\n→ predicted "
            f"{plain(dataset.class_names[predicted])}\n{count} image(s)",
            ha="right",
            va="center",
            fontsize=10,
            transform=label_ax.transAxes,
        )
        for column in range(per_pair):
            ax = figure.add_subplot(grid[row, column + 1])
            if column >= len(members):
                ax.axis("off")
                continue
            index = int(members[column])
            show_image(ax, dataset.images[index])
            ax.set_title(f"p={confidence[index]:.2f}", fontsize=8.5)
            ax.set_xlabel(plain(shorten_middle(Path(dataset.paths[index]).name, 24)), fontsize=7)
    return figure


def plot_confused_pairs(
    model: torch.nn.Module,
    dataset: ImageDataset,
    path: str | Path | None = None,
    pairs: int = 3,
    per_pair: int = 4,
    samples: dict | None = None,
) -> Figure:
    """The :func:`confused_pairs_figure`; with ``path``, also written to that PNG file."""
    return saved_if(confused_pairs_figure(model, dataset, pairs, per_pair, samples), path)


@styled
def worst_cases_figure(
    model: torch.nn.Module,
    dataset: ImageDataset,
    count: int = 16,
    columns: int = 4,
    samples: dict | None = None,
) -> Figure:
    """The ``count`` images with the highest loss: what the model gets most wrong, and how.

    Each case shows the image, ``true X / pred Y (p=..)``, the probability of every class (the
    true class's bar in green, the predicted class's in red) and its source file name, so a
    mislabelled file or an odd crop can be found and fixed. ``samples`` is a precomputed
    :func:`sample_results` of ``model`` on ``dataset``.
    """
    if count < 1:
        raise CnnlabError(f"count must be at least 1, not {count}")
    samples = samples if samples is not None else sample_results(model, dataset)
    dataset = dataset.raw()
    if len(dataset) == 0:
        return message_figure(f"{dataset.name}: no images")
    worst = worst_indices(samples["loss"], count)
    columns = max(1, min(columns, len(worst)))
    rows = math.ceil(len(worst) / columns)
    k = dataset.num_classes
    cell_height = max(1.75, 0.17 * k + 0.95)
    figure = new_figure(columns * 2.7, rows * cell_height + 0.3, constrained=True)
    cells = figure.subfigures(rows, columns, wspace=0.02, hspace=0.02, squeeze=False)
    names = [plain(shorten_middle(str(c), 10)) for c in dataset.class_names]
    for slot, index in enumerate(worst.tolist()):
        cell = cells[slot // columns, slot % columns]
        true, predicted = int(samples["labels"][index]), int(samples["predictions"][index])
        probabilities = np.asarray(samples["probabilities"][index], dtype=np.float64)
        cell.suptitle(
            f"true {plain(shorten_middle(dataset.class_names[true], 10))} / "
            f"pred {plain(shorten_middle(dataset.class_names[predicted], 10))} "
            f"(p={probabilities[predicted]:.2f})",
            fontsize=8.5,
            color=PREDICTED_COLOUR if true != predicted else TRUE_COLOUR,
        )
        cell.supxlabel(plain(shorten_middle(Path(dataset.paths[index]).name, 30)), fontsize=7.5)
        image_ax, bars_ax = cell.subplots(1, 2, width_ratios=[1, 1.1])
        show_image(image_ax, dataset.images[index])
        colours = [OTHER_COLOUR] * k
        colours[predicted] = PREDICTED_COLOUR
        colours[true] = TRUE_COLOUR
        bars_ax.barh(range(k), probabilities, color=colours, height=0.7)
        bars_ax.set_yticks(range(k), names, fontsize=7.5 if k <= 10 else 5.5)
        bars_ax.invert_yaxis()
        bars_ax.set_xlim(0, 1)
        bars_ax.set_xticks([0, 0.5, 1], ["0", ".5", "1"], fontsize=7)
        bars_ax.tick_params(length=2, pad=1)
        bars_ax.spines[["top", "right"]].set_visible(False)
    for slot in range(len(worst), rows * columns):
        cells[slot // columns, slot % columns].set_facecolor("white")
    figure.legend(
        handles=[
            Patch(facecolor=TRUE_COLOUR, label="true class"),
            Patch(facecolor=PREDICTED_COLOUR, label="predicted class"),
            Patch(facecolor=OTHER_COLOUR, label="other classes"),
        ],
        loc="outside lower center",
        ncols=3,
        frameon=False,
        fontsize=8,
    )
    return figure


def plot_worst_cases(
    model: torch.nn.Module,
    dataset: ImageDataset,
    path: str | Path | None = None,
    count: int = 16,
    columns: int = 4,
    samples: dict | None = None,
) -> Figure:
    """The :func:`worst_cases_figure`; with ``path``, also written to that PNG file."""
    return saved_if(worst_cases_figure(model, dataset, count, columns, samples), path)
