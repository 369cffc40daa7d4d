"""Turning images into something a screen can show, and figures into PNG files.

Microscopy images are 16-bit: a phase-contrast crop typically holds counts between 20,000 and
40,000 out of 65,535. Shown with a fixed 0..255 or 0..65,535 scale such an image is a white or a
flat grey square, and a student concludes that the data are broken. :func:`to_display` therefore
stretches every image by its own robust percentiles, which works for 8-bit digits, 16-bit crops
and the signed, unbounded outputs of convolution layers alike.

Figures are built on :class:`matplotlib.figure.Figure` directly instead of through ``pyplot``:
no global figure list, no GUI backend, nothing to forget to close, and no interference with a
notebook or program that imported cnnlab and uses pyplot itself. Saving a bare ``Figure`` renders
with matplotlib's Agg canvas whatever backend is configured, so cnnlab never calls
``matplotlib.use``.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib as mpl
import numpy as np
import torch
from matplotlib.figure import Figure

from cnnlab.errors import CnnlabError

#: Resolution of every saved figure: sharp on a laptop screen, small on disk.
DPI = 110
#: Width of full-width figures in inches (a page or a notebook cell).
FIGURE_WIDTH = 12.0

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


@contextmanager
def cnnlab_style() -> Iterator[None]:
    """Apply :data:`STYLE` while a figure is built and saved, restoring the caller's settings.

    Matplotlib reads font sizes when a text is created, so the whole drawing (not only the
    saving) must happen inside this context.
    """
    with mpl.rc_context(STYLE):
        yield


def new_figure(width: float = FIGURE_WIDTH, height: float = 4.0) -> Figure:
    """A pyplot-free figure of ``width`` x ``height`` inches (see the module docstring)."""
    return Figure(figsize=(width, height), dpi=DPI)


def figure_to_png(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` as a PNG at :data:`DPI` with a tight bounding box, then release it.

    Parent folders are created, so a report can write ``figures/x.png`` into a fresh run folder.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.08)
    except OSError as error:
        raise CnnlabError(f"cannot write the figure {path}: {error.strerror or error}") from None
    finally:
        _close(fig)
    return path


def png_bytes(fig: Figure) -> bytes:
    """``fig`` as PNG bytes (for HTML reports and TensorBoard), then release it."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.08)
    finally:
        _close(fig)
    return buffer.getvalue()


def _close(fig: Figure) -> None:
    """Forget ``fig`` in pyplot if pyplot made it; a bare Figure is simply garbage collected."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None and pyplot.fignum_exists(getattr(fig, "number", -1)):
        pyplot.close(fig)


def to_display(
    image: torch.Tensor | np.ndarray, low: float = 1.0, high: float = 99.5
) -> np.ndarray:
    """``image`` as floats in [0, 1], stretched between its ``low`` and ``high`` percentiles.

    Accepts ``(H, W)``, a cnnlab ``(C, H, W)`` tensor, or an array in ``(C, H, W)`` or
    ``(H, W, C)`` layout with 1 or 3 channels, of any dtype. Returns ``(H, W)`` for one channel and
    ``(H, W, 3)`` for three; an RGB image is stretched with one range for all channels so its
    colours keep their balance. Percentiles instead of min/max keep a few hot pixels from
    flattening the rest. A constant image (or one with no finite value) becomes mid-grey instead
    of NaN, and NaN pixels are shown as black.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"need 0 <= low < high <= 100, got low={low}, high={high}")
    pixels = _as_display_layout(image)
    finite = np.isfinite(pixels)
    if not finite.any():
        return np.full(pixels.shape, 0.5)
    values = pixels[finite]
    lo, hi = np.percentile(values, [low, high])
    if hi <= lo:  # most pixels equal: fall back to the full range before giving up
        lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.where(finite, 0.5, 0.0)
    stretched = (pixels - lo) / (hi - lo)
    return np.clip(np.where(finite, stretched, 0.0), 0.0, 1.0)


def _as_display_layout(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) float64; tensors are (C, H, W) by cnnlab convention."""
    is_tensor = isinstance(image, torch.Tensor)
    array = image.detach().cpu().numpy() if is_tensor else np.asarray(image)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if not (np.issubdtype(array.dtype, np.number)):
        raise CnnlabError(f"cannot display an image of type {array.dtype}")
    array = array.astype(np.float64)
    if array.ndim == 2:
        return array
    if array.ndim == 3:
        channels_first = is_tensor or (array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3))
        if channels_first:
            array = np.moveaxis(array, 0, -1)
        if array.shape[-1] == 1:
            return array[..., 0]
        if array.shape[-1] == 3:
            return array
    raise CnnlabError(
        f"cannot display an image of shape {tuple(array.shape)}: expected (H, W) or 1 or 3 "
        "channels as (C, H, W) or (H, W, C)"
    )


def shape_text(shape: tuple[int, ...] | torch.Size) -> str:
    """``(6, 28, 28)`` -> ``"6×28×28"``: how the figures print tensor shapes."""
    return "×".join(str(int(size)) for size in shape)


def range_text(values: np.ndarray | torch.Tensor) -> str:
    """``"values -1.2 … 3.4"``, short enough for a panel title."""
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
    array = np.asarray(array, dtype=np.float64)
    if array.size == 0:
        return "no values"
    return f"values {array.min():.3g} … {array.max():.3g}"


def mosaic(tiles: np.ndarray, columns: int, gap: int = 1) -> np.ndarray:
    """``(N, h, w)`` tiles as one ``(rows*h + gaps, columns*w + gaps)`` image, NaN between them.

    Drawing one image with NaN gaps (shown in the colour map's "bad" colour) instead of one
    axes per tile makes figures with hundreds of feature maps or kernels fast to render, and
    keeps one shared colour scale by construction.
    """
    count, height, width = tiles.shape
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    out = np.full((rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap), np.nan)
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = row * (height + gap), column * (width + gap)
        out[top : top + height, left : left + width] = tiles[index]
    return out


def tile_origin(index: int, columns: int, shape: tuple[int, int], gap: int) -> tuple[int, int]:
    """(top, left) pixel of tile ``index`` in a :func:`mosaic`, for labels drawn on it."""
    row, column = divmod(index, columns)
    return row * (shape[0] + gap), column * (shape[1] + gap)
