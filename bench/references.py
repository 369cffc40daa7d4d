"""The reference training loops that cnnlab is compared with: what the course notebooks do.

Reference A is the PyTorch MNIST notebook's loop: a map-style ``Dataset`` that turns one uint8
image at a time into a normalized float tensor (torchvision's ``MNIST`` with
``transforms.ToTensor()`` and ``transforms.Normalize((0.1307,), (0.3081,))``: torchvision is not
installed, so :class:`NotebookMNIST` repeats its per-image steps by hand), a ``DataLoader`` with
``batch_size=32, shuffle=True``, and one SGD step per batch. The network is LeNet-5 as a plain
``nn.Sequential`` with the same layers as cnnlab's ``lenet5``.

Reference B is the Keras notebooks' way: the same LeNet-5 in Keras, ``model.fit`` on the whole
array with Adam. It runs in a separate interpreter that has TensorFlow (and may have no PyTorch),
which is why this module imports PyTorch only when it is there::

    /tmp/tfvenv/bin/python bench/references.py keras --data mnist.npz --images 54000

prints one JSON line with the measured epoch times. ``bench/run.py`` writes the ``.npz`` file
and starts that command.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

try:
    import torch
    from PIL import Image
    from torch import nn
    from torch.utils.data import DataLoader, Dataset
except ModuleNotFoundError:  # the Keras reference runs where TensorFlow is, maybe without torch
    torch = None
    Dataset = object

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


# ------------------------------------------------------------------------- reference A: PyTorch


def lenet5_sequential() -> nn.Sequential:
    """LeNet-5 exactly as cnnlab's ``lenet5`` on 28x28 input, without its built-in z-score.

    conv 6@5x5 (padding 2), ReLU, max-pool 2; conv 16@5x5, ReLU, max-pool 2; dense 120, 84, 10:
    61,706 parameters.
    """
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


class NotebookMNIST(Dataset):
    """MNIST the way torchvision serves it to the notebook: one PIL image at a time.

    ``__getitem__`` does torchvision's work for ``MNIST(..., transform=Compose([ToTensor(),
    Normalize((0.1307,), (0.3081,))]))``: ``Image.fromarray`` (mode "L" for uint8), a copy
    into a NumPy array, ``torch.from_numpy``, HWC to CHW, ``float() / 255``, then
    ``(x - mean) / std``; the label becomes a Python ``int``. This per-image Python is what a
    ``DataLoader`` pays for every sample, and what cnnlab's loop avoids.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(f"expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        picture = Image.fromarray(self.images[index])
        array = np.array(picture, copy=True)
        tensor = torch.from_numpy(array).view(picture.size[1], picture.size[0], 1)
        tensor = tensor.permute(2, 0, 1).contiguous().float().div(255)
        tensor = tensor.sub_(MNIST_MEAN).div_(MNIST_STD)
        return tensor, int(self.labels[index])


def time_torch_reference(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int = 32,
    num_workers: int = 0,
    warmup_batches: int = 20,
    batches: int | None = None,
    lr: float = 1e-2,
    seed: int = 0,
) -> dict[str, float]:
    """Images per second of the notebook's training loop (reference A).

    A warm-up pass of ``warmup_batches`` batches runs first (first calls into oneDNN, worker
    start-up of the warm-up loader). The timed part then starts a fresh epoch (creating the
    ``DataLoader`` iterator, which starts the workers when ``num_workers > 0``) and runs
    ``batches`` optimizer steps, or the whole epoch when ``batches`` is None: loading,
    transforming and collating, forward, cross-entropy, ``zero_grad``, backward, SGD step.
    Like the notebook, the loop takes no ``loss.item()`` per step.
    """
    torch.manual_seed(seed)
    dataset = NotebookMNIST(images, labels)
    model = lenet5_sequential()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    criterion = nn.CrossEntropyLoss()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers)

    def train(limit: int | None) -> int:
        seen = 0
        for step, (x, y) in enumerate(loader):
            if limit is not None and step >= limit:
                break
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            seen += len(y)
        return seen

    model.train()
    train(warmup_batches)
    start = time.perf_counter()
    seen = train(batches)
    seconds = time.perf_counter() - start
    return {"images": seen, "seconds": seconds, "images_per_second": seen / seconds}


# --------------------------------------------------------------------------- reference B: Keras


def keras_lenet5(keras: object) -> object:
    """The same LeNet-5 in Keras: 'same' padding on the first 5x5 convolution is padding 2."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(6, 5, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(16, 5, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(120, activation="relu"),
            layers.Dense(84, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )


def time_keras_reference(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int = 128,
    epochs: int = 2,
    threads: int | None = None,
) -> dict[str, object]:
    """Epoch times of ``model.fit`` as the Keras notebooks call it (reference B).

    The images are scaled as the notebooks do (``x / 255.``, here straight to float32) and the
    model is compiled with Adam and sparse categorical cross-entropy, ``metrics=["accuracy"]``.
    ``fit`` runs ``epochs`` epochs with ``verbose=0``; a callback takes the wall time from
    ``on_epoch_begin`` to ``on_epoch_end``. The first epoch includes tracing the graph, so the
    steady state is the last epoch's time. Without validation data, as the comparison is the
    training pass itself.
    """
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    keras = tf.keras
    keras.utils.set_random_seed(0)
    x = (images.astype(np.float32) / 255.0)[..., None]
    y = labels.astype(np.int64)
    model = keras_lenet5(keras)
    model.compile(
        optimizer=keras.optimizers.Adam(),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self._start = 0.0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.seconds.append(time.perf_counter() - self._start)

    timer = EpochTimer()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[timer])
    steady = timer.seconds[-1]
    return {
        "images": len(x),
        "epoch_seconds": timer.seconds,
        "seconds": steady,
        "images_per_second": len(x) / steady,
        "batch_size": batch_size,
        "tensorflow": tf.__version__,
        "keras": keras.__version__ if hasattr(keras, "__version__") else "",
    }


def _keras_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="references.py keras", description="Time reference B (Keras) on MNIST arrays."
    )
    parser.add_argument("--data", type=Path, required=True, help=".npz with images and labels")
    parser.add_argument("--images", type=int, default=None, help="use the first N images")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with np.load(args.data) as arrays:
        images, labels = arrays["images"][: args.images], arrays["labels"][: args.images]
    result = time_keras_reference(
        images, labels, batch_size=args.batch_size, epochs=args.epochs, threads=args.threads
    )
    print(json.dumps(result))


def _torch_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="references.py torch", description="Time reference A (PyTorch) on MNIST arrays."
    )
    parser.add_argument("--data", type=Path, required=True, help=".npz with images and labels")
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    with np.load(args.data) as arrays:
        images, labels = arrays["images"], arrays["labels"]
    speeds = [
        time_torch_reference(images, labels, num_workers=args.workers, batches=args.batches)[
            "images_per_second"
        ]
        for _ in range(args.repeats)
    ]
    print(json.dumps({"images_per_second": statistics.median(speeds), "all": speeds}))


def main(argv: list[str] | None = None) -> None:
    """``references.py keras ...`` or ``references.py torch ...``: one reference, JSON out."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("keras", "torch"):
        sys.exit("usage: references.py {keras,torch} --data FILE.npz [options]")
    (_keras_main if argv[0] == "keras" else _torch_main)(argv[1:])


if __name__ == "__main__":
    main()
