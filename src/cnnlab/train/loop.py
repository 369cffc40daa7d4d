"""The training loop: one readable function, with callback hooks.

The whole training set lives in memory as an integer tensor (on the GPU when there is one), so a
batch is one indexing operation and a cast: no ``DataLoader`` workers, no per-image Python. The
model standardizes its own input with the training set's statistics, fitted here.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab import views
from cnnlab.data.dataset import ImageDataset, Normalizer
from cnnlab.errors import CnnlabError, TrainingDiverged
from cnnlab.evaluate.evaluate import INFERENCE_BATCH, check_compatible
from cnnlab.runs.folder import target_of
from cnnlab.train.callbacks import (
    HISTORY_COLUMNS,
    BestWeights,
    CallbackList,
    EarlyStopping,
    EpochLog,
    TrainContext,
    progress,
)
from cnnlab.train.checkpoint import (
    config_digest,
    load_checkpoint,
    optimizer_from_parts,
    optimizer_to_parts,
    prefixed,
    save_checkpoint,
)
from cnnlab.train.config import TrainConfig
from cnnlab.train.freeze import frozen_norms
from cnnlab.train.optim import Schedule, build_optimizer, initialize


@dataclass
class History:
    """What :func:`fit` returns: one row per epoch, and how training ended."""

    rows: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    stop_reason: str | None = None
    #: The epoch whose weights the model holds at the end: the best one, or with
    #: ``keep="last"`` the last one.
    kept_epoch: int | None = None
    seconds: float = 0.0

    def column(self, name: str) -> list:
        return [row.get(name) for row in self.rows]

    def __repr__(self) -> str:
        """One line: ``History(12 epochs, best epoch 9: valid accuracy 98.1%, 4.2 s)``."""
        parts = [f"{len(self.rows)} epoch" + ("" if len(self.rows) == 1 else "s")]
        best = next((r for r in self.rows if r.get("epoch") == self.best_epoch), None)
        if best is not None:
            subset = "valid" if best.get("valid_accuracy") is not None else "train"
            parts.append(
                f"best epoch {self.best_epoch}: {subset} accuracy {best[f'{subset}_accuracy']:.1%}"
            )
        if self.stop_reason:
            parts.append(f"stopped: {self.stop_reason}")
        parts.append(f"{self.seconds:.1f} s")
        return f"History({', '.join(parts)})"

    def _repr_html_(self) -> str:
        """Jupyter's view: the learning curves and the table of epochs."""
        return views.render("history.html", self)

    def plot(self):
        """The learning curves (loss and accuracy per epoch, best epoch marked) as a Figure."""
        return views.render("history.figure", self)


def fit_normalizer(train: ImageDataset, mode: str = "zscore") -> Normalizer:
    """How the model scales its input: ``zscore`` with the training set's per-channel mean and
    standard deviation; ``unit`` to [0, 1] by the bit depth (x / 255 for 8-bit images, as the
    Keras notebooks do; float images by the training set's range); ``none`` leaves it raw."""
    channels = train.channels
    if mode == "zscore":
        return Normalizer.fit(train)
    if mode == "none":
        return Normalizer((0.0,) * channels, (1.0,) * channels)
    images = train.raw().images
    if images.is_floating_point():
        low = [float(images[:, c].min()) for c in range(channels)]
        high = [float(images[:, c].max()) for c in range(channels)]
        return Normalizer(
            tuple(low), tuple(max(h - lo, 1e-12) for lo, h in zip(low, high, strict=True))
        )
    return Normalizer((0.0,) * channels, (float(2**train.bit_depth - 1),) * channels)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when PyTorch sees a GPU, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise CnnlabError(f"--device {name!r} is not a device; use auto, cpu or cuda") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CnnlabError("--device cuda: PyTorch sees no GPU here; use --device cpu or auto")
    return device


