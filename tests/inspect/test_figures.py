"""Figures and tiles: the PNG is the figure at its size and resolution, tiles land in place."""

from __future__ import annotations

import io

import matplotlib as mpl
import numpy as np
import pytest
from PIL import Image

from cnnlab.errors import CnnlabError
from cnnlab.inspect.figures import (
    DPI,
    cnnlab_style,
    figure_png,
    message_figure,
    mosaic,
    new_figure,
    plain,
    png_of,
    png_pixels,
    save_figure,
    shorten_middle,
    tile_grid,
)

ODD_NAME = "roi 117 - 114_1354-001.nd2 - C=0.tif"


def test_a_constrained_figure_is_rendered_at_its_size_and_resolution() -> None:
    figure = new_figure(4, 3, constrained=True)
    figure.add_subplot().plot([0, 1], [1, 0])
    with Image.open(io.BytesIO(figure_png(figure))) as image:
        assert image.format == "PNG"
        assert image.size == (4 * DPI, 3 * DPI)
        assert image.info["dpi"] == pytest.approx((DPI, DPI), abs=0.01)


def test_a_hand_placed_figure_is_cropped_to_its_drawing() -> None:
    figure = new_figure(6, 4)
    axes = figure.add_axes((0.25, 0.25, 0.5, 0.5))  # the middle quarter of the canvas
    axes.imshow(np.zeros((10, 10)), cmap="gray", aspect="auto")
    axes.set_axis_off()
    pixels = png_pixels(figure_png(figure))
    # 3 x 2 inches of black, plus 0.08 inch of white margin on every side
    margin = round(0.08 * DPI)
    assert pixels.shape[:2] == pytest.approx((2 * DPI + 2 * margin, 3 * DPI + 2 * margin), abs=2)
    assert (pixels[pixels.shape[0] // 2, pixels.shape[1] // 2] == 0).all()
    assert (pixels[1, 1] == 255).all()


def test_save_figure_writes_the_same_png_and_creates_folders(tmp_path) -> None:
    def figure():
        drawn = new_figure(2, 2, constrained=True)
        drawn.add_subplot().bar([0, 1], [3, 1])
        return drawn

    path = save_figure(figure(), tmp_path / "figures" / "bars.png")
    assert path == tmp_path / "figures" / "bars.png"
    assert path.read_bytes() == figure_png(figure())  # rendering is deterministic


def test_unwritable_path_is_a_user_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CnnlabError, match="cannot write the figure"):
        save_figure(new_figure(2, 2), blocker / "x.png")


def test_figures_are_drawn_in_cnnlab_style_and_the_style_does_not_leak() -> None:
    before = mpl.rcParams["axes.titlesize"]
    with cnnlab_style():
        assert mpl.rcParams["axes.titlesize"] == 9
    assert mpl.rcParams["axes.titlesize"] == before
    figure = message_figure("no epochs")
    (text,) = figure.texts
    assert text.get_text() == "no epochs" and mpl.rcParams["axes.titlesize"] == before


def test_png_of_round_trips_the_pixels() -> None:
    grey = np.random.default_rng(0).integers(0, 256, (5, 7), dtype=np.uint8)
    with Image.open(io.BytesIO(png_of(grey))) as image:
        assert image.size == (7, 5) and image.mode == "L"
        np.testing.assert_array_equal(np.asarray(image), grey)
    colour = np.random.default_rng(1).integers(0, 256, (4, 3, 3), dtype=np.uint8)
    np.testing.assert_array_equal(png_pixels(png_of(colour)), colour)
    np.testing.assert_array_equal(png_pixels(png_of(grey)), np.repeat(grey[..., None], 3, 2))


def test_tile_grid_centres_tiles_of_any_size_between_white_gaps() -> None:
    small = np.zeros((2, 2), dtype=np.uint8)
    tall = np.full((4, 2), 100, dtype=np.uint8)
    grid = tile_grid([[small, tall], [tall]], columns=2, gap=1)
    # Cells are 4x2 (the largest tile); 2 rows and 2 columns with one-pixel gaps.
    assert grid.shape == (4 + 1 + 4, 2 + 1 + 2) and grid.dtype == np.uint8
    assert (grid[1:3, 0:2] == 0).all() and (grid[0, 0:2] == 255).all()  # centred vertically
    assert (grid[0:4, 3:5] == 100).all()
    assert (grid[:, 2] == 255).all() and (grid[4, :] == 255).all()  # the gaps
    assert (grid[5:9, 3:5] == 255).all()  # an empty cell stays background
    colour = tile_grid([[small, np.zeros((2, 2, 3), dtype=np.uint8)]], columns=2)
    assert colour.shape == (2, 2 + 2 + 2, 3)


def test_mosaic_is_the_float_tile_grid_with_nan_gaps() -> None:
    tiles = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3) - 7.5
    image = mosaic(tiles, columns=3, gap=1)
    assert image.dtype == np.float64 and image.shape == (2 * 2 + 1, 3 * 3 + 2)
    for index, tile in enumerate(tiles):
        row, column = divmod(index, 3)
        top, left = row * 3, column * 4
        np.testing.assert_array_equal(image[top : top + 2, left : left + 3], tile)
    assert np.isnan(image[2]).all() and np.isnan(image[:, 3]).all()
    assert np.isnan(image[3:, 8:]).all()  # the sixth cell is empty
    assert mosaic(tiles, columns=10).shape == (2, 5 * 3 + 4)  # never more columns than tiles


