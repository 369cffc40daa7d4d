"""What each layer of a network makes of one image, and what its first filters look like.

A CNN is easiest to understand by following one image through it: the standardized input, the
feature maps after each convolution, what ReLU removes, how pooling halves the maps, and how the
dense layers end in one probability per class. :func:`layer_outputs` records every layer's output
with forward hooks on the *leaf* modules (those without children), which is exactly the list of
operations a student sees in ``print(model)``; :func:`plot_activations` draws them one row per
layer.

Hooks are always removed, and the model's train/eval flags are restored per module, even when the
image does not fit the model, so inspecting a model never changes how it trains afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import torch
from matplotlib.axes import Axes
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.inspect.display import (
    FIGURE_WIDTH,
    SMALL_SIZE,
    SUPTITLE_SIZE,
    TITLE_SIZE,
    cnnlab_style,
    figure_to_png,
    mosaic,
    new_figure,
    range_text,
    shape_text,
    to_display,
)

#: Layers whose output equals their input in evaluation mode; drawing them would repeat a row.
_IDENTITY_IN_EVAL = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


@dataclass(frozen=True)
class LayerOutput:
    """One leaf module's output for one image, without the batch axis."""

    name: str
    module_type: str
    output: torch.Tensor

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.output.shape)


def model_name(model: nn.Module) -> str:
    """The registry name when the model has one (``lenet5``), else its class name."""
    config = getattr(model, "cnnlab_config", None) or {}
    return str(config.get("name") or type(model).__name__)


def as_batch(model: nn.Module, image: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A raw ``(C, H, W)`` image (or a batch of one) as a float ``(1, C, H, W)`` batch.

    The model standardizes raw pixel values itself, so only the dtype changes here. The channel
    count is checked against ``model.in_chans`` so that a gray image given to an RGB model fails
    with a sentence instead of a convolution shape error.
    """
    if isinstance(image, np.ndarray):
        # float32 holds every 16-bit count exactly; the copy also accepts read-only buffers
        tensor = torch.from_numpy(np.array(image, dtype=np.float32))
    else:
        tensor = torch.as_tensor(image)
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 3:
        raise CnnlabError(f"expected one image of shape (C, H, W), got shape {tuple(tensor.shape)}")
    expected = getattr(model, "in_chans", None)
    if expected is not None and tensor.shape[0] != expected:
        raise CnnlabError(
            f"the image has {tensor.shape[0]} channel(s) but {model_name(model)} expects "
            f"{expected}; load it with channels={expected}"
        )
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    return tensor.to(device=device, dtype=torch.float32).unsqueeze(0)


def does_not_fit(model: nn.Module, batch: torch.Tensor, error: RuntimeError) -> CnnlabError:
    """The error for an image that the model's layers cannot take (usually the wrong size)."""
    height, width = batch.shape[-2:]
    built = getattr(model, "input_size", None)
    hint = f"; it was built for {built[0]}x{built[1]} images, resize to that" if built else ""
    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    return CnnlabError(f"a {height}x{width} image does not fit {model_name(model)}{hint} ({first})")


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(qualified name, module)`` for every module without children, in registration order."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if name and next(module.children(), None) is None
    ]


def layer_outputs(model: nn.Module, image: torch.Tensor | np.ndarray) -> list[LayerOutput]:
    """Every leaf module's output for the raw ``(C, H, W)`` ``image``, in the order they ran.

    The model runs in evaluation mode (batch norm uses its running statistics, dropout passes
    values through), without gradients; its modes are restored afterwards. A module that runs
    twice appears twice; one that never runs does not appear.
    """
    batch = as_batch(model, image)
    recorded: list[LayerOutput] = []

    def recorder(name: str):
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            tensor = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(tensor, torch.Tensor):
                recorded.append(
                    LayerOutput(name, type(module).__name__, tensor.detach()[0].cpu().clone())
                )

        return hook

    modes = [(module, module.training) for module in model.modules()]
    handles = []
    try:
        for name, module in leaf_modules(model):
            handles.append(module.register_forward_hook(recorder(name)))
        model.eval()
        with torch.no_grad():
            model(batch)
    except RuntimeError as error:
        raise does_not_fit(model, batch, error) from error
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training
    return recorded


