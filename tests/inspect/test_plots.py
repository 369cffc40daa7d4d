"""The run's pictures: the right images are chosen, and every figure is a real PNG."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data.dataset import ImageDataset
from cnnlab.errors import CnnlabError
from cnnlab.inspect import plots
from cnnlab.models import create_model

CLASSES = ("1cell", "2cell", "groups", "rien")
ODD_NAME = "roi 117 - 114_1354-001.nd2 - C=0.tif"


def bacteria_like(n: int = 24, classes: tuple[str, ...] = CLASSES) -> ImageDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(20000, 40000, (n, 1, 28, 28), generator=generator, dtype=torch.int32)
    labels = torch.arange(n) % len(classes)
    paths = tuple(f"/data/{classes[i % len(classes)]}/{ODD_NAME}" for i in range(n))
    return ImageDataset(images, labels, classes, paths, subset="test", bit_depth=16)


def tiny_model(num_classes: int = 4) -> torch.nn.Module:
    model = create_model("lenet5", in_chans=1, num_classes=num_classes, input_size=(28, 28))
    model.standardize.set_statistics([30000.0], [5800.0])
    return model.eval()


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        return image.size


def test_shorten_middle_keeps_both_ends() -> None:
    short = plots.shorten_middle(ODD_NAME, 20)
    assert len(short) == 20
    assert short.startswith("roi 117 - ") and short.endswith("C=0.tif")
    assert "…" in short
    assert plots.shorten_middle("a.tif", 20) == "a.tif"


def test_plain_escapes_dollar_signs() -> None:
    assert plots.plain("cost $5 and $6.tif") == r"cost \$5 and \$6.tif"


def test_worst_indices_are_the_highest_losses_first() -> None:
    losses = np.array([0.1, 2.5, 0.7, 2.5, 9.0, 0.0])
    assert plots.worst_indices(losses, 3).tolist() == [4, 1, 3]
    assert plots.worst_indices(losses, 10).tolist() == np.argsort(-losses, kind="stable").tolist()


def test_confused_pairs_counts_off_diagonal_mistakes() -> None:
    labels = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    predictions = [1, 1, 0, 0, 1, 1, 0, 0, 0]
    # Hand count: (2->0) x3, (0->1) x2, (1->0) x1, (2->1) x1; ties in row-major order.
    assert plots.confused_pairs(labels, predictions, 3, pairs=3) == [
        (2, 0, 3),
        (0, 1, 2),
        (1, 0, 1),
    ]
    assert plots.confused_pairs([0, 1], [0, 1], 2) == []


def test_samples_grid_has_a_row_per_class(tmp_path: Path) -> None:
    dataset = bacteria_like()
    four = png_size(plots.plot_samples(dataset, tmp_path / "four.png", per_class=5))
    two_classes = dataset.select(np.flatnonzero(dataset.labels.numpy() < 2)).replace(
        class_names=CLASSES[:2], labels=dataset.labels[dataset.labels < 2]
    )
    two = png_size(plots.plot_samples(two_classes, tmp_path / "two.png", per_class=5))
    assert four[1] > 1.6 * two[1]
    with pytest.raises(CnnlabError):
        plots.plot_samples(dataset, tmp_path / "x.png", per_class=0)


def test_samples_grid_of_images_of_different_sizes(tmp_path: Path) -> None:
    images = [torch.full((1, 10 + i, 14), 1000 * i, dtype=torch.int32) for i in range(6)]
    dataset = ImageDataset(
        images, torch.tensor([0, 1, 0, 1, 0, 1]), ("a", "b"), tuple(f"{i}.tif" for i in range(6))
    )
    assert png_size(plots.plot_samples(dataset, tmp_path / "mixed.png", per_class=3))[0] > 100


def test_class_counts_from_datasets_or_tables(tmp_path: Path) -> None:
    dataset = bacteria_like()
    from_data = plots.plot_class_counts({"train": dataset, "test": None}, tmp_path / "a.png")
    table = {"train": {"a": 10, "b": 3}, "valid": {"a": 5, "b": 1}, "test": {"a": 2, "b": 1}}
    from_table = plots.plot_class_counts(table, tmp_path / "b.png")
    assert png_size(from_data)[0] > 300 and png_size(from_table)[0] > 300
    with pytest.raises(CnnlabError):
        plots.plot_class_counts({}, tmp_path / "c.png")


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


def test_read_history_parses_numbers_and_empty_cells(tmp_path: Path) -> None:
    path = write_history(
        tmp_path / "history.csv",
        [
            {
                "epoch": 1,
                "train_loss": 0.5,
                "train_accuracy": 0.8,
                "valid_loss": "",
                "valid_accuracy": "",
                "lr": 0.001,
                "seconds": 1.5,
            },
        ],
    )
    (row,) = plots.read_history(path)
    assert row["epoch"] == 1.0 and row["train_loss"] == 0.5 and row["valid_loss"] is None
    with pytest.raises(CnnlabError, match="no such history"):
        plots.read_history(tmp_path / "missing.csv")


def test_learning_curves_from_csv_with_and_without_validation(tmp_path: Path) -> None:
    rows = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "train_accuracy": 1 - 1 / (e + 1),
            "valid_loss": 1.1 / e,
            "valid_accuracy": 0.9 - 1 / (e + 2),
            "lr": 0.01,
            "seconds": 2.0,
        }
        for e in range(1, 8)
    ]
    path = write_history(tmp_path / "history.csv", rows)
    assert png_size(plots.plot_learning_curves(path, tmp_path / "c.png", best_epoch=5))[0] > 600
    no_valid = [{**row, "valid_loss": None, "valid_accuracy": None} for row in rows]
    assert png_size(plots.plot_learning_curves(no_valid, tmp_path / "d.png", best_epoch=7))
    assert png_size(plots.plot_epoch_times(rows, tmp_path / "t.png"))


def test_confusion_plots_handle_empty_rows_and_many_classes(tmp_path: Path) -> None:
    confusion = np.array([[5, 1, 0], [0, 0, 0], [2, 0, 7]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an empty class must not divide by zero
        plots.plot_confusion(confusion, ["a", "b", "c"], tmp_path / "n.png", normalize=True)
    plots.plot_confusion(confusion, ["a", "b", "c"], tmp_path / "c.png")
    twelve = np.random.default_rng(0).integers(0, 40, (12, 12))
    wide = plots.plot_confusion_pair(twelve, [f"class {i}" for i in range(12)], tmp_path / "p.png")
    assert png_size(wide)[0] > png_size(tmp_path / "c.png")[0]
    with pytest.raises(CnnlabError, match="shape"):
        plots.plot_confusion(confusion, ["a", "b"], tmp_path / "bad.png")


def test_worst_cases_and_confused_pairs_render_awkward_file_names(tmp_path: Path) -> None:
    dataset = bacteria_like(12)
    dataset = dataset.replace(paths=(*dataset.paths[:-1], "/data/rien/price $5 and $6.tif"))
    model = tiny_model()
    worst = plots.plot_worst_cases(model, dataset, tmp_path / "worst.png", count=6, columns=3)
    assert png_size(worst)[0] > 500
    pairs = plots.plot_confused_pairs(model, dataset, tmp_path / "pairs.png")
    assert png_size(pairs)[0] > 100


def test_confused_pairs_without_mistakes_says_so(tmp_path: Path) -> None:
    dataset = bacteria_like(8)
    labels = dataset.labels.numpy()
    perfect = {
        "labels": labels,
        "predictions": labels,
        "probabilities": np.eye(4)[labels],
        "loss": np.zeros(8),
    }
    path = plots.plot_confused_pairs(None, dataset, tmp_path / "none.png", samples=perfect)
    assert png_size(path)[1] < 200  # the one-line note, not a grid


def test_display_pixels_stretch_16_bit_images_to_8_bits() -> None:
    image = torch.arange(20000, 20000 + 28 * 28, dtype=torch.int32).reshape(1, 28, 28)
    pixels = plots.display_pixels(image)
    assert pixels.dtype == np.uint8 and pixels.shape == (28, 28)
    assert pixels.min() == 0 and pixels.max() == 255  # stretched, not a flat grey square
    assert np.all(np.diff(pixels.ravel().astype(int)) >= 0)  # the ramp keeps its order


def test_tile_grid_centres_tiles_of_any_size_between_white_gaps() -> None:
    small = np.zeros((2, 2), dtype=np.uint8)
    tall = np.full((4, 2), 100, dtype=np.uint8)
    grid = plots.tile_grid([[small, tall], [tall]], columns=2, gap=1)
    # Cells are 4x2 (the largest tile); 2 rows and 2 columns with one-pixel gaps.
    assert grid.shape == (4 + 1 + 4, 2 + 1 + 2)
    assert (grid[1:3, 0:2] == 0).all() and (grid[0, 0:2] == 255).all()  # centred vertically
    assert (grid[0:4, 3:5] == 100).all()
    assert (grid[:, 2] == 255).all() and (grid[4, :] == 255).all()  # the gaps
    assert (grid[5:9, 3:5] == 255).all()  # an empty cell stays background
    colour = plots.tile_grid([[small, np.zeros((2, 2, 3), dtype=np.uint8)]], columns=2)
    assert colour.shape == (2, 2 + 2 + 2, 3)


def test_png_of_round_trips_the_pixels(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7), dtype=np.uint8)
    path = tmp_path / "p.png"
    path.write_bytes(plots.png_of(pixels))
    with Image.open(path) as image:
        assert image.size == (7, 5)
        assert np.array_equal(np.asarray(image), pixels)


def test_sample_rows_pick_distinct_images_of_each_class() -> None:
    dataset = bacteria_like(24)
    rows = plots.sample_rows(dataset, per_class=4, seed=1)
    labels = dataset.labels.numpy()
    assert [name for name, _, _ in rows] == list(CLASSES)
    for index, (_, count, chosen) in enumerate(rows):
        assert count == 6 and len(set(chosen.tolist())) == 4
        assert (labels[chosen] == index).all()
    assert all(len(chosen) == 6 for *_, chosen in plots.sample_rows(dataset, per_class=50))
