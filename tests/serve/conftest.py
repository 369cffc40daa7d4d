"""Finished runs to serve, trained once per test session, shared by the serve tests.

Fixtures (engineers B and C: use these names):

- ``digits_folder``: class folders ``0`` .. ``9`` of 8-bit 28x28 gray PNG MNIST digits (the
  first :data:`PER_CLASS` training digits of each class); read-only.
- ``lenet_run``: a finished LeNet-5 run folder trained on ``digits_folder`` (split 80,10,10, so
  its ``split.csv`` lists real files in valid and test); ``digits`` is true for it. Read-only:
  a test that writes (``relabel.csv``) takes ``writable_run``.
- ``mlp_run``: the same data and split with the ``mlp`` network, for the model picker.
- ``bacteria_run``: LeNet-5 on synthetic 16-bit TIFF bacteria crops (4 classes, 28x28 input,
  bit depth 16); read-only.
- ``writable_run``: a fresh copy of ``lenet_run`` in the test's own ``tmp_path`` (function scope).
- ``make_client``: ``make_client(runs, **create_app_kwargs) -> fastapi.testclient.TestClient``;
  the clients are closed after the test.
- ``client``: one session-wide client of ``create_app([lenet_run, mlp_run, bacteria_run])``
  (run ids ``lenet``, ``mlp``, ``run``); it must not be used to write decisions.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

#: Digits per class: LeNet-5 learns them to about 90% in a few seconds on two CPU cores.
PER_CLASS = 150


@pytest.fixture(scope="session")
def train_run(train_quietly: Callable[..., Path]) -> Callable[..., Path]:
    """The serve tests' runs: 4 epochs in batches of 32 unless told otherwise."""

    def train(data: Path, out: Path, model: str, **options: object) -> Path:
        settings = {"model": model, "epochs": 4, "batch_size": 32, **options}
        return train_quietly(data, out, **settings)

    return train


@pytest.fixture(scope="session")
def digits_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cnnlab.data.mnist import mnist

    train, _ = mnist()
    root = tmp_path_factory.mktemp("serve-digits") / "digits"
    labels = train.labels.numpy()
    for digit in range(10):
        folder = root / str(digit)
        folder.mkdir(parents=True)
        for number, index in enumerate(np.flatnonzero(labels == digit)[:PER_CLASS]):
            pixels = train.images[index, 0].numpy()
            Image.fromarray(pixels).save(folder / f"digit_{number:04d}.png")
    return root


@pytest.fixture(scope="session")
def lenet_run(
    digits_folder: Path, tmp_path_factory: pytest.TempPathFactory, train_run: Callable[..., Path]
) -> Path:
    root = tmp_path_factory.mktemp("serve-lenet")
    return train_run(digits_folder, root / "lenet", "lenet5", split="80,10,10", optimizer="adam")


@pytest.fixture(scope="session")
def mlp_run(
    digits_folder: Path, tmp_path_factory: pytest.TempPathFactory, train_run: Callable[..., Path]
) -> Path:
    root = tmp_path_factory.mktemp("serve-mlp")
    return train_run(digits_folder, root / "mlp", "mlp", split="80,10,10", optimizer="adam")


@pytest.fixture(scope="session")
def bacteria_run(tmp_path_factory: pytest.TempPathFactory, train_run: Callable[..., Path]) -> Path:
    from cnnlab.synth import synth_bacteria

    root = tmp_path_factory.mktemp("serve-bacteria")
    synth_bacteria(root / "bacteria", per_class=12, seed=0, min_size=16, max_size=30)
    return train_run(root / "bacteria", root / "run", "lenet5", size="28", epochs=1)


@pytest.fixture
def writable_run(lenet_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / lenet_run.name
    shutil.copytree(lenet_run, copy)
    return copy


@pytest.fixture
def make_client() -> Iterator[Callable[..., object]]:
    from fastapi.testclient import TestClient

    from cnnlab.serve import create_app

    clients: list[TestClient] = []

    def make(runs: list[Path], **kwargs: object) -> TestClient:
        client = TestClient(create_app(runs, **kwargs))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture(scope="session")
def client(lenet_run: Path, mlp_run: Path, bacteria_run: Path) -> Iterator[object]:
    from fastapi.testclient import TestClient

    from cnnlab.serve import create_app

    with TestClient(create_app([lenet_run, mlp_run, bacteria_run])) as shared:
        yield shared
