"""Deeper convolutional networks: the Keras ``mnist_cnn`` example and a modern small network.

``cnn_dropout`` is the classic Keras example: two unpadded 3x3 convolutions, one pooling and a
large dense layer; most of its 1.2 million parameters sit in that dense layer.

``convnet_bn`` is what one would build today for small grey images on a laptop CPU: 3x3
convolutions with batch norm, two poolings, then global average pooling straight into the logits
layer. Without a dense bottleneck it has about 136k parameters at any input size, takes any image
of at least 4x4 pixels, and trains in a few epochs with a larger learning rate than LeNet
tolerates. It uses only dense (not depthwise) convolutions, which are the fast path on CPUs.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.base import ImageClassifier
from cnnlab.models.layers import max_pool
from cnnlab.models.mlp import check_rate
from cnnlab.models.registry import register_model
from cnnlab.models.trace import feature_shape


class CNNDropout(ImageClassifier):
    """conv 32@3x3, conv 64@3x3, maxpool, dropout, flatten, dense, dropout, logits (the second
    ReLU after the pooling, which is the same function)."""

    def __init__(
        self,
        in_chans: int,
        num_classes: int,
        input_size: tuple[int, int],
        conv_dropout: float,
        dense_dropout: float,
        dense: int = 128,
    ) -> None:
        super().__init__(in_chans, num_classes, input_size)
        conv_part = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(in_chans, 32, 3),
                relu1=nn.ReLU(inplace=False),
                conv2=nn.Conv2d(32, 64, 3),
                pool=max_pool(2),  # before the ReLU: the same function on a quarter of the maps
                relu2=nn.ReLU(inplace=False),
                dropout1=nn.Dropout(conv_dropout),
                flatten=nn.Flatten(),
            )
        )
        (width,) = feature_shape(conv_part, in_chans, input_size)
        self.features = nn.Sequential(
            OrderedDict(
                [
                    *conv_part.named_children(),
                    ("fc1", nn.Linear(width, dense)),
                    ("relu3", nn.ReLU(inplace=False)),
                    ("dropout2", nn.Dropout(dense_dropout)),
                ]
            )
        )
        self.head = nn.Linear(dense, num_classes)


@register_model(
    "cnn_dropout",
    "Keras mnist_cnn: conv 32 and 64 @3x3, maxpool, dropout 0.25, dense 128, dropout 0.5.",
)
def cnn_dropout(
    in_chans: int,
    num_classes: int,
    input_size: tuple[int, int],
    conv_dropout: float = 0.25,
    dense_dropout: float = 0.5,
) -> CNNDropout:
    return CNNDropout(
        in_chans,
        num_classes,
        input_size,
        check_rate(conv_dropout, "conv_dropout", "cnn_dropout"),
        check_rate(dense_dropout, "dense_dropout", "cnn_dropout"),
    )


class ConvNetBN(ImageClassifier):
    """Three stages of 3x3 conv -> batch norm -> ReLU, global average pooling, logits (where a
    pooling follows, it runs before that ReLU: the same function).

    Widths for ``width=w``: w/2 and w at full resolution, 2w and 2w at half, 4w at a quarter.
    Padding 1 keeps each stage's size, so only the two poolings shrink the image.
    """

    def __init__(
        self, in_chans: int, num_classes: int, input_size: tuple[int, int], width: int
    ) -> None:
        super().__init__(in_chans, num_classes, input_size)
        plan: list[int | str] = [width // 2, width, "pool", 2 * width, 2 * width, "pool", 4 * width]
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        previous, conv_index, pool_index = in_chans, 0, 0
        for step in plan:
            if step == "pool":
                # Pooling moves before the stage's ReLU: the same function on a quarter of the
                # maps (see cnnlab.models.layers).
                pool_index += 1
                relu = layers.popitem()
                layers[f"pool{pool_index}"] = max_pool(2)
                layers[relu[0]] = relu[1]
                continue
            conv_index += 1
            layers[f"conv{conv_index}"] = nn.Conv2d(previous, int(step), 3, padding=1, bias=False)
            layers[f"bn{conv_index}"] = nn.BatchNorm2d(int(step))
            layers[f"relu{conv_index}"] = nn.ReLU(inplace=False)
            previous = int(step)
        layers["gap"] = nn.AdaptiveAvgPool2d(1)
        layers["flatten"] = nn.Flatten()
        self.features = nn.Sequential(layers)
        feature_shape(self.features, in_chans, input_size)
        self.head = nn.Linear(previous, num_classes)

    cpu_channels_last = True


@register_model(
    "convnet_bn",
    "Modern small CNN: 3x3 conv + batch norm stages, global average pooling (~136k params).",
)
def convnet_bn(
    in_chans: int, num_classes: int, input_size: tuple[int, int], width: int = 32
) -> ConvNetBN:
    if isinstance(width, bool) or not isinstance(width, int) or width < 2:
        raise CnnlabError(f"option 'width' of 'convnet_bn' must be a whole number >= 2: {width!r}")
    return ConvNetBN(in_chans, num_classes, input_size, width)
