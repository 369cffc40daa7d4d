"""``cnnlab predict RUN --field``: classify every object of a field with a trained model.

The crops are cut in memory by :mod:`cnnlab.microscopy.cutting`, the same function that
``cnnlab crops`` writes files with, and go through :func:`cnnlab.export.predict.predict_arrays`,
which prepares them exactly as training prepared its files (bit depth checked, channels, size).
The result is a table with one row per object (where it is, how big, what the model says) and
an overlay picture of the field with every object outlined in its predicted class's colour.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
from torch import nn

from cnnlab.evaluate.evaluate import INFERENCE_BATCH
from cnnlab.export.predict import PredictionTable, predict_arrays, size_problem, write_table
from cnnlab.microscopy.cutting import Crop, field_crops, require_crops
from cnnlab.microscopy.formats import Field
from cnnlab.microscopy.overlay import render_overlay, write_png

_POSITION = ("id", "name", "y", "x", "top", "left", "bottom", "right", "area")


@dataclass(frozen=True, repr=False)
class FieldPredictions:
    """The model's answer for each object of a field, with what is needed to show it."""

    field: Field
    crops: list[Crop]
    table: PredictionTable
    skipped: list[tuple[str, str]]  #: objects left out: (name, reason)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.table.class_names

    def __repr__(self) -> str:
        # One line: the crops and masks it holds would fill a notebook cell otherwise.
        counts = ", ".join(f"{name} {n}" for name, n in self.counts().items())
        skipped = f"; {len(self.skipped)} left out" if self.skipped else ""
        return f"FieldPredictions({self.field.label}, {len(self)} objects: {counts}{skipped})"

    @property
    def predicted(self) -> tuple[str, ...]:
        return self.table.predicted

    @property
    def roi_classes(self) -> list[str | None] | None:
        """The class each ROI's name gives (None for unnamed ones), or None when no ROI has one."""
        classes = [c.object.class_name for c in self.crops]
        return classes if any(c is not None for c in classes) else None

    def __len__(self) -> int:
        return len(self.crops)

    @property
    def columns(self) -> list[str]:
        columns = [*_POSITION, "predicted", *(f"p_{name}" for name in self.class_names)]
        return columns + (["roi_class"] if self.roi_classes is not None else [])

    def rows(self) -> list[dict]:
        truth = self.roi_classes
        probabilities = self.table.probabilities.tolist()
        rows = []
        for i, crop in enumerate(self.crops):
            obj = crop.object
            row = {
                "id": obj.id,
                "name": obj.name,
                "y": f"{obj.y:.3f}",
                "x": f"{obj.x:.3f}",
                "top": obj.top,
                "left": obj.left,
                "bottom": obj.bottom,
                "right": obj.right,
                "area": obj.area,
                "predicted": self.predicted[i],
            }
            for name, p in zip(self.class_names, probabilities[i], strict=True):
                row[f"p_{name}"] = f"{p:.6f}"
            if truth is not None:
                row["roi_class"] = truth[i] or ""
            rows.append(row)
        return rows

    def to_csv(self, target: str | os.PathLike | TextIO) -> None:
        """Writes one row per object to a file (atomically) or to an open text stream."""
        write_table(target, self.columns, self.rows())

    def counts(self) -> dict[str, int]:
        """Objects per predicted class, every class of the model listed (zeros included)."""
        found = Counter(self.predicted)
        return {name: found.get(name, 0) for name in self.class_names}

    def accuracy(self) -> dict[str, tuple[int, int]]:
        """(correct, total) per true class, for objects whose ROI name carries a class."""
        truth = self.roi_classes or []
        result: dict[str, list[int]] = {}
        for true, predicted in zip(truth, self.predicted, strict=False):
            if true is None:
                continue
            tally = result.setdefault(true, [0, 0])
            tally[0] += true == predicted
            tally[1] += 1
        return {name: (c, t) for name, (c, t) in sorted(result.items())}

    def summary_text(self) -> str:
        lines = [f"{len(self)} objects of {self.field.label} classified"]
        width = max(len(name) for name in self.class_names)
        for name, count in self.counts().items():
            lines.append(f"  {name:<{width}}  {count}")
        accuracy = self.accuracy()
        if accuracy:
            correct = sum(c for c, _ in accuracy.values())
            total = sum(t for _, t in accuracy.values())
            lines.append(f"agreement with the ROI names' classes: {correct}/{total}")
            for name, (c, t) in accuracy.items():
                known = "" if name in self.class_names else " (a class the model does not know)"
                lines.append(f"  {name:<{width}}  {c}/{t}{known}")
        if self.skipped:
            reasons = Counter(reason for _, reason in self.skipped)
            detail = "; ".join(f"{n} {reason}" for reason, n in reasons.most_common())
            lines.append(f"skipped {len(self.skipped)} objects: {detail}")
        return "\n".join(lines)

    __str__ = summary_text

    def overlay(self) -> np.ndarray:
        """The overlay picture as an RGB uint8 array (see :mod:`cnnlab.microscopy.overlay`)."""
        index = {name: i for i, name in enumerate(self.class_names)}
        classes = [index[name] for name in self.predicted]
        objects = [c.object for c in self.crops]
        return render_overlay(self.field.image, objects, classes, self.class_names)

    def write_overlay(self, path: str | os.PathLike) -> None:
        """Writes :meth:`overlay` as a PNG, atomically."""
        write_png(path, self.overlay())


def classify_field(
    model: nn.Module,
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
    batch_size: int = INFERENCE_BATCH,
    device: str | torch.device = "cpu",
) -> FieldPredictions:
    """Classifies each object of ``field`` (from ``rois`` or ``labels``) with a loaded model.

    The crops are those :func:`cnnlab.microscopy.crops.cut_crops` would write with the same
    options. A field whose objects are all left out is refused, with the commonest reason.
    """
    cut = field_crops(
        field, rois=rois, labels=labels, margin=margin, size=size, border=border,
        channel=channel, plane=plane, position=position, time=time,
    )  # fmt: skip
    require_crops(cut, "classify")
    # An object too small for the model's input (a speck of noise in a label image) is left
    # out with its reason, as objects at the border are, rather than stopping the whole field.
    small = {id(crop): size_problem(model, *crop.image.shape[:2]) for crop in cut.crops}
    if any(small.values()):
        cut = replace(
            cut,
            crops=[crop for crop in cut.crops if not small[id(crop)]],
            skipped=[
                *cut.skipped,
                *((crop.object.name, small[id(crop)]) for crop in cut.crops if small[id(crop)]),
            ],
        )
        require_crops(cut, "classify")
    table = predict_arrays(
        model,
        [crop.image for crop in cut.crops],
        [crop.object.name for crop in cut.crops],
        cut.field.bit_depth,
        batch_size=batch_size,
        device=str(device),
    )
    return FieldPredictions(cut.field, cut.crops, table, cut.skipped)


def default_overlay_path(csv_path: str | os.PathLike) -> Path:
    """Where ``predict --field`` puts the overlay unless told: beside the CSV, same stem."""
    path = Path(csv_path)
    return path.with_name(f"{path.stem}-overlay.png")
