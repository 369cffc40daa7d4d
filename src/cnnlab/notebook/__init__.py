"""cnnlab in Jupyter: the ``show_*`` figures and the rich views of cnnlab's objects.

``import cnnlab`` imports this package, which only registers the renderers by name
(:mod:`cnnlab.notebook.hooks`); matplotlib and the drawing code are imported when something is
first shown, so scripts and ``cnnlab train`` do not pay for them.
"""

from __future__ import annotations

from cnnlab.notebook import hooks
from cnnlab.notebook.show import (
    show_activations,
    show_confusion,
    show_filters,
    show_history,
    show_intensities,
    show_kernels,
    show_saliency,
    show_samples,
    show_worst,
)

hooks.install()

__all__ = [
    "show_activations",
    "show_confusion",
    "show_filters",
    "show_history",
    "show_intensities",
    "show_kernels",
    "show_saliency",
    "show_samples",
    "show_worst",
]
