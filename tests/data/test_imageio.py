from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from cnnlab.data.imageio import read_array, read_image
from cnnlab.errors import CnnlabError

ODD_NAME = "roi 117 - 114_1354-001.nd2 - C=0"


def ramp(dtype, shape=(6, 7), start=0, step=1):
    return (start + step * np.arange(np.prod(shape))).astype(dtype).reshape(shape)


# ----------------------------------------------------------------------------- TIFF
@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize(
    ("dtype", "torch_dtype", "bits", "start", "step"),
    [
        (np.uint8, torch.uint8, 8, 3, 5),
        (np.uint16, torch.int32, 16, 20000, 476),
        (np.int16, torch.int32, 16, -20000, 900),
        (np.int32, torch.int64, 32, -(2**30), 2**25),
        (np.uint32, torch.int64, 32, 2**31, 2**24),
        (np.float32, torch.float32, 32, -1.5, 0.25),
        (np.float64, torch.float32, 32, 0.5, 0.125),
    ],
)
def test_tiff_values_survive_exactly(tmp_path, byteorder, dtype, torch_dtype, bits, start, step):
    values = ramp(dtype, start=start, step=step)
    path = tmp_path / f"{ODD_NAME}.tif"
    tifffile.imwrite(path, values, byteorder=byteorder)
    image, depth = read_image(path)
    assert image.dtype == torch_dtype
    assert depth == bits
    assert image.shape == (1, 6, 7)
    np.testing.assert_array_equal(image[0].numpy(), values.astype(image.numpy().dtype))


def test_imagej_uint16_above_255(tmp_path):
    values = ramp(np.uint16, shape=(20, 30), start=20000, step=33)
    assert values.max() <= 40000
    path = tmp_path / "fiji.tif"
    tifffile.imwrite(path, values, imagej=True)
    image, depth = read_image(path)
    assert depth == 16
    assert int(image.max()) == int(values.max()) > 255
    np.testing.assert_array_equal(image[0].numpy(), values)


def test_rgb_tiff_is_three_channels_not_a_stack(tmp_path):
    values = ramp(np.uint16, shape=(5, 4, 3), step=1000)
    tifffile.imwrite(tmp_path / "rgb.tif", values, photometric="rgb")
    image, depth = read_image(tmp_path / "rgb.tif")
    assert image.shape == (3, 5, 4)
    assert depth == 16
    np.testing.assert_array_equal(image.numpy(), values.transpose(2, 0, 1))


@pytest.mark.parametrize("imagej", [False, True])
def test_stack_needs_a_plane(tmp_path, imagej):
    stack = ramp(np.uint16, shape=(4, 5, 6), step=7)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, imagej=imagej, photometric="minisblack")
    with pytest.raises(CnnlabError, match="stack of 4 planes") as info:
        read_image(path)
    assert str(path) in str(info.value)
    for plane in range(4):
        image, _ = read_image(path, plane=plane)
        np.testing.assert_array_equal(image[0].numpy(), stack[plane])
    with pytest.raises(CnnlabError, match=r"--plane \(plane=\) must be 0\.\.3"):
        read_image(path, plane=4)


def test_imagej_hyperstack_counts_all_planes(tmp_path):
    hyper = ramp(np.uint16, shape=(2, 3, 4, 5), step=3)  # Z, C, Y, X
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, hyper, imagej=True, metadata={"axes": "ZCYX"})
    with pytest.raises(CnnlabError, match="6 planes"):
        read_image(path)
    image, _ = read_image(path, plane=4)  # z=1, c=1
    np.testing.assert_array_equal(image[0].numpy(), hyper[1, 1])


