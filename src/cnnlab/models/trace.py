"""One zero image through a network: the shape it comes out as, or what each layer makes of it.

Three parts of cnnlab need a network's geometry: the builders (how many features reach the
dense layers), the registry (does an image fit, and what is the smallest that does) and the
layer table and drawing (each layer's output shape). All of them push a batch of zeros through
the layers here: on the network's device, in eval mode (so batch norm takes a batch of one and
dropout is off), without gradients, and with the network's mode given back afterwards. Running
the layers is the only way to be sure of the geometry for every padding, stride and rounding
rule, and a zero image is cheap at these sizes. A layer that refuses the image (a kernel larger
than its input, pooling to nothing) becomes :class:`InputTooSmallError`.

The per-layer table (:func:`trace_model`) comes from torchinfo, which records every layer as it
runs. The builders and the registry only need the last shape and build a model many times when
they look for its smallest input, so :func:`output_shape` is a plain forward pass: torchinfo's
hooks and bookkeeping cost several times more than the pass itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torchinfo
from torch import nn

from cnnlab.errors import CnnlabError


class InputTooSmallError(CnnlabError):
    """The layers of a model shrink the given image to nothing (or below a kernel's size)."""


@dataclass(frozen=True)
class TracedLayer:
    """One leaf layer as it ran: its attribute path, the module, what it made of the batch."""

    name: str  # "features.conv1": the name state dicts and inspection hooks use
    module: nn.Module
    output_shape: tuple[int, ...]  # batch axis first; () when the output is not one tensor
    params: int
    mult_adds: int  # as torchinfo counts them, for the whole batch

    @property
    def type(self) -> str:
        return type(self.module).__name__


@dataclass(frozen=True)
class ModelTrace:
    """The leaf layers in the order they ran (each listed once) and torchinfo's totals."""

    input_shape: tuple[int, ...]
    layers: list[TracedLayer]
    total_params: int
    trainable_params: int
    total_mult_adds: int


def _device(module: nn.Module) -> torch.device:
    return next((t.device for t in (*module.parameters(), *module.buffers())), torch.device("cpu"))


def _describe(shape: tuple[int, ...]) -> str:
    if len(shape) == 4:
        return f"a {shape[2]}x{shape[3]} input is too small for these layers"
    return f"an input of shape {tuple(shape[1:])} does not fit these layers"


@contextmanager
def _zero_batch(module: nn.Module, shape: tuple[int, ...]) -> Iterator[torch.Tensor]:
    """Zeros of ``shape`` on the module's device, with the module in eval mode, no gradients."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield torch.zeros(shape, device=_device(module))
    except RuntimeError as error:  # what PyTorch raises for a kernel larger than its input
        raise InputTooSmallError(f"{_describe(shape)} ({error})") from error
    finally:
        module.train(was_training)


def output_shape(module: nn.Module, input_shape: Sequence[int]) -> tuple[int, ...]:
    """Shape (without the batch axis) of what ``module`` makes of one zero input.

    ``input_shape`` has no batch axis either: (C, H, W) for images.
    """
    shape = (1, *(int(size) for size in input_shape))
    with _zero_batch(module, shape) as zeros:
        return tuple(module(zeros).shape[1:])


def feature_shape(
    features: nn.Module, in_chans: int, input_size: tuple[int, int]
) -> tuple[int, ...]:
    """:func:`output_shape` of a builder's feature layers, which must leave some features."""
    shape = output_shape(features, (in_chans, *input_size))
    if 0 in shape:
        raise InputTooSmallError(
            f"a {input_size[0]}x{input_size[1]} input leaves no features after these layers"
        )
    return shape


def trace_model(model: nn.Module, input_shape: Sequence[int], batch_size: int = 1) -> ModelTrace:
    """Every leaf layer of ``model`` with its output shape, parameters and multiply-adds.

    ``input_shape`` has no batch axis ((C, H, W) for images); a batch of ``batch_size`` zeros
    runs through the model. Layers are listed in the order they run; a module called twice is
    listed once, at its first call, and the model itself is never a row.
    """
    shape = (int(batch_size), *(int(size) for size in input_shape))
    names = {id(module): name for name, module in model.named_modules()}
    with _zero_batch(model, shape) as zeros:
        try:
            stats = torchinfo.summary(
                model,
                input_data=[zeros],
                verbose=0,
                col_names=("output_size", "num_params", "mult_adds"),
                depth=64,
                mode="eval",
            )
        except RuntimeError as error:
            # torchinfo wraps whatever the layers raised; what the layers said is what counts.
            raise (error.__cause__ or error) from None
    layers = []
    seen: set[int] = set()
    for layer in stats.summary_list:
        if not layer.is_leaf_layer or layer.module is model or id(layer.module) in seen:
            continue
        seen.add(id(layer.module))
        layers.append(
            TracedLayer(
                name=names.get(id(layer.module), layer.var_name),
                module=layer.module,
                output_shape=tuple(int(size) for size in layer.output_size),
                params=sum(p.numel() for p in layer.module.parameters()),
                mult_adds=int(layer.macs),
            )
        )
    return ModelTrace(
        input_shape=shape,
        layers=layers,
        total_params=int(stats.total_params),
        trainable_params=int(stats.trainable_params),
        total_mult_adds=int(stats.total_mult_adds),
    )
