"""The LeNet family: convolution + pooling stages, then small dense layers.

One builder, :func:`lenet`, makes every member from six options; the registered names in
:data:`VARIANTS` are presets of those options taken from the course material, so a student can
compare them layer by layer and start from any of them with other options
(``create_model("lenet5", kernel=3)``, or ``--model-option kernel=3`` on the command line).

Padding applies to the first convolution only. ``"auto"`` pads by 2 when the smaller image side
is below 32 pixels and by 0 otherwise: LeNet-5 was designed for 32x32 inputs, and padding a 28x28
MNIST digit by 2 restores that geometry (16 maps of 5x5 before the dense layers, 61,706
parameters either way). On 28x28 digits, ``lenet5_tanh`` with ``padding=0`` is the Keras MNIST
notebook's tanh LeNet-5 (44,426 parameters); ``lenet5_3x3`` is the Keras CNN notebook's 3x3
variant (60,074) and with ``padding=2`` the PyTorch notebook's, from the PyTorch tutorial
(81,194).

``features`` ends with the last hidden activation; ``head`` is the logits ``Linear``. With batch
norm the convolutions and hidden dense layers have no bias, because the normalization that
follows subtracts it again.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

from cnnlab.errors import CnnlabError
from cnnlab.kernels import conv_pool_relu, library
from cnnlab.models.base import ImageClassifier
from cnnlab.models.layers import max_pool, pool_then_activate, windows_2x2
from cnnlab.models.mlp import check_widths
from cnnlab.models.registry import register_model
from cnnlab.models.trace import feature_shape

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


@dataclass(frozen=True)
class Variant:
    """A registered LeNet: its name, what it is, and the options that differ from lenet()'s."""

    name: str
    description: str
    options: Mapping[str, Any] = field(default_factory=dict)


VARIANTS: tuple[Variant, ...] = (
    Variant("lenet5", "LeNet-5 (6@5x5, 16@5x5, 120, 84) with ReLU; pads 28x28 to 32x32."),
    Variant(
        "lenet5_tanh",
        "LeNet-5 with tanh, as in the Keras MNIST notebook (padding=0 there: 44,426 parameters).",
        {"activation": "tanh"},
    ),
    Variant(
        "lenet5_bn",
        "LeNet-5 with batch norm before every ReLU (the microscopy course's LeNet5_BN).",
        {"batch_norm": True},
    ),
    Variant(
        "lenet5_3x3",
        "LeNet-5 with 3x3 kernels and ReLU (Keras notebook; padding=2 gives the PyTorch "
        "tutorial's).",
        {"padding": 0, "kernel": 3},
    ),
    Variant(
        "lenet_wide",
        "Wider LeNet (20@5x5, 50@5x5, 500) with tanh, from the MXNet LeNet blog post.",
        {"padding": 0, "activation": "tanh", "filters": (20, 50), "hidden": (500,)},
    ),
)


def resolve_padding(padding: int | str, input_size: tuple[int, int]) -> int:
    """The first convolution's padding: an int >= 0, or "auto" (2 below 32 pixels, else 0)."""
    if padding == "auto":
        return 2 if min(input_size) < 32 else 0
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise CnnlabError(
            f"option 'padding' of 'LeNet' must be \"auto\" or a whole number >= 0, got {padding!r}"
        )
    return padding


def _activation(name: str) -> nn.Module:
    # ReLU is never in place: inspection hooks must see each layer's own output.
    return nn.ReLU(inplace=False) if name == "relu" else ACTIVATIONS[name]()


