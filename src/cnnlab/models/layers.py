"""Layers that compute exactly what PyTorch's do, faster where some of cnnlab's networks train.

:class:`MaxPool2d` is ``nn.MaxPool2d`` with a faster way through 2x2 windows of contiguous
(NCHW) maps while training on a CPU. PyTorch's kernel for that layout walks the maps one window
at a time, far below the speed of memory; here each step is one vectorized pass over strided
views. Values and gradients are bit-identical to ``nn.MaxPool2d`` (``tests/models/
test_layers.py``). The class keeps its name, so summaries, inspection and exports see an
ordinary max-pooling layer, and evaluation, tracing and export take PyTorch's own path.
Channels-last maps keep PyTorch's kernel, which vectorizes over channels and measured faster
than this path with two threads (``bench/step.py``): the path serves the networks that train in
NCHW (``lenet5_bn``, ``cnn_dropout``). Two limits: where a window holds NaN the gradient may go
to another element than PyTorch's (training has diverged then, and ``fit`` stops it), and the
function has no rules for ``torch.func`` transforms or forward-mode AD (cnnlab uses neither).

:func:`pool_then_activate` says where ``activation -> max pool`` may run as ``max pool ->
activation``: for ReLU, which is monotone, so the maximum of rectified values is the rectified
maximum, and whose ties (windows of zeros) carry no gradient either way. The activation then
touches a quarter of the elements.
"""

from __future__ import annotations

import torch
from torch import nn


class _MaxPool2x2(torch.autograd.Function):
    """2x2 max pooling with stride 2 of contiguous maps with even sides, as
    ``F.max_pool2d(x, 2)``.

    Forward: the maximum of each pair of columns, then of each pair of rows, remembering where
    the second of a pair won. Backward: the same two steps in reverse, each giving the gradient
    to its pair's winner and zero to the other. As in PyTorch's kernel the first maximum in
    row-major order wins (a later element only when strictly greater): ties are common, since a
    flat background gives equal values, and each window passes its gradient to one element.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        left, right = x[..., 0::2], x[..., 1::2]
        pairs = torch.maximum(left, right)
        top, bottom = pairs[..., 0::2, :], pairs[..., 1::2, :]
        ctx.save_for_backward(right > left, bottom > top)
        return torch.maximum(top, bottom)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        right_won, bottom_won = ctx.saved_tensors
        return _split(_split(grad, bottom_won, -2), right_won, -1)


def _split(grad: torch.Tensor, second_won: torch.Tensor, dim: int) -> torch.Tensor:
    """Each element of ``grad`` to the first or the second of its pair along ``dim`` (which
    doubles), zero to the other: a product with the 0/1 mask and a difference, exact, and
    several times faster than ``torch.where`` on a CPU."""
    second = grad * second_won.to(grad.dtype)
    first = grad - second
    return torch.stack((first, second), dim=dim).flatten(dim - 1 if dim < 0 else dim, dim)


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` with the fast training path above for 2x2 windows of NCHW maps."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fast(x):
            return _MaxPool2x2.apply(x)
        return super().forward(x)

    def _fast(self, x: torch.Tensor) -> bool:
        # Only where it pays and cannot surprise: training with gradients on a CPU, never
        # while a graph is traced, scripted or compiled (they record PyTorch's own operator).
        # Odd sides, which drop a row or column, take PyTorch's path.
        return (
            self.training
            and x.requires_grad
            and torch.is_grad_enabled()
            and x.device.type == "cpu"
            and x.dim() == 4
            and x.is_floating_point()
            and x.is_contiguous()
            and x.shape[-1] % 2 == 0
            and x.shape[-2] % 2 == 0
            and windows_2x2(self)
            and not torch.jit.is_scripting()
            and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling()
        )


def windows_2x2(pool: nn.MaxPool2d) -> bool:
    """Whether ``pool`` takes the maximum of 2x2 windows at stride 2, and nothing else."""
    return (
        pool.kernel_size in (2, (2, 2))
        and pool.stride in (2, (2, 2))
        and pool.padding in (0, (0, 0))
        and pool.dilation in (1, (1, 1))
        and not pool.ceil_mode
        and not pool.return_indices
    )


def pool_then_activate(activation: str) -> bool:
    """Whether ``activation`` may follow max pooling instead of preceding it, exactly."""
    return activation == "relu"


def max_pool(size: int = 2) -> MaxPool2d:
    """The max-pooling layer of cnnlab's networks (``size`` x ``size``, stride ``size``)."""
    return MaxPool2d(size, stride=size)
