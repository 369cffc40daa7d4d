"""Tests of the augmentations against NumPy and SciPy, and of the training-set-only rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndimage
import torch

from cnnlab.data.augment import (
    add_noise,
    augment,
    flip,
    parse_specs,
    random_rotate,
    rotate,
    shift,
)
from cnnlab.data.dataset import ImageDataset
from cnnlab.errors import CnnlabError


def make_dataset(
    n: int = 6, size: tuple[int, int] = (9, 9), channels: int = 1, dtype=torch.int32, seed=0
) -> ImageDataset:
    generator = torch.Generator().manual_seed(seed)
    high = 65536 if dtype == torch.int32 else 256
    images = torch.randint(0, high, (n, channels, *size), generator=generator).to(dtype)
    labels = torch.arange(n) % 2
    paths = tuple(f"img{i}.tif" for i in range(n))
    return ImageDataset(images, labels, ("a", "b"), paths, subset="train", bit_depth=16)


def smooth_dataset(size: int = 33) -> ImageDataset:
    """Off-centre Gaussian blobs: smooth enough for bilinear interpolation to be accurate."""
    y, x = np.mgrid[:size, :size].astype(np.float64)
    blobs = [
        np.exp(-((y - 12) ** 2 + (x - 20) ** 2) / 40) + 0.5 * np.exp(-((y - 22) ** 2) / 60),
        np.exp(-((y - 18) ** 2 + (x - 10) ** 2) / 25),
    ]
    images = torch.tensor(np.stack(blobs)[:, None], dtype=torch.float32)
    return ImageDataset(images, torch.tensor([0, 1]), ("a", "b"), ("p0", "p1"), subset="train")


# --------------------------------------------------------------------------------- rotation
def test_four_quarter_turns_give_back_the_input_exactly():
    dataset = make_dataset()
    turned = dataset
    for _ in range(4):
        turned = rotate(turned, [90])
    assert turned.dtype == torch.int32
    assert torch.equal(turned.images, dataset.images)


@pytest.mark.parametrize("angle, k", [(90, 1), (-90, -1), (180, 2), (270, 3), (-270, 1), (450, 1)])
def test_quarter_turns_match_numpy_rot90(angle, k):
    dataset = make_dataset()
    rotated = rotate(dataset, [angle]).images.numpy()
    expected = np.rot90(dataset.images.numpy(), k, axes=(2, 3))
    np.testing.assert_array_equal(rotated, expected)


def test_positive_angle_is_counter_clockwise_like_scipy():
    # A pixel at the top right moves to the top left after +90 degrees.
    image = torch.zeros((1, 1, 5, 5), dtype=torch.uint8)
    image[0, 0, 0, 4] = 200
    dataset = ImageDataset(image, torch.tensor([0]), ("a",), ("p",), subset="train")
    rotated = rotate(dataset, [90]).images[0, 0].numpy()
    np.testing.assert_array_equal(rotated, ndimage.rotate(image[0, 0].numpy(), 90, reshape=False))
    assert rotated[0, 0] == 200


@pytest.mark.parametrize("angle", [45, -30, 17.5])
def test_general_angle_matches_scipy_rotate_in_the_interior(angle):
    dataset = smooth_dataset()
    rotated = rotate(dataset, [angle], fill=0.0).images.numpy()
    for i in range(len(dataset)):
        expected = ndimage.rotate(
            dataset.images[i, 0].numpy().astype(np.float64), angle, reshape=False, order=1
        )
        interior = (slice(6, -6), slice(6, -6))
        np.testing.assert_allclose(rotated[i, 0][interior], expected[interior], atol=1e-4)


def test_general_rotation_of_non_square_image_keeps_size_and_pixel_geometry():
    # On a 21x31 image, a 90-degree turn moves the pixel (row 10, col 13) to (row 12, col 15):
    # rotating about the centre (10, 15) counter-clockwise maps (dr, dc) = (0, -2) to (2, 0).
    image = torch.zeros((1, 1, 21, 31))
    image[0, 0, 10, 13] = 1.0
    dataset = ImageDataset(image, torch.tensor([0]), ("a",), ("p",), subset="train")
    rotated = rotate(dataset, [90], fill=0.0).images
    assert rotated.shape == (1, 1, 21, 31)
    assert torch.nonzero(rotated[0, 0] > 0.5).tolist() == [[12, 15]]
    assert float(rotated.sum()) == pytest.approx(1.0)


@pytest.mark.parametrize("angle", [90, 30])
def test_non_square_rotation_matches_scipy(angle):
    y, x = np.mgrid[:25, :37].astype(np.float64)
    smooth = np.exp(-((y - 10) ** 2 + (x - 20) ** 2) / 30)
    dataset = ImageDataset(
        torch.tensor(smooth[None, None], dtype=torch.float32),
        torch.tensor([0]),
        ("a",),
        ("p",),
        subset="train",
    )
    rotated = rotate(dataset, [angle], fill=0.0).images[0, 0].numpy()
    expected = ndimage.rotate(smooth, angle, reshape=False, order=1)
    # Compare where the rotated frame still covers the image, away from its edge, where the
    # two libraries treat the uncovered area differently.
    covered = ndimage.rotate(np.ones_like(smooth), angle, reshape=False, order=1) > 0.999
    covered = ndimage.binary_erosion(covered, iterations=2)
    assert covered.sum() > 300
    np.testing.assert_allclose(rotated[covered], expected[covered], atol=1e-4)


def test_integer_rotation_rounds_and_clamps_into_the_dtype():
    dataset = make_dataset(dtype=torch.uint8)
    rotated = rotate(dataset, [33], fill="min")
    assert rotated.dtype == torch.uint8
    reference = rotate(dataset.replace(images=dataset.images.float()), [33], fill="min")
    assert torch.equal(rotated.images, reference.images.round().clamp(0, 255).to(torch.uint8))


def test_fill_modes():
    ones = ImageDataset(
        torch.full((1, 1, 11, 11), 7.0), torch.tensor([0]), ("a",), ("p",), subset="train"
    )
    assert torch.allclose(rotate(ones, [45], fill="edge").images, ones.images)
    assert torch.allclose(rotate(ones, [45], fill="mean").images, ones.images)
    corner = rotate(ones, [45], fill=-1.0).images[0, 0, 0, 0]
    assert float(corner) == pytest.approx(-1.0)
    with pytest.raises(CnnlabError, match="fill must be"):
        rotate(ones, [45], fill="black")


def test_several_angles_give_one_copy_each_with_labels_and_paths():
    dataset = make_dataset(n=4)
    rotated = rotate(dataset, [90, -90, 45])
    assert len(rotated) == 12
    assert rotated.paths == dataset.paths * 3
    assert torch.equal(rotated.labels, dataset.labels.repeat(3))


def test_random_rotate_is_seeded_and_zero_range_is_identity():
    dataset = smooth_dataset()
    first = random_rotate(dataset, 20, copies=3, seed=1)
    assert len(first) == 6
    assert torch.equal(first.images, random_rotate(dataset, 20, copies=3, seed=1).images)
    assert not torch.equal(first.images, random_rotate(dataset, 20, copies=3, seed=2).images)
    # A maximum of 0 degrees is the identity.
    still = random_rotate(dataset, 0, seed=1)
    assert torch.allclose(still.images, dataset.images, atol=1e-6)


# --------------------------------------------------------------------------------- flips
def test_flips_match_numpy_and_two_flips_give_back_the_input():
    dataset = make_dataset()
    horizontal = flip(dataset, "horizontal")
    np.testing.assert_array_equal(horizontal.images.numpy(), dataset.images.numpy()[..., ::-1])
    vertical = flip(dataset, "vertical")
    np.testing.assert_array_equal(vertical.images.numpy(), dataset.images.numpy()[..., ::-1, :])
    assert torch.equal(flip(horizontal, "horizontal").images, dataset.images)
    assert torch.equal(flip(vertical, "vertical").images, dataset.images)
    both = flip(dataset, "both")
    assert torch.equal(both.images, torch.cat([horizontal.images, vertical.images]))
    with pytest.raises(CnnlabError, match="flip axis"):
        flip(dataset, "diagonal")


def test_uint16_images_stay_exact():
    dataset = make_dataset()
    as_uint16 = dataset.replace(images=dataset.images.to(torch.uint16))
    flipped = flip(as_uint16, "vertical")
    turned = rotate(as_uint16, [90, 180])
    assert flipped.dtype == turned.dtype == torch.uint16
    np.testing.assert_array_equal(
        turned.images[:6].to(torch.int32).numpy(), np.rot90(dataset.images.numpy(), 1, (2, 3))
    )
    np.testing.assert_array_equal(
        flipped.images.to(torch.int32).numpy(), dataset.images.numpy()[..., ::-1, :]
    )


# --------------------------------------------------------------------------------- shifts
def test_shift_matches_numpy_roll_in_the_interior():
    dataset = make_dataset(n=40, size=(12, 10), channels=2)
    moved = shift(dataset, 3, seed=4)
    assert moved.dtype == torch.int32 and moved.images.shape == dataset.images.shape
    seen_offsets = set()
    for i in range(len(dataset)):
        source = dataset.images[i].numpy()
        target = moved.images[i].numpy()
        matches = [
            (dy, dx)
            for dy in range(-3, 4)
            for dx in range(-3, 4)
            if np.array_equal(
                target[:, 3:-3, 3:-3], np.roll(source, (dy, dx), axis=(1, 2))[:, 3:-3, 3:-3]
            )
        ]
        assert len(matches) == 1
        seen_offsets.add(matches[0])
        dy, dx = matches[0]
        # "edge" fill: the uncovered band repeats the nearest source pixels.
        rows = np.clip(np.arange(12) - dy, 0, 11)
        cols = np.clip(np.arange(10) - dx, 0, 9)
        np.testing.assert_array_equal(target, source[:, rows][:, :, cols])
    assert len(seen_offsets) > 10  # the offsets really are random


def test_shift_constant_fill_and_determinism():
    dataset = make_dataset(n=20)
    moved = shift(dataset, 2, seed=0, fill=-5)
    assert torch.equal(moved.images, shift(dataset, 2, seed=0, fill=-5).images)
    assert not torch.equal(moved.images, shift(dataset, 2, seed=1, fill=-5).images)
    assert (moved.images == -5).any()
    with pytest.raises(CnnlabError, match="whole number of pixels"):
        shift(dataset, 1.5)


# --------------------------------------------------------------------------------- noise
def test_noise_has_the_asked_mean_and_std_in_normalized_units():
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 4096, (50, 2, 16, 16), generator=generator, dtype=torch.int32)
    images[:, 1] *= 3  # channels with different spreads
    dataset = ImageDataset(images, torch.zeros(50, dtype=torch.int64), ("a",), ("p",) * 50)
    noisy = add_noise(dataset, std=0.1, mean=0.05, copies=2, seed=3)
    assert noisy.dtype == torch.float32 and len(noisy) == 100
    channel_std = images.double().transpose(0, 1).reshape(2, -1).std(dim=1, correction=0)
    noise = (noisy.images.double() - images.double().repeat(2, 1, 1, 1)) / channel_std.view(
        1, 2, 1, 1
    )
    count = noise[:, 0].numel()
    for c in range(2):
        values = noise[:, c].flatten()
        assert abs(float(values.mean()) - 0.05) < 4 * 0.1 / math.sqrt(count)
        # The standard error of a sample std is about std / sqrt(2 n).
        assert abs(float(values.std()) - 0.1) < 4 * 0.1 / math.sqrt(2 * count)


def test_noise_on_a_normalized_dataset_is_added_directly():
    dataset = make_dataset(n=30, size=(16, 16)).normalize()
    noisy = add_noise(dataset, std=0.2, seed=0)
    noise = (noisy.images - dataset.images).flatten().double()
    assert noisy.normalizer is dataset.normalizer
    assert abs(float(noise.std()) - 0.2) < 4 * 0.2 / math.sqrt(2 * noise.numel())
    assert torch.equal(noisy.images, add_noise(dataset, std=0.2, seed=0).images)
    assert not torch.equal(noisy.images, add_noise(dataset, std=0.2, seed=1).images)


# --------------------------------------------------------------------------------- training only
@pytest.mark.parametrize(
    "function",
    [
        lambda d, **k: rotate(d, [90], **k),
        lambda d, **k: random_rotate(d, 10, **k),
        lambda d, **k: flip(d, **k),
        lambda d, **k: add_noise(d, 0.1, **k),
        lambda d, **k: shift(d, 1, **k),
        lambda d, **k: augment(d, "flip", **k),
    ],
)
@pytest.mark.parametrize("subset", ["valid", "test"])
def test_validation_and_test_sets_are_refused(function, subset):
    dataset = make_dataset().with_subset(subset)
    with pytest.raises(CnnlabError, match=f"augmenting the {subset} set would bias"):
        function(dataset)
    assert len(function(dataset, allow_eval=True)) >= len(dataset)


# --------------------------------------------------------------------------------- specs
def test_augment_merges_copies_of_the_original_and_shuffles():
    dataset = make_dataset(n=8, dtype=torch.uint8).with_subset(None)
    specs = ["rotate:90,-90,45", "flip:hv", "flip+noise:0.1", "randrot:10:2", "shift:2"]
    out = augment(dataset, specs, seed=0)
    copies = 3 + 2 + 1 + 2 + 1
    assert len(out) == len(dataset) * (1 + copies)
    assert out.subset == "train" and out.meta["augment"] == specs
    assert out.dtype == torch.float32  # noisy copies make the merge float
    # Every original image is there once, unchanged, and the order is shuffled.
    originals = dataset.images.float()
    found = [int(((out.images == im).flatten(1).all(dim=1)).sum()) for im in originals]
    assert min(found) >= 1
    assert not torch.equal(out.images[: len(dataset)], originals)
    assert sorted(out.labels.tolist()) == sorted(dataset.labels.repeat(1 + copies).tolist())
    again = augment(dataset, specs, seed=0)
    assert torch.equal(out.images, again.images)
    assert not torch.equal(out.images, augment(dataset, specs, seed=1).images)


def test_chained_spec_is_noisy_flipped_copies():
    dataset = make_dataset(n=5).with_subset("train")
    out = augment(dataset, "flip+noise:1e-6", include_original=False, seed=0)
    flipped = flip(dataset).images.float()
    assert len(out) == 5
    # Noise this small leaves each copy within rounding of a flipped image.
    got = sorted(map(tuple, out.images.flatten(1).round().tolist()))
    assert got == sorted(map(tuple, flipped.flatten(1).tolist()))
    assert not torch.equal(out.images.sort(0).values, flipped.sort(0).values)


def test_repeated_noise_spec_gives_different_copies():
    dataset = make_dataset(n=3).with_subset("train")
    out = augment(dataset, ["noise:0.1", "noise:0.1"], include_original=False)
    images = out.images.flatten(1)
    for path in dataset.paths:
        pair = images[[i for i, p in enumerate(out.paths) if p == path]]
        assert not torch.equal(pair[0], pair[1])


def test_exact_augmentations_of_integer_data_stay_integer():
    dataset = make_dataset(n=4)
    out = augment(dataset, "rotate:90,180 flip:hv", seed=0)
    assert out.dtype == torch.int32 and len(out) == 4 * 5
    assert int(out.images.max()) > 255  # 16-bit values are kept


@pytest.mark.parametrize(
    "spec, reason",
    [
        ("spin:90", "unknown augmentation 'spin'"),
        ("rotate", "comma-separated list of angles"),
        ("rotate:90,x", "angle 'x' is not a number"),
        ("randrot:-5", "negative"),
        ("randrot:5:0", "copies '0'"),
        ("flip:d", "flip takes h, v or hv"),
        ("noise", "noise needs STD"),
        ("noise:-0.1", "negative"),
        ("noise:0.1:0:3", "noise needs STD"),
        ("shift:1.5", "whole number of pixels"),
        ("flip+", "empty augmentation"),
    ],
)
def test_bad_specs_name_the_spec_and_the_valid_forms(spec, reason):
    with pytest.raises(CnnlabError) as error:
        parse_specs([spec])
    message = str(error.value)
    assert message.startswith(f"--augment: bad augmentation spec {spec!r}")
    assert reason in message
    assert "valid forms: rotate:ANGLE" in message


def test_spec_forms_accepted():
    chains = parse_specs(
        "rotate:90,-90,45 rotate:random:15:2 randrot:15 flip flip:h flip:v "
        "flip:hv noise:0.1 noise:0.1:0.0 shift:2 shift:2:3 flip+noise:0.1"
    )
    assert [len(chain) for chain in chains] == [1] * 11 + [2]
    with pytest.raises(CnnlabError, match=r"^--augment: no augmentation given"):
        parse_specs([])
