"""Learning-rate schedules for any number of optimizer steps, one included."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch

from cnnlab.synth import synth_bacteria
from cnnlab.train.config import SCHEDULES, TrainConfig
from cnnlab.train.optim import Schedule
from cnnlab.train.run import RunConfig, run_training


def rates(kind: str, total: int) -> list[float]:
    """The learning rate before each of ``total`` steps (one step per epoch)."""
    layer = torch.nn.Linear(2, 2)
    config = TrainConfig(epochs=total, batch_size=1, schedule=kind)
    optimizer = torch.optim.SGD(layer.parameters(), lr=config.learning_rate, momentum=0.9)
    schedule = Schedule(optimizer, config, steps_per_epoch=1)
    seen = []
    for _ in range(total):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.batch_end()
        schedule.epoch_end({"valid_loss": 1.0})
    return seen


@pytest.mark.parametrize("kind", SCHEDULES)
@pytest.mark.parametrize("total", [*range(1, 13), 64, 1266])
def test_every_schedule_runs_any_number_of_steps(kind, total):
    seen = rates(kind, total)
    assert len(seen) == total and all(math.isfinite(r) and r >= 0 for r in seen)
    peak = TrainConfig(schedule=kind).learning_rate
    assert max(seen) <= peak * (1 + 1e-9)


@pytest.mark.parametrize("total", [2, 3, 4, 5, 8, 1266])
def test_one_cycle_warms_up_then_anneals(total):
    seen = rates("onecycle", total)
    top = seen.index(max(seen))
    assert all(a <= b for a, b in pairwise(seen[: top + 1]))
    assert all(a >= b for a, b in pairwise(seen[top:]))
    assert seen[-1] < max(seen)


def test_the_main_jobs_schedule_is_unchanged():
    # 25% warm-up over 1,266 steps (3 epochs of 422): the peak comes at step 316.
    seen = rates("onecycle", 1266)
    assert seen.index(max(seen)) == 316


def test_a_run_of_exactly_four_optimizer_steps_trains(tmp_path):
    """24 training images in batches of 12 for 2 epochs: the case that divided by zero."""
    synth_bacteria(tmp_path / "data", per_class=10, seed=0, min_size=16, max_size=20)
    out = run_training(
        RunConfig.from_options(
            {
                "data": [str(tmp_path / "data")],
                "size": 16,
                "split": "60,30,10",
                "epochs": 2,
                "batch_size": 12,
                "out": str(tmp_path / "run"),
                "quiet": True,
                "report": False,
                "cache": False,
            }
        )
    )
    assert (out / "run.json").is_file()
