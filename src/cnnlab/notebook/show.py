"""``cnnlab.show_*``: one call per picture a notebook wants, each returning a matplotlib Figure.

They are thin doors to the ``*_figure`` functions of :mod:`cnnlab.inspect`, with the arguments a
notebook has at hand (a model, a dataset, a ``History``, a run folder) instead of the pieces
the CLI passes. Each imports its drawing module when called: this module is imported by
``import cnnlab``, which must not pay for matplotlib.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cnnlab.errors import CnnlabError

if TYPE_CHECKING:  # annotations only: importing them would load matplotlib and the models
    import numpy as np
    import torch
    from matplotlib.figure import Figure
    from torch import nn

    from cnnlab.data.dataset import ImageDataset


def show_samples(dataset: ImageDataset, per_class: int = 8, seed: int = 0) -> Figure:
    """``per_class`` random images of every class, one labelled row per class."""
    from cnnlab.inspect.plots import samples_figure

    return samples_figure(dataset, per_class, seed)


def show_intensities(dataset: ImageDataset, bins: int = 30) -> Figure:
    """Per class, the histogram of the images' mean intensities (in their own units)."""
    from cnnlab.inspect.plots import intensity_histograms_figure

    return intensity_histograms_figure(dataset, bins)


def show_history(history: object) -> Figure:
    """Learning curves of a ``History`` (what ``cnnlab.fit`` returns), a run folder, a
    ``history.csv`` or rows of epochs; the best epoch is marked when it is known."""
    from cnnlab.inspect.plots import learning_curves_figure

    rows, best = _history_rows(history)
    return learning_curves_figure(rows, best_epoch=best)


def _history_rows(history: object) -> tuple[object, int | None]:
    if hasattr(history, "rows") and hasattr(history, "best_epoch"):
        return history.rows, history.best_epoch
    if isinstance(history, str | Path):
        path = Path(history)
        if path.is_dir():
            from cnnlab.files import read_json

            if not (path / "history.csv").is_file():
                raise CnnlabError(f"{path}: no history.csv here; pass a run folder or a History")
            run = read_json(path / "run.json", "run file") if (path / "run.json").is_file() else {}
            return path / "history.csv", run.get("best_epoch")
        return path, None
    if isinstance(history, Sequence):
        return history, None
    raise CnnlabError(
        f"show_history takes a History, a run folder or a history.csv, not {type(history).__name__}"
    )


def show_confusion(metrics: Mapping | str | Path, normalize: bool = False) -> Figure:
    """The confusion matrix of ``Metrics`` (what ``cnnlab.evaluate`` returns), of a run's
    ``metrics.json`` contents (its headline subset), or of a run folder."""
    from cnnlab.inspect.confusion import confusion_figure

    chosen = _one_evaluation(metrics)
    return confusion_figure(chosen["confusion"], chosen["class_names"], normalize)


def _one_evaluation(metrics: Mapping | str | Path) -> Mapping:
    from cnnlab.runs.reading import headline_subset

    if isinstance(metrics, str | Path):
        from cnnlab.files import read_json

        path = Path(metrics)
        metrics = read_json(path / "metrics.json" if path.is_dir() else path, "metrics")
    if not isinstance(metrics, Mapping):
        raise CnnlabError(f"show_confusion takes Metrics or a run folder, not {type(metrics)}")
    if "confusion" in metrics:
        return metrics
    subsets = {k: v for k, v in metrics.items() if isinstance(v, Mapping) and "confusion" in v}
    if not subsets:
        raise CnnlabError("these metrics hold no confusion matrix; pass what evaluate returns")
    return subsets.get(headline_subset(metrics)) or next(iter(subsets.values()))


def show_worst(model: nn.Module, dataset: ImageDataset, count: int = 16) -> Figure:
    """The ``count`` images the model gets most wrong (highest loss), with their probabilities."""
    from cnnlab.inspect.mistakes import worst_cases_figure

    return worst_cases_figure(model, dataset, count)


def show_activations(model: nn.Module, image: torch.Tensor | np.ndarray) -> Figure:
    """One image followed through every layer: the feature maps and the class scores."""
    from cnnlab.inspect.activations import activations_figure

    return activations_figure(model, image, class_names=getattr(model, "class_names", None))


def show_filters(model: nn.Module) -> Figure:
    """The first convolution layer's filters, as images."""
    from cnnlab.inspect.filters import filters_figure

    return filters_figure(model)


def show_saliency(model: nn.Module, image: torch.Tensor | np.ndarray) -> Figure:
    """Where in ``image`` the model looked for its prediction (Grad-CAM or input gradients)."""
    from cnnlab.inspect.saliency import saliency_figure

    return saliency_figure(model, image, class_names=getattr(model, "class_names", None))


def show_kernels(
    image: object,
    kernels: Sequence[object] | None = None,
    padding: str | int = "valid",
    stride: int = 1,
    pool: tuple[str, int] | None = None,
) -> Figure:
    """``image`` convolved with each kernel (names such as ``"edge2"``, ``"sharpen"``, or
    matrices; the course's table by default), with ``padding``, ``stride`` and ``pool``
    (e.g. ``("max", 2)``), each output's size written under it."""
    from cnnlab.inspect.kernels import COURSE_KERNELS, kernel_demo_figure

    chosen = COURSE_KERNELS if kernels is None else kernels
    return kernel_demo_figure(image, chosen, padding=padding, stride=stride, pool=pool)
