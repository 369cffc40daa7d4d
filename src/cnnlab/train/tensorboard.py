"""Training curves in TensorBoard, for those who already watch their runs there.

:class:`TensorBoardLogger` is an ordinary callback (see :mod:`cnnlab.train.callbacks`): after
every epoch it writes the losses, accuracies, learning rate and epoch time as scalars, and when
training ends it adds two pictures: the validation set's confusion matrix and a grid of
validation images. TensorBoard is an optional extra, so the package is imported only when a
logger is created, and its absence is a one-line error that says how to install it.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np

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

    ``valid`` (the validation set) enables the pictures written at the end of training: its
    confusion matrix under the final (best) weights, and a grid of its images per class.
    ``class_names`` labels them (default: the dataset's). On a resumed run the events of the
    epochs being trained again are replaced, so the curves show each epoch once.
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

    def on_epoch_end(self, logs: dict) -> None:
        self._open()
        epoch = int(logs["epoch"])
        for key, tag in SCALAR_TAGS.items():
            value = logs.get(key)
            if value is not None:
                self.writer.add_scalar(tag, float(value), global_step=epoch)
        self.writer.flush()

    def on_fit_end(self, logs: dict) -> None:
        self._open()
        history = logs.get("history")
        step = len(history.rows) if history is not None and history.rows else 0
        model = logs.get("model")
        if self.valid is not None and len(self.valid) > 0 and model is not None:
            self.writer.add_image(
                CONFUSION_TAG, self._confusion_image(model), step, dataformats="HWC"
            )
            self.writer.add_image(SAMPLES_TAG, self._samples_image(), step, dataformats="HWC")
        self.writer.flush()
        self.writer.close()
        self.writer = None

    def _confusion_image(self, model) -> np.ndarray:
        from cnnlab.evaluate import per_sample
        from cnnlab.inspect.plots import plot_confusion

        results = per_sample(model, self.valid)
        k = self.valid.num_classes
        confusion = np.zeros((k, k), dtype=np.int64)
        np.add.at(confusion, (results["labels"], results["predictions"]), 1)
        names = self.class_names or self.valid.class_names
        return _render(lambda path: plot_confusion(confusion, names, path))

    def _samples_image(self) -> np.ndarray:
        from cnnlab.inspect.plots import plot_samples

        return _render(lambda path: plot_samples(self.valid, path, self.samples_per_class))


def _render(draw) -> np.ndarray:
    """A plotting function's PNG as an RGB array (height, width, 3) of uint8."""
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="cnnlab-tb-") as folder:
        path = Path(folder) / "figure.png"
        draw(path)
        data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))
