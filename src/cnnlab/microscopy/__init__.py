"""Whole microscope fields: reading microscope files and cutting objects out of them.

:mod:`cnnlab.microscopy.formats` reads one 2D plane (a *field*) from a TIFF, ImageJ hyperstack,
OME-TIFF, ``.nd2``, CZI or LIF file, with the channel, Z plane, position and time point chosen
explicitly.
"""

from __future__ import annotations

import importlib

# Imported on first use: a lower layer (data) may then import ``cnnlab.microscopy.formats``
# without this file pulling in ``classify``, which imports ``export`` and so ``data`` again.
_EXPORTS = {
    "Field": "formats",
    "read_field": "formats",
    "describe_microscopy_file": "formats",
    "FieldObject": "objects",
    "objects_from_labels": "objects",
    "objects_from_rois": "rois",
    "CropSummary": "crops",
    "cut_crops": "crops",
    "FieldPredictions": "classify",
    "classify_field": "classify",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
