"""Small synthetic fields with known objects, for the tests of objects, crops and classify.

A field is a bright uint16 background with a ramp (every pixel differs, so a crop cut one pixel
off cannot pass for the right one) and dark ellipses. Each object is written three ways: as a
shape in :data:`Shape` (the truth, rasterized here by hand), in a label image, and as an ImageJ
ROI written by roifile.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from roifile import ROI_TYPE, ImagejRoi, roiwrite

BACKGROUND = 45_000


def ramp(shape: tuple[int, int]) -> np.ndarray:
    rows, cols = np.indices(shape)
    return (BACKGROUND - 2000 + 7 * rows + 3 * cols).astype(np.uint16)


def ellipse_mask(shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    """Pixels whose index (row, col) lies inside the ellipse: how the fields are drawn."""
    rows, cols = np.indices(shape)
    return ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1.0


@dataclass
class Field:
    image: np.ndarray
    labels: np.ndarray
    path: Path
    labels_path: Path


def draw_field(
    folder: Path,
    shape: tuple[int, int],
    ellipses: list[tuple[float, float, float, float, int]],
    name: str = "field.tif",
) -> Field:
    """Writes ``name`` and ``labels.tif``: ellipse k (cy, cx, ry, rx, value) has label k + 1."""
    image = ramp(shape)
    labels = np.zeros(shape, dtype=np.uint16)
    for k, (cy, cx, ry, rx, value) in enumerate(ellipses, start=1):
        inside = ellipse_mask(shape, cy, cx, ry, rx)
        image[inside] = value + (np.arange(inside.sum()) % 97)  # textured, not flat
        labels[inside] = k
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / name, image, imagej=True)
    tifffile.imwrite(folder / "labels.tif", labels)
    return Field(image, labels, folder / name, folder / "labels.tif")


def rect_roi(name: str, top: int, left: int, bottom: int, right: int) -> ImagejRoi:
    return ImagejRoi(
        roitype=ROI_TYPE.RECT, name=name, top=top, left=left, bottom=bottom, right=right
    )


def oval_roi(name: str, top: int, left: int, bottom: int, right: int) -> ImagejRoi:
    return ImagejRoi(
        roitype=ROI_TYPE.OVAL, name=name, top=top, left=left, bottom=bottom, right=right
    )


def polygon_roi(name: str, points: list[tuple[float, float]]) -> ImagejRoi:
    """A freehand ROI through (x, y) points: integer points as ImageJ stores them, float ones
    with subpixel coordinates."""
    return ImagejRoi.frompoints(np.asarray(points), name=name)


def line_roi(name: str) -> ImagejRoi:
    roi = ImagejRoi(roitype=ROI_TYPE.LINE, name=name, x1=1.0, y1=1.0, x2=9.0, y2=5.0)
    roi.top, roi.left, roi.bottom, roi.right = 1, 1, 6, 10
    return roi


def write_rois(path: Path, rois: list[ImagejRoi]) -> Path:
    roiwrite(path, rois, mode="w")
    return path
