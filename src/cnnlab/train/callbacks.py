"""The hooks of the training loop, and the callbacks cnnlab itself uses.

As in Keras, a callback gets the live objects once and the numbers at every hook. Before
training, ``set_context`` hands it a :class:`TrainContext` (the model, optimizer, schedule,
config, sizes, the history so far); then each of ``on_fit_start``, ``on_epoch_start``,
``on_batch_start``, ``on_batch_end``, ``on_epoch_end`` and ``on_fit_end`` that it defines
receives a ``logs`` dict of plain, JSON-ready numbers (``{"epoch": 3, "train_loss": 0.21, ...}``).
A callback stops training with ``self.context.stop_training = True`` (and a ``stop_reason``).
That is the whole protocol: progress bars, CSV logs, early stopping, best weights and
TensorBoard are all written against it, and so can a user's own code.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch

from cnnlab.errors import CnnlabError
from cnnlab.files import naming
from cnnlab.train.progress import bar_kind, open_bar

HISTORY_COLUMNS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "valid_loss",
    "valid_accuracy",
    "lr",
    "seconds",
)
HOOKS = (
    "on_fit_start",
    "on_epoch_start",
    "on_batch_start",
    "on_batch_end",
    "on_epoch_end",
    "on_fit_end",
)


@dataclass
class TrainContext:
    """What callbacks may look at or act on during :func:`~cnnlab.train.fit`, apart from logs.

    ``epoch`` is the epoch under way; ``history`` the rows of the epochs done (resumed ones
    included). Setting ``stop_training`` ends training after the current epoch.
    """

    model: Any
    optimizer: Any
    schedule: Any
    generator: Any
    config: Any
    epochs: int
    steps_per_epoch: int
    train_size: int
    valid_size: int
    device: str
    history: list[dict] = field(default_factory=list)
    epoch: int = 0
    stop_training: bool = False
    stop_reason: str | None = None


class Callback:
    """Base class with every hook doing nothing; override the ones you need."""

    context: TrainContext

    def set_context(self, context: TrainContext) -> None:
        self.context = context

    def on_fit_start(self, logs: dict) -> None: ...
    def on_epoch_start(self, logs: dict) -> None: ...
    def on_batch_start(self, logs: dict) -> None: ...
    def on_batch_end(self, logs: dict) -> None: ...
    def on_epoch_end(self, logs: dict) -> None: ...
    def on_fit_end(self, logs: dict) -> None: ...


class CallbackList:
    """Calls one hook on every callback that defines it, in order."""

    def __init__(self, callbacks: Iterable[object]) -> None:
        self.callbacks = list(callbacks)
        self._has = {
            hook: [getattr(c, hook) for c in self.callbacks if _defines(c, hook)] for hook in HOOKS
        }

    def wants(self, hook: str) -> bool:
        return bool(self._has[hook])

    def set_context(self, context: TrainContext) -> None:
        for callback in self.callbacks:
            if hasattr(callback, "set_context"):
                callback.set_context(context)

    def __call__(self, hook: str, logs: dict) -> None:
        for method in self._has[hook]:
            method(logs)


def _defines(callback: object, hook: str) -> bool:
    """Whether ``callback`` has ``hook`` of its own, not :class:`Callback`'s empty one.

    A batch hook makes the loop read the loss back at every step, which on a GPU waits for the
    device; a callback that only inherits the empty hook should not cost that.
    """
    method = getattr(callback, hook, None)
    return method is not None and getattr(method, "__func__", None) is not getattr(Callback, hook)


def improved(value: float | None, best: float | None, monitor: str) -> bool:
    """Whether ``value`` beats ``best`` for this metric (accuracy up, loss down)."""
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best if monitor.endswith("accuracy") else value < best


def epoch_line(logs: dict, epochs: int) -> str:
    """The one-line summary of an epoch: ``epoch   3/10  loss 0.2100  acc 0.9300  ...``."""
    return f"epoch {logs['epoch']:>3}/{epochs}  {epoch_figures(logs)}"


def epoch_figures(logs: dict) -> str:
    """An epoch's losses, accuracies, learning rate and time, as its line and bar show them."""
    parts = [
        f"{label} {logs[key]:.4f}"
        for key, label in (
            ("train_loss", "loss"),
            ("train_accuracy", "acc"),
            ("valid_loss", "val_loss"),
            ("valid_accuracy", "val_acc"),
        )
        if logs.get(key) is not None
    ]
    parts += [f"lr {logs['lr']:.3g}", f"{logs['seconds']:.1f}s"]
    return "  ".join(parts)


