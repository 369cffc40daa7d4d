"""Ready-made data: the bundled MNIST, folders of images, and synthetic microscopy crops."""

from __future__ import annotations

from cnnlab.data.folders import load_folders
from cnnlab.data.mnist import mnist
from cnnlab.synth import synth_bacteria

__all__ = ["load_folders", "mnist", "synth_bacteria"]
