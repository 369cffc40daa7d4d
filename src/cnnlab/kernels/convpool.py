"""``relu(max_pool2d(conv2d(x, weight, bias, padding=padding), 2))`` as one autograd function.

The native kernels (``convpool.cpp``, built by :mod:`cnnlab.kernels.build`) compute such a
layer in one pass forward and one backward. This module allocates their tensors, decides what
they may be given, and puts them into PyTorch's autograd. :func:`conv_pool_relu` returns None
where the kernels do not apply, and the caller runs PyTorch's operators instead.

Layouts between layers: the first layer (``first=True``) reads the image as NCHW and vectorizes
over output columns; every later layer reads the previous one's output as NHWC (channels-last)
and vectorizes over output channels. A layer returns its pooled maps in channels-last memory
(``last=False``, what the next layer reads) or as contiguous NCHW (``last=True``, what
``nn.Flatten`` and the dense layers read). Either way the tensor has the logical shape
``(N, C, H, W)`` and holds what PyTorch's operators would give, up to the order of float
additions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from cnnlab.kernels.build import library

#: Images per partial sum of the weight gradients (CHUNK in convpool.cpp).
CHUNK = 8
#: Pooled positions per map at most (backward lists them for each thread), output channels,
#: floats in one patch (C x K x K) and in one padded input image: far above any network the
#: kernels are for, and far below where their 32-bit index arithmetic would overflow.
MAX_POSITIONS = 1 << 16
MAX_CHANNELS = 4096
MAX_PATCH = 1 << 16
MAX_IMAGE = 1 << 26


def _ceil_to(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class _ConvPoolReLU(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        padding: int,
        first: bool,
        last: bool,
    ) -> torch.Tensor:
        lib = library()
        threads = torch.get_num_threads()
        n, c, h, w = x.shape
        co, _, k, _ = weight.shape
        hq, wq = (h + 2 * padding - k + 1) // 2, (w + 2 * padding - k + 1) // 2
        hwc_out = first or not last  # the first layer's kernel always writes channels-last
        shape = (n, hq, wq, co) if hwc_out else (n, co, hq, wq)
        y = torch.empty(shape, dtype=torch.float32, device="cpu")
        idx = torch.empty(shape, dtype=torch.uint8, device="cpu")  # which of each window won
        bias = bias.contiguous()
        # The kernels copy the weights into their own order, from any strides.
        weights = (weight.data_ptr(), *weight.stride(), bias.data_ptr(), co, k)
        if first:
            image = x.contiguous()
            # Rows long enough for two vectors from every output column the pooling keeps.
            row = max(_ceil_to(2 * wq, 2 * lib.cnnlab_vector_lanes()) + k - 1, w + 2 * padding)
            read = torch.empty((n, c, h + 2 * padding, row), dtype=torch.float32, device="cpu")
            _check(lib.cnnlab_wide_forward(
                image.data_ptr(), n, c, h, w, padding, *weights, read.data_ptr(), row,
                y.data_ptr(), idx.data_ptr(), threads,
            ))  # fmt: skip
            ctx.geometry = (h + 2 * padding, row, 0)
        else:
            read = x.detach().permute(0, 2, 3, 1).contiguous()  # free when x is channels-last
            if padding:
                read = F.pad(read, (0, 0, padding, padding, padding, padding))
            hp, wp = read.shape[1], read.shape[2]
            _check(lib.cnnlab_deep_forward(
                read.data_ptr(), n, c, hp, wp, *weights, y.data_ptr(), idx.data_ptr(),
                int(hwc_out), threads,
            ))  # fmt: skip
            ctx.geometry = (hp, wp * c, 1)
        ctx.save_for_backward(read, weight, y, idx)
        ctx.shape = (n, c, h, w, co, k, hq, wq, padding, hwc_out)
        # NCHW as PyTorch's operators give it; in channels-last memory where y is HWC.
        return y.permute(0, 3, 1, 2) if hwc_out else y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        lib = library()
        read, weight, y, idx = ctx.saved_tensors
        n, c, h, w, co, k, hq, wq, padding, hwc_out = ctx.shape
        hp, row, hwc_in = ctx.geometry  # the read input's rows: how many, how long, layout
        incoming = grad.permute(0, 2, 3, 1).contiguous() if hwc_out else grad.contiguous()
        # In the weight's own layout (channels-last when fit trains that way): autograd copies
        # gradients laid out otherwise, and DistributedDataParallel warns of them.
        grad_weight = torch.empty_strided(
            weight.shape, weight.stride(), dtype=torch.float32, device="cpu"
        )
        grad_bias = torch.empty(co, dtype=torch.float32, device="cpu")
        scratch = torch.empty(
            -(-n // CHUNK) * co * (c * k * k + 1), dtype=torch.float32, device="cpu"
        )
        grad_read = torch.empty_like(read) if ctx.needs_input_grad[0] else None
        _check(lib.cnnlab_backward(
            read.data_ptr(), n, c, hp, row, hwc_in, weight.data_ptr(), *weight.stride(),
            co, k, y.data_ptr(), idx.data_ptr(), incoming.data_ptr(), hq, wq, int(hwc_out),
            grad_weight.data_ptr(), *grad_weight.stride(), grad_bias.data_ptr(),
            None if grad_read is None else grad_read.data_ptr(), scratch.data_ptr(),
            torch.get_num_threads(),
        ))  # fmt: skip
        if grad_read is not None:
            keep = slice(padding, padding + h), slice(padding, padding + w)
            if hwc_in:
                grad_read = grad_read[:, keep[0], keep[1], :].permute(0, 3, 1, 2)
            else:
                grad_read = grad_read[:, :, keep[0], keep[1]]
        return grad_read, grad_weight, grad_bias, None, None, None


def _check(status: int) -> None:
    if status:
        raise MemoryError("cnnlab's native kernels could not allocate their working memory")


def conv_pool_relu(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    padding: int,
    *,
    first: bool,
    last: bool,
) -> torch.Tensor | None:
    """The layer through the native kernels, or None where they do not apply here.

    ``first``: x is the network's input (read as NCHW); otherwise the previous layer's output
    (read as NHWC). ``last``: return contiguous NCHW for the dense layers that follow.
    """
    if bias is None or not usable(x, weight, bias, padding) or library() is None:
        return None
    return _ConvPoolReLU.apply(x, weight, bias, padding, first, last)


def usable(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: int) -> bool:
    """What the kernels take: float32 tensors on a CPU, 4-dimensional, square kernels, a
    padding of 0 or more, at least one channel in and out and one pooled pixel or more per map,
    weights laid out densely (contiguous or channels-last: their gradient takes that layout),
    and sizes whose index arithmetic stays far inside 32 bits (every real network's does)."""
    tensors = (x, weight, bias)
    if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
        return False
    if x.dim() != 4 or weight.dim() != 4 or weight.shape[2] != weight.shape[3]:
        return False
    if not (weight.is_contiguous() or weight.is_contiguous(memory_format=torch.channels_last)):
        return False
    n, c, h, w = x.shape
    co, k = weight.shape[0], weight.shape[2]
    if c != weight.shape[1] or n == 0 or bias.shape != (co,) or min(c, co, k) < 1:
        return False
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        return False
    sides = [(side + 2 * padding - k + 1) // 2 for side in (h, w)]
    if min(sides) < 1 or sides[0] * sides[1] > MAX_POSITIONS:
        return False
    image = c * (h + 2 * padding) * (w + 2 * padding + 2 * k + 64)
    return co <= MAX_CHANNELS and c * k * k <= MAX_PATCH and image <= MAX_IMAGE
