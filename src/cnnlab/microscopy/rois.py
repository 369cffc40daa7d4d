"""Objects from ImageJ ROIs: a ``RoiSet.zip`` of the ROI Manager, or a single ``.roi`` file.

The files are decoded by roifile, never by hand. Each area ROI becomes a
:class:`~cnnlab.microscopy.objects.FieldObject` whose mask holds the pixels ImageJ counts as
inside it: every pixel of a rectangle, and for ovals and outlines (polygon, freehand, traced) the
pixels whose centre lies inside the shape. ImageJ places a vertex at ``(x, y)`` on the corner of
pixel ``(x, y)``, so a pixel's centre is ``(x + 0.5, y + 0.5)``; with that, a traced outline
gives back exactly the pixels that were traced.

The box of an object is the ROI's own bounds (what ImageJ crops to), cut to the field: a ROI
reaching past the edge keeps the part inside, and one lying wholly outside the field (or enclosing
no pixel centre) is left out and reported with the reason.
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
from matplotlib.path import Path as Outline
from roifile import ROI_TYPE, ImagejRoi, roiread

from cnnlab.errors import CnnlabError
from cnnlab.microscopy.objects import FieldObject, class_of_name, make_object

_OUTLINES = (ROI_TYPE.POLYGON, ROI_TYPE.FREEHAND, ROI_TYPE.TRACED)
_NO_AREA = {
    ROI_TYPE.LINE: "a straight line",
    ROI_TYPE.FREELINE: "a freehand line",
    ROI_TYPE.POLYLINE: "a segmented line",
    ROI_TYPE.ANGLE: "an angle",
    ROI_TYPE.POINT: "a point selection",
    ROI_TYPE.NOROI: "an empty selection",
}


class RoiObjects(NamedTuple):
    """The objects of a ROI set, and the ROIs left out with why (name, reason)."""

    objects: list[FieldObject]
    skipped: list[tuple[str, str]]


def read_rois(path: str | os.PathLike) -> list[ImagejRoi]:
    """The ROIs of a ``.zip`` ROI set or ``.roi`` file, or a one-line error naming it."""
    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"{path}: no such ROI file; give an ImageJ RoiSet.zip or a .roi file")
    try:
        rois = roiread(path)
    except (zipfile.BadZipFile, ValueError, struct.error, EOFError, KeyError, IndexError) as error:
        raise CnnlabError(
            f"{path}: not a readable ImageJ ROI file ({type(error).__name__}: {error}); save the "
            "ROIs again from ImageJ's ROI Manager (More > Save)"
        ) from error
    except OSError as error:
        raise CnnlabError(f"{path}: cannot read it ({error.strerror or error})") from error
    rois = [rois] if isinstance(rois, ImagejRoi) else list(rois)
    if not rois:
        raise CnnlabError(f"{path}: holds no ROI; save the ROIs from ImageJ's ROI Manager")
    return rois


def objects_from_rois(path: str | os.PathLike, shape: tuple[int, int]) -> RoiObjects:
    """One object per area ROI of ``path``, for a field of ``shape`` (height, width).

    The ids count ROIs from 1 in the file's order; the class comes from the ROI's name
    (:func:`~cnnlab.microscopy.objects.class_of_name`). Lines and points enclose no pixels
    and are refused, naming the ROI; so are composite ROIs, whose holes ImageJ keeps in a form
    this reader does not rasterize.
    """
    objects, skipped = [], []
    for index, roi in enumerate(read_rois(path), start=1):
        name = roi.name or roi.autoname
        placed = _rasterize(roi, name, shape, path)
        if isinstance(placed, str):
            skipped.append((name, placed))
            continue
        top, left, mask = placed
        objects.append(make_object(index, name, class_of_name(name), top, left, mask, shape))
    return RoiObjects(objects, skipped)


def _rasterize(
    roi: ImagejRoi, name: str, shape: tuple[int, int], path: str | os.PathLike
) -> tuple[int, int, np.ndarray] | str:
    """(top, left, mask) of the ROI inside the field, or why it has no pixel there."""
    kind = roi.roitype
    if kind in _NO_AREA:
        raise CnnlabError(
            f"{path}: ROI {name!r} is {_NO_AREA[kind]}, which encloses no pixels; delete it from "
            "the set or draw an area (rectangle, oval, polygon, freehand)"
        )
    if roi.composite or roi.multi_coordinates is not None:
        raise CnnlabError(
            f"{path}: ROI {name!r} is a composite selection; split it in ImageJ (ROI Manager > "
            "More > Split) or redraw it as one outline"
        )
    if kind == ROI_TYPE.RECT and roi.rounded_rect_arc_size:
        raise CnnlabError(
            f"{path}: ROI {name!r} is a rounded rectangle, which this reader does not rasterize; "
            "redraw it as a rectangle or an oval"
        )
    if kind not in (ROI_TYPE.RECT, ROI_TYPE.OVAL, *_OUTLINES):
        raise CnnlabError(f"{path}: ROI {name!r} has an unknown type ({kind}); redraw it")

    top, left, bottom, right = roi.top, roi.left, roi.bottom, roi.right
    points = None
    if kind in _OUTLINES:
        points = np.asarray(roi.coordinates(), dtype=np.float64)  # (x, y) pairs
        if len(points) < 3:
            raise CnnlabError(f"{path}: ROI {name!r} has fewer than 3 points; redraw it")
        # Subpixel outlines may reach past the integer bounds stored in the file.
        left = min(left, int(np.floor(points[:, 0].min())))
        top = min(top, int(np.floor(points[:, 1].min())))
        right = max(right, int(np.ceil(points[:, 0].max())))
        bottom = max(bottom, int(np.ceil(points[:, 1].max())))
    if bottom <= top or right <= left:
        return "encloses no pixel"
    # The box cut to the field.
    t, lf = max(top, 0), max(left, 0)
    b, r = min(bottom, shape[0]), min(right, shape[1])
    if b <= t or r <= lf:
        return "outside the field"
    ys = np.arange(t, b, dtype=np.float64)[:, None] + 0.5  # pixel centres
    xs = np.arange(lf, r, dtype=np.float64)[None, :] + 0.5
    if kind == ROI_TYPE.RECT:
        mask = np.ones((b - t, r - lf), dtype=bool)
    elif kind == ROI_TYPE.OVAL:
        ry, rx = (bottom - top) / 2, (right - left) / 2
        cy, cx = top + ry, left + rx
        mask = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1.0
    else:
        grid_y, grid_x = np.broadcast_arrays(ys, xs)
        centres = np.column_stack([grid_x.ravel(), grid_y.ravel()])
        outline = Outline(np.vstack([points, points[:1]]), closed=True)
        mask = outline.contains_points(centres, radius=0.0).reshape(b - t, r - lf)
    if not mask.any():
        inside = t == top and lf == left and b == bottom and r == right
        return "encloses no pixel" if inside else "outside the field"
    return t, lf, mask
