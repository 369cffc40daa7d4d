"""What every cnnlab model shares: input standardization, ``forward_features`` and a head.

Each network takes raw pixel values (the integer counts of the source files, as float) and
z-scores them with statistics stored as buffers. Keeping the training set's statistics inside the
model means they travel with its weights into every saved file and exported graph, so a model can
never be fed differently scaled data at prediction time than it learned on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnlab import views


class Standardize(nn.Module):
    """Per-channel z-score with fixed (not learned) statistics."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    def set_statistics(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != self.mean.numel() or len(std) != self.std.numel():
            raise ValueError(
                f"statistics for {len(mean)} channels given to a {self.mean.numel()}-channel model"
            )
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, 1, 1)
        return (x.to(self.mean.dtype) - self.mean.view(shape)) / self.std.view(shape)

    def extra_repr(self) -> str:
        return f"channels={self.mean.numel()}"


class ImageClassifier(nn.Module):
    """Base class: ``forward(x) = head(forward_features(x))``.

    Subclasses build ``self.features`` (anything that maps standardized images to a flat or
    pooled feature tensor) and ``self.head`` (an ``nn.Module`` ending in the class logits), and
    may override :meth:`forward_features` when the features are not one ``nn.Sequential``.
    The attributes ``in_chans``, ``num_classes`` and ``input_size`` describe what the model was
    built for; ``cnnlab_config`` (set by :func:`cnnlab.models.create_model`) is enough to
    rebuild it.

    ``cpu_channels_last`` says whether this network trains faster on a CPU with channels-last
    (NHWC) tensors, which oneDNN's convolutions prefer. It is measured, not assumed
    (``bench/choices.py``): LeNet-5 and its variants train 1-39% faster that way,
    ``convnet_bn`` 25-40%, but LeNet-5 with batch norm 30% slower, because PyTorch's
    channels-last batch norm vectorizes over channels and 6 channels are too few.
    :func:`cnnlab.fit` applies it for the duration of training only.
    """

    cpu_channels_last: bool = False

    def __init__(self, in_chans: int, num_classes: int, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.input_size = tuple(input_size)
        self.standardize = Standardize(in_chans)
        self.cnnlab_config: dict = {}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.standardize(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def takes_native_kernels(self, x: torch.Tensor) -> bool:
        """Whether ``forward(x)`` would run layers through cnnlab's native kernels
        (:mod:`cnnlab.kernels`), which then beat a traced graph for inference too."""
        return False

    def _repr_html_(self) -> str:
        """Jupyter's view: the layer table (shapes, parameters) and the network graph as SVG.

        The plain ``repr`` stays PyTorch's module tree, which is what PyTorch users expect.
        """
        return views.render("model.html", self)
