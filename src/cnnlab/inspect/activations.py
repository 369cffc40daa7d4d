"""What each layer of a network makes of one image (the filters are in :mod:`.filters`).

A CNN is easiest to understand by following one image through it: the standardized input, the
feature maps after each convolution, how pooling halves the maps, what ReLU removes, and how the
dense layers end in one probability per class. (cnnlab's ReLU networks pool before the ReLU,
the same function on a quarter of the values: see :mod:`cnnlab.models.layers`.)
:func:`layer_outputs` records every layer's output with forward hooks on the *leaf* modules
(those without children), which is exactly the list of operations a student sees in
``print(model)``; :func:`activations_figure` draws them one row per layer.

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
from matplotlib.figure import Figure
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.inspect.display import range_text, shape_text, to_display
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
_STRIP_TICKS = 0.14  # room under a strip for its unit numbers


def _row_kind(layer: LayerOutput) -> str:
    """How a layer's output is drawn: "maps" (C, H, W), "strip" (anything flat)."""
    shape = layer.shape
    if len(shape) == 3 and shape[1] * shape[2] > 1:
        return "maps"
    return "strip"


@styled
def activations_figure(
    model: nn.Module,
    image: torch.Tensor | np.ndarray,
    max_maps: int = 16,
    class_names: Sequence[str] | None = None,
) -> Figure:
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
    return fig


def plot_activations(
    model: nn.Module,
    image: torch.Tensor | np.ndarray,
    path: str | Path | None = None,
    max_maps: int = 16,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """The :func:`activations_figure`; with ``path``, also written to that PNG file."""
    return saved_if(activations_figure(model, image, max_maps, class_names), path)


def _type_names() -> set[str]:
    return {kind.__name__ for kind in _IDENTITY_IN_EVAL}
