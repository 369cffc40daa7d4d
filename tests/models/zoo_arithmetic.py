"""Textbook arithmetic for the zoo's layers, to check traced shapes and counts against.

Nothing here runs a network: output sizes come from the convolution formula
``floor((n + 2p - d(k - 1) - 1) / s) + 1`` and parameter counts from the layers' sizes, so a
test that compares them with what cnnlab measures by running the layers can fail. A layer type
that this module does not know fails loudly: teach it the new layer's arithmetic.
"""

from __future__ import annotations

import math

from torch import nn

from cnnlab.models.base import Standardize

SHAPE_KEEPING = (
    Standardize,
    nn.ReLU,
    nn.Tanh,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.dropout._DropoutNd,
)


def conv_out(size: int, kernel: int, padding: int = 0, stride: int = 1, dilation: int = 1) -> int:
    """Output side of a convolution or pooling window (floor rounding, as PyTorch's default)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The leaf layers under their attribute paths, in the order they were registered."""
    return [(n, m) for n, m in model.named_modules() if n and not list(m.children())]


def layer_output(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """What ``module`` makes of an input of ``shape`` (no batch axis), by the formulas."""
    if isinstance(module, SHAPE_KEEPING):
        return shape
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        channels, height, width = shape
        if isinstance(module, nn.Conv2d):
            channels = module.out_channels
        assert not getattr(module, "ceil_mode", False), "only floor rounding is modelled"
        kernel, padding = _pair(module.kernel_size), _pair(module.padding)
        stride, dilation = _pair(module.stride), _pair(getattr(module, "dilation", 1))
        return (
            channels,
            *(
                conv_out(side, kernel[i], padding[i], stride[i], dilation[i])
                for i, side in enumerate((height, width))
            ),
        )
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return (shape[0], *_pair(module.output_size))
    if isinstance(module, nn.Flatten):
        return (math.prod(shape),)
    if isinstance(module, nn.Linear):
        assert shape == (module.in_features,)
        return (module.out_features,)
    raise AssertionError(f"zoo_arithmetic does not know {type(module).__name__}: teach it")


def expected_shapes(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Each leaf layer's output shape (no batch axis) for a chain network, in running order."""
    shapes, shape = {}, tuple(input_shape)
    for name, module in leaves(model):
        shape = layer_output(module, shape)
        shapes[name] = shape
    return shapes


def fits(model: nn.Module, input_shape: tuple[int, ...]) -> bool:
    """Whether every layer of ``model`` leaves at least one value of an input of this shape."""
    shape = tuple(input_shape)
    for _, module in leaves(model):
        shape = layer_output(module, shape)
        if min(shape) < 1:
            return False
        if isinstance(module, nn.Flatten):
            return True  # dense layers take any vector; their widths were fixed for this one
    return True


def layer_params(module: nn.Module) -> int:
    """Parameters of one leaf layer from its sizes alone."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        weights = kh * kw * module.in_channels // module.groups * module.out_channels
        return weights + (module.out_channels if module.bias is not None else 0)
    if isinstance(module, nn.Linear):
        bias = module.out_features if module.bias is not None else 0
        return module.in_features * module.out_features + bias
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return 2 * module.num_features if module.affine else 0
    if isinstance(module, (*SHAPE_KEEPING, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
        return 0
    if isinstance(module, nn.Flatten):
        return 0
    raise AssertionError(f"zoo_arithmetic does not know {type(module).__name__}: teach it")