class LeNet(ImageClassifier):
    """(conv -> [bn] -> act -> maxpool) per filter count; flatten; (dense -> [bn] -> act).

    With ReLU the layers run as conv -> [bn] -> maxpool -> relu: the maximum of rectified
    values is the rectified maximum, with the same gradients, and the ReLU then touches a
    quarter of the elements (see :mod:`cnnlab.models.layers`).

    Without batch norm, each conv -> maxpool -> relu stage runs on a CPU through cnnlab's
    native kernels (:mod:`cnnlab.kernels`), one pass forward and one backward, where this
    machine could build them and ``native_kernels`` is true: in training and in scoring. The
    parameters and the function are PyTorch's, and so are the paths that watch or record the
    layers (hooks, inspection, tracing, export).
    """

    #: Set to False to train with PyTorch's operators only (``CNNLAB_NATIVE=0`` does it for
    #: every model).
    native_kernels: bool = True

    def __init__(
        self,
        in_chans: int,
        num_classes: int,
        input_size: tuple[int, int],
        *,
        filters: Sequence[int],
        kernel: int,
        hidden: Sequence[int],
        activation: str,
        batch_norm: bool,
        padding: int,
    ) -> None:
        super().__init__(in_chans, num_classes, input_size)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        previous = in_chans
        for index, count in enumerate(filters, start=1):
            layers[f"conv{index}"] = nn.Conv2d(
                previous, count, kernel, padding=padding if index == 1 else 0, bias=not batch_norm
            )
            if batch_norm:
                layers[f"bn{index}"] = nn.BatchNorm2d(count)
            if pool_then_activate(activation):  # the same function on a quarter of the maps
                layers[f"pool{index}"] = max_pool(2)
                layers[f"{activation}{index}"] = _activation(activation)
            else:
                layers[f"{activation}{index}"] = _activation(activation)
                layers[f"pool{index}"] = max_pool(2)
            previous = count
        layers["flatten"] = nn.Flatten()
        (width,) = feature_shape(nn.Sequential(layers), in_chans, input_size)
        for index, units in enumerate(hidden, start=len(filters) + 1):
            layers[f"fc{index - len(filters)}"] = nn.Linear(width, units, bias=not batch_norm)
            if batch_norm:
                layers[f"bn{index}"] = nn.BatchNorm1d(units)
            layers[f"{activation}{index}"] = _activation(activation)
            width = units
        self.features = nn.Sequential(layers)
        self.head = nn.Linear(width, num_classes)
        self.cpu_channels_last = not batch_norm

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.standardize(x)
        layers = list(self.features)
        convs = self._native_stages(x, layers)
        for index, conv in enumerate(convs):
            fused = conv_pool_relu(
                x,
                conv.weight,
                conv.bias,
                conv.padding[0],
                first=index == 0,
                last=index == len(convs) - 1,
            )
            if fused is None:  # a shape the kernels do not take: PyTorch's operators from here
                return _through(layers[3 * index :], x)
            x = fused
        return _through(layers[3 * len(convs) :], x) if convs else self.features(x)

    def takes_native_kernels(self, x: torch.Tensor) -> bool:
        return bool(self._native_stages(x, list(self.features))) and library() is not None

    def _native_stages(self, x: torch.Tensor, layers: list[nn.Module]) -> list[nn.Conv2d]:
        """The leading conv -> 2x2 max pool -> ReLU stages that may take the native kernels.

        On a CPU, training or scoring, but never where someone watches the layers one by one:
        a hook on any of them or on ``features`` (inspection records activations that way, and
        captum's layer methods), a traced, scripted, compiled or exported graph (which must
        record PyTorch's operators), a dispatch mode such as PyTorch's FLOP counter. The layers
        are checked each time, so a network whose layers were replaced or reordered
        (``bench/step.py`` puts the ReLU back before the pooling) takes PyTorch's path.
        """
        if not self.native_kernels:
            return []
        if x.device.type != "cpu" or torch.jit.is_scripting() or torch.jit.is_tracing():
            return []
        if torch.compiler.is_compiling() or _global_hooks() or _hooked(self.features):
            return []
        if type(x) is not torch.Tensor or _get_current_dispatch_mode() is not None:
            return []  # a tensor subclass or a dispatch mode (FLOP counters) sees every operator
        convs = []
        for start in range(0, len(layers) - 2, 3):
            conv, pool, relu = layers[start : start + 3]
            if not (_plain_conv(conv) and _plain_pool(pool) and type(relu) is nn.ReLU):
                break
            if any(_hooked(module) for module in (conv, pool, relu)):
                return []
            convs.append(conv)
        return convs


def _through(layers: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    # What self.features does for these layers (its own hooks ruled out by _native_stages).
    for layer in layers:
        x = layer(x)
    return x


def _plain_conv(module: nn.Module) -> bool:
    # nn.Conv2d exactly (a subclass may compute something else), as LeNet builds it.
    return (
        type(module) is nn.Conv2d
        and module.bias is not None
        and module.stride == (1, 1)
        and module.dilation == (1, 1)
        and module.groups == 1
        and module.padding_mode == "zeros"
        and isinstance(module.padding, tuple)
        and module.padding[0] == module.padding[1]
    )


def _plain_pool(module: nn.Module) -> bool:
    return isinstance(module, nn.MaxPool2d) and windows_2x2(module)


def _hooked(module: nn.Module) -> bool:
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
    )


def _global_hooks() -> bool:
    from torch.nn.modules import module as registry

    return bool(
        registry._global_forward_hooks
        or registry._global_forward_pre_hooks
        or registry._global_backward_hooks
        or registry._global_backward_pre_hooks
    )


def lenet(
    in_chans: int,
    num_classes: int,
    input_size: tuple[int, int],
    *,
    padding: int | str = "auto",
    kernel: int = 5,
    activation: str = "relu",
    filters: Sequence[int] = (6, 16),
    hidden: Sequence[int] = (120, 84),
    batch_norm: bool = False,
) -> LeNet:
    """LeNet-5 by default; every option is checked before any layer is built."""
    if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel < 1:
        raise CnnlabError(f"option 'kernel' of 'LeNet' must be a whole number >= 1: {kernel!r}")
    if activation not in ACTIVATIONS:
        raise CnnlabError(
            f"option 'activation' of 'LeNet' must be one of {', '.join(ACTIVATIONS)}: "
            f"{activation!r}"
        )
    if not isinstance(batch_norm, bool):
        raise CnnlabError(f"option 'batch_norm' of 'LeNet' must be true or false: {batch_norm!r}")
    filters = check_widths(filters, "filters", "LeNet")
    if not filters:
        raise CnnlabError("option 'filters' of 'LeNet' needs at least one convolution")
    return LeNet(
        in_chans,
        num_classes,
        input_size,
        filters=filters,
        kernel=kernel,
        hidden=check_widths(hidden, "hidden", "LeNet"),
        activation=activation,
        batch_norm=batch_norm,
        padding=resolve_padding(padding, input_size),
    )


def _register(variant: Variant) -> None:
    # A partial's signature shows the variant's values as the defaults of its options, which is
    # what the registry records, lists and saves in each model's config.
    preset = functools.partial(lenet, **variant.options)
    preset.__name__ = variant.name
    register_model(variant.name, variant.description)(preset)


for _variant in VARIANTS:
    _register(_variant)
