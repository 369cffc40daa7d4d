"""Tests of on-the-fly augmentation against NumPy, SciPy and the static mode's own copies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndimage
import scipy.stats as stats
import torch

from cnnlab.data.augment import augment
from cnnlab.data.augment_online import OnTheFly
from cnnlab.data.dataset import ImageDataset
from cnnlab.errors import CnnlabError


def random_images(n: int, size=(9, 9), channels: int = 1, dtype=torch.int32, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 65536, (n, channels, *size), generator=generator).to(dtype)


def engine(specs, include_original: bool = True, fill="edge", channel_std=(1.0,)) -> OnTheFly:
    return OnTheFly.from_specs(
        specs, fill=fill, channel_std=channel_std, include_original=include_original
    )


def run(specs, images: torch.Tensor, seed: int = 0, **options) -> torch.Tensor:
    augmenter = engine(specs, **options)
    return augmenter.apply(
        images, augmenter.sample(len(images), torch.Generator().manual_seed(seed))
    )


def which(outputs: torch.Tensor, candidates: list[torch.Tensor]) -> list[int]:
    """For each output image, the index of the one candidate it equals bit for bit."""
    found = []
    for i, out in enumerate(outputs):
        hits = [k for k, c in enumerate(candidates) if torch.equal(out, c[i].float())]
        assert len(hits) == 1, f"image {i} equals {len(hits)} candidates"
        found.append(hits[0])
    return found


def smooth_images(size: int = 33) -> torch.Tensor:
    y, x = np.mgrid[:size, :size].astype(np.float64)
    blobs = [
        np.exp(-((y - 12) ** 2 + (x - 20) ** 2) / 40) + 0.5 * np.exp(-((y - 22) ** 2) / 60),
        np.exp(-((y - 18) ** 2 + (x - 10) ** 2) / 25),
    ]
    return torch.tensor(np.stack(blobs)[:, None], dtype=torch.float32)


# --------------------------------------------------------------------------------- exact moves
@pytest.mark.parametrize("size", [(9, 9), (8, 8)])
def test_flips_and_quarter_turns_are_exact_pixel_moves(size):
    images = random_images(200, size)
    array = images.numpy()
    flips = [
        torch.from_numpy(array[..., ::-1].copy()),
        torch.from_numpy(array[..., ::-1, :].copy()),
    ]
    assert sorted(set(which(run("flip:hv", images, include_original=False), flips))) == [0, 1]
    turns = [torch.from_numpy(np.rot90(array, k, axes=(2, 3)).copy()) for k in (1, 2, 3)]
    found = which(run("rotate:90,180,-90", images, include_original=False), turns)
    assert sorted(set(found)) == [0, 1, 2]


def test_non_square_images_flip_exactly_and_resample_quarter_turns_like_the_static_mode():
    images = random_images(60, (8, 11))
    array = images.numpy()
    candidates = [
        torch.from_numpy(array[..., ::-1].copy()),
        torch.from_numpy(np.rot90(array, 2, (2, 3)).copy()),
    ]
    assert set(which(run("flip rotate:180", images, include_original=False), candidates)) == {0, 1}
    # A quarter turn cannot keep an 8x11 image: both modes resample it, the same way.
    smooth = smooth_images(33)[:, :, 4:-4, :]
    turned = run("rotate:90", smooth, include_original=False)
    dataset = ImageDataset(smooth, torch.tensor([0, 1]), ("a", "b"), ("p", "q"), subset="train")
    static = augment(dataset, "rotate:90", include_original=False).images
    order = [
        dataset.paths.index(p) for p in augment(dataset, "rotate:90", include_original=False).paths
    ]
    torch.testing.assert_close(turned[order], static, atol=1e-5, rtol=0)


def test_shift_is_a_whole_pixel_move_with_edge_fill():
    images = random_images(40, (12, 10), channels=2)
    moved = run("shift:3", images, include_original=False)
    seen = set()
    for source, target in zip(images.numpy(), moved.numpy(), strict=True):
        matches = []
        for dy in range(-3, 4):
            for dx in range(-3, 4):
                rows, cols = np.clip(np.arange(12) - dy, 0, 11), np.clip(np.arange(10) - dx, 0, 9)
                if np.array_equal(target, source[:, rows][:, :, cols].astype(np.float32)):
                    matches.append((dy, dx))
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 10


def test_uint16_gives_float32_and_the_original_variant_keeps_every_value():
    images = random_images(300).to(torch.uint16)
    out = run("flip noise:0.5", images, channel_std=(1000.0,))
    assert out.dtype == torch.float32 and out.shape == images.shape
    exact = torch.from_numpy(images.to(torch.int32).numpy().astype(np.float32))
    kept = (out == exact).flatten(1).all(dim=1)
    flipped = (out == exact.flip(-1)).flatten(1).all(dim=1)
    # Originals and flips a third each, the noisy rest changed everywhere.
    assert 70 < int(kept.sum()) < 130 and 70 < int(flipped.sum()) < 130
    assert not (out[~(kept | flipped)] == exact[~(kept | flipped)]).flatten(1).any(dim=1).all()


# --------------------------------------------------------------------------------- distribution
@pytest.mark.parametrize(
    "specs, include_original",
    [("rotate:90 flip", True), ("flip:hv+rotate:90,30", True), ("rotate:90,-90,45 flip:v", False)],
)
def test_variants_are_drawn_uniformly_from_the_static_copies(specs, include_original):
    """Each output equals one of the static mode's images of the same original, each equally
    often. The counts are checked by a chi-square test at p > 0.001: deterministic under the
    fixed seeds, and a skew of a tenth in any share over 3,000 draws fails it."""
    images = random_images(100, (7, 7), dtype=torch.float32)
    dataset = ImageDataset(
        images, torch.zeros(100, dtype=torch.int64), ("a",), tuple(map(str, range(100)))
    )
    static = augment(dataset.with_subset("train"), specs, include_original=include_original)
    per_image = [
        static.images[[i for i, p in enumerate(static.paths) if p == path]]
        for path in dataset.paths
    ]
    variants = len(per_image[0])
    augmenter = engine(specs, include_original=include_original)
    assert augmenter.variants == variants
    counts = np.zeros(variants)
    generator = torch.Generator().manual_seed(1)
    for _ in range(30):
        out = augmenter.apply(images, augmenter.sample(len(images), generator))
        for i, image in enumerate(out):
            hits = [k for k in range(variants) if torch.allclose(image, per_image[i][k], atol=1e-4)]
            assert len(hits) == 1
            counts[hits[0]] += 1
    assert stats.chisquare(counts).pvalue > 1e-3, counts


def test_the_same_generator_state_gives_the_same_batch():
    images = random_images(64, (16, 16)).to(torch.uint16)
    specs = "randrot:20+shift:2+noise:0.1 crop:0.5+brightness:0.2 contrast:0.3 flip:hv"
    first = run(specs, images, seed=7, channel_std=(900.0,))
    assert torch.equal(first, run(specs, images, seed=7, channel_std=(900.0,)))
    assert not torch.equal(first, run(specs, images, seed=8, channel_std=(900.0,)))


def test_select_gives_the_images_of_the_whole_batch():
    images = random_images(48, (16, 16), channels=2)
    augmenter = engine(
        "randrot:20+shift:2+noise:0.1 crop:0.5+brightness:0.2+noise:0.3 contrast:0.3 flip:hv",
        channel_std=(900.0, 400.0),
    )
    params = augmenter.sample(48, torch.Generator().manual_seed(3))
    whole = augmenter.apply(images, params)
    for share in (torch.arange(0, 48, 2), torch.arange(1, 48, 2), torch.tensor([40, 3, 17])):
        assert torch.equal(augmenter.apply(images[share], params.select(share)), whole[share])


# --------------------------------------------------------------------------------- values
def test_noise_has_the_asked_statistics_in_source_units():
    images = random_images(40, (16, 16), channels=2, dtype=torch.float32)
    std = (3.0, 50.0)
    out = run("noise:0.1:0.05", images, include_original=False, channel_std=std)
    noise = (out.double() - images.double()) / torch.tensor(std, dtype=torch.float64).view(
        1, 2, 1, 1
    )
    count = noise[:, 0].numel()
    for c in range(2):
        values = noise[:, c].flatten()
        assert abs(float(values.mean()) - 0.05) < 4 * 0.1 / math.sqrt(count)
        assert abs(float(values.std()) - 0.1) < 4 * 0.1 / math.sqrt(2 * count)


def test_random_rotation_matches_scipy_in_the_interior():
    images = smooth_images().repeat(4, 1, 1, 1)
    augmenter = engine("randrot:40", include_original=False, fill=0.0)
    params = augmenter.sample(len(images), torch.Generator().manual_seed(0))
    out = augmenter.apply(images, params)
    # randrot keeps one uniform u per image: the angle is (2u - 1) * MAX.
    angles = ((2 * params.values[0][0][:, 0] - 1) * 40).tolist()
    assert max(angles) - min(angles) > 10
    interior = (slice(6, -6), slice(6, -6))
    for image, rotated, angle in zip(images, out, angles, strict=True):
        expected = ndimage.rotate(image[0].double().numpy(), angle, reshape=False, order=1)
        np.testing.assert_allclose(rotated[0][interior].numpy(), expected[interior], atol=1e-4)


def test_brightness_is_one_offset_per_image_within_delta():
    images = random_images(400, (6, 6), channels=2, dtype=torch.float32)
    out = run("brightness:0.2", images, include_original=False, channel_std=(10.0, 30.0))
    offsets = (out.double() - images.double()) / torch.tensor([10.0, 30.0]).view(
        1, 2, 1, 1
    ).double()
    per_image = offsets.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-3)
    # Uniform in [-0.2, 0.2]: inside, reaching near both ends, with variance 0.2^2 / 3.
    assert (
        per_image.abs().max() <= 0.2 + 1e-4 and per_image.min() < -0.19 and per_image.max() > 0.19
    )
    assert float(per_image[:, 0].var()) == pytest.approx(0.04 / 3, rel=0.2)


def test_contrast_scales_around_each_image_mean():
    images = random_images(300, (6, 6), dtype=torch.float32)
    out = run("contrast:0.5", images, include_original=False).double()
    mean = images.double().mean(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(out.mean(dim=(2, 3), keepdim=True), mean, rtol=1e-5, atol=1e-2)
    centred = images.double() - mean
    factors = ((out - mean) * centred).sum((1, 2, 3)) / (centred**2).sum((1, 2, 3))
    # One factor per image explains every pixel (to float32 precision on values up to 65,535).
    fitted = mean + factors.view(-1, 1, 1, 1) * centred
    torch.testing.assert_close(out, fitted, rtol=0, atol=0.05)
    assert 0.5 - 1e-5 <= float(factors.min()) < 0.55 and 1.45 < float(factors.max()) <= 1.5 + 1e-5


def test_crop_of_a_ramp_is_a_ramp_with_the_box_slopes():
    """Bilinear resampling keeps a linear ramp linear: its slopes are the box's side fractions."""
    y, x = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    images = (10 * x + 100 * y).expand(300, 1, 32, 32).contiguous()
    out = run("crop:0.4", images, include_original=False)[:, 0, 2:-2, 2:-2].double()
    slope_x = (out[:, :, 1:] - out[:, :, :-1]) / 10
    slope_y = (out[:, 1:] - out[:, :-1]) / 100
    assert torch.allclose(slope_x, slope_x[:, :1, :1].expand_as(slope_x), atol=1e-3)
    side_x, side_y = slope_x[:, 0, 0], slope_y[:, 0, 0]
    area, ratio = side_x * side_y, side_x / side_y
    assert float(area.min()) > 0.4 - 1e-3 and float(area.max()) < 1 + 1e-3
    assert float(area.min()) < 0.45 and float(area.max()) > 0.95
    assert float(ratio.min()) > 0.75 - 1e-3 and float(ratio.max()) < 4 / 3 + 1e-3
    # The box lies inside the image: its left/top edge is never before the image's.
    assert float(out[:, 0, 0].min()) >= 0