@torch.inference_mode()
def loss_and_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = INFERENCE_BATCH,
    label_smoothing: float = 0.0,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy in eval mode, in large batches.

    The loss is smoothed as the training loss is, so that the two curves compare.
    """
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), dtype=torch.float64, device=images.device)
    correct = torch.zeros((), dtype=torch.int64, device=images.device)
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].float()
        y = labels[start : start + batch_size]
        logits = model(x)
        loss = F.cross_entropy(logits, y, reduction="sum", label_smoothing=label_smoothing)
        total_loss += loss.double()
        correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    n = max(len(images), 1)
    return float(total_loss) / n, int(correct) / n


class TrainingState:
    """Writes the whole training state after every epoch, so a run can resume from it.

    The last epoch's weights, the best epoch's weights and all the bookkeeping go into one file
    (see :mod:`cnnlab.train.checkpoint`), tied to the configuration by a digest.
    """

    def __init__(self, folder: Path, config: TrainConfig) -> None:
        self.folder = folder
        self.digest = _digest(config)

    def save(
        self,
        loop: TrainContext,
        history: History,
        best: BestWeights,
        stopper: EarlyStopping | None,
    ) -> None:
        model, optimizer = loop.model, loop.optimizer
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        tensors.update({f"best.{k}": v for k, v in (best.state or {}).items()})
        optim_tensors, optim_meta = optimizer_to_parts(optimizer.state_dict())
        tensors.update(optim_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.shuffle"] = loop.generator.get_state()
        if loop.device.startswith("cuda"):
            # Dropout on a GPU draws from the device's own generator.
            tensors["rng.cuda"] = torch.cuda.get_rng_state(loop.device)
        meta = {
            "epoch": loop.epoch,
            "planned_epochs": loop.epochs,
            "config_digest": self.digest,
            "optimizer": optim_meta,
            "schedule": loop.schedule.state_dict(),
            "history": history.rows,
            "stop_reason": history.stop_reason,
            "best": best.state_dict(),
            "early_stopping": stopper.state_dict() if stopper else None,
        }
        save_checkpoint(self.folder, tensors, meta)


def _digest(config: TrainConfig) -> str:
    # Epochs may change when a finished run is extended; everything else must match.
    described = config.to_dict()
    described.pop("epochs")
    return config_digest(described)


def fit(
    model: nn.Module,
    train: ImageDataset,
    valid: ImageDataset | None = None,
    config: TrainConfig | None = None,
    callbacks: Sequence[object] = (),
    *,
    normalizer: Normalizer | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    initial_state: Mapping[str, torch.Tensor] | None = None,
    verbose: int = 1,
    **options: object,
) -> History:
    """Train ``model`` on ``train``, validating on ``valid`` after every epoch.

    ``config`` holds the hyperparameters; keyword ``options`` override its fields
    (``fit(model, train, valid, epochs=5, optimizer="sgd")``). The model's input
    standardization is fitted on ``train`` (or taken from ``normalizer``, e.g. fitted before
    augmentation). With ``checkpoint_dir`` the training state is saved there after every epoch,
    and ``resume=True`` continues from it, reproducing the uninterrupted run bit for bit (same
    seed, same thread count); a state saved after the last epoch only restores the best weights,
    and with no state saved yet, training starts from the beginning.
    ``initial_state`` holds weights to start from instead of the initializer's (a fine-tuning
    source's); the tensors it lacks, such as a re-made head, keep their seeded initialization.
    Parameters that do not require gradients are not trained, and batch-norm layers whose
    parameters are all frozen keep their running statistics too (:func:`frozen_norms`).
    At the end the model holds the weights of its best epoch (lowest validation loss, or the
    config's ``monitor``); the returned :class:`History` says which epoch that was.
    ``verbose`` as in Keras: 0 silent, 1 a progress bar per epoch (a widget in Jupyter, a text
    bar on a terminal, one line per epoch anywhere else), 2 one line per epoch; on stdout, and
    not at all when ``callbacks`` hold an :class:`~cnnlab.train.callbacks.EpochLog` of their own.
    """
    shown = progress(verbose)  # checks verbose before anything runs
    config = dataclasses.replace(config or TrainConfig(), **options).resolved(len(train))
    config.validate()
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    check_compatible(model, train, "train")
    if valid is not None and len(valid):
        check_compatible(model, valid, "validate")
    train, valid = train.raw(), valid.raw() if valid is not None else None
    if valid is not None and len(valid) == 0:
        valid = None

    if resume and checkpoint_dir is None:
        raise CnnlabError("resume needs the run folder that holds the checkpoints")
    checkpoint = load_checkpoint(Path(checkpoint_dir)) if resume else None
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    if checkpoint is None:
        normalizer = normalizer or fit_normalizer(train, config.normalize)
        model.standardize.set_statistics(normalizer.mean, normalizer.std)
        initialize(model, config.init, config.init_sigma)
        if initial_state is not None:
            _start_from(model, initial_state)
    model.to(device)
    x_train, y_train = train.images.to(device), train.labels.to(device)
    x_valid = valid.images.to(device) if valid is not None else None
    y_valid = valid.labels.to(device) if valid is not None else None

    n = len(x_train)
    batch_size = min(config.batch_size, n)
    # A last batch of one sample would break batch norm; fold it into the previous batch.
    steps = max(1, n // batch_size if n % batch_size < 2 else n // batch_size + 1)
    optimizer = build_optimizer(model, config)
    # Without a validation set, the best epoch, early stopping and reduce-on-plateau all follow
    # the same metric measured on the training set instead.
    monitor = config.monitor if valid is not None else config.monitor.replace("valid_", "train_")
    schedule = Schedule(optimizer, config, steps, monitor)
    best = BestWeights(monitor, restore=config.keep == "best")
    stopper = EarlyStopping(monitor, config.patience) if config.patience else None
    if shown is not None and not any(isinstance(c, EpochLog) for c in callbacks):
        callbacks = [*callbacks, shown]
    hooks = CallbackList([best, *([stopper] if stopper else []), *callbacks])
    state = TrainingState(Path(checkpoint_dir), config) if checkpoint_dir else None
    history = History()
    first_epoch = 1
    context = TrainContext(
        model=model,
        optimizer=optimizer,
        schedule=schedule,
        generator=generator,
        config=config,
        epochs=config.epochs,
        steps_per_epoch=steps,
        train_size=n,
        valid_size=len(x_valid) if x_valid is not None else 0,
        device=str(device),
        history=history.rows,
    )
    if checkpoint is not None:
        first_epoch = _restore(checkpoint, state, context, history, best, stopper) + 1
    # A run stopped early, or resumed after its last epoch, goes straight to the end.
    last_epoch = config.epochs if history.stop_reason is None else first_epoch - 1

    context.epoch = first_epoch
    hooks.set_context(context)
    hooks("on_fit_start", {"epoch": first_epoch})
    track_loss = hooks.wants("on_batch_end") or device.type == "cpu"
    frozen = frozen_norms(model)
    with _training_layout(model, device) as memory_format:
        for epoch in range(first_epoch, last_epoch + 1):
            context.epoch = epoch
            hooks("on_epoch_start", {"epoch": epoch})
            epoch_start = time.perf_counter()
            model.train()
            for norm in frozen:  # see freeze(): frozen features keep their statistics too
                norm.eval()
            order = torch.randperm(n, generator=generator).to(device)
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            for step in range(steps):
                index = order[
                    step * batch_size : (step + 1) * batch_size if step < steps - 1 else n
                ]
                batch_logs = {"epoch": epoch, "batch": step, "size": len(index)}
                if hooks.wants("on_batch_start"):
                    hooks("on_batch_start", batch_logs)
                x = x_train[index].float().contiguous(memory_format=memory_format)
                y = y_train[index]
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.amp):
                    logits = model(x)
                    loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.batch_end()
                loss_sum += loss.detach().double() * len(index)
                hits = (logits.detach().argmax(1) == y).sum()
                correct += hits
                if track_loss:
                    value = loss.item()  # a GPU sync point: the step must finish first
                    if not math.isfinite(value):
                        _diverged(epoch, step, config)
                    batch_logs["loss"] = value
                    batch_logs["accuracy"] = hits.item() / len(index)
                    hooks("on_batch_end", batch_logs)
            train_loss, train_accuracy = float(loss_sum) / n, int(correct) / n
            if not math.isfinite(train_loss):
                _diverged(epoch, steps - 1, config)
            logs = {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_accuracy": train_accuracy,
                "valid_loss": None,
                "valid_accuracy": None,
                "lr": optimizer.param_groups[0]["lr"],
            }
            if x_valid is not None:
                logs["valid_loss"], logs["valid_accuracy"] = loss_and_accuracy(
                    model, x_valid, y_valid, label_smoothing=config.label_smoothing
                )
            logs["seconds"] = time.perf_counter() - epoch_start
            schedule.epoch_end(logs)
            history.rows.append({col: logs[col] for col in HISTORY_COLUMNS})
            hooks("on_epoch_end", logs)
            history.best_epoch = best.best_epoch
            if "stop_training" in logs:
                raise CnnlabError(
                    "a callback set logs['stop_training']: logs hold only numbers; stop with "
                    "self.context.stop_training = True"
                )
            if context.stop_training:
                history.stop_reason = context.stop_reason or "stopped by a callback"
            if state is not None:
                state.save(context, history, best, stopper)
            if history.stop_reason is not None:
                break
    # Epoch times, resumed ones included: the run's training time, however often it stopped.
    history.seconds = sum(row["seconds"] for row in history.rows)
    hooks(
        "on_fit_end",
        {
            "epochs_run": len(history.rows),
            "best_epoch": best.best_epoch,
            "seconds": history.seconds,
        },
    )
    history.best_epoch = best.best_epoch
    last = history.rows[-1]["epoch"] if history.rows else None
    history.kept_epoch = history.best_epoch if config.keep == "best" else last
    return history


def _start_from(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Loads ``state`` into ``model``; only tensors of the model's own may be left out."""
    missing, unexpected = model.load_state_dict(dict(state), strict=False)
    if unexpected:
        raise CnnlabError(f"the starting weights hold {unexpected[0]}, which the model lacks")
    if missing and not all(key.startswith("head.") for key in missing):
        raise CnnlabError(f"the starting weights lack {missing[0]}; only the head may be re-made")


@contextmanager
def _training_layout(model: nn.Module, device: torch.device) -> Iterator[torch.memory_format]:
    """Channels-last while training on a CPU, for models that measured faster with it.

    See ``ImageClassifier.cpu_channels_last``. The parameters keep their identity (only their
    storage is rearranged), so the optimizer built before is unaffected; afterwards, even after
    an error, the model's tensors are ordinary contiguous ones again.
    """
    channels_last = device.type == "cpu" and getattr(model, "cpu_channels_last", False)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    try:
        yield memory_format
    finally:
        model.to(memory_format=torch.contiguous_format)


def _diverged(epoch: int, step: int, config: TrainConfig) -> None:
    raise TrainingDiverged(
        f"training diverged at epoch {epoch}, batch {step + 1}: the loss is not a number; "
        f"lower the learning rate (--lr, now {config.learning_rate:g}) or change --init"
    )


def _restore(
    checkpoint: tuple[dict[str, torch.Tensor], dict],
    state: TrainingState,
    loop: TrainContext,
    history: History,
    best: BestWeights,
    stopper: EarlyStopping | None,
) -> int:
    """Loads a saved training state into the loop's objects; returns the epoch it ended."""
    tensors, meta = checkpoint
    config, where = loop.config, target_of(state.folder.parent)
    if meta.get("config_digest") != state.digest:
        raise CnnlabError(
            f"{state.folder}: the checkpoint was saved with other training options than "
            f"{where} holds now; it cannot be resumed, start a new run"
        )
    planned = meta.get("planned_epochs", config.epochs)
    if config.schedule in ("cosine", "onecycle") and planned != config.epochs:
        raise CnnlabError(
            f"{where}: its {config.schedule} schedule was planned for {planned} epochs "
            f"and cannot be stretched to {config.epochs}; resume without --epochs, or start a "
            "new run"
        )
    if int(meta["epoch"]) > config.epochs:
        raise CnnlabError(
            f"{where}: {meta['epoch']} epochs are trained already; --epochs cannot be fewer"
        )
    loop.model.load_state_dict(prefixed(tensors, "model."))
    loop.optimizer.load_state_dict(optimizer_from_parts(tensors, meta["optimizer"]))
    loop.schedule.load_state_dict(meta["schedule"])
    torch.set_rng_state(tensors["rng.torch"])
    loop.generator.set_state(tensors["rng.shuffle"])
    if "rng.cuda" in tensors and loop.device.startswith("cuda"):
        torch.cuda.set_rng_state(tensors["rng.cuda"], loop.device)
    history.rows.extend(meta["history"])
    history.stop_reason = meta.get("stop_reason")
    best.load_state_dict(meta.get("best") or {})
    best.state = prefixed(tensors, "best.") or None
    history.best_epoch = best.best_epoch
    if stopper is not None and meta.get("early_stopping"):
        stopper.load_state_dict(meta["early_stopping"])
    return int(meta["epoch"])
