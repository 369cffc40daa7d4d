"""The pictures of a run: samples, class counts, learning curves, confusions and worst cases.

Every function draws with matplotlib's object API (a ``Figure`` on the Agg canvas, never
``pyplot``), so plotting works without a display, from threads and inside tests, and never leaves
global figures behind. Each writes one PNG to ``path`` and returns that path. The figures are
meant to be read by people who are not looking at numbers: few colours, labelled axes, values
written where the eye is (on bars, in cells), and file names on the images so a surprising
mistake can be traced back to its source file.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np
import torch
from matplotlib.figure import Figure

from cnnlab.data.dataset import ImageDataset
from cnnlab.errors import CnnlabError
from cnnlab.inspect.display import DPI, cnnlab_style, to_display

P = ParamSpec("P")
R = TypeVar("R")

SUBSET_COLOURS = {"train": "#4e79a7", "valid": "#f28e2b", "test": "#59a14f"}
EXTRA_COLOURS = ("#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#e15759")
TRUE_COLOUR = "#2e7d32"
PREDICTED_COLOUR = "#c62828"
OTHER_COLOUR = "#b0b7c3"


# ------------------------------------------------------------------------------ helpers
def new_figure(width: float, height: float) -> Figure:
    """A pyplot-free figure whose axes make room for their labels (constrained layout)."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Writes ``figure`` as a PNG to ``path`` (parents created) and returns the path.

    Every figure here uses constrained layout, which already fits the labels inside the
    canvas, so the figure is saved as laid out: a tight bounding box would draw it twice.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png", dpi=DPI)
    except OSError as error:
        raise CnnlabError(f"cannot write the figure {path}: {error.strerror or error}") from None
    return path


def styled(function: Callable[P, R]) -> Callable[P, R]:
    """Runs a plotting function inside cnnlab's matplotlib style (fonts are read at drawing)."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with cnnlab_style():
            return function(*args, **kwargs)

    return wrapper


def plain(text: object) -> str:
    """``text`` safe for matplotlib: a ``$`` in a file name must not start math mode."""
    return str(text).replace("$", r"\$")


def shorten_middle(text: str, width: int = 30) -> str:
    """``text`` cut in the middle with an ellipsis when longer than ``width`` characters.

    The start of a microscopy file name says which field it is and the end which channel, so
    both ends are kept and the middle is dropped.
    """
    if len(text) <= width:
        return text
    keep = max(width - 1, 2)
    head = math.ceil(keep / 2)
    return text[:head] + "…" + text[len(text) - (keep - head) :]


def show_image(ax, image: torch.Tensor | np.ndarray) -> None:
    """Draws one dataset image on ``ax``, contrast-stretched, without ticks or frame.

    Every image gets its own percentile stretch (:func:`~cnnlab.inspect.display.to_display`):
    16-bit phase-contrast counts would otherwise show as a flat grey square.
    """
    shown = to_display(image)
    ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0.0, vmax=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _raw(dataset: ImageDataset) -> ImageDataset:
    return dataset.raw() if dataset.normalizer is not None else dataset


def _colour(subset: str, index: int) -> str:
    return SUBSET_COLOURS.get(subset, EXTRA_COLOURS[index % len(EXTRA_COLOURS)])


@styled
def _empty_figure(message: str, path: str | Path) -> Path:
    figure = new_figure(6, 1.2)
    figure.text(0.5, 0.5, plain(message), ha="center", va="center", fontsize=11, color="#555")
    return save_figure(figure, path)


# ------------------------------------------------------------------------------ image tiles
def display_pixels(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """``image`` as 8-bit screen pixels, ``(H, W)`` or ``(H, W, 3)``, contrast-stretched.

    The per-image percentile stretch of :func:`~cnnlab.inspect.display.to_display` is what
    makes 16-bit phase-contrast crops visible at all; 8 bits are all a screen shows.
    """
    return np.round(to_display(image) * 255.0).astype(np.uint8)


def tile_grid(
    rows: Sequence[Sequence[np.ndarray]],
    columns: int,
    gap: int = 2,
    cell: tuple[int, int] | None = None,
    background: int = 255,
) -> np.ndarray:
    """Rows of :func:`display_pixels` tiles as one 8-bit image, ``gap`` pixels between cells.

    Every tile is centred in a cell of the largest tile's size (or ``cell``), so images of
    different sizes keep their own proportions. The result is ``(H, W)`` when every tile is
    grey and ``(H, W, 3)`` when any is colour. Composing one picture instead of one matplotlib
    axes per image is what keeps a grid of a hundred images fast to draw.
    """
    tiles = [tile for row in rows for tile in row]
    if cell is None:
        cell = (
            max((t.shape[0] for t in tiles), default=1),
            max((t.shape[1] for t in tiles), default=1),
        )
    colour = any(t.ndim == 3 for t in tiles)
    height, width = cell
    columns = max(1, columns)
    shape = (
        len(rows) * height + max(len(rows) - 1, 0) * gap,
        columns * width + (columns - 1) * gap,
    )
    grid = np.full((*shape, 3) if colour else shape, background, dtype=np.uint8)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row[:columns]):
            if colour and tile.ndim == 2:
                tile = np.repeat(tile[..., None], 3, axis=2)
            tile = tile[:height, :width]
            top = r * (height + gap) + (height - tile.shape[0]) // 2
            left = c * (width + gap) + (width - tile.shape[1]) // 2
            grid[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    return grid


def png_of(pixels: np.ndarray) -> bytes:
    """8-bit ``(H, W)`` or ``(H, W, 3)`` pixels as PNG bytes (Pillow, no figure involved)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


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


