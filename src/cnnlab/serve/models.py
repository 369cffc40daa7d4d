"""The served models: each run loaded once, and what the page asks of it.

A model is shared by every request thread, and forward hooks (activations) or Grad-CAM's
gradients from two threads at once would mix, so each run's model calls hold that run's lock;
PyTorch's own threads already use the cores within one call. Prediction and activations run
under :func:`torch.inference_mode`; Grad-CAM needs gradients and runs without it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.evaluate.evaluate import inference_network
from cnnlab.export.predict import prepare_arrays
from cnnlab.export.saved import load
from cnnlab.inspect.activations import layer_outputs, model_name
from cnnlab.inspect.saliency import saliency
from cnnlab.serve.errors import UNPROCESSABLE, RequestError
from cnnlab.serve.images import (
    feature_map_pixels,
    heat_overlay,
    input_pixels,
    png_data_url,
)

#: Feature maps sent per layer, and values per flat layer: enough to see, small to send.
MAX_MAPS = 16
MAX_VALUES = 128
#: What the page calls each kind of layer, by module type.
LAYER_KINDS = {
    "Conv2d": "conv",
    "MaxPool2d": "pool",
    "AvgPool2d": "pool",
    "AdaptiveAvgPool2d": "pool",
    "AdaptiveMaxPool2d": "pool",
    "Linear": "dense",
    "Flatten": "flatten",
    "BatchNorm2d": "norm",
    "BatchNorm1d": "norm",
    "Dropout": "dropout",
    "Dropout2d": "dropout",
    "ReLU": "activation",
    "Tanh": "activation",
    "Sigmoid": "activation",
    "GELU": "activation",
    "LeakyReLU": "activation",
    "ELU": "activation",
    "SiLU": "activation",
}


@dataclass
class ServedRun:
    """One loaded run or model folder, under the id the page and the API call it."""

    id: str
    path: Path
    model: nn.Module
    test_accuracy: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: The model rearranged once for CPU inference (batch norms folded, channels-last), for
    #: predictions; the activations and Grad-CAM need the model's own layers and hooks.
    network: nn.Module | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.network is None:
            self.network = inference_network(self.model.eval())

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.model.class_names)

    @property
    def channels(self) -> int:
        return int(self.model.in_chans)

    @property
    def size(self) -> tuple[int, int]:
        height, width = self.model.input_size
        return int(height), int(width)

    @property
    def bit_depth(self) -> int:
        return int(self.model.bit_depth)

    @property
    def digits(self) -> bool:
        """The drawing canvas applies: gray 28x28 8-bit input, as MNIST's digits."""
        return self.channels == 1 and self.size == (28, 28) and self.bit_depth == 8

    def describe(self) -> dict:
        """The run as ``GET /api/runs`` lists it."""
        height, width = self.size
        return {
            "id": self.id,
            "path": str(self.path),
            "model": model_name(self.model),
            "classes": list(self.class_names),
            "channels": self.channels,
            "height": height,
            "width": width,
            "bit_depth": self.bit_depth,
            "digits": self.digits,
            "test_accuracy": self.test_accuracy,
        }

    # ------------------------------------------------------------------------- inference
    def prepare(
        self, images: Sequence[np.ndarray], names: Sequence[str], bit_depths: Sequence[int]
    ) -> torch.Tensor:
        """Decoded images as the model's ``(N, C, H, W)`` input, checked as ``predict`` checks.

        An image of the wrong bit depth or channels, or far too small, is a 422 naming it.
        """
        try:
            dataset = prepare_arrays(self.model, list(images), list(names), list(bit_depths))
        except CnnlabError as error:
            raise RequestError(str(error), UNPROCESSABLE) from None
        return dataset.images

    def probabilities(self, batch: torch.Tensor) -> np.ndarray:
        """Class probabilities ``(N, classes)`` of prepared images."""
        with self.lock, torch.inference_mode():
            return torch.softmax(self.network(batch.float()).float(), dim=1).numpy()

    def named(self, probabilities: np.ndarray) -> dict[str, float]:
        return {name: float(p) for name, p in zip(self.class_names, probabilities, strict=True)}

    def analyze(self, image: torch.Tensor) -> dict:
        """Everything the page shows for one prepared ``(C, H, W)`` image.

        The class probabilities, every layer's output (at most :data:`MAX_MAPS` maps or
        :data:`MAX_VALUES` values each) and the Grad-CAM map of the top class over the input
        (input-gradient saliency for a network without convolutions), as PNG data URLs.
        """
        start = time.perf_counter()
        with self.lock:
            with torch.inference_mode():
                layers = layer_outputs(self.model, image)
            explained = saliency(self.model, image)
        probabilities = explained.probabilities
        shown = input_pixels(image.numpy(), self.bit_depth)
        top = self.class_names[int(np.argmax(probabilities))]
        return {
            "run": self.id,
            "class": top,
            "probabilities": self.named(probabilities),
            "input": png_data_url(shown),
            "layers": [_layer_view(layer) for layer in layers],
            "gradcam": png_data_url(heat_overlay(shown, explained.map)),
            "method": explained.method,
            "target": self.class_names[explained.target],
            "milliseconds": round((time.perf_counter() - start) * 1000.0, 2),
        }


def _layer_view(layer) -> dict:
    """One layer's output for the page: maps of a ``(C, H, W)`` output, else its first values."""
    output = layer.output.float()
    view = {
        "name": layer.name,
        "kind": LAYER_KINDS.get(layer.module_type, layer.module_type.lower()),
        "type": layer.module_type,
        "shape": list(layer.shape),
        "maps": [],
        "values": [],
    }
    if output.ndim == 3 and output.shape[1] * output.shape[2] > 1:
        maps = output[:MAX_MAPS].numpy()
        low, high = float(maps.min()), float(maps.max())
        view["maps"] = [png_data_url(feature_map_pixels(m, low, high)) for m in maps]
    else:
        values = output.flatten()[:MAX_VALUES].numpy()
        view["values"] = [round(float(v), 4) for v in np.nan_to_num(values)]
    return view


# ----------------------------------------------------------------------------- loading
def load_runs(paths: Sequence[str | Path]) -> list[ServedRun]:
    """Loads every run or model folder; two folders of the same name get ``-2``, ``-3``...

    One folder named twice (as itself, through a link, or by its model.json) is refused: its
    two servings would each write the review's decisions into one ``relabel.csv``. A folder
    that cannot be loaded is an error naming it, before anything is served.
    """
    if not paths:
        raise CnnlabError("RUN: give at least one run or model folder to serve")
    folders: dict[Path, str] = {}
    for given in paths:
        path = Path(given)
        real = (path if path.is_dir() else path.parent).resolve()
        if real in folders:
            raise CnnlabError(
                f"RUN {given}: the same folder as {folders[real]} ({real}); serve each run once"
            )
        folders[real] = str(given)
    runs: list[ServedRun] = []
    taken: set[str] = set()
    for given in paths:
        path = Path(given)
        try:
            model = load(path)
        except CnnlabError as error:
            raise CnnlabError(f"cannot serve {path}: {error}") from None
        folder = path if path.is_dir() else path.parent
        name = folder.resolve().name or "model"
        ident, number = name, 1
        while ident in taken:
            number += 1
            ident = f"{name}-{number}"
        taken.add(ident)
        runs.append(ServedRun(ident, folder, model, _test_accuracy(folder)))
    return runs


def _test_accuracy(folder: Path) -> float | None:
    """The run's test accuracy from its ``metrics.json``; None for a bare model folder."""
    try:
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        accuracy = metrics["test"]["accuracy"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(accuracy) if isinstance(accuracy, int | float) else None
