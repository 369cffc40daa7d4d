"""Cutting object crops out of a field, in memory.

The one place that decides which pixels a crop holds: :func:`cnnlab.microscopy.crops.cut_crops`
writes these crops to files and :func:`cnnlab.microscopy.classify.classify_field` hands them to
a model, so a crop on disk and the crop a field prediction saw are the same pixels.

A crop is the object's box plus ``margin`` pixels on each side, or, with ``size``, a box of that
size centred on the object's centroid. The margin's default depends on where the objects come
from: a ROI is already the box a person drew around the cell, halo included, so its crop is the
ROI itself (margin 0), exactly what ImageJ's Duplicate cuts; a label covers only the dark cell
body, so a label's box gets :data:`LABEL_MARGIN` pixels on each side, which frames the cell as
the course's ROI crops do (on a synthetic field, label crops then have the ROI crops' median
size per class). Its pixels are the field's own, in the field's dtype,
never rescaled. A box that leaves the field is handled as ``border`` says: ``"skip"`` leaves the
object out (and also an object cut by the field's edge, whose crop would show part of it),
``"clip"`` keeps what lies inside the field, and ``"pad"`` repeats the field's edge pixels
outward. Edge values continue the bright background a network saw around every training cell;
zeros would be a black band darker than any cell, and mirroring would copy the object itself.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.microscopy.formats import Field, read_field
from cnnlab.microscopy.objects import FieldObject, objects_from_labels, read_labels
from cnnlab.microscopy.rois import objects_from_rois

BORDERS = ("skip", "pad", "clip")
#: Default margins (pixels on each side) for objects from ROIs and from a label image.
ROI_MARGIN = 0
LABEL_MARGIN = 5


def default_margin(margin: int | None, rois: object) -> int:
    """``margin`` as given, or the default for the objects' source (see the module's text)."""
    if margin is not None:
        return margin
    return ROI_MARGIN if rois is not None else LABEL_MARGIN


@dataclass(frozen=True, eq=False)
class Crop:
    """One object's crop: its pixels and the box they came from in field coordinates.

    With ``border="pad"`` the box may reach past the field (negative ``top``...); with
    ``"clip"`` it is the part inside the field.
    """

    object: FieldObject
    image: np.ndarray
    box: tuple[int, int, int, int]  #: top, left, bottom, right (exclusive)


@dataclass(frozen=True)
class FieldCrops:
    """The crops of a field, and the objects left out with why (name, reason)."""

    field: Field
    crops: list[Crop]
    skipped: list[tuple[str, str]]
    source: str  #: the ROI set or label image the objects came from

    @property
    def has_classes(self) -> bool:
        """Whether any object carries a class (from its ROI name)."""
        return any(c.object.class_name is not None for c in self.crops)


def load_field(
    field: Field | str | os.PathLike,
    *,
    channel: int | str | None = None,
    plane: int | None = None,
    position: int | None = None,
    time: int | None = None,
) -> Field:
    """A field as given, or read from a microscope file with the given choices."""
    if isinstance(field, Field):
        chosen = {"channel": channel, "plane": plane, "position": position, "time": time}
        given = [flag for flag, value in chosen.items() if value is not None]
        if given:
            raise CnnlabError(
                f"--{given[0]}: the field {field.label} is already read; choose planes when "
                "reading it (read_field) or pass its path"
            )
        return field
    return read_field(field, channel=channel, plane=plane, position=position, time=time)


def check_crop_options(margin: int | None, size: int | tuple[int, int] | None, border: str) -> None:
    """Refuses crop options that make no box, before anything is read."""
    if margin is None:
        pass
    elif isinstance(margin, bool) or not isinstance(margin, int | np.integer) or margin < 0:
        raise CnnlabError(f"--margin {margin!r}: give a whole number of pixels >= 0")
    if size is not None:
        sides = (size, size) if isinstance(size, int | np.integer) else tuple(size)
        if len(sides) != 2 or not all(
            isinstance(s, int | np.integer) and not isinstance(s, bool) and s >= 1 for s in sides
        ):
            raise CnnlabError(f"--size {size!r}: give a side N or HxW in whole pixels >= 1")
    if border not in BORDERS:
        raise CnnlabError(f"--border {border!r}: choose one of {', '.join(BORDERS)}")


def check_one_source(rois: object, labels: object) -> None:
    if (rois is None) == (labels is None):
        raise CnnlabError("give the objects by exactly one of --rois ZIP or --labels TIF")


def field_objects(
    field: Field,
    *,
    rois: str | os.PathLike | None = None,
    labels: str | os.PathLike | np.ndarray | None = None,
) -> tuple[list[FieldObject], list[tuple[str, str]], str]:
    """The objects of ``field`` from exactly one of a ROI set or a label image.

    Returns the objects, the ROIs left out with why, and how to name their source.
    """
    check_one_source(rois, labels)
    shape = field.image.shape
    if rois is not None:
        objects, skipped = objects_from_rois(rois, shape)
        return objects, skipped, str(rois)
    source = "the label image" if isinstance(labels, np.ndarray) else str(labels)
    array = read_labels(labels)
    if array.shape != shape:
        raise CnnlabError(
            f"{source}: labels of {array.shape[0]}x{array.shape[1]} pixels for a field of "
            f"{shape[0]}x{shape[1]} ({field.label}); give the label image made for this field"
        )
    return objects_from_labels(array), [], source


def crop_box(
    obj: FieldObject, margin: int, size: int | tuple[int, int] | None
) -> tuple[int, int, int, int]:
    """The box (top, left, bottom, right) of an object's crop, before any border handling."""
    if size is None:
        return obj.top - margin, obj.left - margin, obj.bottom + margin, obj.right + margin
    height, width = (size, size) if isinstance(size, int | np.integer) else size
    # Centred on the centroid: pixel y's centre is y + 0.5, and so is the box's.
    top = int(np.floor(obj.y + 1 - height / 2))
    left = int(np.floor(obj.x + 1 - width / 2))
    return top, left, top + int(height), left + int(width)


