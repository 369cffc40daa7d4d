"""Tests of the static microscopy augmentations: random resized crops, brightness, contrast."""

from __future__ import annotations

import pytest
import torch

from cnnlab.data.augment import (
    augment,
    parse_specs,
    random_brightness,
    random_contrast,
    random_crop,
)
from cnnlab.data.dataset import ImageDataset
from cnnlab.errors import CnnlabError


def dataset_of(images: torch.Tensor) -> ImageDataset:
    n = len(images)
    labels = torch.arange(n) % 2
    paths = tuple(f"img{i}.tif" for i in range(n))
    return ImageDataset(images, labels, ("a", "b"), paths, subset="train", bit_depth=16)


def sixteen_bit_images(n: int = 50, size: int = 12, channels: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    values = torch.randint(1000, 60000, (n, channels, size, size), generator=generator)
    return values.to(torch.int32)  # how cnnlab holds 16-bit images


def test_crop_keeps_the_type_and_stretches_a_box_of_the_image():
    y, x = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
    ramp = (20 * x + 400 * y + 100).expand(200, 1, 24, 24).round().to(torch.int32)
    cropped = random_crop(dataset_of(ramp), 0.5, copies=2, seed=1)
    assert cropped.dtype == torch.int32 and len(cropped) == 400
    out = cropped.images.to(torch.int32).double()[:, 0, 2:-2, 2:-2]
    # A ramp stays a ramp (rounded to whole numbers), with the box's side fractions as slopes.
    side_x = (out[:, :, -1] - out[:, :, 0]).mean(1) / (20 * 19)
    side_y = (out[:, -1, :] - out[:, 0, :]).mean(1) / (400 * 19)
    area = side_x * side_y
    assert float(area.min()) > 0.5 - 0.01 and float(area.max()) < 1.01 and float(area.min()) < 0.55
    assert float((side_x / side_y).min()) > 0.74 and float((side_x / side_y).max()) < 1.35
    assert torch.equal(cropped.images, random_crop(dataset_of(ramp), 0.5, 2, seed=1).images)
    whole = random_crop(dataset_of(ramp), 1.0, seed=1)
    assert torch.equal(whole.images, ramp)


def test_brightness_offsets_each_image_in_z_score_units_and_rounds():
    images = sixteen_bit_images(300)
    channel_std = float(images.double().std(correction=0))
    bright = random_brightness(dataset_of(images), 0.3, seed=2)
    assert bright.dtype == torch.int32
    offsets = (bright.images.to(torch.int32) - images.to(torch.int32)).flatten(1).double()
    # One offset per image (whole numbers: rounded), within 0.3 standard deviations.
    assert torch.equal(offsets, offsets[:, :1].expand_as(offsets))
    scaled = offsets[:, 0] / channel_std
    assert float(scaled.abs().max()) <= 0.3 + 1 / channel_std and float(scaled.max()) > 0.28
    assert float(scaled.var()) == pytest.approx(0.09 / 3, rel=0.2)


def test_brightness_of_a_normalized_set_is_in_its_units():
    images = sixteen_bit_images(30).float()
    normalized = dataset_of(images).normalize()
    bright = random_brightness(normalized, 0.5, seed=0)
    offsets = (bright.images - normalized.images).flatten(1)
    assert float(offsets.abs().max()) <= 0.5 + 1e-5 and bright.dtype == torch.float32


def test_contrast_scales_around_the_mean_and_rounds_into_the_type():
    images = sixteen_bit_images(200)
    dataset = dataset_of(images)
    low = random_contrast(dataset, 0.5, seed=3)
    assert low.dtype == torch.int32
    source = images.double()
    mean = source.mean(dim=(2, 3), keepdim=True)
    factors = ((low.images.double() - mean) * (source - mean)).sum((1, 2, 3)) / (
        (source - mean) ** 2
    ).sum((1, 2, 3))
    assert 0.5 - 1e-3 < float(factors.min()) < 0.55 and 1.45 < float(factors.max()) < 1.5 + 1e-3
    # Whole numbers again, not clipped to 16 bits (int32 holds them), like the noise: within
    # rounding (plus the error of factors fitted to rounded values) of the float64 reference.
    expected = mean + factors.view(-1, 1, 1, 1) * (source - mean)
    assert float((low.images.double() - expected).abs().max()) <= 1
    assert int(low.images.max()) > 65535


def test_augment_makes_the_new_copies_and_keeps_integer_types():
    dataset = dataset_of(sixteen_bit_images(10))
    out = augment(dataset, "crop:0.7:2 brightness:0.1 contrast:0.2+flip", seed=0)
    assert len(out) == 10 * (1 + 2 + 1 + 1) and out.dtype == torch.int32
    assert torch.equal(
        out.images, augment(dataset, "crop:0.7:2 brightness:0.1 contrast:0.2+flip").images
    )


@pytest.mark.parametrize(
    "spec, reason",
    [
        ("crop", "crop needs MINIMUM SCALE"),
        ("crop:0", "not in (0, 1)"),
        ("crop:1.5", "not in (0, 1)"),
        ("crop:0.5:0", "copies '0'"),
        ("brightness:-1", "delta -1 is negative"),
        ("brightness:x", "delta 'x' is not a number"),
        ("contrast:1.5", "above 1"),
        ("contrast:0.2:1:1", "contrast needs FACTOR"),
    ],
)
def test_bad_microscopy_specs_are_refused(spec, reason):
    with pytest.raises(CnnlabError) as error:
        parse_specs([spec])
    assert str(error.value).startswith(f"--augment: bad augmentation spec {spec!r}")
    assert reason in str(error.value) and "crop:MINSCALE[:COPIES]" in str(error.value)


@pytest.mark.parametrize(
    "function, message",
    [
        (lambda d: random_crop(d, 0), "minimum crop scale"),
        (lambda d: random_brightness(d, float("nan")), "brightness delta"),
        (lambda d: random_contrast(d, 2), "contrast factor"),
        (lambda d: random_contrast(d.with_subset("test"), 0.1), "test set would bias"),
    ],
)
def test_bad_arguments_are_refused(function, message):
    with pytest.raises(CnnlabError, match=message):
        function(dataset_of(sixteen_bit_images(3)))
