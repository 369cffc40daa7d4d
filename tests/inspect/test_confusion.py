"""One confusion matrix: shares and colours from counts, and the figure drawing exactly those."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from cnnlab.errors import CnnlabError
from cnnlab.evaluate.metrics import confusion_matrix
from cnnlab.inspect import confusion
from cnnlab.inspect.figures import DPI, figure_png, png_pixels

COUNTS = np.array([[5, 1, 0], [0, 0, 0], [2, 0, 7]])
NAMES = ["a", "b", "c"]


def test_row_shares_divide_by_each_true_class_and_leave_empty_classes_at_zero() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an empty class must not divide by zero
        shares = confusion.row_shares(COUNTS)
    np.testing.assert_allclose(shares, [[5 / 6, 1 / 6, 0], [0, 0, 0], [2 / 9, 0, 7 / 9]])


def test_counts_are_checked_against_the_class_names() -> None:
    labels, predictions = np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0])
    counts = confusion.confusion_counts(confusion_matrix(labels, predictions, 3), NAMES)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert confusion.confusion_counts(COUNTS.tolist(), NAMES).dtype == np.int64
    with pytest.raises(CnnlabError, match=r"shape \(3, 3\) for 2 class names"):
        confusion.confusion_counts(COUNTS, ["a", "b"])
    with pytest.raises(CnnlabError, match="uneven rows"):
        confusion.confusion_counts([[1, 2], [3]], ["a", "b"])
    with pytest.raises(CnnlabError, match="negative"):
        confusion.confusion_counts([[1, -1], [0, 1]], ["a", "b"])


def test_colours_run_from_white_to_blue_or_red_by_the_square_root_of_the_share() -> None:
    assert confusion.share_colour(9, 1.0, diagonal=True) == (confusion.CORRECT, "#fff")
    assert confusion.share_colour(9, 1.0, diagonal=False) == (confusion.MISTAKEN, "#fff")
    # A quarter of the class sits halfway along the scale: sqrt(0.25) = 0.5.
    halfway = tuple(round(255 + (c - 255) * 0.5) for c in confusion.MISTAKEN)
    assert confusion.share_colour(1, 0.25, diagonal=False) == (halfway, confusion.DARK_INK)
    assert confusion.share_colour(0, 0.0, diagonal=True) == (
        confusion.ZERO_BACKGROUND,
        confusion.ZERO_INK,
    )
    assert confusion.share_scale(0.01) == pytest.approx(0.1)
    assert confusion.share_scale(2.0) == 1.0 and confusion.share_scale(-1.0) == 0.0


def test_the_figure_draws_the_cell_colours_and_the_counts_or_shares() -> None:
    figure = confusion.confusion_figure(COUNTS, NAMES)
    (ax,) = figure.axes
    image, inks = confusion.cell_colours(COUNTS)
    np.testing.assert_array_equal(ax.images[0].get_array(), image)
    assert [t.get_text() for t in ax.texts] == [str(v) for v in COUNTS.ravel()]
    assert [t.get_color() for t in ax.texts] == [ink for row in inks for ink in row]
    assert [t.get_text() for t in ax.get_yticklabels()] == NAMES
    shares = confusion.confusion_figure(COUNTS, NAMES, normalize=True).axes[0]
    assert [t.get_text() for t in shares.texts] == [
        "83%", "17%", "0", "0", "0", "0", "22%", "0", "78%"
    ]  # fmt: skip
    assert confusion.share_text(1, 0.004) == "<1%"


def test_the_png_shows_each_cell_in_its_colour() -> None:
    figure = confusion.confusion_figure(COUNTS, NAMES)
    (ax,) = figure.axes
    pixels = png_pixels(figure_png(figure))  # constrained layout: pixels are display units
    width, height = figure.get_size_inches() * DPI  # Agg makes whole pixels of these
    assert pixels.shape[:2] == pytest.approx((height, width), abs=1)
    for i in range(3):
        for j in range(3):
            # a corner of the cell, away from its number and from the white lines between cells
            x, y = ax.transData.transform((j - 0.3, i - 0.3))
            colour, _ = confusion.share_colour(
                COUNTS[i, j], confusion.row_shares(COUNTS)[i, j], i == j
            )
            drawn = pixels[pixels.shape[0] - math.ceil(y), math.floor(x)]
            assert np.abs(drawn.astype(int) - colour).max() <= 2, (i, j, drawn, colour)


def test_the_pair_shows_counts_beside_shares(tmp_path: Path) -> None:
    twelve = np.random.default_rng(0).integers(0, 40, (12, 12))
    names = [f"class {i}" for i in range(12)]
    figure = confusion.confusion_pair_figure(twelve, names)
    counts_ax, shares_ax = figure.axes
    assert counts_ax.get_title().startswith("counts") and shares_ax.get_title().startswith("shares")
    assert counts_ax.texts[0].get_text() == str(twelve[0, 0])
    shares = confusion.row_shares(twelve)
    assert shares_ax.texts[0].get_text() == confusion.share_text(twelve[0, 0], shares[0, 0])
    single, pair = tmp_path / "one.png", tmp_path / "pair.png"
    assert isinstance(confusion.plot_confusion(COUNTS, NAMES, single), Figure)
    assert isinstance(confusion.plot_confusion_pair(twelve, names, pair), Figure)
    assert png_pixels(pair.read_bytes()).shape[1] > png_pixels(single.read_bytes()).shape[1]
    with pytest.raises(CnnlabError, match="shape"):
        confusion.plot_confusion(COUNTS, ["a", "b"], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
