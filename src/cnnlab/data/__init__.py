"""Reading, exploring, splitting and augmenting image data, all in memory.

The bundled MNIST is `cnnlab.datasets.mnist()` (here it would hide its own module).
"""

from __future__ import annotations

from cnnlab.data.augment import add_noise, augment, flip, random_rotate, rotate, shift
from cnnlab.data.channels import convert_channels
from cnnlab.data.dataset import ImageDataset, Normalizer, merge
from cnnlab.data.folders import load_folders
from cnnlab.data.idx import read_idx, write_idx
from cnnlab.data.imageio import read_image
from cnnlab.data.split import (
    Split,
    apply_manifest,
    carve_validation,
    read_manifest,
    split_dataset,
    write_manifest,
)

__all__ = [
    "ImageDataset",
    "Normalizer",
    "Split",
    "add_noise",
    "apply_manifest",
    "augment",
    "carve_validation",
    "convert_channels",
    "flip",
    "load_folders",
    "merge",
    "random_rotate",
    "read_idx",
    "read_image",
    "read_manifest",
    "rotate",
    "shift",
    "split_dataset",
    "write_idx",
    "write_manifest",
]
