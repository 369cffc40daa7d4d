"""Tests of stratified splitting, equalization, manifests and the class-balance report."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlab.data.dataset import ImageDataset
from cnnlab.data.split import (
    Split,
    apply_manifest,
    balance_warnings,
    carve_validation,
    class_table,
    format_class_table,
    read_manifest,
    split_dataset,
    write_manifest,
)
from cnnlab.errors import CnnlabError


def make_dataset(counts: dict[str, int], size: int = 4) -> ImageDataset:
    """Images whose first pixel is their index, so samples can be traced through a split."""
    labels = torch.cat([torch.full((n,), k) for k, n in enumerate(counts.values())])
    n = len(labels)
    images = torch.zeros((n, 1, size, size), dtype=torch.int32)
    images[:, 0, 0, 0] = torch.arange(n, dtype=torch.int32)
    # Paths with spaces, commas, '=' and dots, as real folders have.
    paths = tuple(
        f"data/my cells, run=2/{c}/img.{i:03d}.tif" for i, c in enumerate(labels.tolist())
    )
    return ImageDataset(images, labels, tuple(counts), paths, bit_depth=16, name="cells")


COUNTS = {"rod": 37, "coccus": 23, "spiral": 11, "tiny": 4}


@pytest.mark.parametrize("percents", [(60, 30, 10), (70, 30), (50, 25, 25), (80, 0, 20)])
def test_every_class_keeps_its_share_within_one_image(percents):
    dataset = make_dataset(COUNTS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        split = split_dataset(dataset, percents, seed=3)
    table = class_table(split)
    for subset, share in zip(("train", "valid", "test"), percents, strict=False):
        if share == 0:
            assert getattr(split, subset) is None
            continue
        for class_name, class_n in COUNTS.items():
            assert abs(table[subset][class_name] - share / 100 * class_n) <= 1
    if len(percents) == 2:
        assert split.test is None


def test_split_is_a_partition_with_subsets_set():
    dataset = make_dataset(COUNTS)
    split = split_dataset(dataset, (60, 30, 10), seed=1)
    taken = [p for _, d in split.items() for p in d.paths]
    assert sorted(taken) == sorted(dataset.paths)
    for name, subset in split.items():
        assert subset.subset == name
        # Labels still belong to the same images (first pixel = original index).
        originals = subset.images[:, 0, 0, 0].long()
        assert torch.equal(dataset.labels[originals], subset.labels)
        assert subset.paths == tuple(dataset.paths[i] for i in originals.tolist())
    assert [name for name, _ in split.items()] == ["train", "valid", "test"]


def test_split_shuffles_classes_together_and_depends_only_on_seed():
    dataset = make_dataset(COUNTS)
    first = split_dataset(dataset, seed=5)
    again = split_dataset(dataset, seed=5)
    other = split_dataset(dataset, seed=6)
    assert first.train.paths == again.train.paths
    assert first.train.paths != other.train.paths
    labels = first.train.labels.tolist()
    assert labels != sorted(labels)  # interleaved, not class blocks


def test_small_class_warns_naming_class_and_subset():
    dataset = make_dataset({"big": 20, "rare": 2})
    with pytest.warns(UserWarning, match=r"'rare'.*test set"):
        split = split_dataset(dataset, (60, 30, 10))
    counts = class_table(split)
    assert counts["train"]["rare"] == 1 and counts["valid"]["rare"] == 1
    assert counts["test"]["rare"] == 0


def test_every_subset_gets_a_small_class_when_it_can():
    # 3 images at 60/30/10: plain rounding gives 2/1/0; one image for each is also within one.
    dataset = make_dataset({"big": 30, "small": 3})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split = split_dataset(dataset, (60, 30, 10))
    assert [d.class_counts()["small"] for _, d in split.items()] == [1, 1, 1]


def test_training_set_is_served_first():
    dataset = make_dataset({"big": 10, "single": 1})
    with pytest.warns(UserWarning, match="'single'.*valid set"):
        split = split_dataset(dataset, (40, 60))
    assert split.train.class_counts()["single"] == 1


@pytest.mark.parametrize(
    "percents, message",
    [
        ((60, 50, -10), "60,50,-10: percents must be numbers of 0 or more"),
        ((50, float("nan"), 50), "50,nan,50: percents must be numbers of 0 or more"),
        ((60, 30, 20), "sum to 110"),
        ((100,), "give 2"),
        ((0, 50, 50), "no training set"),
        (("a", 50), "not numbers"),
    ],
)
def test_bad_percents_are_explained(percents, message):
    with pytest.raises(CnnlabError, match=rf"^--split \(percents=\) .*{message}"):
        split_dataset(make_dataset(COUNTS), percents)


def test_class_without_images_is_an_error():
    dataset = make_dataset({"a": 5, "b": 5}).replace(class_names=("a", "b", "empty"))
    with pytest.raises(CnnlabError, match="class 'empty' has no images"):
        split_dataset(dataset)


def test_equalize_undersamples_the_training_set_only():
    dataset = make_dataset(COUNTS)
    plain = split_dataset(dataset, seed=2)
    equal = split_dataset(dataset, seed=2, equalize=True)
    smallest = min(plain.train.class_counts().values())
    assert set(equal.train.class_counts().values()) == {smallest}
    assert set(equal.train.paths) <= set(plain.train.paths)
    assert equal.valid.paths == plain.valid.paths
    assert equal.test.paths == plain.test.paths
    # Random, seeded choice of which images are kept.
    assert split_dataset(dataset, seed=2, equalize=True).train.paths == equal.train.paths


def test_carve_validation_is_stratified():
    train = make_dataset({"0": 50, "1": 30}).with_subset("train")
    smaller, valid = carve_validation(train, 20, seed=0)
    assert smaller.subset == "train" and valid.subset == "valid"
    assert valid.class_counts() == {"0": 10, "1": 6}
    assert smaller.class_counts() == {"0": 40, "1": 24}
    assert not set(smaller.paths) & set(valid.paths)
    with pytest.raises(CnnlabError, match=r"^--split \(percent=\): .*between 0 and 100, not 0"):
        carve_validation(train, 0)
    with pytest.raises(CnnlabError, match="test set"):
        carve_validation(train.with_subset("test"), 10)


# --------------------------------------------------------------------------------- manifest
def test_manifest_round_trip_reproduces_split_exactly(tmp_path):
    dataset = make_dataset(COUNTS)
    split = split_dataset(dataset, seed=4)
    path = write_manifest(split, tmp_path / "split.csv")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["path", "class", "subset"]
    assert rows[1] == [
        split.train.paths[0],
        split.train.class_names[split.train.labels[0]],
        "train",
    ]
    assert len(read_manifest(path)) == len(dataset)

    # A reloaded dataset in another order gives the same subsets in the same order.
    reloaded = dataset.shuffle(99)
    rebuilt = apply_manifest(reloaded, path)
    for (name, original), (name2, again) in zip(split.items(), rebuilt.items(), strict=True):
        assert name == name2 and again.subset == name
        assert again.paths == original.paths
        assert torch.equal(again.labels, original.labels)
        assert torch.equal(again.images, original.images)


def test_manifest_without_valid_or_test(tmp_path):
    split = split_dataset(make_dataset({"a": 10, "b": 10}), (80, 20))
    rebuilt = apply_manifest(
        make_dataset({"a": 10, "b": 10}), write_manifest(split, tmp_path / "m")
    )
    assert rebuilt.test is None and rebuilt.valid.paths == split.valid.paths


def test_manifest_works_for_mnist_style_paths(tmp_path):
    labels = torch.tensor([i % 3 for i in range(30)])
    dataset = ImageDataset(
        torch.zeros((30, 1, 2, 2), dtype=torch.uint8),
        labels,
        ("0", "1", "2"),
        tuple(f"mnist/train/{i:05d}" for i in range(30)),
    )
    smaller, valid = carve_validation(dataset, 10)
    path = write_manifest(Split(train=smaller, valid=valid), tmp_path / "mnist.csv")
    assert apply_manifest(dataset, path).valid.paths == valid.paths


def test_manifest_path_missing_from_dataset(tmp_path):
    dataset = make_dataset({"a": 6, "b": 6})
    path = write_manifest(split_dataset(dataset, (50, 50)), tmp_path / "split.csv")
    fewer = dataset.select(range(1, 12))
    with pytest.raises(CnnlabError, match=rf"split\.csv lists {dataset.paths[0]}, which is not"):
        apply_manifest(fewer, path)


def test_manifest_class_mismatch(tmp_path):
    dataset = make_dataset({"a": 6, "b": 6})
    path = write_manifest(split_dataset(dataset, (50, 50)), tmp_path / "split.csv")
    relabelled = dataset.replace(labels=1 - dataset.labels)
    with pytest.raises(
        CnnlabError,
        match=r"puts .*img\.\d+\.tif in class '(a|b)' but cells has it in class '(a|b)'",
    ):
        apply_manifest(relabelled, path)


def test_dataset_images_absent_from_manifest_are_left_out_with_a_warning(tmp_path):
    dataset = make_dataset({"a": 6, "b": 6})
    path = write_manifest(split_dataset(dataset.select(range(10)), (50, 50)), tmp_path / "m.csv")
    with pytest.warns(UserWarning, match="2 image"):
        rebuilt = apply_manifest(dataset, path)
    assert len(rebuilt.train) + len(rebuilt.valid) == 10


@pytest.mark.parametrize(
    "text, message",
    [
        ("file,label,set\nx,a,train\n", "line 1: expected the header path,class,subset"),
        ("path,class,subset\nx,a,train\ny,a,validation\n", "line 3: unknown subset 'validation'"),
        ("path,class,subset\nx,a\n", "line 2: expected 3 fields"),
        ("", "line 1: expected the header"),
    ],
)
def test_malformed_manifest_names_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(CnnlabError, match=rf"bad\.csv, {message}"):
        read_manifest(path)


def test_missing_manifest_file(tmp_path):
    with pytest.raises(CnnlabError, match="does not exist"):
        read_manifest(tmp_path / "nope.csv")


# --------------------------------------------------------------------------------- reporting
def test_class_table_and_warnings():
    split = split_dataset(make_dataset({"a": 40, "b": 10}), (50, 50))
    assert class_table(split) == {"train": {"a": 20, "b": 5}, "valid": {"a": 20, "b": 5}}
    assert class_table([split.train]) == {"train": {"a": 20, "b": 5}}
    problems = balance_warnings(split)
    assert len(problems) == 2
    assert "train set is imbalanced" in problems[0] and "consider --equalize" in problems[0]
    balanced = split_dataset(make_dataset({"a": 12, "b": 10}), (50, 50))
    assert balance_warnings(balanced) == []  # 6 vs 5 is within 1.5x
    lacking = {"test": make_dataset({"a": 3, "b": 3}).select([0, 1, 2])}
    assert balance_warnings(lacking) == ["the test set has no images of class 'b'"]


def test_format_class_table_is_aligned_with_counts_shares_and_totals():
    split = split_dataset(make_dataset({"rod": 1000, "c": 10, "spiral": 234}), (60, 30, 10))
    assert format_class_table(split) == "\n".join(
        [
            "class         train        valid         test          total",
            "------  -----------  -----------  -----------  -------------",
            "rod     600 (80.4%)  300 (80.2%)  100 (80.6%)  1,000 (80.4%)",
            "c         6  (0.8%)    3  (0.8%)    1  (0.8%)     10  (0.8%)",
            "spiral  140 (18.8%)   71 (19.0%)   23 (18.5%)    234 (18.8%)",
            "------  -----------  -----------  -----------  -------------",
            "total   746          374          124          1,244",
        ]
    )


def test_class_table_shares_are_of_each_subset_and_an_empty_subset_has_none():
    data = make_dataset({"a": 3, "b": 1})
    assert format_class_table({"train": data, "test": data.select([])}) == "\n".join(
        [
            "class      train  test      total",
            "-----  ---------  ----  ---------",
            "a      3 (75.0%)    0   3 (75.0%)",
            "b      1 (25.0%)    0   1 (25.0%)",
            "-----  ---------  ----  ---------",
            "total  4            0   4",
        ]
    )


def test_manifest_follows_a_moved_data_folder(tmp_path):
    import shutil

    import tifffile

    from cnnlab.data.folders import load_folders

    root = tmp_path / "crops"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(10):
            pixels = np.full((4, 4), i + (100 if c == "b" else 0), np.uint16)
            tifffile.imwrite(root / c / f"roi {i} - C=0.tif", pixels)
    split = split_dataset(load_folders(root), (60, 20, 20), seed=3)
    write_manifest(split, tmp_path / "split.csv")
    shutil.copytree(root, tmp_path / "moved")
    again = apply_manifest(load_folders(tmp_path / "moved"), tmp_path / "split.csv")
    for name in ("train", "valid", "test"):
        before, after = getattr(split, name), getattr(again, name)
        assert [Path(p).name for p in before.paths] == [Path(p).name for p in after.paths]
        assert torch.equal(before.images, after.images)
