"""The pictures of the data and of training draw exactly the numbers they are given."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from cnnlab.data.dataset import ImageDataset
from cnnlab.errors import CnnlabError
from cnnlab.inspect import plots
from cnnlab.inspect.display import display_pixels
from cnnlab.inspect.figures import DPI, tile_grid

CLASSES = ("1cell", "2cell", "groups", "rien")
ODD_NAME = "roi 117 - 114_1354-001.nd2 - C=0.tif"


def bacteria_like(n: int = 24, classes: tuple[str, ...] = CLASSES) -> ImageDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(20000, 40000, (n, 1, 28, 28), generator=generator, dtype=torch.int32)
    labels = torch.arange(n) % len(classes)
    paths = tuple(f"/data/{classes[i % len(classes)]}/{ODD_NAME}" for i in range(n))
    return ImageDataset(images, labels, classes, paths, subset="test", bit_depth=16)


def png_matches_figure(path: Path, figure) -> None:
    """The PNG at ``path`` is ``figure`` as laid out: its inches times the resolution."""
    width, height = figure.get_size_inches() * DPI  # Agg makes whole pixels of these
    assert figure.dpi == DPI
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == pytest.approx((width, height), abs=1)


def bar_heights(ax) -> list[float]:
    return [patch.get_height() for patch in ax.patches]


# ------------------------------------------------------------------------------ samples
def test_samples_grid_shows_the_chosen_images_one_row_per_class(tmp_path: Path) -> None:
    dataset = bacteria_like()
    figure = plots.samples_figure(dataset, per_class=5, seed=3)
    (ax,) = figure.axes
    rows = plots.sample_rows(dataset, 5, seed=3)
    expected = tile_grid(
        [[display_pixels(dataset.images[int(i)]) for i in chosen] for *_, chosen in rows], 5
    )
    np.testing.assert_array_equal(ax.images[0].get_array(), expected)
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"{c}\n(6)" for c in CLASSES]
    path = tmp_path / "four.png"
    returned = plots.plot_samples(dataset, path, per_class=5, seed=3)
    png_matches_figure(path, figure)
    # The figure written is the one returned, and without a path nothing is written.
    assert returned.get_size_inches().tolist() == figure.get_size_inches().tolist()
    assert isinstance(plots.plot_samples(dataset, per_class=5), Figure)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["four.png"]
    with pytest.raises(CnnlabError):
        plots.plot_samples(dataset, tmp_path / "x.png", per_class=0)


def test_samples_grid_of_images_of_different_sizes_keeps_their_shapes() -> None:
    images = [torch.full((1, 10 + i, 14), 1000 * i, dtype=torch.int32) for i in range(6)]
    dataset = ImageDataset(
        images, torch.tensor([0, 1, 0, 1, 0, 1]), ("a", "b"), tuple(f"{i}.tif" for i in range(6))
    )
    (ax,) = plots.samples_figure(dataset, per_class=3).axes
    grid = ax.images[0].get_array()
    # Cells of the largest image (15 x 14), three per row, 2-pixel gaps, one row per class.
    assert grid.shape == (2 * 15 + 2, 3 * 14 + 2 * 2)
    assert (grid[:, 14:16] == 255).all() and (grid[15:17] == 255).all()


def test_samples_of_an_empty_dataset_say_so() -> None:
    empty = bacteria_like().select([])
    figure = plots.samples_figure(empty)
    assert [t.get_text() for t in figure.texts] == ["dataset: no images"]


# ------------------------------------------------------------------------------ counts
def test_class_count_bars_are_the_counts_from_datasets_or_tables(tmp_path: Path) -> None:
    dataset = bacteria_like(22)  # 6, 6, 5, 5 images
    (ax,) = plots.class_counts_figure({"train": dataset, "test": None}).axes
    assert bar_heights(ax) == [6, 6, 5, 5]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(CLASSES)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train (22)"]
    table = {"train": {"a": 10, "b": 3}, "valid": {"a": 5, "b": 1}, "test": {"a": 2}}
    figure = plots.class_counts_figure(table)
    (ax,) = figure.axes
    assert bar_heights(ax) == [10, 3, 5, 1, 2, 0]  # subset by subset; a missing class is 0
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["train (13)", "valid (6)", "test (2)"]
    assert [t.get_text() for t in ax.texts] == ["10", "3", "5", "1", "2", "0"]  # on the bars
    plots.plot_class_counts(table, tmp_path / "b.png")
    png_matches_figure(tmp_path / "b.png", figure)
    with pytest.raises(CnnlabError):
        plots.plot_class_counts({}, tmp_path / "c.png")


# ------------------------------------------------------------------------------ intensities
def intensity_dataset() -> ImageDataset:
    """Three classes of 16-bit images whose brightness differs by class, of two sizes."""
    rng = np.random.default_rng(7)
    images, labels = [], []
    for label, (centre, count) in enumerate([(22000, 9), (30000, 14), (31000, 5)]):
        for _ in range(count):
            size = int(rng.choice([12, 16]))
            pixels = rng.normal(centre, 1500, (1, size, size)).clip(0, 65535)
            images.append(torch.from_numpy(pixels.astype(np.int32)))
            labels.append(label)
    return ImageDataset(
        images,
        torch.tensor(labels),
        ("dim", "mid", "bright"),
        tuple(f"{i}.tif" for i in range(len(images))),
        bit_depth=16,
    )


def test_mean_intensities_are_in_the_images_own_units() -> None:
    dataset = intensity_dataset()
    expected = [float(np.mean(image.numpy(), dtype=np.float64)) for image in dataset.images]
    np.testing.assert_allclose(plots.mean_intensities(dataset), expected, rtol=1e-12)
    uniform = bacteria_like(8)
    means = uniform.images.numpy().reshape(8, -1).mean(axis=1, dtype=np.float64)
    np.testing.assert_allclose(plots.mean_intensities(uniform), means, rtol=1e-12)
    normalized = uniform.with_subset(None).normalize()  # z-scored: back to counts first
    np.testing.assert_allclose(plots.mean_intensities(normalized), means, rtol=1e-5)


def test_intensity_histograms_count_each_class_on_shared_bins(tmp_path: Path) -> None:
    dataset = intensity_dataset()
    means = np.array([image.double().mean().item() for image in dataset.images])
    labels = dataset.labels.numpy()
    edges = np.histogram_bin_edges(means, bins=12)
    figure = plots.intensity_histograms_figure(dataset, bins=12)
    axes = figure.axes
    assert len(axes) == 3
    for index, ax in enumerate(axes):
        counts, _ = np.histogram(means[labels == index], bins=edges)
        assert bar_heights(ax) == counts.tolist()
        lefts = [patch.get_x() for patch in ax.patches]
        np.testing.assert_allclose(lefts, edges[:-1])  # the same bins for every class
        assert ax.get_ylabel().startswith(f"{dataset.class_names[index]} ({counts.sum()})")
    assert "16-bit counts" in axes[-1].get_xlabel()
    assert max(edges) < 32000 < 65535  # the data's range, not the full 16-bit scale
    path = tmp_path / "h.png"
    plots.plot_intensity_histograms(dataset, path, bins=12)
    png_matches_figure(path, figure)
    with pytest.raises(CnnlabError, match="bins"):
        plots.intensity_histograms_figure(dataset, bins=0)


def test_intensity_histograms_of_8_bit_images_say_their_units() -> None:
    images = torch.tensor([0, 50, 100, 250], dtype=torch.uint8).view(4, 1, 1, 1).repeat(1, 1, 3, 3)
    dataset = ImageDataset(images, torch.tensor([0, 0, 1, 1]), ("a", "b"), tuple("wxyz"))
    axes = plots.intensity_histograms_figure(dataset, bins=5).axes
    assert bar_heights(axes[0]) == [1, 1, 0, 0, 0] and bar_heights(axes[1]) == [0, 0, 1, 0, 1]
    assert "8-bit values, 0–255" in axes[-1].get_xlabel()


# ------------------------------------------------------------------------------ training
def write_history(path: Path, rows: list[dict]) -> Path:
    columns = [
        "epoch",
        "train_loss",
        "train_accuracy",
        "valid_loss",
        "valid_accuracy",
        "lr",
        "seconds",
    ]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def history_rows(epochs: int = 7) -> list[dict]:
    return [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "train_accuracy": 1 - 1 / (e + 1),
            "valid_loss": 1.1 / e,
            "valid_accuracy": 0.9 - 1 / (e + 2),
            "lr": 0.01,
            "seconds": 2.0 + e / 10,
        }
        for e in range(1, epochs + 1)
    ]


def test_read_history_parses_numbers_and_empty_cells(tmp_path: Path) -> None:
    row = {**history_rows(1)[0], "valid_loss": "", "valid_accuracy": ""}
    (parsed,) = plots.read_history(write_history(tmp_path / "history.csv", [row]))
    assert parsed["epoch"] == 1.0 and parsed["train_loss"] == 1.0 and parsed["valid_loss"] is None
    with pytest.raises(CnnlabError, match="no such history"):
        plots.read_history(tmp_path / "missing.csv")


def test_learning_curves_draw_the_history_and_mark_the_best_epoch(tmp_path: Path) -> None:
    rows = history_rows()
    path = write_history(tmp_path / "history.csv", rows)
    figure = plots.learning_curves_figure(path, best_epoch=5)
    loss_ax, accuracy_ax = figure.axes
    for ax, metric in ((loss_ax, "loss"), (accuracy_ax, "accuracy")):
        train, valid, star = (line for line in ax.lines if len(line.get_xdata()) != 2)
        assert list(train.get_xdata()) == list(range(1, 8))
        np.testing.assert_allclose(train.get_ydata(), [r[f"train_{metric}"] for r in rows])
        np.testing.assert_allclose(valid.get_ydata(), [r[f"valid_{metric}"] for r in rows])
        assert (star.get_xdata()[0], star.get_ydata()[0]) == (5, rows[4][f"valid_{metric}"])
    assert "best epoch 5" in loss_ax.texts[0].get_text()
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == ["training", "validation"]
    plots.plot_learning_curves(path, tmp_path / "c.png", best_epoch=5)
    png_matches_figure(tmp_path / "c.png", figure)


def test_learning_curves_without_validation_mark_the_training_value() -> None:
    rows = [{**row, "valid_loss": None, "valid_accuracy": None} for row in history_rows()]
    loss_ax, _ = plots.learning_curves_figure(rows, best_epoch=7).axes
    curves = [line for line in loss_ax.lines if len(line.get_xdata()) not in (1, 2)]
    assert len(curves) == 1  # training only
    star = next(line for line in loss_ax.lines if len(line.get_xdata()) == 1)
    assert star.get_ydata()[0] == rows[6]["train_loss"]


def test_epoch_times_are_bars_with_their_mean(tmp_path: Path) -> None:
    rows = history_rows(4)
    figure = plots.epoch_times_figure(rows)
    (ax,) = figure.axes
    np.testing.assert_allclose(bar_heights(ax), [2.1, 2.2, 2.3, 2.4])
    (mean_line,) = ax.lines
    assert mean_line.get_ydata()[0] == pytest.approx(2.25)
    assert ax.texts[0].get_text() == "mean 2.25 s"
    plots.plot_epoch_times(rows, tmp_path / "t.png")
    png_matches_figure(tmp_path / "t.png", figure)
    empty = plots.epoch_times_figure([{"epoch": 1.0, "seconds": None}])
    assert [t.get_text() for t in empty.texts] == ["no epoch times in the history"]
