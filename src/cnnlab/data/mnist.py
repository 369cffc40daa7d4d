"""MNIST, shipped inside the package so that the first lesson needs no download.

The four gzip files live in ``cnnlab/data/files`` next to a ``SHA256SUMS`` list. They are
checked against it the first time they are read in a process, because a damaged installation
would otherwise show up much later as a model that "does not learn". Decoding takes a fraction
of a second (``numpy.frombuffer`` on the decompressed bytes, ``torch.from_numpy`` without a
copy) and the decoded tensors are kept for the rest of the process, so calling :func:`mnist`
again is free.

The datasets returned by different calls share those cached tensors. That is safe because
:class:`~cnnlab.data.dataset.ImageDataset` never changes its tensors in place; code that writes
into ``dataset.images`` directly (``images[0] += 1``) would change the cached copy too, so clone
first if you really need to do that.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.dataset import ImageDataset
from cnnlab.data.idx import parse_idx
from cnnlab.errors import CnnlabError

CLASS_NAMES = tuple(str(digit) for digit in range(10))
FILES = {
    "train": ("train-images.idx3-ubyte.gz", "train-labels.idx1-ubyte.gz"),
    "test": ("t10k-images.idx3-ubyte.gz", "t10k-labels.idx1-ubyte.gz"),
}


def files_dir() -> Path:
    """The folder holding the packaged MNIST files (a function so tests can point it elsewhere)."""
    return Path(str(resources.files("cnnlab.data") / "files"))


@functools.cache
def _expected_checksums(directory: Path) -> dict[str, str]:
    sums_file = directory / "SHA256SUMS"
    try:
        lines = sums_file.read_text().splitlines()
    except OSError:
        raise CnnlabError(
            f"{sums_file}: missing; the cnnlab installation is incomplete, reinstall cnnlab"
        ) from None
    sums = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#"):
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def _verified_bytes(path: Path) -> bytes:
    """The file's bytes after checking them against ``SHA256SUMS``.

    Not cached itself: :func:`_load_subset` is, so each file is verified once per process
    without keeping its compressed bytes alive.
    """
    expected = _expected_checksums(path.parent).get(path.name)
    if expected is None:
        raise CnnlabError(f"{path}: not listed in SHA256SUMS; reinstall cnnlab")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CnnlabError(
            f"{path}: cannot read ({error.strerror or error}); reinstall cnnlab"
        ) from None
    if hashlib.sha256(data).hexdigest() != expected:
        raise CnnlabError(
            f"{path}: SHA256 checksum does not match SHA256SUMS, the file is damaged; "
            "reinstall cnnlab (pip install --force-reinstall cnnlab)"
        )
    return data


def _decode(path: Path) -> np.ndarray:
    return parse_idx(gzip.decompress(_verified_bytes(path)), str(path))


@functools.cache
def _load_subset(directory: Path, subset: str) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    image_file, label_file = (directory / name for name in FILES[subset])
    images, labels = _decode(image_file), _decode(label_file)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise CnnlabError(f"{image_file}: expected uint8 images of shape (N, 28, 28)")
    if labels.ndim != 1 or len(labels) != len(images):
        raise CnnlabError(
            f"{label_file}: {len(labels)} labels for {len(images)} images in {image_file}; "
            "reinstall cnnlab"
        )
    if labels.size and int(labels.max()) > 9:
        raise CnnlabError(f"{label_file}: labels must be digits 0-9; reinstall cnnlab")
    width = max(5, len(str(len(images) - 1)))
    paths = tuple(f"mnist/{subset}/{i:0{width}d}" for i in range(len(images)))
    image_tensor = torch.from_numpy(images).unsqueeze(1)
    label_tensor = torch.from_numpy(labels.astype(np.int64))
    return image_tensor, label_tensor, paths


def load_subset(subset: str) -> ImageDataset:
    """The MNIST ``"train"`` (60,000) or ``"test"`` (10,000) set as an :class:`ImageDataset`."""
    if subset not in FILES:
        raise CnnlabError(f"MNIST subset must be 'train' or 'test', not {subset!r}")
    images, labels, paths = _load_subset(files_dir(), subset)
    return ImageDataset(
        images=images,
        labels=labels,
        class_names=CLASS_NAMES,
        paths=paths,
        subset=subset,
        bit_depth=8,
        name=f"mnist-{subset}",
    )


def mnist() -> tuple[ImageDataset, ImageDataset]:
    """The MNIST training (60,000) and test (10,000) sets: uint8 images of shape (N, 1, 28, 28).

    Paths are ``mnist/train/00000`` etc.: the zero-padded position in the original file, a
    stable name that leads back to the sample.
    """
    return load_subset("train"), load_subset("test")


__all__ = ["CLASS_NAMES", "files_dir", "load_subset", "mnist"]
