from __future__ import annotations

import hashlib
import shutil
import time

import numpy as np
import pytest
import torch

from cnnlab.data import mnist as mnist_module
from cnnlab.data.idx import read_idx, write_idx
from cnnlab.data.mnist import mnist
from cnnlab.errors import CnnlabError


def test_shapes_types_and_metadata():
    train, test = mnist()
    assert train.images.shape == (60000, 1, 28, 28)
    assert test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64
    assert train.class_names == tuple("0123456789")
    assert (train.subset, test.subset) == ("train", "test")
    assert (train.name, test.name) == ("mnist-train", "mnist-test")
    assert train.bit_depth == test.bit_depth == 8
    assert train.paths[0] == "mnist/train/00000"
    assert train.paths[-1] == "mnist/train/59999"
    assert test.paths[123] == "mnist/test/00123"
    assert len(set(train.paths)) == 60000


def test_known_labels_and_counts():
    train, test = mnist()
    assert train.labels[:5].tolist() == [5, 0, 4, 1, 9]
    counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert list(test.class_counts().values()) == counts
    assert int(train.images.max()) == 255
    assert int(train.images.min()) == 0


def test_images_match_the_raw_idx_file():
    train, _ = mnist()
    raw = read_idx(mnist_module.files_dir() / "train-images.idx3-ubyte.gz")
    assert np.array_equal(train.images[:100, 0].numpy(), raw[:100])


def test_second_call_is_cached_and_cheap():
    first, _ = mnist()
    start = time.perf_counter()
    second, _ = mnist()
    assert time.perf_counter() - start < 0.1
    assert second.images.data_ptr() == first.images.data_ptr()
    assert second == first


def copy_files(tmp_path):
    directory = tmp_path / "files"
    shutil.copytree(mnist_module.files_dir(), directory)
    return directory


def test_tampered_file_fails_the_checksum(tmp_path, monkeypatch):
    directory = copy_files(tmp_path)
    target = directory / "t10k-labels.idx1-ubyte.gz"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    monkeypatch.setattr(mnist_module, "files_dir", lambda: directory)
    with pytest.raises(CnnlabError, match=r"t10k-labels\.idx1-ubyte\.gz.*reinstall"):
        mnist()


def test_label_count_must_match_image_count(tmp_path, monkeypatch):
    directory = copy_files(tmp_path)
    labels = read_idx(directory / "t10k-labels.idx1-ubyte.gz")
    target = directory / "t10k-labels.idx1-ubyte.gz"
    write_idx(target, labels[:-1])
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    sums = directory / "SHA256SUMS"
    lines = [
        f"{digest}  {target.name}" if line.endswith(target.name) else line
        for line in sums.read_text().splitlines()
    ]
    sums.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(mnist_module, "files_dir", lambda: directory)
    with pytest.raises(CnnlabError, match="9999 labels for 10000 images"):
        mnist_module.load_subset("test")
