"""Gray and RGB conversion: exact luma, the same pixels everywhere, and no change from before."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from cnnlab.data.channels import LUMA, convert_array, convert_channels, rgb_to_gray
from cnnlab.data.dataset import ImageDataset
from cnnlab.data.imageio import read_image
from cnnlab.errors import CnnlabError


def reader_before(array: np.ndarray) -> np.ndarray:
    """The file reader's RGB-to-gray as it was before it moved to cnnlab.data.channels, verbatim,
    so that the tests below show the move changed no pixel."""
    gray = np.tensordot(np.array([0.299, 0.587, 0.114]), array.astype(np.float64), axes=1)
    gray = gray[np.newaxis]
    if array.dtype.kind == "f":
        return gray.astype(array.dtype)
    info = np.iinfo(array.dtype)
    return np.clip(np.rint(gray), info.min, info.max).astype(array.dtype)


def all_8bit_colours(chunk: int) -> np.ndarray:
    """Chunk ``chunk`` of 16 of all 2**24 colours, as a (3, 1024, 1024) uint8 image."""
    code = np.arange(chunk << 20, (chunk + 1) << 20, dtype=np.int64)
    rgb = np.stack([code >> 16, (code >> 8) & 255, code & 255]).astype(np.uint8)
    return rgb.reshape(3, 1024, 1024)


def rng_image(kind: str, seed: int, shape=(3, 64, 48)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "16-bit":  # as the reader holds 16-bit data
        return rng.integers(0, 1 << 16, shape).astype(np.int32)
    if kind == "signed 16-bit":
        return rng.integers(-(1 << 15), 1 << 15, shape).astype(np.int32)
    if kind == "32-bit":
        return rng.integers(0, 1 << 32, shape, dtype=np.uint64).astype(np.int64)
    if kind == "float32":
        return (rng.standard_normal(shape) * 10.0 ** rng.integers(-30, 30, shape)).astype(
            np.float32
        )
    raise AssertionError(kind)


KINDS = ["16-bit", "signed 16-bit", "32-bit", "float32"]
FILE_DTYPES = {"16-bit": np.uint16, "signed 16-bit": np.int16, "32-bit": np.uint32}


# ---------------------------------------------------------------------------- bit-identical
@pytest.mark.parametrize("chunk", range(16))
def test_every_8bit_colour_is_converted_as_before(chunk):
    rgb = all_8bit_colours(chunk)
    np.testing.assert_array_equal(rgb_to_gray(rgb), reader_before(rgb), strict=True)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(3))
def test_16bit_32bit_and_float_images_are_converted_as_before(kind, seed):
    rgb = rng_image(kind, seed)
    np.testing.assert_array_equal(convert_array(rgb, 1), reader_before(rgb), strict=True)


def test_files_read_as_gray_are_converted_as_before(tmp_path):
    rgb16 = rng_image("16-bit", 7).astype(np.uint16)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb16, photometric="rgb", planarconfig="separate")
    gray, depth = read_image(tmp_path / "rgb16.tif", channels=1)
    assert (gray.dtype, depth) == (torch.int32, 16)
    np.testing.assert_array_equal(gray.numpy(), reader_before(rgb16.astype(np.int32)))
    rgbf = rng_image("float32", 8)
    tifffile.imwrite(tmp_path / "rgbf.tif", rgbf, photometric="rgb", planarconfig="separate")
    gray, _ = read_image(tmp_path / "rgbf.tif", channels=1)
    np.testing.assert_array_equal(gray.numpy(), reader_before(rgbf), strict=True)


# ---------------------------------------------------------------------------- exact luma
def test_8bit_gray_is_the_nearest_integer_to_the_exact_luma():
    # 1000 * luma = 299 R + 587 G + 114 B exactly; the gray value must be the nearest integer,
    # either one at an exact half (the float64 sum lands on either side of it).
    for chunk in (0, 5, 15):
        rgb = all_8bit_colours(chunk).astype(np.int64)
        thousandfold = 299 * rgb[0] + 587 * rgb[1] + 114 * rgb[2]
        error = np.abs(
            1000 * rgb_to_gray(all_8bit_colours(chunk))[0].astype(np.int64) - thousandfold
        )
        assert error.max() <= 500
        assert np.all((error < 500) | (thousandfold % 1000 == 500))


def test_16bit_gray_is_the_nearest_integer_and_clipped_to_the_type():
    rgb = rng_image("16-bit", 3)
    exact = (299 * rgb[0].astype(np.int64) + 587 * rgb[1] + 114 * rgb[2]) / 1000
    assert np.abs(rgb_to_gray(rgb)[0] - exact).max() <= 0.5
    white = np.full((3, 2, 2), 255, np.uint8)
    assert rgb_to_gray(white).tolist() == [[[255, 255], [255, 255]]]


def test_float_gray_is_the_float64_luma_cast_back():
    rgb = rng_image("float32", 4, shape=(3, 8, 8))
    gray = rgb_to_gray(rgb)
    assert gray.dtype == np.float32
    weights = [Fraction(float(w)) for w in LUMA]
    for value, *colour in zip(gray.ravel(), *rgb.reshape(3, -1), strict=True):
        terms = [w * Fraction(float(c)) for w, c in zip(weights, colour, strict=True)]
        # Two float64 roundings per term and sum, then one rounding to float32.
        bound = Fraction(float(abs(np.spacing(value)))) + sum(map(abs, terms)) * Fraction(2**-50)
        assert abs(Fraction(float(value)) - sum(terms)) <= bound


# ---------------------------------------------------------------------------- one place
@pytest.mark.parametrize("kind", ["8-bit", *KINDS])
def test_tensors_are_converted_exactly_as_the_file_reader_converts(tmp_path, kind):
    # A model sees at prediction (convert_channels on the read image) the gray values it was
    # trained on (the reader's channels=1).
    images = [
        all_8bit_colours(chunk)[:, :48, :64] if kind == "8-bit" else rng_image(kind, chunk)
        for chunk in range(4)
    ]
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.tif")
        pixels = image.astype(FILE_DTYPES.get(kind, image.dtype))
        tifffile.imwrite(paths[-1], pixels, photometric="rgb", planarconfig="separate")
    from_files = [read_image(path, channels=1)[0] for path in paths]
    read = [read_image(path)[0] for path in paths]
    for raw, expected in zip(read, from_files, strict=True):
        assert torch.equal(convert_channels(raw, 1), expected)
    stacked = torch.stack(read)
    dataset = ImageDataset(stacked, torch.zeros(4, dtype=torch.int64), ("a",), ("p",) * 4)
    assert torch.equal(dataset.to_channels(1).images, torch.stack(from_files))
    assert torch.equal(convert_channels(stacked[None], 1)[0], torch.stack(from_files))


def test_alpha_is_dropped_and_gray_repeats():
    rgba = np.random.default_rng(1).integers(0, 256, (4, 5, 6)).astype(np.uint8)
    np.testing.assert_array_equal(convert_array(rgba, 1), rgb_to_gray(rgba[:3]))
    tensor = torch.from_numpy(rgba)
    assert torch.equal(convert_channels(tensor, 1), torch.from_numpy(rgb_to_gray(rgba[:3])))
    gray = rgba[:1]
    assert np.array_equal(convert_array(gray, 3), np.concatenate([gray] * 3))
    assert torch.equal(
        convert_channels(torch.from_numpy(gray), 3), torch.from_numpy(gray).repeat(3, 1, 1)
    )
    assert convert_array(gray, 1) is gray


def test_rgba_png_read_as_gray_drops_alpha(tmp_path):
    rgba = np.random.default_rng(2).integers(0, 256, (5, 6, 4)).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    gray, _ = read_image(tmp_path / "a.png", channels=1)
    np.testing.assert_array_equal(gray.numpy(), reader_before(rgba[..., :3].transpose(2, 0, 1)))


def test_conversion_keeps_dtype_device_and_empty_batches():
    rgb = torch.rand((2, 3, 4, 4), dtype=torch.float64)
    assert convert_channels(rgb, 1).dtype == torch.float64
    half = torch.rand((3, 4, 4)).to(torch.bfloat16)
    gray = convert_channels(half, 1)
    assert gray.dtype == torch.bfloat16 and gray.shape == (1, 4, 4)
    empty = torch.zeros((0, 3, 4, 4), dtype=torch.uint8)
    assert convert_channels(empty, 1).shape == (0, 1, 4, 4)


@pytest.mark.parametrize(("have", "want"), [(2, 1), (2, 3), (4, 3), (3, 2)])
def test_impossible_conversions_say_what_the_image_has(have, want):
    with pytest.raises(CnnlabError, match=rf"cannot convert {have} channels.* to {want}"):
        convert_array(np.zeros((have, 2, 2), np.uint8), want)
    with pytest.raises(CnnlabError, match=rf"cannot convert {have} channels.* to {want}"):
        convert_channels(torch.zeros((have, 2, 2), dtype=torch.uint8), want)
