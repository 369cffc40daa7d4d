"""The convolution demo against SciPy, the textbook size formula and hand-made kernels."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.signal import correlate2d

from cnnlab.errors import CnnlabError
from cnnlab.inspect.display import to_display
from cnnlab.inspect.kernels import (
    COURSE_KERNELS,
    KERNELS,
    apply_kernel,
    kernel_demo_figure,
    kernel_text,
    output_size,
    parse_matrix,
    plot_kernel_demo,
    resolve_kernel,
)

RNG = np.random.default_rng(7)
IMAGE = RNG.normal(size=(13, 17))


def textbook(n: int, k: int, p: int, s: int) -> int:
    return (n + 2 * p - k) // s + 1


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_named_kernels_match_scipy_valid_and_same(name: str) -> None:
    kernel = KERNELS[name]
    np.testing.assert_allclose(
        apply_kernel(IMAGE, name, "valid"), correlate2d(IMAGE, kernel, mode="valid"), atol=1e-12
    )
    np.testing.assert_allclose(
        apply_kernel(IMAGE, name, "same"),
        correlate2d(IMAGE, kernel, mode="same", boundary="fill", fillvalue=0),
        atol=1e-12,
    )


def test_integer_padding_is_zero_padding() -> None:
    kernel = RNG.normal(size=(3, 5))
    padded = np.pad(IMAGE, 2)
    np.testing.assert_allclose(
        apply_kernel(IMAGE, kernel, padding=2), correlate2d(padded, kernel, "valid"), atol=1e-12
    )


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_same_with_an_even_kernel_keeps_the_size_like_pytorch() -> None:
    kernel = RNG.normal(size=(2, 4))
    reference = F.conv2d(
        torch.from_numpy(IMAGE)[None, None], torch.from_numpy(kernel)[None, None], padding="same"
    )[0, 0].numpy()
    out = apply_kernel(IMAGE, kernel, "same")
    assert out.shape == IMAGE.shape
    np.testing.assert_allclose(out, reference, atol=1e-12)


def test_kernel_is_not_flipped() -> None:
    image = np.zeros((5, 5))
    image[2, 2] = 1.0
    kernel = np.arange(9.0).reshape(3, 3)
    # cross-correlating an impulse gives the kernel rotated by 180 degrees
    np.testing.assert_array_equal(apply_kernel(image, kernel, "same")[1:4, 1:4], kernel[::-1, ::-1])


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", [0, 1, 2])
def test_stride_subsamples_and_follows_the_formula(stride: int, padding: int) -> None:
    out = apply_kernel(IMAGE, "sobel_x", padding=padding, stride=stride)
    assert out.shape == (textbook(13, 3, padding, stride), textbook(17, 3, padding, stride))
    dense = apply_kernel(IMAGE, "sobel_x", padding=padding)
    np.testing.assert_allclose(out, dense[::stride, ::stride], atol=1e-12)


def test_same_with_stride_gives_ceil_like_keras() -> None:
    assert apply_kernel(IMAGE, "gaussian_blur5", "same", stride=2).shape == (7, 9)
    assert apply_kernel(IMAGE, "edge2", "same", stride=3).shape == (5, 6)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pooling_after_the_convolution(mode: str) -> None:
    dense = correlate2d(IMAGE, KERNELS["edge3"], "valid")  # 11 x 15
    out = apply_kernel(IMAGE, "edge3", pool=(mode, 2))
    assert out.shape == (11 // 2, 15 // 2)
    blocks = dense[:10, :14].reshape(5, 2, 7, 2)
    expected = blocks.max(axis=(1, 3)) if mode == "max" else blocks.mean(axis=(1, 3))
    np.testing.assert_allclose(out, expected, atol=1e-12)
    assert output_size((13, 17), (3, 3), "valid", 1, (mode, 2)) == (5, 7)


def test_mnist_sizes_from_the_course() -> None:
    digit = np.zeros((28, 28))
    assert apply_kernel(digit, "edge2").shape == (26, 26)
    assert apply_kernel(digit, "identity", "same").shape == (28, 28)
    assert apply_kernel(np.zeros((7, 7)), "box_blur", stride=2).shape == (3, 3)  # course: 7->3
    assert apply_kernel(digit, "gaussian_blur5", 2, 1, ("max", 2)).shape == (14, 14)


def test_named_kernels() -> None:
    assert set(COURSE_KERNELS) <= set(KERNELS)
    np.testing.assert_array_equal(KERNELS["edge1"], [[1, 0, -1], [0, 0, 0], [-1, 0, 1]])
    np.testing.assert_array_equal(KERNELS["sharpen"], [[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
    for name in ("box_blur", "gaussian_blur", "gaussian_blur5", "identity", "sharpen"):
        assert KERNELS[name].sum() == pytest.approx(1.0)  # keep the brightness
    for name in ("edge1", "edge2", "edge3", "sobel_x", "sobel_y", "vertical_line"):
        assert KERNELS[name].sum() == pytest.approx(0.0)  # flat regions give zero
    assert KERNELS["gaussian_blur5"].shape == (5, 5)
    assert KERNELS["gaussian_blur5"][2, 2] == pytest.approx(36 / 256)
    # sobel_x responds positively to brightness rising to the right
    ramp = np.tile(np.arange(6.0), (6, 1))
    assert np.all(apply_kernel(ramp, "sobel_x") > 0)


@pytest.mark.parametrize(
    "text",
    [
        "1 0 -1; 0 0 0; -1 0 1",
        "[[1,0,-1],[0,0,0],[-1,0,1]]",
        "[[1, 0, -1], [0, 0, 0], [-1, 0, 1]]",
        "1,0,-1\n0,0,0\n-1,0,1\n",
        " [ [1 0 -1] [0 0 0] [-1 0 1] ] ",
    ],
)
def test_parse_matrix_forms(text: str) -> None:
    np.testing.assert_array_equal(parse_matrix(text), KERNELS["edge1"])


def test_parse_matrix_fractions_and_shapes() -> None:
    np.testing.assert_allclose(
        parse_matrix("1/9 1/9 1/9; 1/9 1/9 1/9; 1/9 1/9 1/9"), np.ones((3, 3)) / 9
    )
    assert parse_matrix("[1, 2, 3]").shape == (1, 3)
    assert parse_matrix("1 2; 3 4").shape == (2, 2)
    assert parse_matrix("0.5e1") == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 0 -1; 0 0", "different lengths"),
        ("1 a 3", "not a number"),
        ("", "empty"),
        ("1 inf", "finite"),
        ("[[1, 2], [3, 4]", "brackets"),
        ("1/0 1", "not a number"),
    ],
)
def test_parse_matrix_errors(text: str, message: str) -> None:
    with pytest.raises(CnnlabError, match=message):
        parse_matrix(text)


def test_resolve_kernel() -> None:
    assert resolve_kernel("Sharpen")[0] == "sharpen"
    label, matrix = resolve_kernel("1 2 3; 4 5 6")
    assert label == "custom 2×3" and matrix.shape == (2, 3)
    with pytest.raises(CnnlabError, match="unknown kernel 'blurr'"):
        resolve_kernel("blurr")
    # A name with a digit is still a name, not a matrix with a bad number in it.
    with pytest.raises(CnnlabError, match=r"unknown kernel 'edg2' \(did you mean 'edge2'\?\)"):
        resolve_kernel("edg2")
    with pytest.raises(CnnlabError, match=r"unknown kernel 'edge 2' \(did you mean 'edge2'\?\)"):
        resolve_kernel("edge 2")
    with pytest.raises(CnnlabError, match="2-D"):
        resolve_kernel(np.ones(3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kernel": np.ones((5, 5)), "padding": "valid"}, "does not fit"),
        ({"kernel": "edge1", "padding": "full"}, "padding"),
        ({"kernel": "edge1", "padding": -1}, "padding"),
        ({"kernel": "edge1", "stride": 0}, "stride"),
        ({"kernel": "edge1", "pool": ("median", 2)}, "pool"),
        ({"kernel": "edge1", "pool": ("max", 0)}, "pool size"),
        ({"kernel": "edge1", "pool": ("max", 3)}, "does not fit"),
    ],
)
def test_apply_kernel_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(CnnlabError, match=message):
        apply_kernel(np.zeros((4, 4)), **kwargs)


def test_apply_kernel_needs_a_2d_image() -> None:
    with pytest.raises(CnnlabError, match="2-D"):
        apply_kernel(np.zeros((1, 8, 8)), "edge1")


def test_kernel_text_pulls_out_the_fraction() -> None:
    assert kernel_text(KERNELS["gaussian_blur"]).splitlines()[1] == "1/16 × 2 4 2"
    assert kernel_text(KERNELS["edge1"]).splitlines()[0] == " 1  0 -1"
    assert "0.2" in kernel_text(KERNELS["vertical_edge"]) or "1/5" in kernel_text(
        KERNELS["vertical_edge"]
    )


def _check_png(path, min_side: int = 200) -> tuple[int, int]:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert min(image.size) >= min_side and max(image.size) < 4000
        return image.size


def test_plot_kernel_demo_from_an_array(tmp_path) -> None:
    digit = np.zeros((28, 28), dtype=np.uint8)
    digit[6:22, 12:16] = 255
    path = tmp_path / "demo.png"
    figure = plot_kernel_demo(digit, path)
    assert len([axes for axes in figure.axes if axes.images]) == 1 + len(COURSE_KERNELS)
    _check_png(path)


def test_plot_kernel_demo_from_a_16bit_tiff_with_stride_and_pooling(tmp_path) -> None:
    yy, xx = np.mgrid[:32, :40]
    crop = (30000 - 9000 * ((((yy - 16) / 10) ** 2 + ((xx - 20) / 6) ** 2) < 1)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "crop.tif", crop)
    kernels = ["sobel_x", "gaussian_blur5", "0 1 0; 1 -4 1; 0 1 0", np.eye(2)]
    options = {"kernels": kernels, "padding": "same", "stride": 2, "pool": ("max", 2)}
    figure = kernel_demo_figure(tmp_path / "crop.tif", **options)
    panels = [axes for axes in figure.axes if axes.images]
    # The original in its 16-bit counts, then each kernel's output, each stretched on its own.
    np.testing.assert_allclose(panels[0].images[0].get_array(), to_display(crop))
    assert "values 21000 … 30000" in panels[0].get_title()
    for axes, kernel in zip(panels[1:], kernels, strict=True):
        output = apply_kernel(crop.astype(np.float64), kernel, "same", 2, ("max", 2))
        np.testing.assert_allclose(axes.images[0].get_array(), to_display(output))
        assert axes.images[0].get_array().shape == (8, 10)  # ceil(32 / 2) // 2, ceil(40 / 2) // 2
        assert "same, stride 2 → 16×20, max-pool 2 → 8×10" in axes.get_title()
    assert kernel_text(KERNELS["gaussian_blur5"]) in [t.get_text() for t in panels[2].texts]
    plot_kernel_demo(tmp_path / "crop.tif", tmp_path / "demo16.png", **options)
    _check_png(tmp_path / "demo16.png")


def test_plot_kernel_demo_rejects_bad_input(tmp_path) -> None:
    with pytest.raises(CnnlabError):
        plot_kernel_demo(np.zeros((8, 8)), tmp_path / "x.png", kernels=[])
    with pytest.raises(CnnlabError, match="unknown kernel"):
        plot_kernel_demo(np.zeros((8, 8)), tmp_path / "x.png", kernels=["nope"])
    assert not (tmp_path / "x.png").exists()


def test_the_command_lists_every_named_kernel() -> None:
    # cnnlab kernels --help names them without importing this module (and matplotlib).
    from cnnlab.cli.look import KERNEL_NAMES

    assert list(KERNEL_NAMES) == list(KERNELS)
