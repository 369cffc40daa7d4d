"""Making figures and pictures: the style, a new figure, its PNG, and grids of image tiles.

Every picture of cnnlab is made here and nowhere else: the plots of a run, the report's figures,
the convolution demo, the activation and filter figures and TensorBoard's images.

Figures are built on :class:`matplotlib.figure.Figure` directly instead of through ``pyplot``:
no global figure list, no GUI backend, nothing to forget to close, and no interference with a
notebook or program that imported cnnlab and uses pyplot itself. Rendering a bare ``Figure``
uses matplotlib's Agg canvas whatever backend is configured, so cnnlab never calls
``matplotlib.use``. A figure becomes PNG bytes in memory (:func:`figure_png`); writing a file
(:func:`save_figure`) is one more step, so the HTML report embeds its figures without
temporary files. Every ``plot_*`` function returns its figure and writes it only when given a
path (:func:`saved_if`); in Jupyter the figure shows inline (:mod:`cnnlab.notebook.hooks`).
"""

from __future__ import annotations

import functools
import io
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox
from PIL import Image

from cnnlab.errors import CnnlabError
from cnnlab.files import write_bytes

P = ParamSpec("P")
R = TypeVar("R")

#: Resolution of every figure: sharp on a laptop screen, small on disk.
DPI = 110
#: Width of full-width figures in inches (a page or a notebook cell).
FIGURE_WIDTH = 12.0
#: White margin in inches around a figure cropped to its drawing.
PAD = 0.08

SUPTITLE_SIZE = 12
TITLE_SIZE = 9
LABEL_SIZE = 8
SMALL_SIZE = 7

#: Matplotlib settings shared by all cnnlab figures (see :func:`cnnlab_style`).
STYLE: dict[str, object] = {
    "font.size": LABEL_SIZE,
    "axes.titlesize": TITLE_SIZE,
    "axes.labelsize": LABEL_SIZE,
    "xtick.labelsize": SMALL_SIZE,
    "ytick.labelsize": SMALL_SIZE,
    "legend.fontsize": SMALL_SIZE,
    "figure.titlesize": SUPTITLE_SIZE,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "image.interpolation": "nearest",
    "image.origin": "upper",
}


# ------------------------------------------------------------------------------ figures
@contextmanager
def cnnlab_style() -> Iterator[None]:
    """Apply :data:`STYLE` while a figure is built, restoring the caller's settings.

    Matplotlib reads font sizes when a text is created, so the whole drawing (not only the
    rendering) must happen inside this context.
    """
    with mpl.rc_context(STYLE):
        yield


