"""The LeNet family: two convolution + pooling stages, then small dense layers.

All variants share one class and differ only in the numbers the course material uses, so a
student can compare them layer by layer:

=============  ==========  ======  ================  ==========  ==========  =================
name           filters     kernel  dense             activation  batch norm  first-conv padding
=============  ==========  ======  ================  ==========  ==========  =================
lenet5         6, 16       5x5     120, 84           ReLU        no          "auto"
lenet5_tanh    6, 16       5x5     120, 84           tanh        no          "auto"
lenet5_bn      6, 16       5x5     120, 84           ReLU        yes         "auto"
lenet5_3x3     6, 16       3x3     120, 84           ReLU        no          0
lenet_wide     20, 50      5x5     500               tanh        no          0
=============  ==========  ======  ================  ==========  ==========  =================

Padding applies to the first convolution only. ``"auto"`` pads by 2 when the smaller image side
is below 32 pixels and by 0 otherwise: LeNet-5 was designed for 32x32 inputs, and padding a 28x28
MNIST digit by 2 restores that geometry (16 maps of 5x5 before the dense layers, 61,706
parameters either way). ``padding=0`` on 28x28 gives the Keras MNIST notebook's tanh LeNet-5
(44,426 parameters); ``lenet5_3x3`` with its default ``padding=0`` is the Keras notebook's 3x3
variant (60,074 parameters on 28x28) and with ``padding=2`` the PyTorch tutorial's (81,194).

``features`` ends with the last hidden activation; ``head`` is the logits ``Linear``. With batch
norm the convolutions and hidden dense layers have no bias, because the normalization that
follows subtracts it again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.base import ImageClassifier
from cnnlab.models.registry import feature_shape, register_model

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


def resolve_padding(padding: int | str, input_size: tuple[int, int], model: str) -> int:
    """The first convolution's padding: an int >= 0, or "auto" (2 below 32 pixels, else 0)."""
    if padding == "auto":
        return 2 if min(input_size) < 32 else 0
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise CnnlabError(
            f"option 'padding' of {model!r} must be \"auto\" or a whole number >= 0, "
            f"got {padding!r}"
        )
    return padding


def _activation(name: str) -> nn.Module:
    # ReLU is never in place: inspection hooks must see each layer's own output.
    return nn.ReLU(inplace=False) if name == "relu" else ACTIVATIONS[name]()


class LeNet(ImageClassifier):
    """conv -> [bn] -> act -> maxpool, twice; flatten; (dense -> [bn] -> act) per width."""

    def __init__(
        self,
        in_chans: int,
        num_classes: int,
        input_size: tuple[int, int],
        *,
        channels: Sequence[int] = (6, 16),
        kernel_size: int = 5,
        hidden: Sequence[int] = (120, 84),
        activation: str = "relu",
        batch_norm: bool = False,
        padding: int = 0,
    ) -> None:
        super().__init__(in_chans, num_classes, input_size)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}")
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        previous = in_chans
        for index, filters in enumerate(channels, start=1):
            layers[f"conv{index}"] = nn.Conv2d(
                previous,
                filters,
                kernel_size,
                padding=padding if index == 1 else 0,
                bias=not batch_norm,
            )
            if batch_norm:
                layers[f"bn{index}"] = nn.BatchNorm2d(filters)
            layers[f"{activation}{index}"] = _activation(activation)
            layers[f"pool{index}"] = nn.MaxPool2d(2, stride=2)
            previous = filters
        layers["flatten"] = nn.Flatten()
        conv_part = nn.Sequential(layers)
        (width,) = feature_shape(conv_part, in_chans, input_size)
        for index, units in enumerate(hidden, start=len(channels) + 1):
            layers[f"fc{index - len(channels)}"] = nn.Linear(width, units, bias=not batch_norm)
            if batch_norm:
                layers[f"bn{index}"] = nn.BatchNorm1d(units)
            layers[f"{activation}{index}"] = _activation(activation)
            width = units
        self.features = nn.Sequential(layers)
        self.head = nn.Linear(width, num_classes)
        self.cpu_channels_last = not batch_norm


@register_model("lenet5", "LeNet-5 (6@5x5, 16@5x5, 120, 84) with ReLU; pads 28x28 to 32x32.")
def lenet5(
    in_chans: int, num_classes: int, input_size: tuple[int, int], padding: int | str = "auto"
) -> LeNet:
    return LeNet(
        in_chans, num_classes, input_size, padding=resolve_padding(padding, input_size, "lenet5")
    )


@register_model(
    "lenet5_tanh",
    "LeNet-5 with tanh, as in the Keras MNIST notebook (padding=0 there: 44,426 parameters).",
)
def lenet5_tanh(
    in_chans: int, num_classes: int, input_size: tuple[int, int], padding: int | str = "auto"
) -> LeNet:
    return LeNet(
        in_chans,
        num_classes,
        input_size,
        activation="tanh",
        padding=resolve_padding(padding, input_size, "lenet5_tanh"),
    )


@register_model(
    "lenet5_bn",
    "LeNet-5 with batch norm before every ReLU (the microscopy course's LeNet5_BN).",
)
def lenet5_bn(
    in_chans: int, num_classes: int, input_size: tuple[int, int], padding: int | str = "auto"
) -> LeNet:
    return LeNet(
        in_chans,
        num_classes,
        input_size,
        batch_norm=True,
        padding=resolve_padding(padding, input_size, "lenet5_bn"),
    )


@register_model(
    "lenet5_3x3",
    "LeNet-5 with 3x3 kernels and ReLU (Keras notebook; padding=2 gives the PyTorch tutorial's).",
)
def lenet5_3x3(
    in_chans: int, num_classes: int, input_size: tuple[int, int], padding: int | str = 0
) -> LeNet:
    return LeNet(
        in_chans,
        num_classes,
        input_size,
        kernel_size=3,
        padding=resolve_padding(padding, input_size, "lenet5_3x3"),
    )


@register_model(
    "lenet_wide",
    "Wider LeNet (20@5x5, 50@5x5, 500) with tanh, from the MXNet LeNet blog post.",
)
def lenet_wide(
    in_chans: int, num_classes: int, input_size: tuple[int, int], padding: int | str = 0
) -> LeNet:
    return LeNet(
        in_chans,
        num_classes,
        input_size,
        channels=(20, 50),
        hidden=(500,),
        activation="tanh",
        padding=resolve_padding(padding, input_size, "lenet_wide"),
    )