# ------------------------------------------------------------------------------ data
@styled
def plot_samples(
    dataset: ImageDataset, path: str | Path, per_class: int = 8, seed: int = 0
) -> Path:
    """A grid of random images, one row per class labelled with its name and count.

    Seeing the classes side by side is the first check of a dataset: wrong folders, empty
    crops and classes that differ only by brightness show at a glance. The grid is one
    composed picture (:func:`tile_grid`) drawn with a single ``imshow``.
    """
    rows = sample_rows(dataset, per_class, seed)
    if len(dataset) == 0:
        return _empty_figure(f"{dataset.name}: no images", path)
    dataset = _raw(dataset)
    tiles = [[display_pixels(dataset.images[int(i)]) for i in chosen] for _, _, chosen in rows]
    grid = tile_grid(tiles, per_class, gap=2)
    cell = 0.95 if per_class <= 10 else 0.75
    figure = new_figure(1.6 + per_class * cell, 0.3 + len(rows) * cell)
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
    return save_figure(figure, path)


@styled
def plot_class_counts(
    datasets: Mapping[str, ImageDataset | None] | Mapping[str, Mapping[str, int]],
    path: str | Path,
) -> Path:
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
    figure = new_figure(max(5.0, 1.0 + 0.9 * len(classes) * max(1, len(subsets) / 2)), 3.4)
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
    return save_figure(figure, path)


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
def plot_learning_curves(
    history: str | Path | Sequence[Mapping[str, object]],
    path: str | Path,
    best_epoch: int | None = None,
) -> Path:
    """Loss and accuracy per epoch, training against validation, the best epoch marked.

    A validation loss that turns upwards while the training loss keeps falling is what
    overfitting looks like; the marked best epoch is the one whose weights the run kept.
    """
    rows = read_history(history)
    if not rows:
        return _empty_figure("no epochs in the history", path)
    figure = new_figure(10, 3.6)
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
    return save_figure(figure, path)


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
def plot_epoch_times(
    history: str | Path | Sequence[Mapping[str, object]], path: str | Path
) -> Path:
    """Seconds per epoch as bars: a slow first epoch or a growing time shows at once."""
    rows = read_history(history)
    epochs, seconds = _series(rows, "seconds")
    if not epochs:
        return _empty_figure("no epoch times in the history", path)
    figure = new_figure(10, 2.2)
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
    return save_figure(figure, path)


