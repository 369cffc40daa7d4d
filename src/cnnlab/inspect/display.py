"""Turning images into something a screen can show.

Microscopy images are 16-bit: a phase-contrast crop typically holds counts between 20,000 and
40,000 out of 65,535. Shown with a fixed 0..255 or 0..65,535 scale such an image is a white or a
flat grey square, and a student concludes that the data are broken. :func:`to_display` therefore
stretches every image by its own robust percentiles, which works for 8-bit digits, 16-bit crops
and the signed, unbounded outputs of convolution layers alike.
"""

from __future__ import annotations

import numpy as np
import torch

from cnnlab.errors import CnnlabError


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


def display_pixels(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """``image`` as 8-bit screen pixels, ``(H, W)`` or ``(H, W, 3)``, contrast-stretched.

    The per-image percentile stretch of :func:`to_display` is what makes 16-bit phase-contrast
    crops visible at all; 8 bits are all a screen shows.
    """
    return np.round(to_display(image) * 255.0).astype(np.uint8)


def show_image(ax, image: torch.Tensor | np.ndarray) -> None:
    """Draws one dataset image on ``ax``, contrast-stretched, without ticks or frame.

    Every image gets its own percentile stretch (:func:`to_display`): 16-bit phase-contrast
    counts would otherwise show as a flat grey square.
    """
    shown = to_display(image)
    ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0.0, vmax=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
