"""Tests of ImageDataset, merge and Normalizer against hand computation, NumPy and Pillow."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data.dataset import ImageDataset, Normalizer, merge
from cnnlab.errors import CnnlabError


def dataset_of(images, labels=None, classes=("a", "b"), **fields) -> ImageDataset:
    n = len(images)
    labels = torch.as_tensor(labels if labels is not None else [i % 2 for i in range(n)])
    paths = tuple(f"folder/{i}.tif" for i in range(n))
    return ImageDataset(images, labels, classes, paths, **fields)


def random_images(shape, high=256, dtype=torch.uint8, seed=0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, high, shape, generator=generator).to(dtype)


# --------------------------------------------------------------------------------- construction
def test_inconsistent_fields_are_rejected():
    images = torch.zeros((3, 1, 2, 2), dtype=torch.uint8)
    with pytest.raises(ValueError, match="labels"):
        ImageDataset(images, torch.zeros(2, dtype=torch.int64), ("a",), ("p",) * 3)
    with pytest.raises(ValueError, match="paths"):
        ImageDataset(images, torch.zeros(3, dtype=torch.int64), ("a",), ("p",) * 2)
    with pytest.raises(ValueError, match="class_names"):
        ImageDataset(images, torch.tensor([0, 1, 2]), ("a", "b"), ("p",) * 3)
    with pytest.raises(ValueError, match="subset"):
        ImageDataset(images, torch.zeros(3, dtype=torch.int64), ("a",), ("p",) * 3, subset="dev")


# --------------------------------------------------------------------------------- resize
def test_resize_mixed_sizes_to_one_size_keeps_dtype_and_16_bit_range():
    # 2x2 -> 4x4 bilinear (half-pixel centres) is hand-computable: source coordinates
    # (-0.25, 0.25, 0.75, 1.25) clamp to (0, 0.25, 0.75, 1), so out[i, j] = r[i] + c[j].
    small = torch.tensor([[[0, 20000], [40000, 60000]]], dtype=torch.int32)
    same = random_images((1, 4, 4), high=65536, dtype=torch.int32)
    large = torch.full((1, 12, 8), 65535, dtype=torch.int32)
    dataset = dataset_of([small, same, large], labels=[0, 1, 0], bit_depth=16)
    assert not dataset.uniform
    resized = dataset.resize(4)
    assert resized.uniform and resized.images.shape == (3, 1, 4, 4)
    assert resized.dtype == torch.int32
    rows = np.array([0, 10000, 30000, 40000])
    cols = np.array([0, 5000, 15000, 20000])
    np.testing.assert_array_equal(resized.images[0, 0].numpy(), rows[:, None] + cols[None, :])
    assert torch.equal(resized.images[1], same)  # already the right size: untouched
    assert torch.equal(resized.images[2], torch.full((1, 4, 4), 65535, dtype=torch.int32))
    assert resized.paths == dataset.paths and torch.equal(resized.labels, dataset.labels)
    assert resized.sizes() == [(4, 4)] * 3


def test_the_largest_source_outlives_resizing_selection_and_a_second_resize():
    # The tallest image is not the widest: height and width are the largest of each.
    dataset = dataset_of([torch.zeros((1, 3, 5)), torch.zeros((1, 9, 4))], labels=[0, 0])
    assert dataset.largest_source() == (9, 5)
    resized = dataset.resize(4)
    assert resized.largest_source() == (9, 5)
    assert resized.select([0]).largest_source() == (9, 5)  # of the whole dataset
    assert resized.resize(12).largest_source() == (9, 5)  # the sources, not the first resize
    assert resized.select([]).largest_source() == (9, 5)
    assert dataset_of(torch.zeros((2, 1, 28, 28))).largest_source() == (28, 28)
    assert dataset_of([], labels=[]).largest_source() is None
    # Merged, the largest sources of all; unresized parts count with their own sizes.
    other = dataset_of([torch.zeros((1, 2, 30))], labels=[1]).resize(4)
    assert merge([resized, other]).largest_source() == (9, 30)
    assert merge([resized, dataset_of(torch.zeros((1, 1, 4, 4)), labels=[0])]).largest_source() == (
        9,
        5,
    )
    assert merge([dataset_of(torch.zeros((1, 1, 4, 4)), labels=[0])] * 2).largest_source() == (4, 4)


def test_resize_down_matches_pillow_antialiased_bilinear():
    image = random_images((1, 1, 16, 12), seed=3)
    resized = dataset_of(image, labels=[0]).resize((8, 6))
    assert resized.dtype == torch.uint8
    expected = np.asarray(Image.fromarray(image[0, 0].numpy()).resize((6, 8), Image.BILINEAR))
    difference = np.abs(resized.images[0, 0].numpy().astype(int) - expected.astype(int))
    assert difference.max() <= 1


def test_resize_rejects_bad_size_and_stays_put_when_already_sized():
    dataset = dataset_of(random_images((2, 1, 5, 7)))
    assert dataset.resize((5, 7)) is dataset
    with pytest.raises(CnnlabError, match=r"^--size \(size=\) must be positive"):
        dataset.resize((0, 4))


def test_uniform_operations_explain_mixed_sizes():
    dataset = dataset_of([torch.zeros((1, 3, 5)), torch.zeros((1, 9, 4))], labels=[0, 0])
    with pytest.raises(CnnlabError, match=r"from 3x5 to 9x4.*--size HxW\) before normalizing"):
        dataset.normalize()


# --------------------------------------------------------------------------------- channels
def test_to_channels_gray_uses_itu_601_weights_and_rgb_repeats():
    rgb = random_images((2, 3, 4, 4), seed=1)
    gray = dataset_of(rgb).to_channels(1)
    weights = np.array([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)
    expected = np.round((rgb.numpy() * weights).sum(axis=1, keepdims=True))
    assert gray.dtype == torch.uint8 and gray.channels == 1
    np.testing.assert_array_equal(gray.images.numpy(), expected)
    back = gray.to_channels(3)
    assert back.channels == 3
    for c in range(3):
        assert torch.equal(back.images[:, c], gray.images[:, 0])
    with pytest.raises(CnnlabError, match=r"^--channels \(channels=\) must be 1 or 3"):
        gray.to_channels(2)


def test_to_channels_on_mixed_list_converts_each_image():
    images = [random_images((3, 4, 4)), random_images((1, 5, 5)), random_images((4, 2, 2))]
    gray = dataset_of(images, labels=[0, 0, 1]).to_channels(1)
    assert [im.shape[0] for im in gray.images] == [1, 1, 1]
    assert torch.equal(gray.images[1], images[1])
    rgb = dataset_of(images[:2], labels=[0, 1]).to_channels(3)
    assert [im.shape[0] for im in rgb.images] == [3, 3]


# --------------------------------------------------------------------------------- normalize
def test_normalize_is_fitted_on_train_and_reapplied_elsewhere():
    train_images = random_images((20, 2, 6, 6), high=4096, dtype=torch.int32, seed=1)
    valid_images = random_images((7, 2, 6, 6), high=4096, dtype=torch.int32, seed=2)
    train = dataset_of(train_images, subset="train").normalize()
    valid = dataset_of(valid_images, subset="valid").normalize(train.normalizer)
    source = train_images.numpy().astype(np.float64)
    mean = source.mean(axis=(0, 2, 3))
    std = source.std(axis=(0, 2, 3))
    np.testing.assert_allclose(train.normalizer.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(train.normalizer.std, std, rtol=1e-12)
    assert train.dtype == valid.dtype == torch.float32
    assert valid.normalizer is train.normalizer
    expected = (valid_images.numpy() - mean.reshape(1, 2, 1, 1)) / std.reshape(1, 2, 1, 1)
    np.testing.assert_allclose(valid.images.numpy(), expected, rtol=1e-5, atol=1e-5)
    z = train.images.double()
    np.testing.assert_allclose(z.mean(dim=(0, 2, 3)).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(dim=(0, 2, 3), correction=0).numpy(), 1, atol=1e-5)
    with pytest.raises(CnnlabError, match="already normalized"):
        train.normalize()


def test_raw_inverts_normalize():
    images = random_images((5, 1, 4, 4), high=65536, dtype=torch.int32)
    dataset = dataset_of(images)
    assert dataset.raw() is dataset
    back = dataset.normalize().raw()
    assert back.normalizer is None
    np.testing.assert_allclose(back.images.numpy(), images.numpy(), atol=0.02)


def test_constant_images_get_unit_std_and_fitting_on_valid_warns():
    dataset = dataset_of(torch.full((3, 1, 2, 2), 9, dtype=torch.uint8), subset="valid")
    with pytest.warns(UserWarning, match="fit it on the training set"):
        normalizer = Normalizer.fit(dataset)
    assert normalizer == Normalizer((9.0,), (1.0,))
    assert Normalizer.from_dict(normalizer.to_dict()) == normalizer


@pytest.mark.parametrize(
    ("dtype", "low", "high"),
    [
        (torch.uint8, 0, 256),
        (torch.int16, -3000, 3000),  # negative counts shift the histogram
        (torch.int32, 100, 65536),
        (torch.int32, 0, 1 << 28),  # too many levels for a histogram: float64 chunks
        (torch.float32, -1, 1),
    ],
)
def test_normalizer_statistics_match_numpy_float64(dtype, low, high):
    generator = torch.Generator().manual_seed(5)
    if dtype.is_floating_point:
        images = torch.rand((40, 2, 9, 7), generator=generator) * (high - low) + low
    else:
        images = torch.randint(low, high, (40, 2, 9, 7), generator=generator).to(dtype)
    normalizer = Normalizer.fit(dataset_of(images, subset="train"))
    source = images.numpy().astype(np.float64)
    np.testing.assert_allclose(normalizer.mean, source.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(normalizer.std, source.std(axis=(0, 2, 3)), rtol=1e-11)


# --------------------------------------------------------------------------------- selection
def test_shuffle_is_a_permutation_determined_by_seed():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1)
    dataset = dataset_of(images)
    first, again, other = dataset.shuffle(3), dataset.shuffle(3), dataset.shuffle(4)
    assert torch.equal(first.images, again.images) and first.paths == again.paths
    assert not torch.equal(first.images, other.images)
    order = first.images.flatten().long()
    assert sorted(order.tolist()) == list(range(10)) and order.tolist() != list(range(10))
    # Labels and paths travel with their image.
    assert torch.equal(first.labels, dataset.labels[order])
    assert first.paths == tuple(dataset.paths[i] for i in order.tolist())


def test_select_keeps_the_given_order_for_tensors_and_lists():
    images = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1)
    picked = dataset_of(images).select([4, 0, 4])
    assert picked.images.flatten().tolist() == [4, 0, 4]
    assert picked.paths == ("folder/4.tif", "folder/0.tif", "folder/4.tif")
    listed = dataset_of([torch.zeros((1, k + 1, 1)) for k in range(4)]).select(np.array([3, 1]))
    assert listed.sizes() == [(4, 1), (2, 1)]


# --------------------------------------------------------------------------------- merge
def test_merge_integer_and_float_gives_exact_float32():
    integers = dataset_of(torch.tensor([[[[65535]]], [[[3]]]], dtype=torch.int32), bit_depth=16)
    floats = dataset_of(torch.tensor([[[[0.25]]]]), labels=[1], bit_depth=16)
    merged = merge([integers, floats], name="both")
    assert merged.dtype == torch.float32
    assert merged.images.flatten().tolist() == [65535.0, 3.0, 0.25]
    assert merged.labels.tolist() == [0, 1, 1]
    assert merged.paths == integers.paths + floats.paths
    assert merged.bit_depth == 16 and merged.name == "both"
    same = merge([integers, integers])
    assert same.dtype == torch.int32 and len(same) == 4


def test_merge_refuses_incompatible_datasets():
    a = dataset_of(torch.zeros((2, 1, 3, 3)))
    with pytest.raises(CnnlabError, match="cannot merge"):
        merge([a, a.replace(class_names=("x", "y"))])
    with pytest.raises(CnnlabError, match="different image sizes"):
        merge([a, dataset_of(torch.zeros((2, 1, 4, 4)))])
    with pytest.raises(CnnlabError, match="normalized differently"):
        merge([a, a.normalize()])
    b = dataset_of(torch.ones((2, 1, 3, 3)) * torch.arange(2.0).view(2, 1, 1, 1))
    with pytest.raises(CnnlabError, match="normalized differently"):
        merge([a.normalize(Normalizer((0.0,), (1.0,))), b.normalize()])
    with pytest.raises(CnnlabError, match="nothing to merge"):
        merge([])
    # 8-bit among 16-bit images would sit at 1/257 of their brightness.
    deep = a.replace(bit_depth=16, name="deep")
    with pytest.raises(CnnlabError, match=r"cannot merge deep \(16-bit\) with dataset \(8-bit\)"):
        merge([a, deep])


# --------------------------------------------------------------------------------- summary
def test_class_counts_and_summary():
    images = [torch.zeros((1, 4, 6), dtype=torch.int32), torch.zeros((1, 8, 3), dtype=torch.int32)]
    dataset = dataset_of(
        [*images, torch.zeros((1, 5, 5), dtype=torch.int32)],
        labels=[0, 2, 0],
        classes=("a", "b", "c"),
        bit_depth=16,
        subset="train",
        name="cells",
    )
    assert dataset.class_counts() == {"a": 2, "b": 0, "c": 1}
    assert dataset.summary() == {
        "name": "cells",
        "subset": "train",
        "n": 3,
        "classes": {"a": 2, "b": 0, "c": 1},
        "class_shares": {"a": 2 / 3, "b": 0.0, "c": 1 / 3},
        "channels": 1,
        "bit_depth": 16,
        "dtype": "int32",
        "height": [4, 8],
        "width": [3, 6],
    }
    assert dataset.num_classes == 3
    assert dataset.select([]).class_shares() == {"a": None, "b": None, "c": None}
