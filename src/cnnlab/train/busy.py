"""Whether other programs keep this machine's cores busy, for a hint to train on fewer threads.

PyTorch's threads wait for each other at every operation, so a core that other work holds
slows every step: with one busy loop on this 2-core machine, the main job trained in 11.1 s on
2 threads and in 4.0 s with ``--threads 1`` (2.7 s on the quiet machine). Where the busy loop
runs in another session (another terminal, a desktop application) and the kernel shares the
cores between sessions first (``sched_autogroup``), one epoch took 57 s on 2 threads and 1.9 s
on one (README, "A busy machine"). cnnlab keeps the thread count the user chose or PyTorch's
default, because a run's result depends on it (resuming repeats a run bit for bit only on the
same count), and says what it saw instead. Linux only: the busy time of all cores from
``/proc/stat``, less this process's own CPU time over the same wall-clock window.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass

from cnnlab.train.callbacks import Callback

#: Cores' worth of other work, on average over the first epoch, worth a hint: a busy loop
#: takes about two thirds of a core from a 2-thread run on 2 cores; a quiet machine's own
#: housekeeping stays under a tenth.
THRESHOLD = 0.5
#: Windows shorter than this tell too little (the kernel counts in 10 ms ticks).
MIN_WINDOW_S = 0.5


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds, monotonic
    busy: float  # CPU seconds of all cores busy (steal included) since boot
    own: float  # CPU seconds of this process (all threads) since it started


def sample() -> Sample | None:
    """The machine's and this process's CPU time now; None where ``/proc/stat`` is missing."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
        ticks = [int(value) for value in fields[1:9]]
    except (OSError, ValueError):
        return None
    if len(ticks) < 5 or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal (guest time is inside user and nice)
    idle = ticks[3] + ticks[4]
    own = os.times()
    return Sample(
        time.monotonic(), (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK"), own.user + own.system
    )


def others_busy(before: Sample, after: Sample) -> float | None:
    """Cores kept busy by other programs between two samples, on average; None for a window
    too short to tell."""
    wall = after.wall - before.wall
    if wall < MIN_WINDOW_S:
        return None
    return max(0.0, ((after.busy - before.busy) - (after.own - before.own)) / wall)


def hint(others: float | None, threads: int, cores: int) -> str | None:
    """The line to show when ``others`` cores' worth of other work slows ``threads`` threads:
    when there was enough of it, and it did not fit beside them on the machine's cores."""
    if others is None or others < THRESHOLD or threads < 2 or others + threads <= cores + 0.25:
        return None
    free = max(1, min(threads - 1, round(cores - others)))
    return (
        f"other programs kept about {others:.1f} of this machine's {cores} cores busy during "
        f"the first epoch: {threads} training threads wait for them at every step, which can "
        f"make training several times slower; --threads {free} avoids that (cnnlab does not "
        "change the thread count by itself: a run's result depends on it)"
    )


class BusyMachineHint(Callback):
    """Watches the first epoch and warns once if other work held the cores it trains on."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.before: Sample | None = None

    def on_epoch_start(self, logs: dict) -> None:
        if logs["epoch"] == 1:
            self.before = sample()

    def on_epoch_end(self, logs: dict) -> None:
        if logs["epoch"] != 1 or self.before is None:
            return
        after, before, self.before = sample(), self.before, None
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        line = hint(others_busy(before, after) if after else None, self.threads, cores)
        if line:
            warnings.warn(line, stacklevel=2)
