"""The training loop: one readable function, with callback hooks.

The whole training set lives in memory as an integer tensor (on the GPU when there is one), so a
batch is one indexing operation and a cast: no ``DataLoader`` workers, no per-image Python. The
model standardizes its own input with the training set's statistics, fitted here.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cnnlab import views
from cnnlab.data.dataset import ImageDataset, Normalizer
from cnnlab.errors import CnnlabError, TrainingDiverged
from cnnlab.evaluate.evaluate import INFERENCE_BATCH, check_compatible
from cnnlab.train.callbacks import (
    HISTORY_COLUMNS,
    BestWeights,
    CallbackList,
    EarlyStopping,
    EpochLog,
    TrainContext,
    progress,
)

if TYPE_CHECKING:
    from cnnlab.data.augment_online import OnTheFly
from cnnlab.train import distributed
from cnnlab.train.batches import (
    AUGMENT_RNG,
    Batches,
    Validation,
    augment_generator,
    augmenter_for,
    prediction_sums,
)
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.train.config import TrainConfig
from cnnlab.train.distributed import Shard, all_sum
from cnnlab.train.freeze import frozen_norms
from cnnlab.train.optim import Schedule, build_optimizer, initialize
from cnnlab.train.state import TrainingState, restore


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
    loss, correct = prediction_sums(model, images, labels, batch_size, label_smoothing)
    n = max(len(images), 1)
    return float(loss) / n, int(correct) / n


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
    augment: OnTheFly | Sequence[str] | None = None,
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
    ``augment`` transforms every batch on the fly: augmentation specs (``["rotate:90,180,270",
    "flip", "noise:0.1"]``, see :mod:`cnnlab.data.augment_online`) or an ``OnTheFly`` engine.
    Parameters that do not require gradients are not trained, and batch-norm layers whose
    parameters are all frozen keep their running statistics too (:func:`frozen_norms`).
    At the end the model holds the weights of its best epoch (lowest validation loss, or the
    config's ``monitor``); the returned :class:`History` says which epoch that was. A loss
    that stops being a number raises :class:`~cnnlab.errors.TrainingDiverged` in the first
    epoch (or with ``keep="last"``, or in several processes); after that, training ends there
    with the best epoch's weights, a warning, and the reason in ``History.stop_reason``.
    ``verbose`` as in Keras: 0 silent, 1 a progress bar per epoch (a widget in Jupyter, a text
    bar on a terminal, one line per epoch anywhere else), 2 one line per epoch; on stdout, and
    not at all when ``callbacks`` hold an :class:`~cnnlab.train.callbacks.EpochLog` of their own.
    Started by torchrun as one of several processes, ``fit`` trains one model with all of them
    (see :mod:`cnnlab.train.distributed`); only the first saves checkpoints and shows progress.
    """
    shown = progress(verbose)  # checks verbose before anything runs
    augmenter = augmenter_for(augment, train.raw())
    # An epoch of on-the-fly augmentation shows as many images as the static set would hold:
    # every image once per variant (see augmenter_for), each time transformed afresh.
    passes = augmenter.variants if augmenter is not None else 1
    config = dataclasses.replace(config or TrainConfig(), **options)
    config = config.resolved(len(train) * passes)
    config.validate()
    group, device = distributed.setup(resolve_device(config.device))
    main = group is None or group.main
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
    augment_rng = augment_generator(config.seed)
    if checkpoint is None:
        # Drawn by the CPU's seeded generator, then moved: a seed gives the same starting
        # weights whether the model came on a GPU or not (and as the CLI, which builds on the
        # CPU, gives them).
        model.to("cpu")
        normalizer = normalizer or fit_normalizer(train, config.normalize)
        model.standardize.set_statistics(normalizer.mean, normalizer.std)
        initialize(model, config.init, config.init_sigma)
        if initial_state is not None:
            _start_from(model, initial_state)
        if group is not None:  # each process its own dropout masks
            torch.manual_seed(config.seed + 7919 * group.rank)
    model.to(device)
    shard = Shard(group.rank, group.world) if group is not None else None
    if shard is not None:
        _check_share(model, config.batch_size, shard.world)

    plain = len(train)
    n = plain * passes
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
    if main and shown is not None and not any(isinstance(c, EpochLog) for c in callbacks):
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
        valid_size=len(valid) if valid is not None else 0,
        device=str(device),
        history=history.rows,
    )
    if checkpoint is not None:
        done, saved = restore(
            checkpoint, state, context, history, best, stopper, group.rank if group else 0
        )
        first_epoch = done + 1
        if AUGMENT_RNG in saved:
            augment_rng.set_state(saved[AUGMENT_RNG])
    # A run stopped early, or resumed after its last epoch, goes straight to the end.
    last_epoch = config.epochs if history.stop_reason is None else first_epoch - 1

    context.epoch = first_epoch
    hooks.set_context(context)
    hooks("on_fit_start", {"epoch": first_epoch})
    track_loss = hooks.wants("on_batch_end") or device.type == "cpu"
    frozen = frozen_norms(model)
    validation = Validation(valid, device, shard) if valid is not None else None
    with (
        _training_layout(model, device) as memory_format,
        deterministic_kernels(device),
        _best_kept_if_diverged(history, best, config, shard is not None) as diverged,
    ):
        batches = Batches(
            train.images, train.labels, device, shard, augmenter, augment_rng, memory_format
        )
        # DistributedDataParallel sums the gradients of the processes; wrapped after the
        # layout change, so its buckets match the parameters' strides.
        network = DistributedDataParallel(model) if group is not None else model
        for epoch in range(first_epoch, last_epoch + 1):
            context.epoch = epoch
            hooks("on_epoch_start", {"epoch": epoch})
            epoch_start = time.perf_counter()
            model.train()
            for norm in frozen:  # see freeze(): frozen features keep their statistics too
                norm.eval()
            order = torch.randperm(n, generator=generator).to(device)
            if passes > 1:
                order %= plain  # each image ``passes`` times, in random places
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            for step in range(steps):
                index = order[
                    step * batch_size : (step + 1) * batch_size if step < steps - 1 else n
                ]
                batch_logs = {"epoch": epoch, "batch": step, "size": len(index)}
                if hooks.wants("on_batch_start"):
                    hooks("on_batch_start", batch_logs)
                x, y = batches.make(index)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.amp):
                    logits = network(x)
                    if shard is None:
                        loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
                        summed = loss.detach().double() * len(index)
                    else:
                        # This process's images' share of the global batch's mean loss, times
                        # the process count, which the averaging of gradients divides out.
                        summed = F.cross_entropy(
                            logits, y, reduction="sum", label_smoothing=config.label_smoothing
                        )
                        loss = summed * (shard.world / len(index))
                        summed = summed.detach().double()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.batch_end()
                loss_sum += summed
                hits = (logits.detach().argmax(1) == y).sum()
                correct += hits
                if track_loss:
                    value = loss.item()  # a GPU sync point: the step must finish first
                    if not math.isfinite(value):
                        _diverged(epoch, step, config)
                    batch_logs["loss"] = value if shard is None else float(summed) / max(len(y), 1)
                    batch_logs["accuracy"] = hits.item() / max(len(y), 1)
                    hooks("on_batch_end", batch_logs)
            if shard is not None:
                loss_sum, correct = all_sum(loss_sum, correct)
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
            if validation is not None:
                logs["valid_loss"], logs["valid_accuracy"] = validation.measure(
                    model, config.label_smoothing
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
            if shard is not None:
                # A callback of the first process (a sweep's pruner) may stop the run: all stop.
                stop = distributed.agree(lambda: history.stop_reason)
                history.stop_reason = stop
            if state is not None:
                generators = {AUGMENT_RNG: augment_rng.get_state()}
                if group is not None:
                    states = distributed.gather_bytes(torch.get_rng_state())
                    generators.update({f"rng.torch.{r}": s for r, s in enumerate(states)})
                    if device.type == "cuda":  # each GPU's own dropout masks
                        states = distributed.gather_bytes(torch.cuda.get_rng_state(device))
                        generators.update({f"rng.cuda.{r}": s for r, s in enumerate(states)})
                if main:
                    state.save(context, history, best, stopper, generators)
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
    if diverged:  # said after the callbacks closed their bars and logs
        message = f"{diverged[0]}; the run ends with its best epoch, {best.best_epoch}"
        warnings.warn(message, stacklevel=2)
    last = history.rows[-1]["epoch"] if history.rows else None
    history.kept_epoch = history.best_epoch if config.keep == "best" else last
    return history


def _check_share(model: nn.Module, batch_size: int, processes: int) -> None:
    """Batch norm in a data-parallel run normalizes each process's share of a batch: about
    ``batch_size / processes`` images, which must not come down to one (no statistics)."""
    norms = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if norms and batch_size < 16 * processes:
        raise CnnlabError(
            f"--batch-size {batch_size}: with batch norm, each of the {processes} processes "
            f"normalizes its share of a batch; give --batch-size {16 * processes} or more"
        )


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


@contextmanager
def _best_kept_if_diverged(
    history: History, best: BestWeights, config: TrainConfig, several: bool
) -> Iterator[list[TrainingDiverged]]:
    """A run whose loss stops being a number after an epoch worth keeping ends there.

    With ``keep="best"`` the weights of the best epoch so far are safe in ``best``: the run
    stops as early stopping would, keeps them, and says why (the history's stop reason, and a
    warning once the fit ends: the error is put into the list this yields), rather than losing
    every epoch it trained. A run that diverges before its first epoch ended, that keeps its
    last epoch, or that trains in several processes (which must all stop together) ends with
    the error.
    """
    caught: list[TrainingDiverged] = []
    try:
        yield caught
    except TrainingDiverged as error:
        if several or config.keep != "best" or best.state is None:
            raise
        history.stop_reason = str(error)
        caught.append(error)


@contextmanager
def deterministic_kernels(device: torch.device) -> Iterator[None]:
    """cuDNN's deterministic algorithms while training on a GPU; its settings come back after.

    A resumed run must repeat the uninterrupted one bit for bit. cuDNN's fastest algorithms
    for a convolution's weight gradient add with atomic operations, in whatever order the
    threads finish, and benchmark mode may pick another algorithm in another process. The
    deterministic ones cost little for networks of this size. PyTorch's other operators in
    the loop (pooling with 2x2 windows, cross-entropy, index_select) are deterministic on CUDA.
    """
    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    before = cudnn.deterministic, cudnn.benchmark
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark = before


def _diverged(epoch: int, step: int, config: TrainConfig) -> None:
    raise TrainingDiverged(
        f"training diverged at epoch {epoch}, batch {step + 1}: the loss is not a number; "
        f"lower the learning rate (--lr, now {config.learning_rate:g}) or change --init"
    )
