"""Display stretching: 16-bit images stay visible, whatever their layout."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.inspect.display import display_pixels, range_text, shape_text, to_display


def microscopy_crop(seed: int = 0) -> np.ndarray:
    """A 16-bit phase-contrast-like crop: noisy background near 30,000, a darker ellipse."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:40, :40]
    crop = rng.normal(30000, 1200, (40, 40))
    crop[((yy - 20) / 14) ** 2 + ((xx - 20) / 7) ** 2 < 1] -= 8000
    return np.clip(crop, 20000, 40000).astype(np.uint16)


def test_16bit_image_is_neither_black_nor_white() -> None:
    shown = to_display(microscopy_crop())
    assert shown.shape == (40, 40)
    assert shown.min() >= 0.0 and shown.max() <= 1.0
    assert shown.std() > 0.1
    # the dark ellipse is darker than the background after stretching, as in the raw data
    assert shown[20, 20] < shown[2, 2]


def test_int32_tensor_from_dataset_matches_uint16_array() -> None:
    crop = microscopy_crop()
    from_tensor = to_display(torch.from_numpy(crop.astype(np.int32))[None])
    np.testing.assert_allclose(from_tensor, to_display(crop))


def test_stretch_uses_percentiles_so_a_hot_pixel_does_not_flatten_the_image() -> None:
    image = np.tile(np.linspace(100, 200, 50), (50, 1))
    image[0, 0] = 65535
    shown = to_display(image, low=0.0, high=99.0)
    lo, hi = np.percentile(image, [0.0, 99.0])
    np.testing.assert_allclose(shown, np.clip((image - lo) / (hi - lo), 0, 1))
    assert shown[:, -2].mean() > 0.9  # without percentiles the gradient would be below 0.002


def test_constant_and_non_finite_images_become_grey_not_nan() -> None:
    assert np.all(to_display(np.full((5, 7), 31234, dtype=np.uint16)) == 0.5)
    assert np.all(to_display(np.full((4, 4), np.nan)) == 0.5)
    image = np.arange(16, dtype=np.float64).reshape(4, 4)
    image[1, 1] = np.nan
    shown = to_display(image)
    assert np.isfinite(shown).all()
    assert shown[1, 1] == 0.0


def test_mostly_constant_image_falls_back_to_min_max() -> None:
    image = np.zeros((100, 100))
    image[0, 0] = 10.0  # above the 99.5th percentile, which is 0
    shown = to_display(image)
    assert shown[0, 0] == 1.0 and shown[50, 50] == 0.0


def test_channel_layouts() -> None:
    rgb = np.random.default_rng(1).integers(0, 255, (3, 9, 11)).astype(np.uint8)
    from_tensor = to_display(torch.from_numpy(rgb))
    from_hwc = to_display(np.moveaxis(rgb, 0, -1))
    from_chw = to_display(rgb)
    assert from_tensor.shape == (9, 11, 3)
    np.testing.assert_allclose(from_tensor, from_hwc)
    np.testing.assert_allclose(from_tensor, from_chw)
    assert to_display(torch.zeros(1, 6, 5)).shape == (6, 5)
    assert to_display(np.zeros((6, 5, 1))).shape == (6, 5)


@pytest.mark.parametrize("shape", [(2, 5, 5), (5,), (1, 1, 5, 5), (5, 5, 4)])
def test_unsupported_shapes_are_user_errors(shape: tuple[int, ...]) -> None:
    with pytest.raises(CnnlabError, match="cannot display"):
        to_display(np.zeros(shape))


def test_bad_percentiles() -> None:
    with pytest.raises(ValueError):
        to_display(np.zeros((3, 3)), low=50, high=10)


def test_shape_text() -> None:
    assert shape_text((6, 28, 28)) == "6×28×28"
    assert shape_text(torch.Size([400])) == "400"
    assert range_text(np.array([-1.234, 3.4])) == "values -1.23 … 3.4"
    assert range_text(np.zeros(0)) == "no values"


def test_display_pixels_stretch_16_bit_images_to_8_bits() -> None:
    image = torch.arange(20000, 20000 + 28 * 28, dtype=torch.int32).reshape(1, 28, 28)
    pixels = display_pixels(image)
    assert pixels.dtype == np.uint8 and pixels.shape == (28, 28)
    assert pixels.min() == 0 and pixels.max() == 255  # stretched, not a flat grey square
    assert np.all(np.diff(pixels.ravel().astype(int)) >= 0)  # the ramp keeps its order
    np.testing.assert_array_equal(pixels, np.round(to_display(image) * 255))


def test_inspect_modules_do_not_import_pyplot() -> None:
    """cnnlab must not switch a user's matplotlib backend or open windows."""
    code = (
        "import sys\n"
        "import cnnlab.inspect.activations, cnnlab.inspect.kernels, cnnlab.inspect.saliency\n"
        "import cnnlab.inspect.filters, cnnlab.inspect.plots, cnnlab.inspect.confusion\n"
        "import cnnlab.inspect.mistakes, cnnlab.inspect.report, cnnlab.inspect.run_plots\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
