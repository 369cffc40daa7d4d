"""Optimizers, learning-rate schedules and weight initializers, chosen by name.

Thin on purpose: each name maps onto the PyTorch class a user would otherwise write by hand, so
the course's recipes (SGD with momentum 0.9, MXNet's ``normal(0.1)`` initializer, ...) read the
same here as in their own material.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnlab.train.config import TrainConfig


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named in ``config``, over every trainable parameter of ``model``."""
    params = [p for p in model.parameters() if p.requires_grad]
    lr, wd = config.learning_rate, config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
            weight_decay=wd,
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=config.momentum, weight_decay=wd)
    return torch.optim.Adadelta(params, lr=lr, weight_decay=wd)


class Schedule:
    """A learning-rate schedule stepped per batch or per epoch, as its kind requires.

    Cosine and one-cycle follow every optimizer step, so short runs get their full shape;
    step decay and reduce-on-plateau act at epoch ends, the latter on the monitored metric.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        config: TrainConfig,
        steps_per_epoch: int,
        monitor: str | None = None,
    ) -> None:
        self.kind = config.schedule
        self.monitor = monitor or config.monitor
        total = config.epochs * steps_per_epoch
        self.scheduler: object | None
        if self.kind == "step":
            self.scheduler = torch.optim.lr_scheduler.StepLR(
                optimizer, step_size=config.step_size, gamma=config.gamma
            )
        elif self.kind == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        elif self.kind == "onecycle":
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=config.learning_rate,
                total_steps=total,
                pct_start=_warm_up_share(total),
                cycle_momentum=config.optimizer in ("sgd", "rmsprop") and config.momentum > 0,
                base_momentum=min(0.85, config.momentum),
                max_momentum=max(0.85, config.momentum),
            )
        elif self.kind == "plateau":
            mode = "max" if self.monitor.endswith("accuracy") else "min"
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode=mode, factor=config.gamma if config.gamma < 1 else 0.1, patience=2
            )
        else:
            self.scheduler = None

    def batch_end(self) -> None:
        if self.kind in ("cosine", "onecycle"):
            self.scheduler.step()

    def epoch_end(self, logs: dict) -> None:
        if self.kind == "step":
            self.scheduler.step()
        elif self.kind == "plateau":
            value = logs.get(self.monitor)
            if value is not None and math.isfinite(value):
                self.scheduler.step(value)

    def state_dict(self) -> dict:
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scheduler is not None and state:
            self.scheduler.load_state_dict(state)


def _warm_up_share(total_steps: int, share: float = 0.25) -> float:
    """The one-cycle warm-up share, moved off the values where PyTorch divides by zero.

    ``OneCycleLR`` ends its warm-up at step ``share * total - 1`` and divides by that length:
    a warm-up of exactly one step (4 steps in all at 25%) crashes it, and so does an annealing
    phase of zero steps. Half a step more warm-up keeps both phases a real length.
    """
    warm_up = share * total_steps
    if warm_up == 1 or warm_up >= total_steps:
        return min(1.5, total_steps - 0.5) / total_steps
    return share


def initialize(model: nn.Module, method: str, sigma: float = 0.01) -> None:
    """Re-initialize every convolution and dense layer's weights; biases start at zero.

    ``default`` is PyTorch's own initialization, redrawn here so that the training seed, not
    whatever ran before the model was built, decides the starting weights. Batch-norm layers
    keep their unit scale and zero shift: that is what makes them work.
    """
    if method == "default":
        for module in model.modules():
            if isinstance(module, nn.Conv2d | nn.Linear | nn.BatchNorm2d | nn.BatchNorm1d):
                module.reset_parameters()
        return
    for module in model.modules():
        if not isinstance(module, nn.Conv2d | nn.Linear):
            continue
        if method == "normal":
            nn.init.normal_(module.weight, mean=0.0, std=sigma)
        elif method == "xavier":
            nn.init.xavier_uniform_(module.weight)
        elif method == "kaiming":
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        else:
            raise ValueError(f"unknown initializer {method!r}")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
