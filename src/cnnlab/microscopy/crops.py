"""``cnnlab crops``: one 16-bit TIFF per object of a field, named and filed as ImageJ would.

Crops go into one folder per class when the ROI names carry classes (objects without one into
``unlabelled``), into ``out`` itself otherwise, and ``out/crops.csv`` maps each file back to its
object and field. The folder is built in a hidden sibling and renamed into place only when every
file is written, so ``out`` is never half-made; an existing ``out`` is replaced only with
``overwrite``, only when ``crops`` made it, and only once the new one is complete.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from cnnlab.errors import CnnlabError
from cnnlab.files import write_folder
from cnnlab.microscopy.cutting import (
    Crop,
    FieldCrops,
    crop_file_name,
    field_crops,
    require_crops,
)
from cnnlab.microscopy.formats import Field

#: The table every crops folder holds; its presence marks a folder ``overwrite`` may replace.
TABLE = "crops.csv"
#: The class folder of objects without a class when others have one.
UNLABELLED = "unlabelled"
COLUMNS = (
    "file", "id", "name", "class", "top", "left", "bottom", "right", "y", "x", "area",
    "crop_top", "crop_left", "crop_bottom", "crop_right", "field", "field_label",
)  # fmt: skip
# The pixel types ImageJ opens as they are; others are written as plain (still lossless) TIFFs.
_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)


@dataclass(frozen=True)
class CropSummary:
    """What :func:`cut_crops` wrote: crops per class, and the objects it left out with why."""

    out: Path
    field: str  #: the field's label, e.g. ``"114_1354-001.nd2 - C=0"``
    counts: dict[str | None, int]  #: crops per class (None: objects without a class)
    skipped: list[tuple[str, str]]  #: (object name, reason)

    @property
    def written(self) -> int:
        return sum(self.counts.values())

    def summary_text(self) -> str:
        lines = [f"{self.written} crops of {self.field} in {self.out}"]
        # Without any class the crops lie in out itself: a per-class line would name a folder
        # that does not exist.
        classes = self.counts if any(name is not None for name in self.counts) else {}
        for name, count in sorted(classes.items(), key=lambda kv: (kv[0] is None, kv[0])):
            lines.append(f"  {name or UNLABELLED}: {count}")
        if self.skipped:
            reasons = Counter(reason for _, reason in self.skipped)
            detail = "; ".join(f"{n} {reason}" for reason, n in reasons.most_common())
            lines.append(f"  skipped {len(self.skipped)} objects: {detail}")
        return "\n".join(lines)

    __str__ = summary_text


def cut_crops(
    field: Field | str | os.PathLike,
    out: str | os.PathLike,
    *,
    rois: str | os.PathLike | None = None,
    labels: str | os.PathLike | np.ndarray | None = None,
    margin: int | None = None,
    size: int | tuple[int, int] | None = None,
    border: str = "skip",
    overwrite: bool = False,
    channel: int | str | None = None,
    plane: int | None = None,
    position: int | None = None,
    time: int | None = None,
) -> CropSummary:
    """Cuts one crop per ROI (``rois``) or labelled object (``labels``) of ``field`` into ``out``.

    ``field`` is a :class:`~cnnlab.microscopy.formats.Field` or a microscope file, read with the
    ``channel``/``plane``/``position``/``time`` choices. Crop boxes and borders are explained in
    :mod:`cnnlab.microscopy.cutting`; ``size`` replaces ``margin`` when given.
    """
    out = Path(out)
    check_out(out, overwrite)
    cut = field_crops(
        field, rois=rois, labels=labels, margin=margin, size=size, border=border,
        channel=channel, plane=plane, position=position, time=time,
    )  # fmt: skip
    require_crops(cut, "cut")
    names = _file_names(cut)
    files = {name: tiff_bytes(crop.image) for crop, name in zip(cut.crops, names, strict=True)}
    rows = [_row(crop, name, cut.field) for crop, name in zip(cut.crops, names, strict=True)]
    files[TABLE] = _csv(rows).encode("utf-8")
    # Checked again at the swap: something may have appeared at out meanwhile.
    write_folder(out, files, check=lambda: check_out(out, overwrite))
    counts = Counter(c.object.class_name for c in cut.crops)
    return CropSummary(out, cut.field.label, dict(counts), cut.skipped)


def tiff_bytes(image: np.ndarray) -> bytes:
    """The crop as a TIFF, pixels exactly as given (an ImageJ TIFF when ImageJ holds the type)."""
    buffer = io.BytesIO()
    imagej = image.dtype in _IMAGEJ_DTYPES
    tifffile.imwrite(buffer, image, imagej=imagej, photometric="minisblack")
    return buffer.getvalue()


def check_out(out: Path, overwrite: bool) -> None:
    """Everything about ``--out`` that can be refused before a pixel is read."""
    here = Path.cwd().resolve()
    if out.resolve() == here or out.resolve() in here.parents:
        raise CnnlabError(f"--out {out}: holds the current folder; name a folder inside it")
    if not out.exists():
        for parent in out.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise CnnlabError(f"--out {out}: {parent} is a file; choose another path")
                break
        return
    if not out.is_dir():
        raise CnnlabError(f"--out {out}: exists and is not a folder; choose another path")
    if not any(out.iterdir()):
        return
    if not (out / TABLE).is_file():  # said first: --overwrite would not help
        raise CnnlabError(
            f"--out {out}: holds no {TABLE}, so cnnlab crops did not make it; choose another "
            "folder (--overwrite only replaces crops folders)"
        )
    if not overwrite:
        raise CnnlabError(
            f"--out {out}: holds crops already; choose another folder or pass --overwrite to "
            "replace them"
        )


def _file_names(cut: FieldCrops) -> list[str]:
    """Each crop's path inside ``out`` (``class/roi NAME - FIELD.tif``), all different."""
    classes = cut.has_classes
    names, seen = [], {}
    for crop in cut.crops:
        name = crop_file_name(crop.object, cut.field)
        if classes:
            folder = crop.object.class_name or UNLABELLED
            name = f"{folder.replace('/', '_').replace(chr(92), '_')}/{name}"
        key = name.casefold()  # one file on case-insensitive disks (macOS, Windows)
        if key in seen:
            raise CnnlabError(
                f"{cut.source}: objects {seen[key]!r} and {crop.object.name!r} give the same "
                f"crop file {name!r}; rename one of them (ImageJ: ROI Manager > Rename)"
            )
        seen[key] = crop.object.name
        names.append(name)
    return names


def _row(crop: Crop, name: str, field: Field) -> dict:
    obj = crop.object
    top, left, bottom, right = crop.box
    return {
        "file": name,
        "id": obj.id,
        "name": obj.name,
        "class": obj.class_name or "",
        "top": obj.top,
        "left": obj.left,
        "bottom": obj.bottom,
        "right": obj.right,
        "y": f"{obj.y:.3f}",
        "x": f"{obj.x:.3f}",
        "area": obj.area,
        "crop_top": top,
        "crop_left": left,
        "crop_bottom": bottom,
        "crop_right": right,
        "field": str(field.path),
        "field_label": field.label,
    }


def _csv(rows: list[dict]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
