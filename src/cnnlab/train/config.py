"""Every training knob in one typed, validated record.

The CLI flags, a TOML ``--config`` file and the Python API all end in a :class:`TrainConfig`, so
one set of names and one set of checks serves all three, and ``config.json`` in a run folder is
simply this record written out.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from cnnlab.errors import CnnlabError
from cnnlab.train.flags import TRAINING as T
from cnnlab.train.flags import flag

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adadelta")
INITIALIZERS = ("default", "normal", "xavier", "kaiming")
SCHEDULES = ("constant", "step", "cosine", "onecycle", "plateau")
MONITORS = ("valid_loss", "valid_accuracy", "train_loss", "train_accuracy")
KEEPS = ("best", "last")
NORMALIZATIONS = ("zscore", "unit", "none")
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3, "adadelta": 1.0}
# Epochs and batch size follow the size of the training set unless given: enough optimizer
# steps to converge on a few hundred microscopy crops, and three passes over MNIST.
AUTO_IMAGE_PASSES = 150_000
MAX_AUTO_EPOCHS = 100


@dataclass
class TrainConfig:
    """Hyperparameters of one training run.

    The defaults are the general recipe, which trains LeNet-5 to 99.2% on MNIST in three epochs:
    SGD with Nesterov momentum under a one-cycle schedule. (``cnnlab train`` with no options
    uses the two-epoch recipe of :mod:`cnnlab.train.recipes` instead.) ``epochs=None`` and
    ``batch_size=None`` adapt to the training set (see :meth:`resolved`). ``lr=None`` takes a
    rate that suits the optimizer (``DEFAULT_LR``), doubled for the one-cycle schedule, whose
    warm-up lets it tolerate a higher peak. ``nesterov`` applies to SGD with momentum only.
    ``amp`` runs the forward pass under bfloat16 autocast (no loss scaling needed, unlike
    float16). ``init_sigma`` is the standard deviation of the ``normal`` initializer (the MXNet
    course uses 0.1). ``step_size`` and ``gamma`` shape the ``step`` schedule and ``gamma`` also
    the ``plateau`` one. ``patience`` stops training when ``monitor`` has not improved for that
    many epochs (None: never stop early).
    """

    epochs: int | None = field(
        default=None,
        metadata=flag(
            "passes over the training set [about 150,000 images' worth, 3-100; the main job's "
            "recipe: 2]",
            T,
        ),
    )
    batch_size: int | None = field(
        default=None, metadata=flag("images per optimizer step [128, fewer for small sets]", T)
    )
    optimizer: str = field(default="sgd", metadata=flag("optimizer", T, choices=OPTIMIZERS))
    lr: float | None = field(
        default=None,
        metadata=flag(
            "learning rate, the peak rate for onecycle [sgd 0.05 (0.1 with onecycle; the main "
            "job's recipe: 0.2), adam, "
            "adamw and rmsprop 0.001, adadelta 1.0 as in PyTorch; Keras' Adadelta() uses "
            "0.001: pass --lr 0.001 to reproduce a Keras recipe as written]",
            T,
        ),
    )
    momentum: float = field(
        default=0.9, metadata=flag("momentum of sgd and rmsprop (Keras' RMSprop: 0)", T)
    )
    nesterov: bool = field(default=True, metadata=flag("Nesterov momentum for sgd", T, both=True))
    weight_decay: float = field(default=0.0, metadata=flag("weight decay", T, name="--wd"))
    init: str = field(
        default="default",
        metadata=flag(
            "weight initialization (normal: MXNet's normal(sigma))", T, choices=INITIALIZERS
        ),
    )
    init_sigma: float = field(
        default=0.01,
        metadata=flag("standard deviation of --init normal (the MXNet course: 0.1)", T),
    )
    schedule: str = field(
        default="onecycle", metadata=flag("learning-rate schedule", T, choices=SCHEDULES)
    )
    step_size: int = field(default=5, metadata=flag("epochs between decays of --schedule step", T))
    gamma: float = field(
        default=0.1, metadata=flag("decay factor of --schedule step and plateau", T)
    )
    label_smoothing: float = field(
        default=0.0,
        metadata=flag(
            "label smoothing of the loss, training and validation [0; the main job's recipe: 0.2]",
            T,
        ),
    )
    patience: int | None = field(
        default=None, metadata=flag("stop after this many epochs without improvement [never]", T)
    )
    monitor: str = field(
        default="valid_loss",
        metadata=flag(
            "the metric that picks the best epoch and drives --patience and plateau (without a "
            "validation set, its train_ twin)",
            T,
            choices=MONITORS,
        ),
    )
    keep: str = field(
        default="best",
        metadata=flag(
            "which epoch's weights the run keeps: the best by --monitor, or the last (as MXNet)",
            T,
            choices=KEEPS,
        ),
    )
    normalize: str = field(
        default="zscore",
        metadata=flag(
            "input scaling: zscore with the training set's statistics, unit to [0, 1] by the "
            "bit depth (as the Keras notebooks), or none",
            T,
            choices=NORMALIZATIONS,
        ),
    )
    seed: int = field(default=0, metadata=flag("the same seed repeats a CPU run exactly", T))
    device: str = field(
        default="auto", metadata=flag("auto (CUDA when present), cpu or cuda", T, choices=DEVICES)
    )
    threads: int | None = field(
        default=None,
        metadata=flag(
            "CPU threads for PyTorch [PyTorch's choice: one per core]; fewer when other work "
            "keeps cores busy",
            T,
        ),
    )
    amp: bool = field(
        default=False,
        metadata=flag("mixed precision (bfloat16 autocast; pays off on GPUs, rarely on CPUs)", T),
    )

    def __post_init__(self) -> None:
        self.validate()

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return DEFAULT_LR[self.optimizer] * (2 if self.schedule == "onecycle" else 1)

    def resolved(self, train_size: int) -> TrainConfig:
        """This config with the automatic epochs and batch size filled in for ``train_size``.

        Batches of 128 (fewer for small sets, so that an epoch still has about 20 steps) and
        enough epochs to see about 150,000 images, between 3 and 100.
        """
        batch_size = self.batch_size or max(8, min(128, train_size // 20))
        epochs = self.epochs or max(
            3, min(MAX_AUTO_EPOCHS, -(-AUTO_IMAGE_PASSES // max(train_size, 1)))
        )
        return dataclasses.replace(self, epochs=epochs, batch_size=batch_size)

    def validate(self) -> None:
        def choice(option: str, value: str, allowed: tuple[str, ...]) -> None:
            if value not in allowed:
                raise CnnlabError(
                    f"--{option} {value!r} is unknown; choose one of {', '.join(allowed)}"
                )

        choice("optimizer", self.optimizer, OPTIMIZERS)
        choice("init", self.init, INITIALIZERS)
        choice("schedule", self.schedule, SCHEDULES)
        choice("monitor", self.monitor, MONITORS)
        choice("keep", self.keep, KEEPS)
        choice("normalize", self.normalize, NORMALIZATIONS)
        numbers = {
            "lr": self.lr,
            "momentum": self.momentum,
            "wd": self.weight_decay,
            "gamma": self.gamma,
            "label-smoothing": self.label_smoothing,
            "init-sigma": self.init_sigma,
        }
        for option, value in numbers.items():
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise CnnlabError(f"--{option} must be a number, not {value!r}")
        for option, value in {
            "seed": self.seed,
            "patience": self.patience,
            "threads": self.threads,
        }.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise CnnlabError(f"--{option} must be an integer, not {value!r}")
        for option, value in {"nesterov": self.nesterov, "amp": self.amp}.items():
            if not isinstance(value, bool):
                raise CnnlabError(f"--{option} must be true or false, not {value!r}")
        for option, value in numbers.items():
            if value is not None and not math.isfinite(value):
                raise CnnlabError(f"--{option} must be a finite number, not {value}")
        if self.seed < 0:
            raise CnnlabError(f"--seed must be 0 or more, not {self.seed}")
        if self.threads is not None and self.threads < 1:
            raise CnnlabError(f"--threads must be at least 1, not {self.threads}")
        positive = {
            "epochs": self.epochs,
            "batch-size": self.batch_size,
            "step-size": self.step_size,
        }
        for option, value in positive.items():
            if value is None and option != "step-size":
                continue
            if not isinstance(value, int) or value < 1:
                raise CnnlabError(f"--{option} must be a positive integer, not {value!r}")
        if self.lr is not None and not self.lr > 0:
            raise CnnlabError(f"--lr must be positive, not {self.lr}")
        if not 0 <= self.momentum < 1:
            raise CnnlabError(f"--momentum must be in [0, 1), not {self.momentum}")
        if self.weight_decay < 0:
            raise CnnlabError(f"--wd must be >= 0, not {self.weight_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise CnnlabError(f"--label-smoothing must be in [0, 1), not {self.label_smoothing}")
        if not 0 < self.gamma <= 1:
            raise CnnlabError(f"--gamma must be in (0, 1], not {self.gamma}")
        if not self.init_sigma > 0:
            raise CnnlabError(f"--init-sigma must be positive, not {self.init_sigma}")
        if self.patience is not None and self.patience < 1:
            raise CnnlabError(f"--patience must be a positive integer, not {self.patience}")

    def idle(self, given: Iterable[str]) -> list[str]:
        """A line for each of the ``given`` options (field names) that this config leaves
        without effect, naming what it would shape: for a warning rather than silence, since
        ``--step-size 3`` with the default one-cycle schedule looks like it did something."""
        sgd_with_momentum = self.optimizer == "sgd" and self.momentum > 0
        uses = {
            "step_size": (
                f"--schedule {self.schedule}",
                "--schedule step",
                self.schedule == "step",
            ),
            "gamma": (
                f"--schedule {self.schedule}",
                "--schedule step and plateau",
                self.schedule in ("step", "plateau"),
            ),
            "momentum": (
                f"--optimizer {self.optimizer}",
                "--optimizer sgd and rmsprop",
                self.optimizer in ("sgd", "rmsprop"),
            ),
            "nesterov": (
                f"--optimizer {self.optimizer}",
                "--optimizer sgd with --momentum above 0",
                sgd_with_momentum,
            ),
            "init_sigma": (f"--init {self.init}", "--init normal", self.init == "normal"),
        }
        given = set(given)
        return [
            f"--{name.replace('_', '-')} has no effect with {now}: it shapes {where} only"
            for name, (now, where, used) in uses.items()
            if name in given and not used
        ]

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["lr"] = self.learning_rate
        data["nesterov"] = self.nesterov and self.optimizer == "sgd" and self.momentum > 0
        return data
