"""Multilayer perceptrons: the first networks of both courses, and the baseline for the CNNs.

An MLP sees the image as one long vector, so it has no notion of neighbouring pixels and its
first layer grows with the image area; comparing it with LeNet on the same data is the lesson.
``features`` is the flattening and every hidden layer (with its dropout, if any); ``head`` is the
final ``Linear`` that gives the logits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.base import ImageClassifier
from cnnlab.models.registry import register_model


def check_widths(widths: Sequence[int], option: str, model: str) -> list[int]:
    """Layer widths given as an option: a list of whole numbers >= 1."""
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise CnnlabError(f"option {option!r} of {model!r} must be a list of layer sizes")
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise CnnlabError(
            f"option {option!r} of {model!r} must hold whole numbers >= 1, got {list(widths)}"
        )
    return list(widths)


def check_rate(rate: float, option: str, model: str) -> float:
    """A dropout probability in [0, 1)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise CnnlabError(f"option {option!r} of {model!r} must be in [0, 1), got {rate!r}")
    return float(rate)


class MLP(ImageClassifier):
    """Flatten, then ``Linear -> ReLU [-> Dropout]`` per hidden width, then the logits layer.

    With no hidden layers this is multinomial logistic regression on the pixels.
    """

    def __init__(
        self,
        in_chans: int,
        num_classes: int,
        input_size: tuple[int, int],
        hidden: Sequence[int],
        dropout: float = 0.0,
    ) -> None:
        super().__init__(in_chans, num_classes, input_size)
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        width = in_chans * input_size[0] * input_size[1]
        for index, units in enumerate(hidden, start=1):
            layers[f"fc{index}"] = nn.Linear(width, units)
            layers[f"relu{index}"] = nn.ReLU(inplace=False)
            if dropout > 0:
                layers[f"dropout{index}"] = nn.Dropout(dropout)
            width = units
        self.features = nn.Sequential(layers)
        self.head = nn.Linear(width, num_classes)


@register_model(
    "mlp",
    "Multilayer perceptron 128-64 with ReLU (the microscopy course's first network).",
)
def mlp(
    in_chans: int,
    num_classes: int,
    input_size: tuple[int, int],
    hidden: Sequence[int] = (128, 64),
) -> MLP:
    return MLP(in_chans, num_classes, input_size, check_widths(hidden, "hidden", "mlp"))


@register_model(
    "mlp_dropout",
    "Multilayer perceptron 128-128 with ReLU and 20% dropout (the Keras MNIST notebook).",
)
def mlp_dropout(
    in_chans: int,
    num_classes: int,
    input_size: tuple[int, int],
    hidden: Sequence[int] = (128, 128),
    dropout: float = 0.2,
) -> MLP:
    return MLP(
        in_chans,
        num_classes,
        input_size,
        check_widths(hidden, "hidden", "mlp_dropout"),
        check_rate(dropout, "dropout", "mlp_dropout"),
    )
