"""Synthetic phase-contrast microscopy: bacteria crops and whole fields with known answers."""

from __future__ import annotations

from cnnlab.synth.crops import MANIFEST_NAME, STYLES, render_crop, synth_bacteria
from cnnlab.synth.field import FIELD_FILES, synth_field
from cnnlab.synth.lab import CLASSES

__all__ = [
    "CLASSES",
    "FIELD_FILES",
    "MANIFEST_NAME",
    "STYLES",
    "render_crop",
    "synth_bacteria",
    "synth_field",
]