# ----------------------------------------------------------------------------- PNG
def png_bytes(values: np.ndarray, colour: int, filters=(0, 1, 2, 3, 4)) -> bytes:
    """A 16-bit PNG encoded by hand, cycling through all five row filters."""
    height, width = values.shape[:2]
    samples = values.reshape(height, width, -1).astype(">u2")
    raw = samples.reshape(height, -1).view(np.uint8).astype(np.int64)
    bpp = samples.shape[2] * 2
    lines = []
    for y in range(height):
        kind = filters[y % len(filters)]
        line, above = raw[y], raw[y - 1] if y else np.zeros_like(raw[y])
        left = np.concatenate([np.zeros(bpp, np.int64), line[:-bpp]])
        upper_left = np.concatenate([np.zeros(bpp, np.int64), above[:-bpp]])
        if kind == 0:
            predicted = np.zeros_like(line)
        elif kind == 1:
            predicted = left
        elif kind == 2:
            predicted = above
        elif kind == 3:
            predicted = (left + above) // 2
        else:
            p = left + above - upper_left
            pa, pb, pc = abs(p - left), abs(p - above), abs(p - upper_left)
            predicted = np.where(
                (pa <= pb) & (pa <= pc), left, np.where(pb <= pc, above, upper_left)
            )
        lines.append(bytes([kind]) + ((line - predicted) % 256).astype(np.uint8).tobytes())

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)
    body = zlib.compress(b"".join(lines))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def test_png_16bit_gray_round_trip(tmp_path):
    values = ramp(np.uint16, shape=(9, 11), start=20000, step=200)
    path = tmp_path / f"{ODD_NAME}.png"
    Image.fromarray(values).save(path)
    image, depth = read_image(path)
    assert (image.dtype, depth) == (torch.int32, 16)
    np.testing.assert_array_equal(image[0].numpy(), values)


@pytest.mark.parametrize(("colour", "samples", "kept"), [(2, 3, 3), (6, 4, 3), (4, 2, 1)])
def test_png_16bit_colour_is_not_cut_to_8_bits(tmp_path, colour, samples, kept):
    rng = np.random.default_rng(colour)
    values = rng.integers(0, 65536, size=(7, 5, samples), dtype=np.uint16)
    path = tmp_path / "colour16.png"
    path.write_bytes(png_bytes(values, colour))
    image, depth = read_image(path)
    assert (image.dtype, depth) == (torch.int32, 16)
    np.testing.assert_array_equal(image.numpy(), values[..., :kept].transpose(2, 0, 1))


@pytest.mark.parametrize(
    ("mode", "values", "expected_channels"),
    [
        ("L", ramp(np.uint8, (4, 5), step=9), 1),
        ("LA", ramp(np.uint8, (4, 5, 2), step=3), 1),
        ("RGB", ramp(np.uint8, (4, 5, 3), step=2), 3),
        ("RGBA", ramp(np.uint8, (4, 5, 4), step=2), 3),
    ],
)
def test_png_8bit_modes(tmp_path, mode, values, expected_channels):
    Image.fromarray(values, mode=mode).save(tmp_path / "a.png")
    image, depth = read_image(tmp_path / "a.png")
    assert (image.dtype, depth, image.shape[0]) == (torch.uint8, 8, expected_channels)
    expected = values if values.ndim == 2 else values[..., :expected_channels]
    np.testing.assert_array_equal(image.numpy(), expected.reshape(4, 5, -1).transpose(2, 0, 1))


def test_palette_png(tmp_path):
    indices = ramp(np.uint8, (4, 5)) % 3
    colours = Image.fromarray(indices, mode="P")
    colours.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    colours.save(tmp_path / "colours.png")
    image, _ = read_image(tmp_path / "colours.png")
    table = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(image.numpy(), table[indices].transpose(2, 0, 1))
    grays = Image.fromarray(indices, mode="P")
    grays.putpalette([10, 10, 10, 20, 20, 20, 30, 30, 30])
    grays.save(tmp_path / "grays.png")
    image, _ = read_image(tmp_path / "grays.png")
    np.testing.assert_array_equal(image[0].numpy(), (indices + 1) * 10)


# ----------------------------------------------------------------------------- JPEG, BMP
def test_jpeg_and_bmp(tmp_path):
    values = ramp(np.uint8, (16, 16, 3), step=1)
    Image.fromarray(values).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(values).save(tmp_path / "a.bmp")
    jpeg, depth = read_image(tmp_path / "a.jpg")
    assert (jpeg.shape, depth) == ((3, 16, 16), 8)
    with Image.open(tmp_path / "a.jpg") as reference:
        np.testing.assert_array_equal(jpeg.numpy(), np.asarray(reference).transpose(2, 0, 1))
    bmp, _ = read_image(tmp_path / "a.bmp")
    np.testing.assert_array_equal(bmp.numpy(), values.transpose(2, 0, 1))


