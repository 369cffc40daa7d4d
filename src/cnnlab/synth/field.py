"""A whole synthetic phase-contrast field with its answers: labels, ImageJ ROIs and a table.

One field is one acquisition (:mod:`cnnlab.synth.render`): the same background, cells, halos
and debris as the lab-look crops, under an illumination that varies across the field. Objects of
every class are scattered without touching, each with room for its halo, and each gets the
rectangle a person would draw around it in ImageJ's ROI manager (the object's visible box plus
1-4 pixels), so that crops cut from these ROIs look like the synthetic crops.
"""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import numpy as np
from roifile import ROI_TYPE, ImagejRoi, roiwrite

from cnnlab.errors import CnnlabError
from cnnlab.files import write_folder
from cnnlab.synth.lab import CLASSES, LAYOUTS, Scene, Thing, compose, paint
from cnnlab.synth.render import draw_acquisition, expose, illumination, tiff_bytes

#: The files of a field folder (see the shared conventions in the README).
FIELD_FILES = ("field.tif", "field_labels.tif", "RoiSet.zip", "objects.csv")
#: Spawn key of a field's generator, apart from the crops' and the acquisitions' keys.
_FIELD_KEY = 2000
#: Objects per class on a 1024 x 1024 field when no counts are given (scaled with the area).
DEFAULT_PER_CLASS = 40
#: Free pixels kept between two ROIs, so that no halo reaches into a neighbour's ROI.
_GAP = 4
#: Free pixels between a ROI and the field's border.
_BORDER = 2
_SIDES = (64, 8192)
_ATTEMPTS = 8
_CANDIDATES = 256


def _field_shape(size: int | tuple[int, int]) -> tuple[int, int]:
    sides = (size, size) if isinstance(size, int | np.integer) else tuple(size)
    if len(sides) != 2 or not all(
        isinstance(side, int | np.integer) and not isinstance(side, bool) for side in sides
    ):
        raise CnnlabError(f"size (--size) {size!r} must be one whole number or HxW")
    if not all(_SIDES[0] <= side <= _SIDES[1] for side in sides):
        typed = str(sides[0]) if sides[0] == sides[1] else f"{sides[0]}x{sides[1]}"
        raise CnnlabError(
            f"size (--size) {typed}: sides must be between {_SIDES[0]} and {_SIDES[1]} pixels"
        )
    return int(sides[0]), int(sides[1])


def _class_counts(counts: dict[str, int] | None, shape: tuple[int, int]) -> dict[str, int]:
    if counts is None:
        each = max(1, round(DEFAULT_PER_CLASS * shape[0] * shape[1] / 1024**2))
        return dict.fromkeys(CLASSES, each)
    unknown = sorted(set(counts) - set(CLASSES))
    if unknown:
        raise CnnlabError(f"counts: {unknown[0]!r} is not a class; use {', '.join(CLASSES)}")
    checked = {}
    for name in CLASSES:
        value = counts.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise CnnlabError(f"counts (--per-class) for {name} must be a whole number >= 0")
        checked[name] = int(value)
    return checked


def _place(
    things: list[Thing], shape: tuple[int, int], edge: float, rng: np.random.Generator
) -> list[tuple[Thing, np.ndarray]]:
    """Each thing moved to a free place, with its ROI ``[top, left, bottom, right)``.

    Largest first, each at the first free one of a batch of random places, checked against all
    ROIs placed so far in one vectorized comparison (rectangles grown by the gap).
    """
    order = sorted(
        range(len(things)), key=lambda k: -np.prod(np.subtract(*things[k].extent(edge)[::-1]))
    )
    placed: list[tuple[Thing, np.ndarray]] = [None] * len(things)  # type: ignore[list-item]
    boxes = np.zeros((0, 4), dtype=np.int64)
    for k in order:
        low, high = things[k].extent(edge)
        margins = rng.integers(1, 5, size=4)
        local = np.array([np.floor(low[0]) - margins[0], np.floor(low[1]) - margins[1]])
        box_size = np.ceil(high).astype(np.int64) + margins[2:] - local.astype(np.int64)
        room = np.array(shape) - 2 * _BORDER - box_size
        if np.any(room < 0):
            raise CnnlabError(f"size (--size) {shape[0]}x{shape[1]} is too small for the objects")
        for _ in range(_ATTEMPTS):
            corners = _BORDER + rng.integers(0, room + 1, size=(_CANDIDATES, 2))
            ends = corners + box_size
            clear = (
                (corners[:, None, 0] >= boxes[None, :, 2] + _GAP)
                | (ends[:, None, 0] + _GAP <= boxes[None, :, 0])
                | (corners[:, None, 1] >= boxes[None, :, 3] + _GAP)
                | (ends[:, None, 1] + _GAP <= boxes[None, :, 1])
            ).all(axis=1)
            free = np.flatnonzero(clear)
            if len(free):
                corner = corners[free[0]]
                box = np.concatenate([corner, corner + box_size])
                boxes = np.vstack([boxes, box])
                placed[k] = (things[k].moved(corner - local), box)
                break
        else:
            raise CnnlabError(
                f"size (--size) {shape[0]}x{shape[1]} has no room for {len(things)} objects; "
                "lower --per-class or enlarge --size"
            )
    return placed


