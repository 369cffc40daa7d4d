"""The kernel demo of the Teach tab: one kernel applied to the current input, sizes explained.

The convolution itself is :func:`cnnlab.inspect.kernels.apply_kernel` (what a one-filter
``Conv2d`` computes); this module bounds what a request may ask (an image, a kernel or a padding
large enough to keep the server busy is refused) and writes the size formula out with the
request's own numbers, which is the part students check by hand.
"""

from __future__ import annotations

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.inspect.display import display_pixels
from cnnlab.inspect.kernels import KERNEL_USES, KERNELS, apply_kernel, output_size, resolve_kernel
from cnnlab.serve.errors import UNPROCESSABLE, RequestError
from cnnlab.serve.images import decode_data_url, gray_plane, png_data_url

#: Bounds of a demo request: larger ones teach nothing more and cost much more.
MAX_SIDE = 1024
MAX_KERNEL = 15
MAX_PADDING = 32
MAX_STRIDE = 16
MAX_POOL = 16


def named_kernels() -> list[dict]:
    """The named kernels, their matrices and what each does, for ``GET /api/kernels``."""
    return [
        {"name": name, "matrix": matrix.tolist(), "use": KERNEL_USES.get(name, "")}
        for name, matrix in KERNELS.items()
    ]


def parse_pool(pool: str | None) -> tuple[str, int] | None:
    """``"max:2"`` / ``"avg:2"`` (or empty) as the ``(mode, size)`` that apply_kernel takes."""
    if pool is None or not str(pool).strip() or str(pool).strip().lower() == "none":
        return None
    mode, _, size = str(pool).strip().lower().partition(":")
    size = size or "2"
    if mode not in ("max", "avg") or not size.isdigit() or not 1 <= int(size) <= MAX_POOL:
        raise RequestError(
            f"pool {pool!r}: give 'max:N' or 'avg:N' with N from 1 to {MAX_POOL}, or none",
            UNPROCESSABLE,
        )
    return mode, int(size)


def parse_padding(padding: int | str) -> int | str:
    """``"same"``, ``"valid"`` or a whole number of pixels from 0 to :data:`MAX_PADDING`."""
    if isinstance(padding, str) and padding.strip().lower() in ("same", "valid"):
        return padding.strip().lower()
    text = str(padding).strip()
    if isinstance(padding, bool) or not text.isdigit() or int(text) > MAX_PADDING:
        raise RequestError(
            f"padding {padding!r}: give 'same', 'valid' or 0 to {MAX_PADDING} pixels",
            UNPROCESSABLE,
        )
    return int(text)


def kernel_demo(
    image: str, kernel: str, padding: int | str = "valid", stride: int = 1, pool: str | None = None
) -> dict:
    """The demo's answer: the output as a PNG data URL, both sizes and the sum that links them."""
    pixels, _ = decode_data_url(image, "image")
    gray = gray_plane(pixels).astype(np.float64)
    if max(gray.shape) > MAX_SIDE:
        raise RequestError(
            f"image: {gray.shape[0]}x{gray.shape[1]} pixels; the kernel demo takes images up to "
            f"{MAX_SIDE} pixels a side",
            UNPROCESSABLE,
        )
    if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= MAX_STRIDE:
        raise RequestError(f"stride {stride!r}: give 1 to {MAX_STRIDE}", UNPROCESSABLE)
    padding = parse_padding(padding)
    pooling = parse_pool(pool)
    try:
        label, matrix = resolve_kernel(kernel)
        if max(matrix.shape) > MAX_KERNEL:
            raise CnnlabError(
                f"a {matrix.shape[0]}x{matrix.shape[1]} kernel: the demo takes "
                f"kernels up to {MAX_KERNEL}x{MAX_KERNEL}"
            )
        output = apply_kernel(gray, matrix, padding, stride, pooling)
    except CnnlabError as error:
        raise RequestError(str(error), UNPROCESSABLE) from None
    size = (int(gray.shape[0]), int(gray.shape[1]))
    return {
        "kernel": label,
        "matrix": matrix.tolist(),
        "output": png_data_url(display_pixels(output)),
        "input_size": list(size),
        "output_size": [int(side) for side in output.shape],
        "explanation": explain(size, matrix.shape, padding, stride, pooling),
    }


def explain(
    size: tuple[int, int],
    kernel_shape: tuple[int, int],
    padding: int | str,
    stride: int,
    pool: tuple[str, int] | None,
) -> str:
    """The size formula with the numbers filled in, once per side when the sides differ.

    ``28 + 2 - 3 = 27; 27 / stride 1 = 27 (rounded down) + 1 = 28; max pool 2: 28 / 2 = 14``
    """
    # The zeros added on both sides together, read off the formula at stride 1 so that this
    # text can never disagree with output_size ("same" pads even kernels unevenly).
    at_one = output_size(size, tuple(kernel_shape), padding, 1)
    sides = []
    for n, k, out_one in zip(size, kernel_shape, at_one, strict=True):
        pads = out_one - n + k - 1
        inner = n + pads - k
        out = inner // stride + 1
        text = f"{n} + {pads} - {k} = {inner}; {inner} / stride {stride}"
        text += f" = {inner // stride}" + (" (rounded down)" if inner % stride else "")
        text += f" + 1 = {out}"
        if pool is not None:
            text += f"; {pool[0]} pool {pool[1]}: {out} / {pool[1]} = {out // pool[1]}"
        sides.append(text)
    if sides[0] == sides[1]:
        return sides[0]
    return f"height: {sides[0]} | width: {sides[1]}"
