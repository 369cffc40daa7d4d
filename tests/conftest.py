"""Fixtures shared by the whole suite: small slices of the bundled MNIST, made once, and a
quiet way to train the small runs that other tests read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cnnlab.train.run import RunConfig, run_training

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def mnist_small():
    """1,000 training and 500 test digits: enough to learn, fast enough for unit tests."""
    from cnnlab.data.mnist import mnist

    train, test = mnist()
    return train.select(range(1000)), test.select(range(500))


@pytest.fixture(scope="session")
def train_quietly() -> Callable[..., Path]:
    """``train_quietly(data, out, **options) -> run folder``: a small run as the suite trains
    them, on one thread, without output or report unless ``options`` (``cnnlab train``'s, as
    in a config file) say otherwise.

    A run sets PyTorch's thread count for the whole process; it is put back afterwards, so
    that the tests that follow keep the suite's two threads.
    """

    def train(data: Path, out: Path, **options: object) -> Path:
        config = RunConfig.from_options(
            {
                "data": [str(data)],
                "out": str(out),
                "threads": 1,
                "quiet": True,
                "report": False,
                **options,
            }
        )
        threads = torch.get_num_threads()
        try:
            return run_training(config)
        finally:
            torch.set_num_threads(threads)

    return train


@pytest.fixture(scope="session")
def poison_at() -> type:
    """``poison_at(epoch)``: a callback after which the loss is no longer a number, from that
    epoch's first batch on (its head's weights become NaN): a run that diverges on cue."""
    from cnnlab.train import Callback

    class PoisonAt(Callback):
        def __init__(self, epoch: int) -> None:
            self.epoch = epoch

        def on_batch_start(self, logs):
            if logs["epoch"] == self.epoch:
                with torch.no_grad():
                    self.context.model.head.weight.fill_(float("nan"))

    return PoisonAt