# ----------------------------------------------------------------------------- channels
def test_channels_conversion(tmp_path):
    rgb = ramp(np.uint16, (3, 4, 3), step=2000)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    gray, depth = read_image(tmp_path / "rgb.tif", channels=1)
    expected = np.rint(rgb @ np.array([0.299, 0.587, 0.114]))
    assert (gray.shape, gray.dtype, depth) == ((1, 3, 4), torch.int32, 16)
    np.testing.assert_array_equal(gray[0].numpy(), expected)
    tifffile.imwrite(tmp_path / "gray.tif", rgb[..., 0])
    three, _ = read_image(tmp_path / "gray.tif", channels=3)
    assert three.shape == (3, 3, 4)
    assert all(np.array_equal(three[c].numpy(), rgb[..., 0]) for c in range(3))


# ----------------------------------------------------------------------------- detection
def test_format_is_detected_by_content(tmp_path):
    values = ramp(np.uint16, (5, 6), start=30000)
    Image.fromarray(values).save(tmp_path / "really_png.tif", format="PNG")
    image, depth = read_image(tmp_path / "really_png.tif")
    assert depth == 16
    np.testing.assert_array_equal(image[0].numpy(), values)
    tifffile.imwrite(tmp_path / "really_tiff.png", values)
    image, _ = read_image(tmp_path / "really_tiff.png")
    np.testing.assert_array_equal(image[0].numpy(), values)


# ----------------------------------------------------------------------------- errors
def make_truncated_tiff(path):
    tifffile.imwrite(path, ramp(np.uint16, (64, 64)))
    path.write_bytes(path.read_bytes()[:300])


def make_truncated_png(path):
    Image.fromarray(ramp(np.uint8, (64, 64, 3), step=7)).save(path)
    path.write_bytes(path.read_bytes()[:200])


def make_truncated_png16(path):
    path.write_bytes(png_bytes(ramp(np.uint16, (8, 8, 3)), colour=2)[:80])


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p.write_text("this is not an image\n"),
        lambda p: p.write_bytes(b""),
        lambda p: p.write_bytes(b"II*\x00" + bytes(40)),
        lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(60)),
        make_truncated_tiff,
        make_truncated_png,
        make_truncated_png16,
        lambda p: Image.new("L", (4, 4)).save(p, format="GIF"),
    ],
    ids=[
        "text",
        "empty",
        "tiff-header-only",
        "png-garbage",
        "tiff-cut",
        "png-cut",
        "png16-cut",
        "gif",
    ],
)
def test_bad_files_raise_one_line_naming_the_file(tmp_path, make):
    path = tmp_path / f"{ODD_NAME}.tif"
    make(path)
    with pytest.raises(CnnlabError) as info:
        read_array(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message


def test_missing_and_folder(tmp_path):
    with pytest.raises(CnnlabError, match="not found"):
        read_image(tmp_path / "nope.tif")
    with pytest.raises(CnnlabError, match="folder"):
        read_image(tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read anything")
def test_unreadable_file(tmp_path):
    path = tmp_path / "locked.tif"
    tifffile.imwrite(path, ramp(np.uint8, (3, 3)))
    path.chmod(0)
    with pytest.raises(CnnlabError, match="permission"):
        read_image(path)


@pytest.mark.parametrize("compression", ["lzw", "zlib", "zstd"])
def test_compressed_16_bit_tiffs_keep_their_values(tmp_path, compression):
    stack = np.arange(5 * 6 * 5, dtype=np.uint16).reshape(5, 6, 5) * 400
    path = tmp_path / f"roi 1 - {compression}.tif"
    tifffile.imwrite(path, stack, compression=compression)
    image, depth = read_image(path, plane=2)
    assert depth == 16 and image.dtype == torch.int32
    assert np.array_equal(image[0].numpy(), stack[2])
    with pytest.raises(CnnlabError, match="plane"):
        read_image(path)
