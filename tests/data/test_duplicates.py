"""A file reached twice (a root twice, a link, an identical copy) is counted once."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import tifffile
import torch

from cnnlab.data.folders import load_folders
from cnnlab.data.split import split_dataset
from cnnlab.errors import CnnlabError


def make_root(root, counts, start=0):
    """Distinct images: the pixel value encodes root start, class and index."""
    for c, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = np.full((4, 5), start + 1000 * c + i, np.uint16)
            tifffile.imwrite(root / name / f"{i:02d}.tif", pixels)
    return root


def load(*args, **kwargs):
    """load_folders, and the messages of the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_folders(*args, **kwargs)
    return data, [str(w.message) for w in caught]


def reached_twice(messages) -> list[str]:
    return [m for m in messages if "reached twice" in m]


def same_images(a, b) -> bool:
    return torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_same_root_twice_under_any_spelling(tmp_path):
    root = make_root(tmp_path / "crops", {"a": 3, "b": 2})
    once = load_folders(root)
    for other in (root, f"{root}/", tmp_path / "crops" / ".." / "crops"):
        data, messages = load([root, other])
        assert same_images(data, once)
        assert data.paths == once.paths
        (message,) = reached_twice(messages)
        assert message.startswith("5 files were reached twice")
        assert message.endswith(", in a folder given twice")  # not "e.g. X is X"
        assert len(data.meta["duplicates"]) == 5


def test_symlinked_root_and_overlapping_roots(tmp_path):
    root = make_root(tmp_path / "crops", {"a": 3, "b": 2})
    link = tmp_path / "link"
    link.symlink_to(root)
    data, messages = load([root, link])
    assert same_images(data, load_folders(root))
    assert data.meta["duplicates"] == [str(link / "a" / f"{i:02d}.tif") for i in range(3)] + [
        str(link / "b" / f"{i:02d}.tif") for i in range(2)
    ]
    # A second root whose class folder "a" is the first root's, plus images of its own.
    other = make_root(tmp_path / "day2", {"b": 2}, start=5000)
    (other / "a").symlink_to(root / "a")
    data, messages = load([root, other])
    assert data.class_counts() == {"a": 3, "b": 4}
    assert reached_twice(messages)[0].startswith("3 files were reached twice")


def test_link_and_identical_copy_in_the_same_class_count_once(tmp_path):
    root = make_root(tmp_path / "crops", {"a": 3, "b": 2})
    (root / "a" / "zz link.tif").symlink_to(root / "a" / "01.tif")
    shutil.copy(root / "b" / "00.tif", root / "b" / "zz copy.tif")
    data, messages = load(root)
    assert data.class_counts() == {"a": 3, "b": 2}
    (message,) = reached_twice(messages)
    assert message.startswith("2 files were reached twice")
    assert "identical copy" in message
    assert data.meta["duplicates"] == [
        str(root / "a" / "zz link.tif"),
        str(root / "b" / "zz copy.tif"),
    ]
    # The first in the loader's order is kept: here the copy, named before the original.
    shutil.copy(root / "a" / "02.tif", root / "a" / "0 first.tif")
    data, _ = load(root)
    assert str(root / "a" / "0 first.tif") in data.paths
    assert str(root / "a" / "02.tif") in data.meta["duplicates"]


@pytest.mark.parametrize("how", ["copy", "link"])
def test_one_image_in_two_classes_is_an_error_or_left_out(tmp_path, how):
    root = make_root(tmp_path / "crops", {"a": 3, "b": 3})
    original, other = root / "a" / "01.tif", root / "b" / "x.tif"
    if how == "copy":
        shutil.copy(original, other)
    else:
        other.symlink_to(original)
    with pytest.raises(CnnlabError) as info:
        load_folders(root)
    message = str(info.value)
    assert str(original) in message and str(other) in message
    assert "--skip-bad" in message and "\n" not in message
    data, messages = load(root, skip_bad=True)
    assert data.class_counts() == {"a": 2, "b": 3}
    assert str(original) not in data.paths and str(other) not in data.paths
    assert data.meta["conflicts"] == [str(original), str(other)]
    assert any("left out 2 identical copies" in m for m in messages)


def test_split_never_puts_one_image_in_two_subsets(tmp_path):
    root = make_root(tmp_path / "crops", {"a": 20, "b": 20})
    for i in range(0, 20, 2):
        shutil.copy(root / "a" / f"{i:02d}.tif", root / "a" / f"copy {i:02d}.tif")
        (root / "b" / f"link {i:02d}.tif").symlink_to(root / "b" / f"{i:02d}.tif")
    link = tmp_path / "again"
    link.symlink_to(root)
    data, _ = load([root, link])
    assert len(data) == 40
    for seed in range(5):
        split = split_dataset(data, (60, 20, 20), seed=seed)
        seen: dict[bytes, str] = {}
        for name, subset in split.items():
            for image in subset.images:
                assert seen.setdefault(image.numpy().tobytes(), name) == name


def test_cached_load_finds_copies_without_reading_files(tmp_path, decodes):
    root, store = make_root(tmp_path / "crops", {"a": 3, "b": 2}), tmp_path / "cache"
    shutil.copy(root / "a" / "00.tif", root / "a" / "copy.tif")
    first, messages = load([root, root], cache=store)
    assert sorted(decodes) == sorted(["00.tif", "01.tif", "02.tif", "copy.tif", "00.tif", "01.tif"])
    decodes.clear()
    second, again = load([root, root], cache=store)
    assert decodes == []  # the digests come from the cache
    assert reached_twice(again) == reached_twice(messages)
    assert reached_twice(again)[0].startswith("7 files were reached twice")
    assert second.meta["duplicates"] == first.meta["duplicates"]
    assert same_images(first, second)
