"""A confusion matrix from counts to colours: the one place for its shares, colours and figure.

The counts come from :func:`cnnlab.evaluate.metrics.confusion_matrix` (or the ``confusion``
lists of ``metrics.json``): rows are the true classes, columns the predicted ones. Everything
that shows them, the report's HTML table, the PNG figure of ``cnnlab plots`` and TensorBoard's
image, takes its shares and colours from here, so the three always agree.

A cell is coloured by its share of the true class, not by its count, so a small class's
mistakes show as clearly as a large one's. The square root of the share spreads the small
shares where mistakes live (1 % is already visible), and correct answers (blue) read apart from
mistakes (red) even at a glance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cnnlab.errors import CnnlabError
from cnnlab.inspect.figures import new_figure, plain, saved_if, shorten_middle, styled

RGB = tuple[int, int, int]

#: The colour of a whole true class answered correctly, and of one answered all wrong.
CORRECT: RGB = (37, 99, 235)
MISTAKEN: RGB = (220, 38, 38)
#: A cell without images: no colour, the zero in light grey.
ZERO_BACKGROUND: RGB = (250, 251, 252)
ZERO_INK = "#c0c6cf"
DARK_INK, LIGHT_INK = "#1f2937", "#fff"
#: Shares marked under a colour scale (placed by :func:`share_scale`).
LEGEND_TICKS = (0.0, 0.01, 0.05, 0.25, 0.5, 1.0)


def confusion_counts(confusion: object, class_names: Sequence[str]) -> np.ndarray:
    """``confusion`` (nested lists or an array) as a checked ``(k, k)`` int64 array."""
    k = len(class_names)
    try:
        array = np.asarray(confusion, dtype=np.int64)
    except (TypeError, ValueError):
        raise CnnlabError(f"confusion matrix of uneven rows for {k} class names") from None
    if array.shape != (k, k):
        raise CnnlabError(f"confusion matrix of shape {array.shape} for {k} class names")
    if (array < 0).any():
        raise CnnlabError("confusion matrix with negative counts")
    return array


def row_shares(counts: np.ndarray) -> np.ndarray:
    """Each cell's share of its row (its true class); a class without images has all zeros.

    The diagonal share is the class's recall.
    """
    counts = np.asarray(counts)
    supports = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, supports, out=np.zeros(counts.shape), where=supports > 0)


def share_scale(share: float) -> float:
    """Where ``share`` sits on the colour scale, 0 to 1 (the square root of the share)."""
    return math.sqrt(min(max(float(share), 0.0), 1.0))


def share_colour(count: int, share: float, diagonal: bool) -> tuple[RGB, str]:
    """(background, ink) of a cell holding ``count`` images, ``share`` of its true class."""
    if count == 0:
        return ZERO_BACKGROUND, ZERO_INK
    t = share_scale(share)
    target = CORRECT if diagonal else MISTAKEN
    rgb = tuple(round(255 + (c - 255) * t) for c in target)
    return (rgb[0], rgb[1], rgb[2]), LIGHT_INK if t > 0.62 else DARK_INK


def cell_colours(counts: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
    """Every cell's background as a ``(k, k, 3)`` uint8 image, and its ink colour."""
    shares = row_shares(counts)
    k = len(counts)
    image = np.zeros((k, k, 3), dtype=np.uint8)
    inks = [["" for _ in range(k)] for _ in range(k)]
    for i in range(k):
        for j in range(k):
            image[i, j], inks[i][j] = share_colour(int(counts[i, j]), shares[i, j], i == j)
    return image, inks


def share_text(count: int, share: float) -> str:
    """A share as a cell shows it: ``83%``, ``<1%`` for a few images, ``0`` for none."""
    if count == 0:
        return "0"
    return f"{share:.0%}" if share >= 0.01 else "<1%"


# ------------------------------------------------------------------------------ figures
def _draw(ax, counts: np.ndarray, class_names: Sequence[str], shares_in_cells: bool) -> None:
    k = len(class_names)
    shares = row_shares(counts)
    image, inks = cell_colours(counts)
    ax.imshow(image)
    fontsize = 11 if k <= 4 else 9 if k <= 7 else 7 if k <= 12 else 5
    for i in range(k):
        for j in range(k):
            count = int(counts[i, j])
            ax.text(
                j,
                i,
                share_text(count, shares[i, j]) if shares_in_cells else str(count),
                ha="center",
                va="center",
                fontsize=fontsize,
                color=inks[i][j],
                fontweight="bold" if i == j else "normal",
            )
    names = [plain(shorten_middle(str(c), 14)) for c in class_names]
    ax.set_xticks(range(k), names, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    title = (
        "shares of each true class" if shares_in_cells else "counts (colour: share of the class)"
    )
    ax.set_title(title, fontsize=10)
    # White lines between the cells, as the report's table leaves gaps between its cells.
    ax.set_xticks(np.arange(k + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(k + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="both", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)


@styled
def confusion_figure(
    confusion: object, class_names: Sequence[str], normalize: bool = False
) -> Figure:
    """A confusion matrix (rows = true class) with the counts or, ``normalize``, the shares.

    Either way the colours follow each true class's shares (see the module docstring).
    """
    counts = confusion_counts(confusion, class_names)
    side = 2.2 + 0.45 * len(class_names)
    figure = new_figure(side + 0.4, side, constrained=True)
    _draw(figure.add_subplot(), counts, class_names, normalize)
    return figure


@styled
def confusion_pair_figure(confusion: object, class_names: Sequence[str]) -> Figure:
    """Counts and per-true-class shares side by side: sizes and rates in one picture."""
    counts = confusion_counts(confusion, class_names)
    side = 2.2 + 0.42 * len(class_names)
    figure = new_figure(2 * side + 0.6, side, constrained=True)
    left, right = figure.subplots(1, 2)
    _draw(left, counts, class_names, shares_in_cells=False)
    _draw(right, counts, class_names, shares_in_cells=True)
    return figure


def plot_confusion(
    confusion: object,
    class_names: Sequence[str],
    path: str | Path | None = None,
    normalize: bool = False,
) -> Figure:
    """The :func:`confusion_figure`; with ``path``, also written to that PNG file."""
    return saved_if(confusion_figure(confusion, class_names, normalize), path)


def plot_confusion_pair(
    confusion: object, class_names: Sequence[str], path: str | Path | None = None
) -> Figure:
    """The :func:`confusion_pair_figure`; with ``path``, also written to that PNG file."""
    return saved_if(confusion_pair_figure(confusion, class_names), path)