def _csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    fields = ["id", "name", "class", "top", "left", "bottom", "right", "y", "x", "area"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise CnnlabError(f"{out} is a file, not a folder; choose another output folder (--out)")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    foreign = [name for name in entries if name not in FIELD_FILES]
    if foreign:  # said first: --overwrite would not help
        raise CnnlabError(
            f"{out} holds {foreign[0]!r}, not a file of a synthetic field; "
            "move it away or choose another folder (--out)"
        )
    if entries and not overwrite:
        raise CnnlabError(
            f"{out} holds a synthetic field already; choose another folder or pass --overwrite "
            "to replace it"
        )


def synth_field(
    out: str | Path,
    *,
    size: int | tuple[int, int] = (1024, 1024),
    seed: int = 0,
    counts: dict[str, int] | None = None,
    overwrite: bool = False,
) -> dict:
    """Write a synthetic field and its answers to the folder ``out``; return a summary.

    ``out`` receives ``field.tif`` (16-bit ImageJ TIFF), ``field_labels.tif`` (object ``k`` is
    label ``k``), ``RoiSet.zip`` (one rectangle ROI per object, in label order, named
    ``{class}-{n:04d}``) and ``objects.csv`` (``id,name,class,top,left,bottom,right,y,x,area``:
    the ROI's box, bottom and right exclusive, the centroid and area of the object's mask).
    ``counts`` gives the number of objects per class (classes not named get none); by default
    about 40 per class on 1024 x 1024 pixels, scaled with the area. A non-empty ``out`` is
    refused unless ``overwrite``, and even then only when it holds nothing but these files.
    The same seed gives the same files.
    """
    shape = _field_shape(size)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise CnnlabError(f"seed (--seed) must be a whole number >= 0, not {seed!r}")
    wanted = _class_counts(counts, shape)
    out = Path(out)
    _check_out(out, overwrite)

    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(_FIELD_KEY,)))
    look = draw_acquisition(rng)
    things = [LAYOUTS[name](rng) for name in CLASSES for _ in range(wanted[name])]
    placed = _place(things, shape, look.edge, rng)
    # Number the objects in reading order, top to bottom then left to right, like a scan.
    placed.sort(key=lambda item: (int(item[1][0]), int(item[1][1])))

    scene = Scene.empty(shape)
    rows, rois, per_class = [], [], dict.fromkeys(CLASSES, 0)
    for label, (thing, box) in enumerate(placed, start=1):
        paint(scene, thing, look.edge, label)
        per_class[thing.kind] += 1
        name = f"{thing.kind}-{per_class[thing.kind]:04d}"
        top, left, bottom, right = (int(v) for v in box)
        rois.append(
            ImagejRoi(
                roitype=ROI_TYPE.RECT, top=top, left=left, bottom=bottom, right=right, name=name
            )
        )
        rows.append(
            {
                "id": label,
                "name": name,
                "class": thing.kind,
                "top": top,
                "left": left,
                "bottom": bottom,
                "right": right,
            }
        )
    background = illumination(shape, look.level, rng, strength=0.03)
    image = expose(compose(scene, background, look), look, rng)

    labels = scene.labels
    area = np.bincount(labels.ravel(), minlength=len(rows) + 1)
    yy, xx = np.indices(shape)
    y_sum = np.bincount(labels.ravel(), weights=yy.ravel(), minlength=len(rows) + 1)
    x_sum = np.bincount(labels.ravel(), weights=xx.ravel(), minlength=len(rows) + 1)
    for row in rows:
        k = row["id"]
        row.update(
            y=round(y_sum[k] / area[k], 2), x=round(x_sum[k] / area[k], 2), area=int(area[k])
        )

    with tempfile.TemporaryDirectory() as scratch:
        roiwrite(Path(scratch) / "RoiSet.zip", rois, mode="w")
        roi_bytes = (Path(scratch) / "RoiSet.zip").read_bytes()
    written = {
        "field.tif": tiff_bytes(image),
        "field_labels.tif": tiff_bytes(labels),
        "RoiSet.zip": roi_bytes,
        "objects.csv": _csv_text(rows).encode("utf-8"),
    }
    write_folder(out, written, check=lambda: _check_out(out, overwrite))
    return {
        "out": str(out),
        "size": list(shape),
        "seed": int(seed),
        "objects": len(rows),
        "counts": per_class,
        "files": list(FIELD_FILES),
    }
