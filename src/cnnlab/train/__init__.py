"""Training: the loop, its callbacks, its configuration and the run folder."""

from __future__ import annotations

from cnnlab.train.callbacks import Callback, CSVLogger, EarlyStopping, ProgressBar, TrainContext
from cnnlab.train.config import TrainConfig
from cnnlab.train.freeze import freeze
from cnnlab.train.loop import History, fit

__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "History",
    "ProgressBar",
    "TrainConfig",
    "TrainContext",
    "fit",
    "freeze",
]