class EpochLog(Callback):
    """One line per epoch (Keras's ``verbose=2``), on ``stream`` or else the current stdout.

    It has no batch hook, so the loop need not read the loss back from a GPU at every step.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    @property
    def out(self) -> TextIO:
        # Looked up when used, so that a redirection made after construction applies.
        return self.stream or sys.stdout

    def on_epoch_end(self, logs: dict) -> None:
        print(epoch_line(logs, self.context.epochs), file=self.out, flush=True)


class ProgressBar(EpochLog):
    """A bar over each epoch's batches with the running loss and accuracy (Keras's
    ``verbose=1``), closed with the epoch's summary.

    In Jupyter the bar is tqdm's widget, which stays as the epoch's record; on a terminal a text
    bar that the epoch's line replaces; anywhere else (a log, a pipe, a notebook without
    ipywidgets) only the line. See :func:`cnnlab.train.progress.bar_kind`.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.kind = bar_kind(self.out)
        self.bar = None
        self._seen = self._loss = self._hits = 0.0

    def on_epoch_start(self, logs: dict) -> None:
        if self.kind is None:
            return
        self._seen = self._loss = self._hits = 0.0
        description = f"epoch {logs['epoch']}/{self.context.epochs}"
        self.bar = open_bar(self.kind, self.out, self.context.steps_per_epoch, description)

    def on_batch_end(self, logs: dict) -> None:
        if self.bar is None:
            return
        size = logs["size"]
        self._seen += size
        self._loss += logs["loss"] * size
        self._hits += logs.get("accuracy", 0.0) * size
        running = f"loss {self._loss / self._seen:.4f}"
        if "accuracy" in logs:
            running += f"  acc {self._hits / self._seen:.4f}"
        # tqdm redraws at most ten times a second; the postfix waits for the next redraw.
        self.bar.set_postfix_str(running, refresh=False)
        self.bar.update(1)

    def on_epoch_end(self, logs: dict) -> None:
        bar, self.bar = self.bar, None
        if bar is None:
            super().on_epoch_end(logs)
        elif self.kind == "widget":
            # The widget keeps the summary; a printed line as well would show the epoch twice.
            bar.set_postfix_str(epoch_figures(logs), refresh=False)
            bar.close()
        else:
            bar.close()
            super().on_epoch_end(logs)

    def on_fit_end(self, logs: dict) -> None:
        # An epoch cut short (its loss stopped being a number) leaves its bar open: closed
        # here, before the run says why it ended.
        bar, self.bar = self.bar, None
        if bar is not None:
            bar.close()


def progress(verbose: int, stream: TextIO | None = None) -> EpochLog | None:
    """The progress callback of :func:`~cnnlab.train.fit`'s ``verbose``: 0 none, 1 a bar per
    epoch where one can be drawn, 2 (and 1 anywhere else) a line per epoch.

    Only a drawn bar has a batch hook: in a log, a GPU is not made to wait at every step.
    """
    if verbose not in (0, 1, 2):
        raise CnnlabError(
            f"verbose must be 0 (silent), 1 (a bar per epoch) or 2 (a line per epoch), "
            f"not {verbose!r}"
        )
    if verbose == 0:
        return None
    if verbose == 1 and bar_kind(stream or sys.stdout) is not None:
        return ProgressBar(stream)
    return EpochLog(stream)


class CSVLogger(Callback):
    """Appends each epoch to ``history.csv`` as soon as it ends, so a crash loses nothing.

    At the start it rewrites the file from the loop's own history (empty for a new run, the
    checkpoint's epochs for a resumed one), so an epoch logged just before a crash, but never
    checkpointed, cannot appear twice.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _row(self, logs: dict) -> list:
        return ["" if logs.get(col) is None else logs[col] for col in HISTORY_COLUMNS]

    def on_fit_start(self, logs: dict) -> None:
        with naming(self.path), self.path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(HISTORY_COLUMNS)
            writer.writerows(self._row(row) for row in self.context.history)

    def on_epoch_end(self, logs: dict) -> None:
        with naming(self.path), self.path.open("a", newline="") as handle:
            csv.writer(handle).writerow(self._row(logs))


class EarlyStopping(Callback):
    """Stops when ``monitor`` has not improved for ``patience`` epochs."""

    def __init__(self, monitor: str = "valid_loss", patience: int = 5) -> None:
        self.monitor = monitor
        self.patience = patience
        self.best: float | None = None
        self.waited = 0

    def on_epoch_end(self, logs: dict) -> None:
        value = logs.get(self.monitor)
        if improved(value, self.best, self.monitor):
            self.best, self.waited = value, 0
            return
        self.waited += 1
        if self.waited >= self.patience:
            self.context.stop_training = True
            self.context.stop_reason = (
                f"{self.monitor} did not improve for {self.patience} epochs"
                + ("" if self.best is None else f" (best {self.best:.4f})")
            )

    def state_dict(self) -> dict:
        return {"best": self.best, "waited": self.waited}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.waited = state.get("best"), state.get("waited", 0)


class BestWeights(Callback):
    """Keeps a copy of the weights of the best epoch and puts them back when training ends.

    The epoch with the best validation score is the model a user wants to keep and evaluate;
    the last epoch's weights remain in the loop's checkpoint for resuming.
    """

    def __init__(self, monitor: str = "valid_loss", restore: bool = True) -> None:
        self.monitor = monitor
        self.restore = restore
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, logs: dict) -> None:
        value = logs.get(self.monitor)
        if value is None and self.monitor.startswith("valid"):
            value = logs.get(self.monitor.replace("valid", "train"))
        if improved(value, self.best, self.monitor) or self.state is None:
            self.best, self.best_epoch = value, logs["epoch"]
            model = self.context.model
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def on_fit_end(self, logs: dict) -> None:
        if self.restore and self.state is not None:
            self.context.model.load_state_dict(self.state)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")
