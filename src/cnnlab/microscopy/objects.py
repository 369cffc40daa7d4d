"""Objects in a field: one per ImageJ ROI or per label of a label image.

An object is what a crop is cut around and what a prediction is made for: its bounding box in
the field (``bottom``/``right`` exclusive, so ``image[top:bottom, left:right]`` is the box), a
boolean mask of its pixels cropped to that box, and the area and centroid of the mask. The
centroid is in pixel indices (row, column), as :func:`scipy.ndimage.center_of_mass` gives it;
ImageJ reports the same point half a pixel further, at the pixel's centre.

ROIs are read in :mod:`cnnlab.microscopy.rois`; label images here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from cnnlab.data.imageio import read_array
from cnnlab.errors import CnnlabError

# A trailing run of separators and digits ("1cell-0003", "rien_17", "groups #2") ends a name.
_NUMBERED = re.compile(r"^(.*?)[\s_#-]*\d+$", re.DOTALL)


@dataclass(frozen=True, eq=False)
class FieldObject:
    """One object of a field: where it is, which pixels it covers, and its class if known."""

    id: int
    name: str
    class_name: str | None
    top: int
    left: int
    bottom: int
    right: int
    mask: np.ndarray  #: bool, shape (bottom - top, right - left)
    area: int
    y: float
    x: float
    touches_border: bool

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        return self.top, self.left, self.bottom, self.right


def class_of_name(name: str) -> str | None:
    """The class a ROI name carries: ``"1cell-0003"`` -> ``"1cell"``.

    The name loses a trailing run of separators and digits; what remains is the class, unless it
    holds no letter (ImageJ's default names such as ``0117-0354`` carry no class).
    """
    match = _NUMBERED.match(name)
    stem = match.group(1) if match else name
    stem = stem.strip()
    return stem if any(c.isalpha() for c in stem) else None


def make_object(
    id: int,
    name: str,
    class_name: str | None,
    top: int,
    left: int,
    mask: np.ndarray,
    shape: tuple[int, int],
) -> FieldObject:
    """A :class:`FieldObject` from its mask placed at (top, left) in a field of ``shape``."""
    rows, cols = np.nonzero(mask)
    bottom, right = top + mask.shape[0], left + mask.shape[1]
    return FieldObject(
        id=id,
        name=name,
        class_name=class_name,
        top=top,
        left=left,
        bottom=bottom,
        right=right,
        mask=mask,
        area=int(rows.size),
        y=float(top + rows.mean()) if rows.size else float("nan"),
        x=float(left + cols.mean()) if rows.size else float("nan"),
        # The mask, not the box, decides: a ROI's box may hold an empty last row or column.
        touches_border=bool(rows.size)
        and (
            top + rows.min() == 0
            or left + cols.min() == 0
            or top + rows.max() == shape[0] - 1
            or left + cols.max() == shape[1] - 1
        ),
    )


def read_labels(source: str | os.PathLike | np.ndarray) -> np.ndarray:
    """A 2D label image from a file (any TIFF/PNG cnnlab reads) or an array, checked."""
    if isinstance(source, np.ndarray):
        return check_labels(source, "the label image")
    array, _ = read_array(source)
    if array.shape[0] != 1:
        raise CnnlabError(
            f"{source}: a label image must be one gray plane, not {array.shape[0]} channels"
        )
    return check_labels(array[0], str(source))


def check_labels(labels: np.ndarray, name: str) -> np.ndarray:
    """Refuses what cannot be a label image: float, negative, not 2D."""
    if labels.ndim != 2:
        raise CnnlabError(f"{name}: a label image must be 2D, not of shape {labels.shape}")
    if labels.dtype.kind not in "iub":
        raise CnnlabError(
            f"{name}: a label image holds whole numbers (0 = background, k = object k), not "
            f"{labels.dtype} values; save the labels as a 16- or 32-bit integer image"
        )
    if labels.dtype.kind == "i" and labels.size and int(labels.min()) < 0:
        raise CnnlabError(
            f"{name}: negative label {int(labels.min())}; labels are 0 (background) or a "
            "positive object number"
        )
    if labels.size and not (labels == 0).any():
        # Every object is surrounded by background somewhere; an image without a single 0 is
        # almost surely an intensity image (the field itself) given as labels.
        raise CnnlabError(
            f"{name}: has no background pixel (0), so it is not a label image (is it the field "
            "itself?); give the image where 0 is background and k marks object k"
        )
    return labels


def objects_from_labels(labels: np.ndarray) -> list[FieldObject]:
    """One object per nonzero label of ``labels``, in label order, its id the label.

    Boxes, areas and centroids come from one pass over the pixels; only the masks are cut per
    object. An object's name is its label, as text.
    """
    labels = check_labels(labels, "the label image")
    height, width = labels.shape
    # Only object pixels take part: a field is mostly background.
    where = np.flatnonzero(labels)
    ids, inverse = np.unique(labels.ravel()[where], return_inverse=True)
    rows, cols = np.divmod(where, width)
    count = ids.size
    top = np.full(count, height, dtype=np.int64)
    left = np.full(count, width, dtype=np.int64)
    bottom = np.full(count, -1, dtype=np.int64)
    right = np.full(count, -1, dtype=np.int64)
    np.minimum.at(top, inverse, rows)
    np.minimum.at(left, inverse, cols)
    np.maximum.at(bottom, inverse, rows)
    np.maximum.at(right, inverse, cols)
    area = np.bincount(inverse, minlength=count)
    y = np.bincount(inverse, weights=rows, minlength=count) / area
    x = np.bincount(inverse, weights=cols, minlength=count) / area
    bottom, right = bottom + 1, right + 1

    objects = []
    for k in range(count):
        label = int(ids[k])
        t, lf, b, r = int(top[k]), int(left[k]), int(bottom[k]), int(right[k])
        objects.append(
            FieldObject(
                id=label,
                name=str(label),
                class_name=None,
                top=t,
                left=lf,
                bottom=b,
                right=r,
                mask=labels[t:b, lf:r] == label,
                area=int(area[k]),
                y=float(y[k]),
                x=float(x[k]),
                touches_border=t == 0 or lf == 0 or b == height or r == width,
            )
        )
    return objects