# ------------------------------------------------------------------------------ confusion
def _draw_confusion(ax, confusion: np.ndarray, class_names: Sequence[str], normalize: bool) -> None:
    k = len(class_names)
    supports = confusion.sum(axis=1, keepdims=True)
    shares = np.divide(
        confusion, supports, out=np.zeros_like(confusion, dtype=float), where=supports > 0
    )
    values = shares if normalize else confusion
    top = 1.0 if normalize else max(1, int(confusion.max()))
    ax.imshow(values, cmap="Blues", vmin=0, vmax=top)
    fontsize = 11 if k <= 4 else 9 if k <= 7 else 7 if k <= 12 else 5
    for i in range(k):
        for j in range(k):
            value = values[i, j]
            if normalize:
                text = "0" if confusion[i, j] == 0 else f"{value:.0%}" if value >= 0.01 else "<1%"
            else:
                text = str(int(value))
            dark = value / top > 0.55
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=fontsize,
                color="white" if dark else ("#999" if value == 0 else "#1a1a1a"),
                fontweight="bold" if i == j else "normal",
            )
    names = [plain(shorten_middle(str(c), 14)) for c in class_names]
    ax.set_xticks(range(k), names, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("shares of each true class" if normalize else "counts", fontsize=10)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _confusion_array(confusion: object, class_names: Sequence[str]) -> np.ndarray:
    array = np.asarray(confusion, dtype=np.int64)
    k = len(class_names)
    if array.shape != (k, k):
        raise CnnlabError(f"confusion matrix of shape {array.shape} for {k} class names")
    return array


@styled
def plot_confusion(
    confusion: object, class_names: Sequence[str], path: str | Path, normalize: bool = False
) -> Path:
    """A confusion matrix heatmap (rows = true class) with the counts or shares in the cells.

    ``normalize=True`` divides each row by its class's number of images, so a small class's
    errors are as visible as a large one's.
    """
    array = _confusion_array(confusion, class_names)
    side = 2.2 + 0.45 * len(class_names)
    figure = new_figure(side + 0.4, side)
    _draw_confusion(figure.add_subplot(), array, class_names, normalize)
    return save_figure(figure, path)


@styled
def plot_confusion_pair(confusion: object, class_names: Sequence[str], path: str | Path) -> Path:
    """Counts and per-true-class shares side by side: sizes and rates in one picture."""
    array = _confusion_array(confusion, class_names)
    side = 2.2 + 0.42 * len(class_names)
    figure = new_figure(2 * side + 0.6, side)
    left, right = figure.subplots(1, 2)
    _draw_confusion(left, array, class_names, normalize=False)
    _draw_confusion(right, array, class_names, normalize=True)
    return save_figure(figure, path)


# ------------------------------------------------------------------------------ mistakes
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
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (np.asarray(labels), np.asarray(predictions)), 1)
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


@styled
def plot_confused_pairs(
    model: torch.nn.Module,
    dataset: ImageDataset,
    path: str | Path,
    pairs: int = 3,
    per_pair: int = 4,
    samples: dict | None = None,
) -> Path:
    """The most frequent (true, predicted) mix-ups, each with its most confident mistakes.

    ``samples`` is a precomputed :func:`sample_results` of ``model`` on ``dataset``.
    """
    samples = samples if samples is not None else sample_results(model, dataset)
    dataset = _raw(dataset)
    labels, predictions = samples["labels"], samples["predictions"]
    chosen = confused_pairs(labels, predictions, dataset.num_classes, pairs)
    if not chosen:
        return _empty_figure("no mistakes: no pair of classes is confused", path)
    figure = new_figure(2.6 + per_pair * 1.25, 0.2 + 1.45 * len(chosen))
    grid = figure.add_gridspec(len(chosen), per_pair + 1, width_ratios=[2.2] + [1] * per_pair)
    confidence = samples["probabilities"][np.arange(len(labels)), predictions]
    for row, (true, predicted, count) in enumerate(chosen):
        members = np.flatnonzero((labels == true) & (predictions == predicted))
        members = members[np.argsort(-confidence[members], kind="stable")][:per_pair]
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
    return save_figure(figure, path)


@styled
def plot_worst_cases(
    model: torch.nn.Module,
    dataset: ImageDataset,
    path: str | Path,
    count: int = 16,
    columns: int = 4,
    samples: dict | None = None,
) -> Path:
    """The ``count`` images with the highest loss: what the model gets most wrong, and how.

    Each case shows the image, ``true X / pred Y (p=..)``, the probability of every class (the
    true class's bar in green, the predicted class's in red) and its source file name, so a
    mislabelled file or an odd crop can be found and fixed. ``samples`` is a precomputed
    :func:`sample_results` of ``model`` on ``dataset``.
    """
    if count < 1:
        raise CnnlabError(f"count must be at least 1, not {count}")
    samples = samples if samples is not None else sample_results(model, dataset)
    dataset = _raw(dataset)
    if len(dataset) == 0:
        return _empty_figure(f"{dataset.name}: no images", path)
    worst = worst_indices(samples["loss"], count)
    columns = max(1, min(columns, len(worst)))
    rows = math.ceil(len(worst) / columns)
    k = dataset.num_classes
    cell_height = max(1.75, 0.17 * k + 0.95)
    figure = new_figure(columns * 2.7, rows * cell_height + 0.3)
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
            _patch(TRUE_COLOUR, "true class"),
            _patch(PREDICTED_COLOUR, "predicted class"),
            _patch(OTHER_COLOUR, "other classes"),
        ],
        loc="outside lower center",
        ncols=3,
        frameon=False,
        fontsize=8,
    )
    return save_figure(figure, path)


def _patch(colour: str, label: str):
    from matplotlib.patches import Patch

    return Patch(facecolor=colour, label=label)
