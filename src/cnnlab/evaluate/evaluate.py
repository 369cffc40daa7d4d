"""Run a trained model over a dataset and report how well it classifies.

Evaluation is one pass of large batches under ``torch.inference_mode`` with the model in eval
mode (dropout off, batch-norm running statistics on); the model's own train/eval state is
restored afterwards, so evaluating in the middle of training changes nothing. Images go in as
raw source values converted to float per batch: the model standardizes them itself, and
converting a batch at a time keeps a 16-bit dataset as compact integers in memory.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from cnnlab.data.dataset import ImageDataset
from cnnlab.errors import CnnlabError
from cnnlab.evaluate.metrics import classification_metrics
from cnnlab.evaluate.result import Metrics

# Inference batches small enough that a convolution's output stays in the CPU's cache:
# eager LeNet-5 scores MNIST's 10,000 test images in 0.18 s at 128 per batch, 0.47 s at 1024.
INFERENCE_BATCH = 128
# Below this many batches, tracing the model costs more than the graph saves over the eager
# inference network.
GRAPH_MIN_BATCHES = 16
# The start of torch's notices that torch.jit.trace, freeze and the rest are deprecated.
TORCHSCRIPT_DEPRECATED = r"`torch\.jit\.\w+` is deprecated"


def inference_graph(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """The eval-mode ``model`` as a frozen TorchScript graph optimized for CPU inference.

    Freezing folds batch norm into the convolutions, and ``optimize_for_inference`` runs
    convolution, ReLU and pooling fused in oneDNN's own layout, which eager PyTorch cannot do.
    ``bench/inference.py`` measures it against :func:`inference_network`, ONNX Runtime,
    ``torch.export`` and ``torch.compile`` (which needs a C++ compiler at run time and compiles
    for longer than scoring takes): in batches it is the fastest of them, by a wide margin for
    LeNet-5. Tracing takes tens of milliseconds. Logits agree with eager mode to float32
    rounding.

    A trace records the path that ``example`` took, so a module with data-dependent control
    flow would be silently mis-recorded: only models built entirely from ``torch.nn`` layers and
    cnnlab's own modules (whose forward passes have no such branches, as the tests check for
    every registered model) are traced, and only without forward hooks; anything else runs as
    it is. Networks without convolutions gain nothing from a graph. Those, and any model whose
    trace fails (as every one will once TorchScript is removed from torch), get
    :func:`inference_network` instead.
    """
    modules = list(model.modules())
    if not all(_is_known_layer(module) for module in modules):
        return model
    if not any(isinstance(module, nn.modules.conv._ConvNd) for module in modules):
        return inference_network(model)  # dense layers are one matrix product each already
    try:
        with warnings.catch_warnings():
            # torch 2.13 deprecates TorchScript in favour of torch.export and torch.compile,
            # and says so on every call: that notice alone is silenced, any other warning the
            # layers raise while traced reaches the caller. Neither successor is faster here
            # (see the docstring), so the deprecated API stays while it works.
            warnings.filterwarnings(
                "ignore", message=TORCHSCRIPT_DEPRECATED, category=DeprecationWarning
            )
            with torch.no_grad():
                traced = torch.jit.trace(model, example, check_trace=False)
                return torch.jit.optimize_for_inference(torch.jit.freeze(traced))
    except Exception:  # any tracing failure means: run the model eagerly
        return inference_network(model)


def inference_network(model: nn.Module) -> nn.Module:
    """The eval-mode ``model`` rearranged for fast CPU inference, still plain eager PyTorch.

    Each batch norm that directly follows a convolution or dense layer in an ``nn.Sequential``
    is folded into that layer's weights (one operation instead of two, and no pass over the
    activations), and a convolutional network gets its weights in channels-last layout, which
    oneDNN's convolutions and PyTorch's pooling prefer. Channels-last is used here even for the
    networks that train in NCHW (``cpu_channels_last``): what made them slower that way was
    batch norm, which is gone (``bench/inference.py``). Both are exact up to float32 rounding.
    The work is done on a copy, so the caller's model (its layout, its batch norms) is
    unchanged; a model with nothing to rearrange is returned as it is. This is what runs where
    no graph is traced: small workloads, and models that :func:`inference_graph` cannot trace.

    Only models built entirely from ``torch.nn`` layers and cnnlab's own modules are touched,
    and only without forward hooks: in a ``Sequential`` the order of the children is the order
    of the forward pass, and a hooked layer must keep its identity. Anything else runs as it is.
    """
    modules = list(model.modules())
    if model.training or not all(_is_known_layer(module) for module in modules):
        return model
    foldable = any(_foldable(first, second) for first, second in _sequential_pairs(model))
    channels_last = any(isinstance(module, nn.Conv2d) for module in modules)
    if not foldable and not channels_last:
        return model
    with torch.no_grad():
        network = copy.deepcopy(model)
        for container in network.modules():
            if isinstance(container, nn.Sequential):
                _fold_batch_norms(container)
        if channels_last:
            network.to(memory_format=torch.channels_last)
    return network


def _sequential_pairs(model: nn.Module) -> Iterator[tuple[nn.Module, nn.Module]]:
    for container in model.modules():
        if isinstance(container, nn.Sequential):
            children = list(container)
            yield from pairwise(children)


def _foldable(layer: nn.Module, norm: nn.Module) -> bool:
    # A batch norm without running statistics normalizes with each batch's own: not a constant.
    if not isinstance(norm, nn.modules.batchnorm._BatchNorm) or norm.running_mean is None:
        return False
    if isinstance(layer, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
        return not layer.transposed
    return isinstance(layer, nn.Linear) and isinstance(norm, nn.BatchNorm1d)


def _fold_batch_norms(container: nn.Sequential) -> None:
    """Folds each (layer, batch norm) pair of ``container`` into the layer, in place."""
    names = list(container._modules)
    for first, second in pairwise(names):
        layer, norm = container._modules[first], container._modules[second]
        if layer is None or norm is None or not _foldable(layer, norm):
            continue
        fuse = fuse_conv_bn_eval if isinstance(layer, nn.Conv2d) else fuse_linear_bn_eval
        container._modules[first] = fuse(layer, norm)
        container._modules[second] = nn.Identity()


def _is_known_layer(module: nn.Module) -> bool:
    # A hook would run once while tracing and never again, so hooked models run eagerly.
    hooked = module._forward_hooks or module._forward_pre_hooks
    return not hooked and type(module).__module__.startswith(
        ("torch.nn.modules.", "cnnlab.models.")
    )


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextmanager
def _evaluating(model: nn.Module, device: str | torch.device) -> Iterator[torch.device]:
    """Eval mode on ``device`` for the duration; the previous mode and device come back after."""
    was_training = model.training
    original = _model_device(model)
    target = torch.device(device)
    model.eval()
    if target != original:
        model.to(target)
    try:
        yield target
    finally:
        if target != original:
            model.to(original)
        model.train(was_training)


def check_compatible(model: nn.Module, dataset: ImageDataset, purpose: str = "evaluate") -> None:
    """Refuse data that the model was not built for, with a line that says how to fix it.

    A model fed the wrong number of channels or a different image size either crashes deep in
    a convolution with an unreadable shape error or, worse, runs and answers nonsense.
    """
    if len(dataset) == 0:
        raise CnnlabError(f"{dataset.name} is empty: there is nothing to {purpose}")
    dataset.require_uniform(f"you {purpose}")
    in_chans = getattr(model, "in_chans", None)
    if in_chans is not None and dataset.channels != in_chans:
        raise CnnlabError(
            f"{dataset.name} has {dataset.channels}-channel images but the model expects "
            f"{in_chans}; convert the data with channels={in_chans} (--channels {in_chans})"
        )
    input_size = getattr(model, "input_size", None)
    if input_size is not None and dataset.image_size != tuple(input_size):
        height, width = input_size
        h, w = dataset.image_size
        raise CnnlabError(
            f"{dataset.name} has {h}x{w} images but the model expects {height}x{width}; "
            f"resize to {height}x{width} (--size {height}x{width})"
        )
    num_classes = getattr(model, "num_classes", None)
    if num_classes is not None and dataset.num_classes != num_classes:
        raise CnnlabError(
            f"{dataset.name} has {dataset.num_classes} classes "
            f"({', '.join(dataset.class_names)}) but the model predicts {num_classes}; "
            f"{purpose} on data with the classes of the model"
        )
    # A loaded model knows its classes and the bit depth of its training images; data that
    # differs in either would be scored against the wrong labels or misread intensities.
    trained_names = getattr(model, "class_names", None)
    if trained_names is not None and tuple(trained_names) != dataset.class_names:
        raise CnnlabError(
            f"{dataset.name} has classes ({', '.join(dataset.class_names)}) but the model was "
            f"trained on ({', '.join(trained_names)}); use data with the same classes in the "
            f"same order"
        )
    trained_depth = getattr(model, "bit_depth", None)
    if trained_depth is not None and dataset.bit_depth != trained_depth:
        raise CnnlabError(
            f"{dataset.name} has {dataset.bit_depth}-bit images but the model learned on "
            f"{trained_depth}-bit images; convert them first"
        )


def _images_of(model: nn.Module, images: torch.Tensor | ImageDataset) -> torch.Tensor:
    if isinstance(images, ImageDataset):
        check_compatible(model, images)
        # The model standardizes internally, so it needs source units, not z-scores.
        return images.raw().images
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise CnnlabError(f"images must be an (N, C, H, W) tensor, not {shape}")
    in_chans = getattr(model, "in_chans", None)
    input_size = getattr(model, "input_size", None)
    if in_chans is not None and images.shape[1] != in_chans:
        raise CnnlabError(
            f"images have {images.shape[1]} channels but the model expects {in_chans}; "
            f"convert them with channels={in_chans}"
        )
    if input_size is not None and tuple(images.shape[2:]) != tuple(input_size):
        height, width = input_size
        raise CnnlabError(
            f"images are {images.shape[2]}x{images.shape[3]} but the model expects "
            f"{height}x{width}; resize to {height}x{width}"
        )
    return images


def _logits(
    model: nn.Module, images: torch.Tensor, batch_size: int, device: str | torch.device
) -> torch.Tensor:
    """All logits (on the CPU, float32) from one pass in batches of ``batch_size``."""
    return _logits_each(model, [images], batch_size, device)[0]


def _logits_each(
    model: nn.Module,
    image_sets: Sequence[torch.Tensor],
    batch_size: int,
    device: str | torch.device,
) -> list[torch.Tensor]:
    """The logits of each of ``image_sets``, from one network prepared for all of them.

    Whether tracing pays is decided on all the images together: the graph is traced once and
    scores every set (a run's training, validation and test images alike).
    """
    if batch_size < 1:
        raise CnnlabError(f"batch_size must be at least 1, not {batch_size}")
    results = []
    with _evaluating(model, device) as target:
        # Made outside inference mode, whose tensors could not become the copy's parameters.
        network = model
        total = sum(len(images) for images in image_sets)
        example = next((images for images in image_sets if len(images)), None)
        scored = target.type == "cpu" and example is not None
        native = getattr(model, "takes_native_kernels", None)
        if scored and native is not None and native(example[:1].float()):
            pass  # cnnlab's own kernels score faster than a traced graph (README, Measured)
        elif scored and total >= GRAPH_MIN_BATCHES * batch_size:
            network = inference_graph(model, example[:batch_size].float())
        elif target.type == "cpu":
            network = inference_network(model)
        with torch.inference_mode():
            for images in image_sets:
                outputs = [
                    network(images[start : start + batch_size].to(target).float()).float().cpu()
                    for start in range(0, len(images), batch_size)
                ]
                if outputs:
                    results.append(torch.cat(outputs))
                else:
                    results.append(torch.zeros((0, getattr(model, "num_classes", 0))))
    return results


def predict_proba(
    model: nn.Module,
    images: torch.Tensor | ImageDataset,
    batch_size: int = INFERENCE_BATCH,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Softmax class probabilities, one row per image, on the CPU.

    ``images`` are raw dataset images (a normalized dataset is converted back to source units
    first, because the model standardizes its input itself).
    """
    logits = _logits(model, _images_of(model, images), batch_size, device)
    return torch.softmax(logits, dim=1)


def per_sample(
    model: nn.Module,
    dataset: ImageDataset,
    batch_size: int = INFERENCE_BATCH,
    device: str | torch.device = "cpu",
) -> dict:
    """Per-image results for galleries of the worst mistakes.

    Returns NumPy arrays ``probabilities`` (N x classes), ``predictions``, ``labels``,
    ``confidence`` (probability of the predicted class), ``loss`` (cross-entropy of each
    image), plus the source ``paths`` and ``class_names``.
    """
    logits = _logits(model, _images_of(model, dataset), batch_size, device)
    return _samples(logits, dataset)


def per_sample_subsets(
    model: nn.Module,
    datasets: Mapping[str, ImageDataset | None],
    batch_size: int = INFERENCE_BATCH,
    device: str | torch.device = "cpu",
) -> dict[str, dict]:
    """:func:`per_sample` of each named dataset (skipping None), the model prepared once.

    These are the scores every later view of the run needs (its metrics, the report's worst
    cases): scoring once and passing them on spares running the model over the images again.
    """
    present = {name: dataset for name, dataset in datasets.items() if dataset is not None}
    images = [_images_of(model, dataset) for dataset in present.values()]
    logits = _logits_each(model, images, batch_size, device)
    return {
        name: _samples(scores, dataset)
        for (name, dataset), scores in zip(present.items(), logits, strict=True)
    }


def first_samples(samples: dict, count: int) -> dict:
    """The :func:`per_sample` results of the first ``count`` images only."""
    return {key: value[:count] if key != "class_names" else value for key, value in samples.items()}


def _samples(logits: torch.Tensor, dataset: ImageDataset) -> dict:
    labels = dataset.labels.to(torch.int64)
    probabilities = torch.softmax(logits, dim=1)
    predictions = logits.argmax(dim=1)
    return {
        "probabilities": probabilities.numpy(),
        "predictions": predictions.numpy(),
        "labels": labels.numpy(),
        "confidence": probabilities.max(dim=1).values.numpy(),
        "loss": F.cross_entropy(logits, labels, reduction="none").numpy(),
        "paths": dataset.paths,
        "class_names": dataset.class_names,
    }


def evaluate(
    model: nn.Module,
    dataset: ImageDataset,
    batch_size: int = INFERENCE_BATCH,
    device: str | torch.device = "cpu",
) -> Metrics:
    """caret-style metrics (see :func:`classification_metrics`) plus the mean cross-entropy.

    Also records ``dataset`` (its name) and ``subset`` so a saved report says what it measured.
    The result is a :class:`~cnnlab.evaluate.result.Metrics`: a dict that Jupyter shows as the
    caret-style block with the confusion matrix.
    """
    return metrics_of(per_sample(model, dataset, batch_size=batch_size, device=device), dataset)


def metrics_of(samples: dict, dataset: ImageDataset) -> Metrics:
    """The :func:`evaluate` metrics of ``dataset`` from its :func:`per_sample` results."""
    loss = float(np.mean(samples["loss"], dtype=np.float64))
    if not math.isfinite(loss):
        first = int(np.flatnonzero(~np.isfinite(samples["loss"]))[0])
        where = samples["paths"][first] if len(samples["paths"]) > first else f"image {first}"
        raise CnnlabError(
            f"{where}: the model's outputs for this image of {dataset.name} are not finite "
            f"numbers (loss {loss}); check the image, or retrain with a lower learning rate"
        )
    metrics = classification_metrics(
        samples["labels"],
        samples["predictions"],
        dataset.class_names,
        probabilities=samples["probabilities"],
        loss=loss,
    )
    metrics["dataset"] = dataset.name
    metrics["subset"] = dataset.subset
    return Metrics(metrics)


def evaluate_subsets(
    model: nn.Module,
    datasets: Mapping[str, ImageDataset | None],
    batch_size: int = INFERENCE_BATCH,
    device: str | torch.device = "cpu",
) -> dict[str, Metrics]:
    """:func:`evaluate` on each named dataset (e.g. train / valid / test), skipping None."""
    scored = per_sample_subsets(model, datasets, batch_size=batch_size, device=device)
    return {name: metrics_of(samples, datasets[name]) for name, samples in scored.items()}
