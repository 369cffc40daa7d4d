"""A real finished run folder, trained once per test session, for the report and plot tests.

The run is what ``cnnlab train`` makes: a tiny synthetic bacteria dataset (16-bit TIFF crops of
mixed sizes with the real files' awkward names), LeNet-5 for two epochs, and the HTML report
written by the run itself. It takes a few seconds, so every test of the session shares it and
none may change it (tests copy it first).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlab.synth import synth_bacteria


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory, train_quietly) -> Path:
    root = tmp_path_factory.mktemp("inspect-run")
    data = root / "bacteria"
    synth_bacteria(data, per_class=12, seed=0, min_size=16, max_size=30)
    return train_quietly(
        data,
        root / "run",
        size="28",
        model="lenet5",
        epochs=2,
        batch_size=8,
        report=True,
    )