def test_shorten_middle_keeps_both_ends() -> None:
    short = shorten_middle(ODD_NAME, 20)
    assert len(short) == 20
    assert short.startswith("roi 117 - ") and short.endswith("C=0.tif")
    assert "…" in short
    assert shorten_middle("a.tif", 20) == "a.tif"


def test_plain_escapes_dollar_signs() -> None:
    assert plain("cost $5 and $6.tif") == r"cost \$5 and \$6.tif"


def _savefig_pixels(figure, **options) -> np.ndarray:
    buffer = io.BytesIO()
    with cnnlab_style():
        figure.savefig(buffer, format="png", dpi=DPI, **options)
    return png_pixels(buffer.getvalue())


def _labelled_figure(constrained: bool, outside: bool = False):
    figure = new_figure(5, 3, constrained=constrained)
    axes = figure.add_subplot() if constrained else figure.add_axes((0.2, 0.2, 0.6, 0.6))
    axes.bar(["ring", "rod", "spot"], [3, 7, 5], color="#4e79a7")
    axes.set_title("images per class")
    if outside:  # a label past the right edge of the canvas
        figure.text(0.98, 0.5, "a label reaching past the canvas", rotation=90, va="center")
    return figure


def test_a_constrained_figure_is_savefigs_picture_in_rgb() -> None:
    expected = _savefig_pixels(_labelled_figure(constrained=True))
    data = figure_png(_labelled_figure(constrained=True))
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "RGB" and image.info["dpi"] == pytest.approx((DPI, DPI), abs=0.01)
    np.testing.assert_array_equal(png_pixels(data), expected)


def test_a_cropped_figure_is_savefigs_crop_from_one_drawing() -> None:
    expected = _savefig_pixels(_labelled_figure(False), bbox_inches="tight", pad_inches=0.08)
    pixels = png_pixels(figure_png(_labelled_figure(False)))
    assert pixels.shape == expected.shape
    # The same picture, up to where anti-aliasing falls within a pixel.
    differs = np.abs(pixels.astype(int) - expected.astype(int)).max(axis=2) > 64
    assert differs.mean() < 0.02
    assert (pixels[:4] == 255).all() and (pixels[:, :4] == 255).all()  # the white margin


def test_a_drawing_past_the_canvas_is_kept_whole() -> None:
    canvas_width = 5 * DPI
    expected = _savefig_pixels(
        _labelled_figure(False, outside=True), bbox_inches="tight", pad_inches=0.08
    )
    pixels = png_pixels(figure_png(_labelled_figure(False, outside=True)))
    assert expected.shape[1] > canvas_width * 0.8  # the label widens the crop
    np.testing.assert_array_equal(pixels, expected)


def test_rendering_leaves_the_figure_bare_and_usable() -> None:
    from matplotlib.backend_bases import FigureCanvasBase

    figure = _labelled_figure(False)
    first = figure_png(figure, release=False)
    assert type(figure.canvas) is FigureCanvasBase and figure.dpi == DPI
    assert figure_png(figure) == first