@pytest.mark.parametrize(
    "spec",
    ["crop:1", "shift:0", "noise:0", "rotate:90,360", "randrot:0", "randrot:400", "brightness:0",
     "contrast:0"],
)  # fmt: skip
def test_specs_that_would_change_nothing_or_everything_are_refused(spec):
    with pytest.raises(CnnlabError, match=f"^--augment: bad augmentation spec '{spec}'"):
        OnTheFly.from_specs([spec], channel_std=[1.0])


# --------------------------------------------------------------------------------- errors
def test_bad_specs_and_options_are_refused_before_training():
    with pytest.raises(CnnlabError, match=r"^--augment: bad augmentation spec 'spin:9'"):
        engine("spin:9")
    with pytest.raises(CnnlabError, match="fill must be"):
        engine("flip", fill="black")
    with pytest.raises(CnnlabError, match="channel_std must be positive"):
        engine("flip", channel_std=(0.0,))
    augmenter = engine("noise:0.1", channel_std=(1.0, 2.0))
    images = random_images(4, channels=3)
    with pytest.raises(CnnlabError, match="channel_std has 2 values but the images have 3"):
        augmenter.apply(images, augmenter.sample(4, torch.Generator()))
    with pytest.raises(CnnlabError, match="parameters for 3"):
        augmenter.apply(images, augmenter.sample(3, torch.Generator()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_gpu_gives_the_cpu_batch():
    images = random_images(256, (48, 48)).to(torch.uint16)
    augmenter = engine(
        "rotate:90,45 flip:hv randrot:30+shift:2+noise:0.1 crop:0.5+contrast:0.2",
        channel_std=(500.0,),
    )
    params = augmenter.sample(256, torch.Generator().manual_seed(0))
    on_cpu = augmenter.apply(images, params)
    on_gpu = augmenter.apply(images.cuda(), params)
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-2, rtol=1e-5)
