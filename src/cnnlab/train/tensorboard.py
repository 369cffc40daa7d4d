"""Training in TensorBoard, for those who already watch their runs there.

:class:`TensorBoardLogger` is an ordinary callback (see :mod:`cnnlab.train.callbacks`) that
writes what Keras' TensorBoard callback writes: when training starts, the model's graph; after
every epoch the losses, accuracies, learning rate and epoch time as scalars and a histogram of
every parameter; and when training ends two pictures, the validation set's confusion matrix and
a grid of validation images. TensorBoard is an optional extra, so the package is imported only
when a logger is created, and its absence is a one-line error that says how to install it.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.data.dataset import ImageDataset
from cnnlab.errors import CnnlabError
from cnnlab.train.callbacks import Callback

#: history column -> TensorBoard tag; "loss/train" and "loss/valid" share the "loss" section.
SCALAR_TAGS = {
    "train_loss": "loss/train",
    "valid_loss": "loss/valid",
    "train_accuracy": "accuracy/train",
    "valid_accuracy": "accuracy/valid",
    "lr": "learning_rate",
    "seconds": "epoch_seconds",
}
CONFUSION_TAG = "confusion/valid"
SAMPLES_TAG = "samples/valid"
#: A parameter's histogram is tagged "parameters/<its name in named_parameters()>".
PARAMETERS_SECTION = "parameters"


def summary_writer():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise CnnlabError(
            "--tensorboard needs the tensorboard package: pip install 'cnnlab[tensorboard]'"
        ) from None
    return SummaryWriter


class TensorBoardLogger(Callback):
    """Writes TensorBoard event files into ``log_dir`` while a model trains.

    The model (from the training context) gives the graph at the start and the parameter histograms
    (tagged ``parameters/<name>``) after every epoch. ``valid`` (the validation set) enables
    the pictures written at the end of training: its confusion matrix under the final (best)
    weights, and a grid of its images per class. ``class_names`` labels them (default: the
    dataset's). On a resumed run the events of the epochs being trained again are replaced, so
    the curves show each epoch once.
    """

    def __init__(
        self,
        log_dir: str | Path,
        class_names: tuple[str, ...] | list[str] | None = None,
        valid: ImageDataset | None = None,
        samples_per_class: int = 6,
    ) -> None:
        self.writer_class = summary_writer()
        self.log_dir = Path(log_dir)
        self.valid = valid
        self.class_names = tuple(class_names) if class_names is not None else None
        if self.class_names is None and valid is not None:
            self.class_names = valid.class_names
        self.samples_per_class = samples_per_class
        self.writer = None

    def _open(self, first_epoch: int = 1) -> None:
        if self.writer is None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            purge = first_epoch if first_epoch > 1 else None
            self.writer = self.writer_class(log_dir=str(self.log_dir), purge_step=purge)

    def on_fit_start(self, logs: dict) -> None:
        self._open(int(logs.get("epoch", 1)))
        self._add_graph(self.context.model)

    def on_epoch_end(self, logs: dict) -> None:
        self._open()
        epoch = int(logs["epoch"])
        for key, tag in SCALAR_TAGS.items():
            value = logs.get(key)
            if value is not None:
                self.writer.add_scalar(tag, float(value), global_step=epoch)
        for name, parameter in self.context.model.named_parameters():
            # One copy to the CPU per parameter and epoch: a GPU sync, but once an epoch.
            self.writer.add_histogram(
                f"{PARAMETERS_SECTION}/{name}", parameter.detach(), global_step=epoch
            )
        self.writer.flush()

    def _add_graph(self, model: nn.Module) -> None:
        """The model's graph, traced on one batch of zeros; a warning when it cannot be.

        Tracing runs the model in evaluation mode (batch norm keeps its statistics, dropout
        draws no random numbers), so it changes nothing that training will do, and the modes
        are restored. The tracer's own messages (deprecation notes, TracerWarnings, and the
        error it prints to stdout) are kept off the terminal; a failure is one warning.
        """
        modes = [(module, module.training) for module in model.modules()]
        problem = None
        try:
            batch = zero_batch(model)
            with (
                warnings.catch_warnings(),
                contextlib.redirect_stdout(io.StringIO()),
                torch.no_grad(),
            ):
                warnings.simplefilter("ignore")
                model.eval()
                self.writer.add_graph(model, batch)
        except Exception as error:  # a model the tracer cannot follow still trains
            lines = str(error).strip().splitlines()
            problem = lines[0] if lines else type(error).__name__
        finally:
            for module, training in modes:
                module.training = training
        if problem is not None:
            warnings.warn(f"TensorBoard: no graph of the model ({problem})", stacklevel=3)

    def on_fit_end(self, logs: dict) -> None:
        self._open()
        step = int(logs.get("epochs_run", 0))
        model = self.context.model
        if self.valid is not None and len(self.valid) > 0:
            self.writer.add_image(
                CONFUSION_TAG, self._confusion_image(model), step, dataformats="HWC"
            )
            self.writer.add_image(SAMPLES_TAG, self._samples_image(), step, dataformats="HWC")
        self.writer.flush()
        self.writer.close()
        self.writer = None

    def _confusion_image(self, model) -> np.ndarray:
        from cnnlab.evaluate import per_sample
        from cnnlab.evaluate.metrics import confusion_matrix
        from cnnlab.inspect.confusion import confusion_figure
        from cnnlab.inspect.figures import figure_png, png_pixels

        results = per_sample(model, self.valid)
        k = self.valid.num_classes
        counts = confusion_matrix(results["labels"], results["predictions"], k)
        return png_pixels(figure_png(confusion_figure(counts, self.names)))

    def _samples_image(self) -> np.ndarray:
        from cnnlab.inspect.figures import figure_png, png_pixels
        from cnnlab.inspect.plots import samples_figure

        return png_pixels(figure_png(samples_figure(self.valid, self.samples_per_class)))

    @property
    def names(self) -> tuple[str, ...]:
        return self.class_names or self.valid.class_names


def zero_batch(model: nn.Module) -> torch.Tensor:
    """One batch of zeros shaped as ``model`` takes its images, on the model's device."""
    channels, size = getattr(model, "in_chans", None), getattr(model, "input_size", None)
    if channels is None or size is None:
        raise ValueError(
            f"{type(model).__name__} does not say its input shape (in_chans, input_size)"
        )
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    return torch.zeros((1, int(channels), *(int(s) for s in size)), device=device)
