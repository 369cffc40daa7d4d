"""Uploads decoded without losing bits, drawings made MNIST-like, the kernel demo's sums."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageDraw
from scipy import ndimage, signal

from cnnlab.serve.errors import NOT_AN_IMAGE, TOO_LARGE, UNPROCESSABLE, RequestError
from cnnlab.serve.images import (
    check_size,
    decode_data_url,
    decode_upload,
    png_data_url,
    prepare_drawing,
)
from cnnlab.serve.kernel import explain, kernel_demo, parse_padding, parse_pool


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# ----------------------------------------------------------------------------- drawings
def test_a_bar_is_scaled_to_20_pixels_and_centred_by_hand() -> None:
    canvas = np.zeros((280, 280), dtype=np.uint8)
    canvas[100:140, 30:40] = 255  # 40 x 10, far from the centre
    digit = prepare_drawing(canvas)
    # Scaled by 20/40 to 20 x 5; its centre of mass (9.5, 2) goes to (13.5, 13.5):
    # rows 4..23, columns round(11.5) = 12..16.
    expected = np.zeros((28, 28), dtype=np.uint8)
    expected[4:24, 12:17] = 255
    assert digit.dtype == np.uint8
    np.testing.assert_array_equal(digit, expected)


def test_dark_strokes_on_white_give_the_same_digit() -> None:
    canvas = np.zeros((280, 280), dtype=np.uint8)
    canvas[100:140, 30:40] = 255
    np.testing.assert_array_equal(prepare_drawing(255 - canvas), prepare_drawing(canvas))


def test_a_wide_stroke_keeps_its_aspect() -> None:
    canvas = np.zeros((200, 300), dtype=np.uint8)
    canvas[50:60, 20:260] = 255  # 10 x 240: 20 wide, round(10 * 20 / 240) = 1 tall
    digit = prepare_drawing(canvas)
    rows, cols = np.nonzero(digit)
    assert cols.max() - cols.min() + 1 == 20
    assert rows.max() - rows.min() + 1 == 1


def _strokes(seed: int) -> np.ndarray:
    """A few anti-aliased pen strokes of random size and place, as a person draws."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", (280, 280), 0)
    draw = ImageDraw.Draw(image)
    x0, y0 = rng.uniform(20, 180, size=2)
    size = rng.uniform(40, 90)
    points = [(x0 + rng.uniform(0, size), y0 + rng.uniform(0, size * 1.5)) for _ in range(5)]
    draw.line(points, fill=255, width=int(rng.integers(8, 22)), joint="curve")
    return np.asarray(image)


@pytest.mark.parametrize("seed", range(8))
def test_centre_of_mass_is_the_field_centre(seed: int) -> None:
    digit = prepare_drawing(_strokes(seed))
    rows, cols = np.nonzero(digit)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 in (19, 20)
    centre = ndimage.center_of_mass(digit.astype(np.float64))
    # A whole-pixel shift brings the centre within half a pixel of (13.5, 13.5).
    assert abs(centre[0] - 13.5) <= 0.5 + 1e-9
    assert abs(centre[1] - 13.5) <= 0.5 + 1e-9


def test_a_blank_drawing_is_a_black_field() -> None:
    np.testing.assert_array_equal(prepare_drawing(np.zeros((280, 280))), np.zeros((28, 28)))
    np.testing.assert_array_equal(prepare_drawing(np.full((50, 50), 255)), np.zeros((28, 28)))


# ----------------------------------------------------------------------------- uploads
def test_a_16_bit_tiff_keeps_every_bit() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(20_000, 60_000, size=(30, 24), dtype=np.uint16)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, pixels)
    array, depth = decode_upload(buffer.getvalue(), "crop.tif")
    assert depth == 16
    np.testing.assert_array_equal(array[0], tifffile.imread(io.BytesIO(buffer.getvalue())))


