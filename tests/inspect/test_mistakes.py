"""The worst cases and the confused pairs pick the right images and draw their numbers."""

from __future__ import annotations

from pathlib import Path

import matplotlib.colors as mcolors
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from cnnlab.data.dataset import ImageDataset
from cnnlab.errors import CnnlabError
from cnnlab.inspect import mistakes
from cnnlab.inspect.display import to_display
from cnnlab.inspect.figures import DPI, plain, shorten_middle
from cnnlab.models import create_model

CLASSES = ("1cell", "2cell", "groups", "rien")
ODD_NAME = "roi 117 - 114_1354-001.nd2 - C=0.tif"


def bacteria_like(n: int = 12) -> ImageDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(20000, 40000, (n, 1, 28, 28), generator=generator, dtype=torch.int32)
    labels = torch.arange(n) % len(CLASSES)
    paths = tuple(f"/data/{CLASSES[i % 4]}/{i:02d} {ODD_NAME}" for i in range(n))
    return ImageDataset(images, labels, CLASSES, paths, subset="test", bit_depth=16)


def made_up_results(dataset: ImageDataset, seed: int = 0) -> dict:
    """Per-image results as :func:`cnnlab.evaluate.per_sample` gives them, chosen at random."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (len(dataset), 4))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = dataset.labels.numpy()
    return {
        "labels": labels,
        "predictions": probabilities.argmax(axis=1),
        "probabilities": probabilities,
        "loss": -np.log(probabilities[np.arange(len(labels)), labels]),
    }


def test_worst_indices_are_the_highest_losses_first() -> None:
    losses = np.array([0.1, 2.5, 0.7, 2.5, 9.0, 0.0])
    assert mistakes.worst_indices(losses, 3).tolist() == [4, 1, 3]
    assert (
        mistakes.worst_indices(losses, 10).tolist() == np.argsort(-losses, kind="stable").tolist()
    )


def test_confused_pairs_counts_off_diagonal_mistakes() -> None:
    labels = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    predictions = [1, 1, 0, 0, 1, 1, 0, 0, 0]
    # Hand count: (2->0) x3, (0->1) x2, (1->0) x1, (2->1) x1; ties in row-major order.
    assert mistakes.confused_pairs(labels, predictions, 3, pairs=3) == [
        (2, 0, 3),
        (0, 1, 2),
        (1, 0, 1),
    ]
    assert mistakes.confused_pairs([0, 1], [0, 1], 2) == []


def test_worst_cases_show_the_highest_losses_with_every_probability(tmp_path: Path) -> None:
    dataset = bacteria_like()
    dataset = dataset.replace(paths=(*dataset.paths[:-1], "/data/rien/price $5 and $6.tif"))
    samples = made_up_results(dataset)
    samples["loss"][-1] = 99.0  # the file with dollar signs is the worst
    figure = mistakes.worst_cases_figure(None, dataset, count=6, columns=3, samples=samples)
    worst = np.argsort(-samples["loss"], kind="stable")[:6]
    cells = [cell for row in figure.subfigs for cell in np.atleast_1d(row)][:6]
    for cell, index in zip(cells, worst, strict=True):
        true, predicted = samples["labels"][index], samples["predictions"][index]
        p = samples["probabilities"][index]
        title = cell._suptitle.get_text()
        assert title.startswith(f"true {CLASSES[true]} / pred {CLASSES[predicted]}")
        assert title.endswith(f"(p={p[predicted]:.2f})")
        image_ax, bars_ax = cell.axes
        np.testing.assert_array_equal(
            image_ax.images[0].get_array(), to_display(dataset.images[index])
        )
        np.testing.assert_allclose([bar.get_width() for bar in bars_ax.patches], p)
        colours = [mcolors.to_hex(bar.get_facecolor()) for bar in bars_ax.patches]
        assert colours[true] == mistakes.TRUE_COLOUR
        if predicted != true:
            assert colours[predicted] == mistakes.PREDICTED_COLOUR
        name = plain(shorten_middle(Path(dataset.paths[index]).name, 30))
        assert cell._supxlabel.get_text() == name
    assert cells[0]._supxlabel.get_text() == r"price \$5 and \$6.tif"  # no math mode
    path = tmp_path / "w.png"
    assert isinstance(mistakes.plot_worst_cases(None, dataset, path, 6, 3, samples), Figure)
    width, height = figure.get_size_inches() * DPI  # Agg makes whole pixels of these
    with Image.open(path) as image:
        assert image.size == pytest.approx((width, height), abs=1)
    with pytest.raises(CnnlabError, match="count"):
        mistakes.worst_cases_figure(None, dataset, count=0, samples=samples)


def test_confused_pairs_show_the_most_confident_mistakes_of_each_pair() -> None:
    dataset = bacteria_like(12)
    samples = made_up_results(dataset, seed=3)
    chosen = mistakes.confused_pairs(samples["labels"], samples["predictions"], 4, 2)
    figure = mistakes.confused_pairs_figure(None, dataset, pairs=2, per_pair=3, samples=samples)
    labels = [ax.texts[0].get_text() for ax in figure.axes if ax.texts]
    assert labels == [
        f"true {CLASSES[t]}\n→ predicted {CLASSES[p]}\n{count} image(s)" for t, p, count in chosen
    ]
    shown = [ax.get_title() for ax in figure.axes if ax.images]
    expected = []
    confidence = samples["probabilities"].max(axis=1)
    for true, predicted, _ in chosen:
        members = np.flatnonzero(
            (samples["labels"] == true) & (samples["predictions"] == predicted)
        )
        best = sorted(members, key=lambda i: -confidence[i])[:3]
        expected += [f"p={confidence[i]:.2f}" for i in best]
    assert shown == expected


def test_confused_pairs_without_mistakes_says_so() -> None:
    dataset = bacteria_like(8)
    labels = dataset.labels.numpy()
    perfect = {
        "labels": labels,
        "predictions": labels,
        "probabilities": np.eye(4)[labels],
        "loss": np.zeros(8),
    }
    figure = mistakes.confused_pairs_figure(None, dataset, samples=perfect)
    assert [t.get_text() for t in figure.texts] == ["no mistakes: no pair of classes is confused"]


def test_the_model_is_scored_when_no_results_are_given(tmp_path: Path) -> None:
    model = create_model("lenet5", in_chans=1, num_classes=4, input_size=(28, 28))
    model.standardize.set_statistics([30000.0], [5800.0])
    dataset = bacteria_like(8)
    samples = mistakes.sample_results(model.eval(), dataset)
    scored = mistakes.worst_cases_figure(model, dataset, count=4)
    given = mistakes.worst_cases_figure(None, dataset, count=4, samples=samples)
    titles = [[c._suptitle.get_text() for c in np.ravel(f.subfigs)] for f in (scored, given)]
    assert titles[0] == titles[1]
    mistakes.plot_confused_pairs(model, dataset, tmp_path / "pairs.png")
    assert (tmp_path / "pairs.png").is_file()
