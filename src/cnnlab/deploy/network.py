"""What every exported file holds: the whole network, standardization to softmax, and its facts.

An exported graph takes what a user's image file holds, the raw pixel values cast to float32 in
an ``(N, C, H, W)`` batch, and returns class probabilities: cnnlab's models standardize their
input themselves (:class:`cnnlab.models.base.Standardize`), and the softmax is added here, so a
consumer (ONNX Runtime, Fiji through bioimage.io, a C++ program) has nothing to re-implement.
Probabilities rather than logits because bioimage.io describes a classifier's output that way
and because they are what ``cnnlab predict`` writes: every export format gives the same numbers.
"""

from __future__ import annotations

import copy
import hashlib

import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.export.saved import BIT_DEPTHS, FORMAT
from cnnlab.version import __version__

#: Names of the graph's input and output, the same in every format.
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
#: The batch an exporter traces with: two images, so that no exporter takes the batch size of
#: one as a constant of the graph.
EXAMPLE_BATCH = 2


class Probabilities(nn.Module):
    """A cnnlab classifier followed by a softmax: raw pixels in, class probabilities out."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.classifier(image), dim=1)


def exportable(model: nn.Module) -> Probabilities:
    """A float32 eval-mode copy of ``model`` on the CPU, with the softmax added.

    A copy, so that exporting neither moves the caller's model nor changes its training mode.
    """
    for attribute in ("in_chans", "num_classes", "input_size", "standardize"):
        if not hasattr(model, attribute):
            raise CnnlabError(
                f"{type(model).__name__}: not a cnnlab model (no {attribute}); create it with "
                "cnnlab.create_model or load it with cnnlab.load"
            )
    network = copy.deepcopy(model).cpu().float().eval()
    return Probabilities(network).eval()


def example_input(model: nn.Module, seed: int = 0) -> torch.Tensor:
    """A batch of random images in the range of the model's training data, for tracing.

    Values around the training mean, a few standard deviations wide, take every layer through
    the values it sees in use (tracing records operations, not values, but checks compare them).
    """
    generator = torch.Generator().manual_seed(seed)
    shape = (EXAMPLE_BATCH, model.in_chans, *model.input_size)
    mean = model.standardize.mean.detach().cpu().float().view(1, -1, 1, 1)
    std = model.standardize.std.detach().cpu().float().view(1, -1, 1, 1)
    noise = torch.randn(shape, generator=generator)
    return (mean + 2 * std * noise).clamp(min=0)


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 of the weights as :func:`cnnlab.save_model` writes ``model.safetensors``.

    A model loaded from a run gives the checksum of that run's file (``sha256sum`` agrees), so
    an exported file names exactly which trained weights it holds.
    """
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    return hashlib.sha256(safetensors_bytes(state, metadata={"format": FORMAT})).hexdigest()


def describe(
    model: nn.Module,
    *,
    class_names: tuple[str, ...] | list[str] | None = None,
    bit_depth: int | None = None,
    source: str | None = None,
) -> dict:
    """The facts that travel with an exported model: what it takes, what it says, where from.

    ``class_names`` and ``bit_depth`` default to those of a model loaded with
    :func:`cnnlab.load`; ``source`` names the run it came from.
    """
    names = tuple(class_names if class_names is not None else getattr(model, "class_names", ()))
    if len(names) != model.num_classes:
        raise CnnlabError(
            f"class_names: {len(names)} name(s) for a model with {model.num_classes} outputs; "
            "pass class_names= with one name per class"
        )
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise CnnlabError(f"class_names {list(names)!r}: give distinct, non-empty names")
    depth = bit_depth if bit_depth is not None else getattr(model, "bit_depth", 8)
    if depth not in BIT_DEPTHS:
        raise CnnlabError(f"bit_depth {depth!r}: choose one of {', '.join(map(str, BIT_DEPTHS))}")
    config = getattr(model, "cnnlab_config", None) or {}
    return {
        "format": "cnnlab-export",
        "format_version": 1,
        "cnnlab_version": __version__,
        "model": config.get("name", type(model).__name__),
        "architecture": config,
        "class_names": list(names),
        "in_chans": int(model.in_chans),
        "input_size": [int(side) for side in model.input_size],
        "bit_depth": int(depth),
        **_largest_source(model),
        "normalization": {
            "mean": model.standardize.mean.tolist(),
            "std": model.standardize.std.tolist(),
        },
        "input": f"{INPUT_NAME}: raw pixel values as float32, (batch, channel, height, width); "
        "the network standardizes them itself",
        "output": f"{OUTPUT_NAME}: softmax class probabilities, (batch, class)",
        "source_run": source or "",
        "weights_sha256": weights_sha256(model),
    }


def _largest_source(model: nn.Module) -> dict:
    # The largest training image before resizing, when the model knows it (a trained run's).
    source = getattr(model, "largest_source", None)
    return {"largest_source": [int(side) for side in source]} if source else {}