def test_a_png_round_trips_through_a_data_url() -> None:
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    array, depth = decode_data_url(png_data_url(pixels))
    assert depth == 8
    np.testing.assert_array_equal(array[0], pixels)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", NOT_AN_IMAGE),
        (b"GIF89a not supported", NOT_AN_IMAGE),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, NOT_AN_IMAGE),
        (b"II*\x00" + b"\xff" * 20, NOT_AN_IMAGE),
    ],
)
def test_what_is_not_an_image_is_refused_naming_the_upload(data: bytes, status: int) -> None:
    with pytest.raises(RequestError) as caught:
        decode_upload(data, "upload.png")
    assert caught.value.status == status
    assert str(caught.value).startswith("upload.png: ")
    assert "cnnlab-serve-" not in str(caught.value)  # never the temporary file's path


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    huge = _png(np.zeros((1, 1), dtype=np.uint8))
    # Rewrite the IHDR size to 6000 x 6000 (and its CRC): the header alone is read.
    import struct
    import zlib

    ihdr = b"IHDR" + struct.pack(">II", 6_000, 6_000) + huge[24:29]
    bomb = huge[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + huge[33:]
    with pytest.raises(RequestError) as caught:
        decode_upload(bomb, "bomb.png")
    assert caught.value.status == TOO_LARGE
    assert "36,000,000 pixels" in str(caught.value)


def test_size_limit() -> None:
    check_size(100, 100, "a.png")
    with pytest.raises(RequestError) as caught:
        check_size(101, 100, "a.png")
    assert caught.value.status == TOO_LARGE
    assert "--max-upload-mb" in str(caught.value)


def test_a_data_url_must_be_one() -> None:
    for junk in ("", "data:text/plain;base64,aGk=", "data:image/png;base64,***", "x" * 10):
        with pytest.raises(RequestError) as caught:
            decode_data_url(junk)
        assert caught.value.status == NOT_AN_IMAGE


# ----------------------------------------------------------------------------- kernel demo
def test_kernel_demo_is_scipy_correlation_with_the_sizes_explained() -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(28, 28), dtype=np.uint8)
    kernel = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)
    result = kernel_demo(png_data_url(pixels), "edge2", padding=1, stride=2)
    # Zero padding 1, stride 2: SciPy's full correlation, cropped and subsampled.
    reference = signal.correlate2d(pixels.astype(np.float64), kernel, mode="same")[::2, ::2]
    assert result["output_size"] == list(reference.shape) == [14, 14]
    assert result["input_size"] == [28, 28]
    shown, _ = decode_data_url(result["output"])
    # The output is shown stretched: its order of values is the reference's.
    assert np.corrcoef(shown[0].ravel(), reference.ravel())[0, 1] > 0.99
    assert result["explanation"] == "28 + 2 - 3 = 27; 27 / stride 2 = 13 (rounded down) + 1 = 14"


def test_explanation_with_pooling_by_hand() -> None:
    text = explain((28, 28), (3, 3), 1, 1, ("max", 2))
    assert text == "28 + 2 - 3 = 27; 27 / stride 1 = 27 + 1 = 28; max pool 2: 28 / 2 = 14"
    # "same" pads an even kernel 1 + 2 (Keras): the sum shows the three zeros it adds.
    assert explain((10, 10), (4, 4), "same", 1, None) == "10 + 3 - 4 = 9; 9 / stride 1 = 9 + 1 = 10"
    assert explain((10, 20), (3, 3), "valid", 1, None).startswith("height: 10 + 0 - 3 = 7")


@pytest.mark.parametrize(
    ("padding", "stride", "pool", "kernel"),
    [
        ("valid", 1, None, "sobel_x"),
        ("same", 3, "avg:2", "1 2; 3 4"),
        (2, 2, "max:3", "gaussian_blur5"),
        ("same", 1, None, "1,0,-1;2,0,-2;1,0,-1"),
    ],
)
def test_explanation_agrees_with_the_output(padding, stride, pool, kernel) -> None:
    pixels = np.random.default_rng(2).integers(0, 256, size=(23, 31), dtype=np.uint8)
    result = kernel_demo(png_data_url(pixels), kernel, padding, stride, pool)
    height, width = result["output_size"]
    shown, _ = decode_data_url(result["output"])
    assert shown.shape[1:] == (height, width)
    explanation = result["explanation"]
    assert explanation.split(" | ")[0].endswith(f"= {height}")
    assert explanation.split(" | ")[-1].endswith(f"= {width}")


@pytest.mark.parametrize(
    ("kernel", "padding", "stride", "pool"),
    [
        ("no such kernel", 0, 1, None),
        ("1 2; 3", 0, 1, None),
        ("; ".join(["1 " * 16] * 16), 0, 1, None),  # larger than the demo takes
        ("identity", 33, 1, None),
        ("identity", -1, 1, None),
        ("identity", "full", 1, None),
        ("identity", 0, 0, None),
        ("identity", 0, 17, None),
        ("identity", 0, 1, "median:2"),
        ("identity", 0, 1, "max:99"),
        ("gaussian_blur5", 0, 1, "max:16"),  # pooling larger than the output
    ],
)
def test_bad_kernel_requests_are_422(kernel, padding, stride, pool) -> None:
    image = png_data_url(np.zeros((12, 12), dtype=np.uint8))
    with pytest.raises(RequestError) as caught:
        kernel_demo(image, kernel, padding, stride, pool)
    assert caught.value.status == UNPROCESSABLE
    assert "\n" not in str(caught.value)


def test_pool_and_padding_parsing() -> None:
    assert parse_pool(None) is None and parse_pool("") is None and parse_pool("none") is None
    assert parse_pool("max:2") == ("max", 2) and parse_pool("AVG:3") == ("avg", 3)
    assert parse_padding("same") == "same" and parse_padding(3) == 3 and parse_padding("4") == 4
