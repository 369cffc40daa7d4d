"""The convolution demo: apply a hand-made kernel to an image and see what it does.

This is the course's first look at convolutions (the named kernels of the Wikipedia table it
reproduces, and the five filters of the Keras MNIST notebook), computed exactly the way a CNN
layer computes them: :func:`torch.nn.functional.conv2d`, which is a *cross-correlation* (the
kernel is not flipped), with zero padding and a stride, optionally followed by pooling. Every
output size follows the formula students are asked to check by hand::

    out = floor((n + 2 * padding - k) / stride) + 1          (then floor(out / pool) with pooling)

``padding="same"`` pads by ``(k - 1) // 2`` on the top and left and by ``k // 2`` on the bottom
and right (as Keras and PyTorch do, so an even-sized kernel also keeps the size at stride 1);
with a stride above 1 the output then has ``ceil(n / stride)`` pixels, again as in Keras.
``"valid"`` means no padding; an integer pads that many zeros on every side.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from cnnlab.data.channels import rgb_to_gray
from cnnlab.errors import CnnlabError
from cnnlab.inspect.display import to_display
from cnnlab.inspect.figures import (
    LABEL_SIZE,
    SUPTITLE_SIZE,
    TITLE_SIZE,
    new_figure,
    saved_if,
    styled,
)

Padding = str | int
Pool = tuple[str, int] | None

_GAUSS5 = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])

#: Named kernels: the course's table (identity, edge1-3, sharpen, Gaussian blur), the Keras
#: notebook's filters (box blur, vertical edge/line, diagonal line) and the Sobel pair.
KERNELS: dict[str, np.ndarray] = {
    "identity": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=np.float64),
    "edge1": np.array([[1, 0, -1], [0, 0, 0], [-1, 0, 1]], dtype=np.float64),
    "edge2": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64),
    "edge3": np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=np.float64),
    "sobel_x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64),
    "sobel_y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64),
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64),
    "box_blur": np.ones((3, 3)) / 9,
    "gaussian_blur": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float64) / 16,
    "gaussian_blur5": _GAUSS5.astype(np.float64) / 256,
    "vertical_edge": np.array([[0.2, -0.2, 0], [0.2, -0.2, 0], [0.2, -0.2, 0]]),
    "vertical_line": np.array([[-1, 2, -1], [-1, 2, -1], [-1, 2, -1]], dtype=np.float64),
    "diagonal_line": np.array([[-1, -1, 2], [-1, 2, -1], [2, -1, -1]], dtype=np.float64),
}

#: What each named kernel does, for titles and ``--help`` texts.
KERNEL_USES: dict[str, str] = {
    "identity": "copies the image",
    "edge1": "diagonal edges",
    "edge2": "edges in all directions (Laplacian)",
    "edge3": "edges in all directions, stronger",
    "sobel_x": "vertical edges (brightness rising to the right)",
    "sobel_y": "horizontal edges (brightness rising downwards)",
    "sharpen": "sharpens",
    "box_blur": "blurs (mean of 3x3)",
    "gaussian_blur": "blurs (Gaussian 3x3)",
    "gaussian_blur5": "blurs more (Gaussian 5x5)",
    "vertical_edge": "vertical edges (Keras notebook filter 1)",
    "vertical_line": "vertical lines (Keras notebook filter 4)",
    "diagonal_line": "diagonal lines (Keras notebook filter 5)",
}

#: The course table's kernels, the default of :func:`kernel_demo_figure`.
COURSE_KERNELS = ("identity", "edge1", "edge2", "edge3", "sharpen", "gaussian_blur")


# ------------------------------------------------------------------------------ parsing
def parse_matrix(text: str) -> np.ndarray:
    """A kernel typed by a person: ``"1 0 -1; 0 0 0; -1 0 1"`` or ``"[[1,0,-1],[0,0,0],[-1,0,1]]"``.

    Rows are separated by ``;``, new lines or ``],[``; numbers by spaces or commas. Numbers may
    be fractions (``1/9``). Any rectangular size is accepted (see the module docstring for how
    ``"same"`` pads even sizes); ragged rows, non-numbers and infinities are errors.
    """
    if not isinstance(text, str) or not text.strip():
        raise CnnlabError("kernel is empty: give rows like '1 0 -1; 0 0 0; -1 0 1'")
    flat = re.sub(r"\]\s*,?\s*\[", ";", text.strip())
    if flat.count("[") != flat.count("]"):
        raise CnnlabError(f"kernel {text!r}: unbalanced brackets")
    flat = flat.replace("[", " ").replace("]", " ")
    rows = [row for row in re.split(r"[;\n]", flat) if row.strip(" ,\t\r")]
    if not rows:
        raise CnnlabError(f"kernel {text!r} has no numbers")
    matrix = [
        [_number(token, text) for token in re.split(r"[,\s]+", row.strip(" ,\t\r"))] for row in rows
    ]
    lengths = sorted({len(row) for row in matrix})
    if len(lengths) > 1:
        raise CnnlabError(
            f"kernel {text!r}: rows have different lengths ({', '.join(map(str, lengths))}); "
            "every row needs the same number of values"
        )
    return np.array(matrix, dtype=np.float64)


def _number(token: str, text: str) -> float:
    try:
        value = float(Fraction(token)) if "/" in token else float(token)
    except (ValueError, ZeroDivisionError):
        raise CnnlabError(f"kernel {text!r}: {token!r} is not a number") from None
    if not math.isfinite(value):
        raise CnnlabError(f"kernel {text!r}: {token!r} is not a finite number")
    return value


def resolve_kernel(kernel: str | np.ndarray | Sequence[Sequence[float]]) -> tuple[str, np.ndarray]:
    """``(label, matrix)`` for a kernel name, a typed matrix, or an array."""
    if isinstance(kernel, str):
        key = kernel.strip().lower()
        if key in KERNELS:
            return key, KERNELS[key].copy()
        # Text that starts with a letter (``edg2``, ``edge 2`` too) is a name: a matrix starts
        # with a number, a sign, a point or a bracket.
        if re.match(r"[a-z_]", key) or not re.search(r"\d", kernel):
            close = difflib.get_close_matches(key, list(KERNELS), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CnnlabError(
                f"unknown kernel {kernel!r}{hint}; named kernels: {', '.join(KERNELS)}, or type "
                "a matrix such as '1 0 -1; 0 0 0; -1 0 1'"
            )
        matrix = parse_matrix(kernel)
        return f"custom {matrix.shape[0]}×{matrix.shape[1]}", matrix
    matrix = np.asarray(kernel, dtype=np.float64)
    if matrix.ndim != 2 or matrix.size == 0:
        raise CnnlabError(f"a kernel must be a 2-D matrix, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise CnnlabError("the kernel contains NaN or infinite values")
    return f"custom {matrix.shape[0]}×{matrix.shape[1]}", matrix


# ------------------------------------------------------------------------------ computing
def _pads(padding: Padding, kernel_shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zeros for ``padding``."""
    if isinstance(padding, str):
        mode = padding.strip().lower()
        if mode == "valid":
            return 0, 0, 0, 0
        if mode == "same":
            kh, kw = kernel_shape
            return (kh - 1) // 2, kh // 2, (kw - 1) // 2, kw // 2
        raise CnnlabError(f"padding must be 'valid', 'same' or a number of pixels, not {padding!r}")
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise CnnlabError(
            f"padding must be 'valid', 'same' or a whole number >= 0, not {padding!r}"
        )
    return (int(padding),) * 4


def _check_pool(pool: Pool) -> tuple[str, int] | None:
    if pool is None:
        return None
    try:
        mode, size = pool
    except (TypeError, ValueError):
        raise CnnlabError(f"pool must be ('max' or 'avg', size), not {pool!r}") from None
    mode = str(mode).lower()
    if (
        mode not in ("max", "avg")
        or isinstance(size, bool)
        or not isinstance(size, (int, np.integer))
    ):
        raise CnnlabError(f"pool must be ('max' or 'avg', size), not {pool!r}")
    if size < 1:
        raise CnnlabError(f"pool size must be at least 1, got {size}")
    return mode, int(size)


def output_size(
    size: tuple[int, int],
    kernel_shape: tuple[int, int],
    padding: Padding = "valid",
    stride: int = 1,
    pool: Pool = None,
) -> tuple[int, int]:
    """Output (height, width) by the size formula of the module docstring."""
    top, bottom, left, right = _pads(padding, kernel_shape)
    height = (size[0] + top + bottom - kernel_shape[0]) // stride + 1
    width = (size[1] + left + right - kernel_shape[1]) // stride + 1
    checked = _check_pool(pool)
    if checked is not None:
        height, width = height // checked[1], width // checked[1]
    return height, width


def apply_kernel(
    image2d: np.ndarray | torch.Tensor,
    kernel: str | np.ndarray | Sequence[Sequence[float]],
    padding: Padding = "valid",
    stride: int = 1,
    pool: Pool = None,
) -> np.ndarray:
    """Cross-correlate a 2-D image with ``kernel`` as a CNN layer does, then optionally pool.

    Computed in float64 with :func:`torch.nn.functional.conv2d` (zero padding, no kernel flip),
    so the result is what a one-filter ``Conv2d`` with these weights and no bias outputs.
    ``pool`` is ``("max" | "avg", size)`` with stride equal to the size, like Keras'
    ``MaxPooling2D(pool_size)``; leftover rows and columns are dropped.
    """
    _, matrix = resolve_kernel(kernel)
    array = image2d.detach().cpu().numpy() if isinstance(image2d, torch.Tensor) else image2d
    array = np.asarray(array)
    if array.ndim != 2:
        raise CnnlabError(
            f"apply_kernel needs one 2-D (H, W) image, got shape {array.shape}; convert it to "
            "gray first"
        )
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise CnnlabError(f"stride must be a whole number >= 1, not {stride!r}")
    checked_pool = _check_pool(pool)
    kernel_shape = (matrix.shape[0], matrix.shape[1])
    height, width = output_size(array.shape, kernel_shape, padding, int(stride))
    if height < 1 or width < 1:
        raise CnnlabError(
            f"a {kernel_shape[0]}×{kernel_shape[1]} kernel does not fit in the "
            f"{array.shape[0]}×{array.shape[1]} image with padding {padding!r}: pad more or use "
            "a smaller kernel"
        )
    top, bottom, left, right = _pads(padding, kernel_shape)
    pixels = torch.from_numpy(array.astype(np.float64))[None, None]
    pixels = F.pad(pixels, (left, right, top, bottom))
    weights = torch.from_numpy(matrix)[None, None]
    out = F.conv2d(pixels, weights, stride=int(stride))
    if checked_pool is not None:
        mode, size = checked_pool
        if out.shape[-2] < size or out.shape[-1] < size:
            raise CnnlabError(
                f"pooling {size}×{size} does not fit in the {out.shape[-2]}×{out.shape[-1]} "
                "convolution output"
            )
        out = F.max_pool2d(out, size) if mode == "max" else F.avg_pool2d(out, size)
    return out[0, 0].numpy()


# ------------------------------------------------------------------------------ plotting
def load_gray(image: str | os.PathLike | np.ndarray | torch.Tensor) -> np.ndarray:
    """A file path or an image array as one float64 (H, W) gray plane.

    Files are read with :func:`cnnlab.data.imageio.read_image` (16-bit values kept); RGB
    becomes gray by ITU-R 601 luma. Arrays may be (H, W), (C, H, W) or (H, W, C) with 1 or 3
    channels.
    """
    if isinstance(image, (str, os.PathLike)):
        from cnnlab.data.imageio import read_image

        tensor, _ = read_image(image, channels=1)
        return tensor[0].numpy().astype(np.float64)
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    array = array.astype(np.float64)
    if array.ndim == 2:
        return array
    if array.ndim == 3:
        if array.shape[0] in (1, 3) and (isinstance(image, torch.Tensor) or array.shape[-1] > 4):
            array = np.moveaxis(array, 0, -1)
        if array.shape[-1] == 1:
            return array[..., 0]
        if array.shape[-1] == 3:
            return rgb_to_gray(np.moveaxis(array, -1, 0))[0]
    raise CnnlabError(f"cannot make a gray image of shape {array.shape}")


def kernel_text(matrix: np.ndarray) -> str:
    """The kernel as rows of numbers, with a common fraction pulled out (``1/16 ×``)."""
    denominator = next(
        (d for d in range(1, 1025) if np.allclose(matrix * d, np.round(matrix * d), atol=1e-9)),
        None,
    )
    if denominator is not None:
        integers = np.round(matrix * denominator).astype(int)
        cells = [[str(value) for value in row] for row in integers]
    else:
        cells = [[f"{value:.3g}" for value in row] for row in matrix]
    width = max(len(cell) for row in cells for cell in row)
    lines = [" ".join(cell.rjust(width) for cell in row) for row in cells]
    if denominator not in (None, 1):
        prefix = f"1/{denominator} × "
        lines = [
            (prefix if index == len(lines) // 2 else " " * len(prefix)) + line
            for index, line in enumerate(lines)
        ]
    return "\n".join(lines)


def _padding_label(padding: Padding) -> str:
    return padding.lower() if isinstance(padding, str) else f"padding {padding}"


@styled
def kernel_demo_figure(
    image: str | os.PathLike | np.ndarray | torch.Tensor,
    kernels: Sequence[str | np.ndarray] = COURSE_KERNELS,
    padding: Padding = "valid",
    stride: int = 1,
    pool: Pool = None,
    columns: int = 4,
) -> Figure:
    """The original image and its convolution with each kernel, with the size arithmetic.

    Each panel is titled with the kernel, the padding, stride and pooling, the output size and
    the formula that gives it, and shows the kernel's numbers underneath. Every panel is
    contrast-stretched on its own, because edge filters give small signed values while blurs
    keep the image's range: mid-grey in an edge panel is zero response.
    """
    if not kernels:
        raise CnnlabError("give at least one kernel to apply")
    gray = load_gray(image)
    resolved = [resolve_kernel(kernel) for kernel in kernels]
    outputs = [apply_kernel(gray, matrix, padding, stride, pool) for _, matrix in resolved]
    checked_pool = _check_pool(pool)
    panels = 1 + len(outputs)
    columns = max(1, min(columns, panels))
    rows = -(-panels // columns)
    cell = min(3.0, 12.0 / columns)
    text_lines = max(matrix.shape[0] for _, matrix in resolved)
    title_height, text_height = 0.62, 0.15 * text_lines + 0.2
    row_height = title_height + cell + text_height
    width, height = columns * cell, rows * row_height + 0.55
    h, w = gray.shape

    fig = new_figure(width, height)
    fig.suptitle(
        f"Convolution demo: {h}×{w} image, {_padding_label(padding)}, stride {stride}"
        + (f", {checked_pool[0]}-pool {checked_pool[1]}" if checked_pool else ""),
        fontsize=SUPTITLE_SIZE,
        y=1 - 0.1 / height,
        va="top",
    )
    for panel in range(panels):
        row, column = divmod(panel, columns)
        bottom = height - 0.55 - row * row_height - title_height - cell
        axes = fig.add_axes(
            (
                (column * cell + 0.08) / width,
                bottom / height,
                (cell - 0.16) / width,
                (cell - 0.05) / height,
            )
        )
        if panel == 0:
            axes.imshow(to_display(gray), cmap="gray", aspect="equal")
            axes.set_title(
                f"original\n{h}×{w}\nvalues {gray.min():.5g} … {gray.max():.5g}",
                fontsize=TITLE_SIZE,
            )
        else:
            label, matrix = resolved[panel - 1]
            output = outputs[panel - 1]
            axes.imshow(to_display(output), cmap="gray", aspect="equal")
            axes.set_title(
                _panel_title(label, matrix, (h, w), padding, stride, checked_pool, output),
                fontsize=TITLE_SIZE,
            )
            axes.text(
                0.5,
                -0.04,
                kernel_text(matrix),
                transform=axes.transAxes,
                ha="center",
                va="top",
                family="monospace",
                fontsize=LABEL_SIZE,
            )
        axes.set_xticks([])
        axes.set_yticks([])
    return fig


def plot_kernel_demo(
    image: str | os.PathLike | np.ndarray | torch.Tensor,
    path: str | Path | None = None,
    kernels: Sequence[str | np.ndarray] = COURSE_KERNELS,
    padding: Padding = "valid",
    stride: int = 1,
    pool: Pool = None,
    columns: int = 4,
) -> Figure:
    """The :func:`kernel_demo_figure`; with ``path``, also written to that PNG file."""
    return saved_if(kernel_demo_figure(image, kernels, padding, stride, pool, columns), path)


def _panel_title(
    label: str,
    matrix: np.ndarray,
    size: tuple[int, int],
    padding: Padding,
    stride: int,
    pool: tuple[str, int] | None,
    output: np.ndarray,
) -> str:
    kh, kw = matrix.shape
    top, bottom, _, _ = _pads(padding, (kh, kw))
    conv_h, conv_w = output_size(size, (kh, kw), padding, stride)
    first = f"{_padding_label(padding)}, stride {stride} → {conv_h}×{conv_w}"
    pad_text = f"{top}+{bottom}" if top != bottom else f"2·{top}"
    formula = f"⌊({size[0]} + {pad_text} − {kh}) / {stride}⌋ + 1 = {conv_h}"
    if size[0] != size[1]:
        formula = f"rows: {formula}"
    if pool is not None:
        first += f", {pool[0]}-pool {pool[1]} → {output.shape[0]}×{output.shape[1]}"
    return f"{label}\n{first}\n{formula}"
