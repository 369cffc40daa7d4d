"""Where in the image did the network look? Grad-CAM and input-gradient saliency maps.

For a CNN the map is Grad-CAM (Selvaraju et al., 2017) on the last convolution: each of its
feature maps is weighted by how much the class score grows when that map grows (the spatially
averaged gradient), the weighted maps are summed, negative evidence is cut off and the result is
upsampled to the image. It answers "which regions made the network say *this* class" at the
resolution of the last convolution, which is coarse but far less noisy than pixel gradients.

A network without convolutions (an MLP) has no feature maps, so it gets the plain saliency map:
the absolute gradient of the class score with respect to each input pixel (Simonyan et al.,
2014), the largest over colour channels.

Both come from captum, PyTorch's own attribution library and a dependency of cnnlab; it is
imported when a map is first computed, which keeps ``import cnnlab`` fast. The figure says which
method drew it, so a reader never mistakes one kind of map for the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.inspect.activations import as_batch, class_labels, does_not_fit, model_name
from cnnlab.inspect.display import to_display
from cnnlab.inspect.figures import (
    SMALL_SIZE,
    SUPTITLE_SIZE,
    new_figure,
    saved_if,
    styled,
)
from cnnlab.inspect.filters import conv_layers

GRAD_CAM = "Grad-CAM"
INPUT_SALIENCY = "input-gradient saliency"


@dataclass(frozen=True)
class SaliencyResult:
    """A saliency map in [0, 1] of the image's (H, W), and what it explains."""

    map: np.ndarray
    method: str
    layer: str | None
    target: int
    probabilities: np.ndarray

    @property
    def predicted(self) -> int:
        return int(self.probabilities.argmax())


def saliency(
    model: nn.Module, image: torch.Tensor | np.ndarray, target: int | None = None
) -> SaliencyResult:
    """Grad-CAM (or input-gradient saliency) of ``target`` for the raw ``(C, H, W)`` image.

    ``target`` defaults to the predicted class. The map is non-negative and scaled so its
    maximum is 1; a map with no positive evidence at all stays all zero rather than being
    stretched from noise. The model runs in evaluation mode and its modes are restored.
    """
    batch = as_batch(model, image)
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            try:
                logits = model(batch)
            except RuntimeError as error:
                raise does_not_fit(model, batch, error) from error
        probabilities = torch.softmax(logits[0].float(), dim=0).cpu().numpy()
        if target is None:
            target = int(probabilities.argmax())
        elif not 0 <= int(target) < probabilities.size:
            raise CnnlabError(
                f"target class {target} does not exist: the model has {probabilities.size} "
                f"classes (0 to {probabilities.size - 1})"
            )
        target = int(target)
        convolutions = conv_layers(model)
        if convolutions:
            layer_name, layer = convolutions[-1]
            raw = _grad_cam(model, layer, batch, target)
            method, explained = GRAD_CAM, layer_name
        else:
            raw = _input_gradient(model, batch, target)
            method, explained = INPUT_SALIENCY, None
    finally:
        for module, training in modes:
            module.training = training
    return SaliencyResult(_unit_scale(raw), method, explained, target, probabilities)


def saliency_map(
    model: nn.Module, image: torch.Tensor | np.ndarray, target: int | None = None
) -> np.ndarray:
    """Just the ``(H, W)`` map of :func:`saliency`, values in [0, 1]."""
    return saliency(model, image, target).map


def _grad_cam(model: nn.Module, layer: nn.Module, batch: torch.Tensor, target: int) -> torch.Tensor:
    from captum.attr import LayerAttribution, LayerGradCam

    cam = LayerGradCam(model, layer).attribute(batch, target=target, relu_attributions=True)
    upsampled = LayerAttribution.interpolate(
        cam.detach(), tuple(batch.shape[-2:]), interpolate_mode="bilinear"
    )
    return upsampled[0].amax(dim=0)


def _input_gradient(model: nn.Module, batch: torch.Tensor, target: int) -> torch.Tensor:
    """|d score / d pixel|, the largest over colour channels (captum's ``Saliency``)."""
    from captum.attr import Saliency

    inputs = batch.detach().clone().requires_grad_(True)
    return Saliency(model).attribute(inputs, target=target, abs=True)[0].amax(dim=0)


def _unit_scale(raw: torch.Tensor) -> np.ndarray:
    values = torch.nan_to_num(raw.detach().float().cpu(), nan=0.0).clamp(min=0.0).numpy()
    peak = float(values.max()) if values.size else 0.0
    return (values / peak if peak > 0 else np.zeros_like(values)).astype(np.float64)


@styled
def saliency_figure(
    model: nn.Module,
    image: torch.Tensor | np.ndarray,
    class_names: Sequence[str] | None = None,
    target: int | None = None,
) -> Figure:
    """The image, its saliency map and the map laid over the image, side by side.

    The title names the predicted class with its probability, the explained class when it is
    not the predicted one, and the method (Grad-CAM on which layer, or input gradients).
    """
    result = saliency(model, image, target)
    raw = as_batch(model, image)[0].cpu()
    shown = to_display(raw)
    labels = class_labels(model, result.probabilities.size, class_names)
    predicted = result.predicted
    headline = (
        f"{model_name(model)} predicts {labels[predicted]!r} "
        f"(p = {result.probabilities[predicted]:.2f})"
    )
    if result.target != predicted:
        headline += (
            f"; map explains {labels[result.target]!r} "
            f"(p = {result.probabilities[result.target]:.2f})"
        )
    method = result.method + (f" on {result.layer}" if result.layer else "")
    if not result.map.any():
        method += " - no positive evidence for this class"

    gray = "gray" if shown.ndim == 2 else None
    fig = new_figure(9.6, 3.75)
    fig.suptitle(f"{headline}\n{method}", fontsize=SUPTITLE_SIZE - 1)
    axes = fig.subplots(
        1,
        3,
        gridspec_kw={"left": 0.02, "right": 0.93, "top": 0.8, "bottom": 0.03, "wspace": 0.08},
    )
    axes[0].imshow(shown, cmap=gray)
    axes[0].set_title(f"image {raw.shape[-2]}×{raw.shape[-1]}")
    heat = axes[1].imshow(result.map, cmap="inferno", vmin=0, vmax=1)
    axes[1].set_title("saliency (1 = most important)")
    axes[2].imshow(shown, cmap=gray)
    # transparency follows the map, so unimportant regions keep the image's own look
    axes[2].imshow(result.map, cmap="jet", vmin=0, vmax=1, alpha=0.1 + 0.55 * result.map)
    axes[2].set_title("overlay")
    for each in axes:
        each.set_xticks([])
        each.set_yticks([])
    colorbar_axes = fig.add_axes((0.945, 0.08, 0.012, 0.67))
    colorbar = fig.colorbar(heat, cax=colorbar_axes)
    colorbar.ax.tick_params(labelsize=SMALL_SIZE)
    return fig


def plot_saliency(
    model: nn.Module,
    image: torch.Tensor | np.ndarray,
    path: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    target: int | None = None,
) -> Figure:
    """The :func:`saliency_figure`; with ``path``, also written to that PNG file."""
    return saved_if(saliency_figure(model, image, class_names, target), path)