def cut_objects(
    image: np.ndarray,
    objects: list[FieldObject],
    *,
    margin: int = 2,
    size: int | tuple[int, int] | None = None,
    border: str = "skip",
) -> tuple[list[Crop], list[tuple[str, str]]]:
    """The crop of each object in ``image``, and the objects left out with why."""
    check_crop_options(margin, size, border)
    field_height, field_width = image.shape
    crops, skipped = [], []
    for obj in objects:
        top, left, bottom, right = crop_box(obj, margin, size)
        inside = (max(top, 0), max(left, 0), min(bottom, field_height), min(right, field_width))
        leaves = inside != (top, left, bottom, right)
        if border == "skip" and (leaves or obj.touches_border):
            why = "its crop leaves the field" if leaves else "it touches the field's edge"
            skipped.append((obj.name, f"{why} (border=skip)"))
            continue
        t, lf, b, r = inside
        if b <= t or r <= lf:  # only a fixed size far from a tiny object can do this
            skipped.append((obj.name, "its crop lies outside the field"))
            continue
        pixels = image[t:b, lf:r]
        if border == "pad" and leaves:
            pad = ((t - top, bottom - b), (lf - left, right - r))
            crops.append(Crop(obj, np.pad(pixels, pad, mode="edge"), (top, left, bottom, right)))
        else:
            crops.append(Crop(obj, pixels.copy(), inside))
    return crops, skipped


def field_crops(
    field: Field | str | os.PathLike,
    *,
    rois: str | os.PathLike | None = None,
    labels: str | os.PathLike | np.ndarray | None = None,
    margin: int | None = None,
    size: int | tuple[int, int] | None = None,
    border: str = "skip",
    channel: int | str | None = None,
    plane: int | None = None,
    position: int | None = None,
    time: int | None = None,
) -> FieldCrops:
    """Reads the field and its objects and cuts every crop: what both crops and predict use."""
    check_crop_options(margin, size, border)
    check_one_source(rois, labels)
    field = load_field(field, channel=channel, plane=plane, position=position, time=time)
    objects, skipped, source = field_objects(field, rois=rois, labels=labels)
    margin = default_margin(margin, rois)
    crops, left_out = cut_objects(field.image, objects, margin=margin, size=size, border=border)
    return FieldCrops(field, crops, [*skipped, *left_out], source)


def require_crops(cut: FieldCrops, what: str) -> None:
    """Refuses a field whose objects were all left out, with the commonest reason."""
    if cut.crops:
        return
    reasons = Counter(reason for _, reason in cut.skipped).most_common(1)
    why = f"; {len(cut.skipped)} left out, e.g. {reasons[0][0]}" if reasons else ""
    hint = " (try --border pad)" if "border=skip" in why else ""
    raise CnnlabError(f"{cut.source}: no object of {cut.field.label} to {what}{why}{hint}")


def field_stem(field: Field) -> str:
    """The field's name as crop file names carry it: its label without ``.tif``/``.tiff``."""
    label = field.label
    lowered = label.lower()
    for suffix in (".tiff", ".tif"):
        if lowered.endswith(suffix):
            return label[: -len(suffix)]
    return label


def crop_file_name(obj: FieldObject, field: Field) -> str:
    """ImageJ's name for a ROI crop: ``roi {ROI name} - {field}.tif``."""
    name = f"roi {obj.name} - {field_stem(field)}.tif"
    # A ROI name may hold characters no file name can: keep the name one file, not a path.
    return name.replace("/", "_").replace("\\", "_").replace("\0", "_")
