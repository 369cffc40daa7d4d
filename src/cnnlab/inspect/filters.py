"""What a network's convolutions look for: the first layer's filters and every layer's kernels.

Kernels are drawn on a colour scale centred at zero (red adds where the image is bright, blue
subtracts), as one :func:`~cnnlab.inspect.figures.mosaic` per row or layer, so a figure of a
thousand kernels is still a handful of images to render.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.inspect.activations import model_name
from cnnlab.inspect.display import shape_text
from cnnlab.inspect.figures import (
    FIGURE_WIDTH,
    SMALL_SIZE,
    SUPTITLE_SIZE,
    TITLE_SIZE,
    mosaic,
    new_figure,
    saved_if,
    styled,
)

_WEIGHTS = mpl.colormaps["RdBu_r"].with_extremes(bad="white")


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """Every ``Conv2d`` of ``model`` with its qualified name, in registration order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def first_conv_filters(model: nn.Module) -> torch.Tensor:
    """Weights ``(out, in, kh, kw)`` of the first convolution: the filters the image meets first.

    A model without convolutions (an MLP) raises :class:`CnnlabError`, which callers that draw
    several figures catch to skip just this one.
    """
    layers = conv_layers(model)
    if not layers:
        raise CnnlabError(f"{model_name(model)} has no convolution layer: no filters to show")
    return layers[0][1].weight.detach().cpu().float().clone()


def _channel_names(count: int) -> list[str]:
    return ["R", "G", "B"] if count == 3 else [f"ch{index}" for index in range(count)]