def styled(function: Callable[P, R]) -> Callable[P, R]:
    """Runs a figure-building function inside :func:`cnnlab_style`."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with cnnlab_style():
            return function(*args, **kwargs)

    return wrapper


def new_figure(
    width: float = FIGURE_WIDTH, height: float = 4.0, *, constrained: bool = False
) -> Figure:
    """A pyplot-free figure of ``width`` x ``height`` inches.

    ``constrained=True`` lets matplotlib make room for the axes' labels (constrained layout);
    such a figure is rendered as laid out, at exactly its size. Figures that place their axes
    by hand are cropped to what they draw instead (see :func:`figure_png`).
    """
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained" if constrained else None)


def figure_png(figure: Figure, release: bool = True) -> bytes:
    """``figure`` as PNG bytes at :data:`DPI`, then released (unless ``release=False``).

    A constrained-layout figure already fits its labels inside the canvas and keeps its size
    (a tight bounding box would draw it twice); any other figure is cropped to its drawing
    with a small margin. Releasing forgets a pyplot-made figure in pyplot; a notebook that
    shows a user's own figure must not do that, hence ``release``.
    """
    try:
        with cnnlab_style():
            return _png(figure)
    finally:
        if release:
            _close(figure)


def _png(figure: Figure) -> bytes:
    """The PNG of :func:`figure_png`, drawn once where matplotlib's ``savefig`` draws twice.

    ``savefig`` draws a constrained or cropped figure once to lay it out or measure it, then
    again to render it. A bare figure on white is drawn here once at full size instead, and
    its crop cut out of those pixels: the same picture for a third less time. Only a drawing
    that reaches past the canvas needs ``savefig`` to render it again (given the measured box,
    it does not measure again). The PNG is RGB, smaller and faster to compress than the RGBA
    that ``savefig`` writes.
    """
    from matplotlib.backend_bases import FigureCanvasBase
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_rgba

    constrained = figure.get_layout_engine() is not None
    bare = type(figure.canvas) is FigureCanvasBase  # not pyplot's or a GUI's canvas
    # Axes placed by a locator are placed at draw time: savefig measures those itself.
    located = any(axes.get_axes_locator() is not None for axes in figure.axes)
    # On white, as savefig paints every figure (STYLE), RGB loses nothing.
    white = to_rgba(figure.get_facecolor()) == (1.0, 1.0, 1.0, 1.0)
    if not bare or located or not white or figure.dpi != DPI:
        return _saved(figure, None if constrained else "tight")
    canvas = FigureCanvasAgg(figure)
    try:
        canvas.draw()
        pixels = np.asarray(canvas.buffer_rgba())[..., :3]
        box = None if constrained else figure.get_tightbbox(canvas.get_renderer())
    finally:
        FigureCanvasBase(figure)  # the bare canvas again, as savefig leaves it
    if box is not None:
        pixels = _cropped(pixels, box)
        if pixels is None:
            return _saved(figure, box.padded(PAD))
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", dpi=(DPI, DPI))
    return buffer.getvalue()


def _saved(figure: Figure, box: Bbox | str | None) -> bytes:
    """``savefig``'s PNG, cropped to ``box`` (inches, or ``"tight"``) unless None."""
    buffer = io.BytesIO()
    options = {} if box is None else {"bbox_inches": box, "pad_inches": PAD}
    figure.savefig(buffer, format="png", dpi=DPI, **options)
    return buffer.getvalue()


def _cropped(pixels: np.ndarray, box: Bbox) -> np.ndarray | None:
    """``pixels`` cut to ``box`` (inches) and :data:`PAD`, on white; None if ``box`` overflows."""
    height, width = pixels.shape[:2]
    left, right = box.x0 * DPI, box.x1 * DPI
    top, bottom = height - box.y1 * DPI, height - box.y0 * DPI
    if left < -0.5 or top < -0.5 or right > width + 0.5 or bottom > height + 0.5:
        return None
    # Sizes truncated as matplotlib sizes a canvas, so the PNG is as large as savefig's.
    pad = PAD * DPI
    rows = round(bottom + pad) - int(bottom - top + 2 * pad), round(bottom + pad)
    columns = round(left - pad), round(left - pad) + int(right - left + 2 * pad)
    cut = pixels[max(rows[0], 0) : rows[1], max(columns[0], 0) : columns[1]]
    # The margin may reach past the canvas: white there, as on the canvas itself.
    margins = (
        (max(-rows[0], 0), max(rows[1] - height, 0)),
        (max(-columns[0], 0), max(columns[1] - width, 0)),
        (0, 0),
    )
    return np.pad(cut, margins, constant_values=255)


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Writes ``figure`` as a PNG to ``path`` atomically (parents created); returns the path."""
    data = figure_png(figure)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, data)
    except OSError as error:
        raise CnnlabError(f"cannot write the figure {path}: {error.strerror or error}") from None
    return path


def check_pictures_free(out: Path, names: Sequence[str], overwrite: bool) -> None:
    """Refuses, before anything is drawn, a folder that holds one of the pictures ``names``
    already, unless ``overwrite``: a user's own file of that name would be replaced. Other
    files in the folder are never touched."""
    if out.exists() and not out.is_dir():
        raise CnnlabError(f"--out {out}: is a file, not a folder; choose another folder")
    taken = [name for name in names if (out / name).exists()]
    if taken and not overwrite:
        raise CnnlabError(
            f"--out {out}: holds {taken[0]!r} already; choose another folder or pass "
            "--overwrite to replace the pictures"
        )


def saved_if(figure: Figure, path: str | Path | None) -> Figure:
    """``figure``, written to ``path`` first when a path is given: what every ``plot_*`` returns.

    The figure stays usable after the file is written, so a notebook can show what a script
    saved.
    """
    if path is not None:
        save_figure(figure, path)
    return figure


def _close(figure: Figure) -> None:
    """Forget ``figure`` in pyplot if pyplot made it; a bare Figure is simply garbage collected."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None and pyplot.fignum_exists(getattr(figure, "number", -1)):
        pyplot.close(figure)


