"""Fixtures shared by the whole suite: small slices of the bundled MNIST, made once."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def mnist_small():
    """1,000 training and 500 test digits: enough to learn, fast enough for unit tests."""
    from cnnlab.data.mnist import mnist

    train, test = mnist()
    return train.select(range(1000)), test.select(range(500))