@styled
def filters_figure(model: nn.Module, max_filters: int = 64) -> Figure:
    """The first convolution's kernels as small images on one colour scale centred at 0.

    Red weights add up where the image is bright, blue ones subtract, so a filter that is red on
    one side and blue on the other is an edge detector. One shared symmetric scale lets filters
    be compared with each other. With several input channels (RGB) each filter is a run of one
    kernel per channel. Kernels of 3x3 also show their numbers.
    """
    weights = first_conv_filters(model)
    name = conv_layers(model)[0][0]
    out_channels, in_channels, kh, kw = weights.shape
    count = min(out_channels, max_filters)
    shown = weights[:count].numpy()
    tiles = shown.reshape(count * in_channels, kh, kw)
    per_row = in_channels * max(1, 12 // in_channels) if in_channels <= 12 else in_channels
    columns = min(len(tiles), per_row)
    rows = -(-len(tiles) // columns)
    gap = 1
    image = mosaic(tiles, columns, gap)
    cell = min(1.1, (FIGURE_WIDTH - 1.0) / columns)  # inches per kernel
    pixel = cell / (kw + gap)
    label_height = 0.22  # inches above each row of kernels for its labels
    plot_width = image.shape[1] * pixel
    plot_height = image.shape[0] * pixel + rows * label_height
    width, height = plot_width + 1.0, plot_height + 0.55
    limit = float(np.abs(shown).max()) or 1.0
    channel_names = _channel_names(in_channels)
    more = f" (first {count} of {out_channels})" if count < out_channels else ""

    fig = new_figure(width, height)
    fig.suptitle(
        f"{model_name(model)}: {out_channels} filters{more} of {name} "
        f"({kh}×{kw}, {in_channels} input channel{'s' if in_channels > 1 else ''})",
        fontsize=SUPTITLE_SIZE - 1,
        y=1 - 0.08 / height,
        va="top",
    )
    # one axes per row of kernels leaves room for the labels between rows
    row_pixels = kh + gap
    picture = None
    for row in range(rows):
        band = image[row * row_pixels : row * row_pixels + kh]
        top = height - 0.5 - row * (cell * (kh + gap) / (kw + gap) + label_height)
        band_height = kh * pixel
        axes = fig.add_axes(
            (
                0.05 / width,
                (top - label_height - band_height) / height,
                plot_width / width,
                band_height / height,
            )
        )
        picture = axes.imshow(
            band,
            cmap=_WEIGHTS,
            vmin=-limit,
            vmax=limit,
            aspect="auto",
            extent=(-0.5, image.shape[1] - 0.5, kh - 0.5, -0.5),
        )
        axes.set_xlim(-0.5, image.shape[1] - 0.5)
        axes.set_axis_off()
        for column in range(columns):
            index = row * columns + column
            if index >= len(tiles):
                break
            filter_index, channel = divmod(index, in_channels)
            left = column * (kw + gap)
            label = (
                f"filter {filter_index}"
                if in_channels == 1
                else f"{filter_index} {channel_names[channel]}"
            )
            axes.text(
                left + (kw - 1) / 2,
                -0.7,
                label,
                ha="center",
                va="bottom",
                fontsize=SMALL_SIZE,
            )
            if kh * kw <= 9:
                _annotate_values(axes, tiles[index], limit, left)
    bar_height = min(2.0, plot_height - 0.1)
    colorbar_axes = fig.add_axes(
        ((width - 0.75) / width, 0.1 / height, 0.15 / width, bar_height / height)
    )
    colorbar = fig.colorbar(picture, cax=colorbar_axes)
    colorbar.set_label("weight (red adds, blue subtracts)", fontsize=SMALL_SIZE)
    colorbar.ax.tick_params(labelsize=SMALL_SIZE)
    return fig


def _annotate_values(axes: Axes, kernel: np.ndarray, limit: float, left: int) -> None:
    for (row, column), value in np.ndenumerate(kernel):
        colour = "white" if abs(value) > 0.6 * limit else "black"
        axes.text(
            left + column, row, f"{value:.2f}", ha="center", va="center", fontsize=5, color=colour
        )


@styled
def conv_kernels_figure(model: nn.Module, max_filters: int = 16, max_inputs: int = 8) -> Figure:
    """Every convolution's kernels: one block per layer, input channels down, filters across.

    The second convolution of LeNet-5 has 16 filters, each with one 5x5 kernel per map of the
    first layer (16x6 kernels); this figure shows that a deeper filter is a stack of kernels, one
    per incoming feature map. Each layer has its own symmetric scale, because weight sizes differ
    between layers. Large layers show the first ``max_filters`` x ``max_inputs`` kernels.
    """
    layers = conv_layers(model)
    if not layers:
        raise CnnlabError(f"{model_name(model)} has no convolution layer: no kernels to show")
    blocks = []
    for name, layer in layers:
        weights = layer.weight.detach().cpu().float()
        shown = weights[:max_filters, :max_inputs].numpy()
        blocks.append((name, tuple(weights.shape), shown))
    columns = max(block[2].shape[0] for block in blocks)
    left = 0.45  # inches for the input-channel labels
    cell = min(0.7, (FIGURE_WIDTH - 1.0 - left) / columns)
    width = left + columns * cell + 1.0
    title_height = 0.6
    heights = [block[2].shape[1] * cell + title_height for block in blocks]
    total = sum(heights) + 0.45

    fig = new_figure(width, total)
    fig.suptitle(
        f"{model_name(model)}: convolution kernels (rows: input channel, columns: filter)",
        fontsize=SUPTITLE_SIZE - 1,
        y=1 - 0.1 / total,
    )
    top = total - 0.45
    for (name, shape, shown), block_height in zip(blocks, heights, strict=True):
        filters, inputs, kh, kw = shown.shape
        limit = float(np.abs(shown).max()) or 1.0
        note = ""
        if (filters, inputs) != shape[:2]:
            note = f"  (showing {filters} of {shape[0]} filters × {inputs} of {shape[1]} inputs)"
        fig.text(
            0.1 / width,
            (top - 0.08) / total,
            f"{name}  weights {shape_text(shape)}{note}",
            fontsize=TITLE_SIZE,
            va="top",
        )
        gap = 1
        # tile order: input channel major, so each mosaic row is one input channel
        tiles = np.transpose(shown, (1, 0, 2, 3)).reshape(inputs * filters, kh, kw)
        image = mosaic(tiles, filters, gap)
        pixel = cell / (kw + gap)
        axes = fig.add_axes(
            (
                left / width,
                (top - title_height - image.shape[0] * pixel) / total,
                image.shape[1] * pixel / width,
                image.shape[0] * pixel / total,
            )
        )
        picture = axes.imshow(image, cmap=_WEIGHTS, vmin=-limit, vmax=limit, aspect="auto")
        axes.set_xticks([(kw - 1) / 2 + j * (kw + gap) for j in range(filters)])
        axes.set_xticklabels([f"f{j}" for j in range(filters)], fontsize=SMALL_SIZE - 1)
        axes.xaxis.tick_top()
        axes.set_yticks([(kh - 1) / 2 + i * (kh + gap) for i in range(inputs)])
        axes.set_yticklabels([f"in {i}" for i in range(inputs)], fontsize=SMALL_SIZE - 1)
        axes.tick_params(length=0, pad=1)
        for spine in axes.spines.values():
            spine.set_visible(False)
        colorbar_axes = fig.add_axes(
            (
                (left + 0.2 + image.shape[1] * pixel) / width,
                (top - block_height + 0.05) / total,
                0.12 / width,
                (block_height - title_height - 0.05) / total,
            )
        )
        colorbar = fig.colorbar(picture, cax=colorbar_axes)
        colorbar.ax.tick_params(labelsize=SMALL_SIZE - 1)
        top -= block_height
    return fig


def plot_filters(model: nn.Module, path: str | Path | None = None, max_filters: int = 64) -> Figure:
    """The :func:`filters_figure`; with ``path``, also written to that PNG file."""
    return saved_if(filters_figure(model, max_filters), path)


def plot_conv_kernels(
    model: nn.Module, path: str | Path | None = None, max_filters: int = 16, max_inputs: int = 8
) -> Figure:
    """The :func:`conv_kernels_figure`; with ``path``, also written to that PNG file."""
    return saved_if(conv_kernels_figure(model, max_filters, max_inputs), path)