def class_labels(
    model: nn.Module, count: int, class_names: Sequence[str] | None = None
) -> list[str]:
    """Names for ``count`` outputs: given ones, else the model's ``class_names``, else indices."""
    names = class_names if class_names is not None else getattr(model, "class_names", None)
    if names is not None and len(names) == count:
        return [str(name) for name in names]
    return [str(index) for index in range(count)]


# ------------------------------------------------------------------------------ activations
_ROW_TITLE = 0.30  # inches above each row for its title
_MARGIN = 0.15
_MAPS = mpl.colormaps["viridis"].with_extremes(bad="white")
_WEIGHTS = mpl.colormaps["RdBu_r"].with_extremes(bad="white")
_STRIP_TICKS = 0.14  # room under a strip for its unit numbers


def _row_kind(layer: LayerOutput) -> str:
    """How a layer's output is drawn: "maps" (C, H, W), "strip" (anything flat)."""
    shape = layer.shape
    if len(shape) == 3 and shape[1] * shape[2] > 1:
        return "maps"
    return "strip"


def plot_activations(
    model: nn.Module,
    image: torch.Tensor | np.ndarray,
    path: str | Path,
    max_maps: int = 16,
    class_names: Sequence[str] | None = None,
) -> Path:
    """One figure following ``image`` through ``model``: one row per layer, then the prediction.

    Rows: the input (contrast-stretched for the screen); every layer with a spatial output as
    up to ``max_maps`` feature maps on one shared colour scale (so a map that a ReLU switched off
    looks dark next to an active one); every flat output (flatten, dense layers) as a 1xN heat
    strip; and the last layer's logits as softmax probabilities per class. Dropout layers are
    listed but not drawn, because in evaluation mode they pass their input through unchanged.
    """
    if max_maps < 1:
        raise CnnlabError(f"max_maps must be at least 1, got {max_maps}")
    layers = layer_outputs(model, image)
    if not layers:
        raise CnnlabError(f"{model_name(model)} has no layers to show")
    raw = as_batch(model, image)[0].cpu()
    *hidden, logits = layers
    skipped = [layer.name for layer in hidden if layer.module_type in _type_names()]
    drawn = [layer for layer in hidden if layer.module_type not in _type_names()]

    width = FIGURE_WIDTH
    usable = width - 2 * _MARGIN
    cell = min(0.95, usable / max_maps * 0.92)
    aspect = raw.shape[1] / raw.shape[2]
    map_height = float(np.clip(cell * aspect, 0.35, 1.6))
    heights = [1.6]
    for layer in drawn:
        heights.append(map_height if _row_kind(layer) == "maps" else 0.3 + _STRIP_TICKS)
    heights.append(1.7)
    total = sum(heights) + _ROW_TITLE * len(heights) + 0.6 + (0.25 if skipped else 0.0)

    with cnnlab_style():
        fig = new_figure(width, total)
        cursor = total - 0.55  # inches from the bottom, moving down
        fig.suptitle(
            f"{model_name(model)}: what each layer makes of one image",
            y=(total - 0.12) / total,
            fontsize=SUPTITLE_SIZE,
            fontweight="bold",
        )

        def add_axes(left: float, bottom: float, w: float, h: float) -> Axes:
            axes = fig.add_axes((left / width, bottom / total, w / width, h / total))
            return axes

        def row_title(text: str) -> None:
            fig.text(
                _MARGIN / width,
                (cursor - 0.05) / total,
                text,
                fontsize=TITLE_SIZE,
                va="top",
                ha="left",
            )

        # input row
        row_title(f"input  {shape_text(raw.shape)}  raw {range_text(raw)} (contrast-stretched)")
        cursor -= _ROW_TITLE + heights[0]
        side = heights[0]
        axes = add_axes(_MARGIN, cursor, min(side / aspect, usable), side)
        axes.imshow(to_display(raw), cmap="gray", aspect="auto")
        axes.set_axis_off()

        for layer, height in zip(drawn, heights[1:-1], strict=True):
            output = layer.output.float()
            title = f"{layer.name}  ({layer.module_type})  {shape_text(layer.shape)}"
            if _row_kind(layer) == "maps":
                count = min(layer.shape[0], max_maps)
                shown = output[:count].numpy()
                more = f", first {count} of {layer.shape[0]} maps" if count < layer.shape[0] else ""
                row_title(f"{title}   {range_text(shown)}{more}")
                cursor -= _ROW_TITLE + height
                vmin, vmax = float(shown.min()), float(shown.max())
                if vmax <= vmin:
                    vmin, vmax = vmin - 0.5, vmax + 0.5
                map_w = layer.shape[2]
                gap = max(1, round(map_w / 10))
                tiles = mosaic(shown, count, gap)
                pixel = height / tiles.shape[0]  # inches per pixel, so maps keep their aspect
                axes = add_axes(_MARGIN, cursor, min(usable, tiles.shape[1] * pixel), height)
                axes.imshow(tiles, cmap=_MAPS, vmin=vmin, vmax=vmax, aspect="auto")
                axes.set_axis_off()
            else:
                flat = output.reshape(-1).numpy()
                row_title(f"{title}   {range_text(flat)}")
                cursor -= _ROW_TITLE + height
                axes = add_axes(_MARGIN, cursor + _STRIP_TICKS, usable, height - _STRIP_TICKS)
                axes.imshow(flat[None, :], cmap="viridis", aspect="auto")
                axes.set_yticks([])
                axes.tick_params(axis="x", labelsize=SMALL_SIZE - 1, length=2, pad=1)

        # prediction row
        probabilities = torch.softmax(logits.output.float().reshape(-1), dim=0).numpy()
        labels = class_labels(model, probabilities.size, class_names)
        best = int(probabilities.argmax())
        row_title(
            f"{logits.name}  ({logits.module_type})  {shape_text(logits.shape)} logits "
            f"-> softmax probabilities; predicted {labels[best]!r} ({probabilities[best]:.1%})"
        )
        cursor -= _ROW_TITLE + heights[-1]
        chart_width = min(usable - 0.4, max(3.0, 0.8 * probabilities.size))
        axes = add_axes(_MARGIN + 0.4, cursor + 0.3, chart_width, heights[-1] - 0.3)
        colours = ["#bbbbbb"] * probabilities.size
        colours[best] = "#d95f02"
        positions = np.arange(probabilities.size)
        axes.bar(positions, probabilities, color=colours, width=0.7)
        if probabilities.size <= 20:
            for position, probability in zip(positions, probabilities, strict=True):
                axes.text(
                    position,
                    probability + 0.02,
                    f"{probability:.2f}",
                    ha="center",
                    va="bottom",
                    fontsize=SMALL_SIZE - 1,
                )
        axes.set_ylim(0, 1)
        axes.set_ylabel("probability")
        axes.set_xticks(positions)
        rotation = 0 if probabilities.size <= 12 and max(map(len, labels)) <= 8 else 45
        axes.set_xticklabels(labels, rotation=rotation, ha="right" if rotation else "center")
        axes.set_xlim(-0.6, probabilities.size - 0.4)
        axes.spines[["top", "right"]].set_visible(False)

        if skipped:
            fig.text(
                _MARGIN / width,
                0.02 / total,
                f"not drawn: {', '.join(skipped)} (dropout passes values unchanged when the "
                "model predicts)",
                fontsize=SMALL_SIZE,
                style="italic",
                va="bottom",
            )
        return figure_to_png(fig, path)


def _type_names() -> set[str]:
    return {kind.__name__ for kind in _IDENTITY_IN_EVAL}


# ------------------------------------------------------------------------------ filters
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


def plot_filters(model: nn.Module, path: str | Path, max_filters: int = 64) -> Path:
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

    with cnnlab_style():
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
        return figure_to_png(fig, path)


def _annotate_values(axes: Axes, kernel: np.ndarray, limit: float, left: int) -> None:
    for (row, column), value in np.ndenumerate(kernel):
        colour = "white" if abs(value) > 0.6 * limit else "black"
        axes.text(
            left + column, row, f"{value:.2f}", ha="center", va="center", fontsize=5, color=colour
        )


def plot_conv_kernels(
    model: nn.Module, path: str | Path, max_filters: int = 16, max_inputs: int = 8
) -> Path:
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

    with cnnlab_style():
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
                note = (
                    f"  (showing {filters} of {shape[0]} filters × {inputs} of {shape[1]} inputs)"
                )
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
        return figure_to_png(fig, path)
