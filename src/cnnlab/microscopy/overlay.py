"""The overlay of a classified field: the field in 8-bit, each object outlined in its class colour.

The field keeps its own pixel grid (row y, column x of the PNG is pixel y, x of the field), so an
outline can be checked against the object it surrounds; the legend (class, colour, count) lies in
a band below it. Contrast is set from the 0.5th and 99.5th percentiles rather than the minimum
and maximum: a few saturated halo pixels (65,535 around debris) would otherwise turn the whole
field into a gray wash.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cnnlab.errors import CnnlabError
from cnnlab.files import write_bytes
from cnnlab.microscopy.objects import FieldObject

#: Class colours (matplotlib's tab10), by the class's index in the model's class names.
PALETTE = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)  # fmt: skip
PERCENTILES = (0.5, 99.5)


def class_colour(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


def to_8bit(image: np.ndarray) -> np.ndarray:
    """The field as 8-bit gray, stretched between robust percentiles of its pixels."""
    low, high = np.percentile(image, PERCENTILES)
    if high <= low:  # a flat field: show it mid-gray rather than divide by zero
        return np.full(image.shape, 128, dtype=np.uint8)
    scaled = (image.astype(np.float64) - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def boundary(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` with a 4-neighbour outside it (the edge of the box counts)."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:] & mask
    return mask & ~interior


def render_overlay(
    image: np.ndarray,
    objects: Sequence[FieldObject],
    classes: Sequence[int],
    class_names: Sequence[str],
) -> np.ndarray:
    """An RGB uint8 picture: the field with outlines in the colour of ``classes[i]``, and a legend.

    ``classes`` holds, for each object, the index of its class in ``class_names``.
    """
    gray = to_8bit(image)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    for obj, index in zip(objects, classes, strict=True):
        edge = boundary(obj.mask)
        rows, cols = np.nonzero(edge)
        rgb[obj.top + rows, obj.left + cols] = class_colour(index)
    counts = np.bincount(np.asarray(classes, dtype=np.int64), minlength=len(class_names))
    return _with_legend(rgb, class_names, counts.tolist())


def _font(height: int) -> ImageFont.ImageFont:
    try:  # a scalable font, sized to the field (Pillow with FreeType)
        return ImageFont.load_default(size=max(10, height // 60))
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _with_legend(rgb: np.ndarray, class_names: Sequence[str], counts: Sequence[int]) -> np.ndarray:
    """``rgb`` with a black band below it: one swatch, class name and count per class."""
    height, width = rgb.shape[:2]
    font = _font(max(height, width))
    entries = [f"{name}: {count}" for name, count in zip(class_names, counts, strict=True)]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = [probe.textbbox((0, 0), text, font=font) for text in entries]
    line = max(b[3] - b[1] for b in boxes) + 6
    swatch = line - 6
    needed = max(b[2] - b[0] for b in boxes) + swatch + 16
    canvas = Image.new("RGB", (max(width, needed), height + line * len(entries) + 6))
    canvas.paste(Image.fromarray(rgb), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, (text, box) in enumerate(zip(entries, boxes, strict=True)):
        y = height + 6 + i * line
        draw.rectangle([4, y, 4 + swatch, y + swatch], fill=class_colour(i))
        draw.text((swatch + 10, y - box[1]), text, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Writes an RGB array as a PNG, atomically."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    try:
        write_bytes(path, buffer.getvalue())
    except OSError as error:
        raise CnnlabError(
            f"{path}: cannot write the overlay ({error.strerror or error})"
        ) from error