@styled
def message_figure(message: str) -> Figure:
    """A one-line figure saying why there is nothing to draw."""
    figure = new_figure(6, 1.2, constrained=True)
    # An empty axes under the text: IPython's inline backend shows no figure without axes.
    figure.add_subplot().axis("off")
    figure.text(0.5, 0.5, plain(message), ha="center", va="center", fontsize=11, color="#555")
    return figure


# ------------------------------------------------------------------------------ PNG pixels
def png_of(pixels: np.ndarray) -> bytes:
    """8-bit ``(H, W)`` or ``(H, W, 3)`` pixels as PNG bytes (Pillow, no figure involved)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def png_pixels(data: bytes) -> np.ndarray:
    """PNG bytes as an RGB ``(H, W, 3)`` uint8 array (for TensorBoard and for tests)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


# ------------------------------------------------------------------------------ tiles
def tile_grid(
    rows: Sequence[Sequence[np.ndarray]],
    columns: int,
    gap: int = 2,
    cell: tuple[int, int] | None = None,
    background: float = 255,
) -> np.ndarray:
    """Rows of 2-D (or ``(H, W, 3)``) tiles as one image, ``gap`` pixels of ``background`` apart.

    Every tile is centred in a cell of the largest tile's size (or ``cell``), so images of
    different sizes keep their own proportions. With 8-bit tiles and a whole ``background``
    the result is 8-bit; otherwise it is float64 (a NaN background then shows in a colour
    map's "bad" colour). The result is ``(H, W)`` when every tile is 2-D and ``(H, W, 3)``
    when any is colour. Composing one picture instead of one matplotlib axes per image is what
    keeps a grid of a hundred images, feature maps or kernels fast to draw, and gives them one
    shared colour scale by construction.
    """
    tiles = [tile for row in rows for tile in row]
    if cell is None:
        cell = (
            max((t.shape[0] for t in tiles), default=1),
            max((t.shape[1] for t in tiles), default=1),
        )
    whole = float(background).is_integer() and all(t.dtype == np.uint8 for t in tiles)
    colour = any(t.ndim == 3 for t in tiles)
    height, width = cell
    columns = max(1, columns)
    shape = (
        len(rows) * height + max(len(rows) - 1, 0) * gap,
        columns * width + (columns - 1) * gap,
    )
    grid = np.full(
        (*shape, 3) if colour else shape, background, dtype=np.uint8 if whole else np.float64
    )
    for r, row in enumerate(rows):
        for c, tile in enumerate(row[:columns]):
            if colour and tile.ndim == 2:
                tile = np.repeat(tile[..., None], 3, axis=2)
            tile = tile[:height, :width]
            top = r * (height + gap) + (height - tile.shape[0]) // 2
            left = c * (width + gap) + (width - tile.shape[1]) // 2
            grid[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    return grid


def mosaic(tiles: np.ndarray, columns: int, gap: int = 1) -> np.ndarray:
    """``(N, h, w)`` equal tiles, ``columns`` to a row, as one float image with NaN between.

    :func:`tile_grid` for feature maps and kernels: their values are signed floats, and the
    NaN gaps show in the colour map's "bad" colour.
    """
    count = len(tiles)
    columns = max(1, min(columns, count))
    rows = [list(tiles[start : start + columns]) for start in range(0, count, columns)]
    return tile_grid(rows, columns, gap, cell=tuple(tiles.shape[1:3]), background=np.nan)


# ------------------------------------------------------------------------------ labels
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
