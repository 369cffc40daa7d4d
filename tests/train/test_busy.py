"""The hint to train on fewer threads when other programs hold the cores."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import warnings

import pytest
import torch

from cnnlab.train import busy
from cnnlab.train.run import RunConfig, run_training

needs_proc = pytest.mark.skipif(busy.sample() is None, reason="no /proc/stat on this system")


def test_other_work_is_the_machines_busy_time_less_this_processs_own():
    before = busy.Sample(wall=10.0, busy=100.0, own=5.0)
    # Over 2 s, the cores were busy 3.4 s, 2.0 of them this process's: 0.7 cores of others.
    assert busy.others_busy(before, busy.Sample(12.0, 103.4, 7.0)) == pytest.approx(0.7)
    assert busy.others_busy(before, busy.Sample(12.0, 101.0, 7.0)) == 0.0  # ticks round down
    assert busy.others_busy(before, busy.Sample(10.3, 103.0, 5.0)) is None  # too short to tell


@pytest.mark.parametrize(
    ("others", "threads", "cores", "advice"),
    [
        (0.7, 2, 2, "--threads 1"),  # a busy loop beside a 2-thread run on 2 cores
        (1.6, 4, 4, "--threads 2"),
        (0.3, 2, 2, None),  # a quiet machine's housekeeping, a niced job
        (1.0, 2, 4, None),  # it fits beside the run on the other cores
        (1.5, 1, 2, None),  # one thread waits for no other
        (None, 2, 2, None),
    ],
)
def test_the_hint_names_the_free_cores_only_when_the_run_shares_them(
    others, threads, cores, advice
):
    line = busy.hint(others, threads, cores)
    if advice is None:
        assert line is None
    else:
        assert line.startswith(f"other programs kept about {others:.1f} of this machine's")
        assert advice in line and "several times slower" in line


@needs_proc
def test_a_sample_counts_this_processs_cpu_time():
    before = busy.sample()
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    after = busy.sample()
    assert after.own - before.own >= 0.29
    # The machine was busy at least while this process was (the kernel counts in ticks).
    assert after.busy - before.busy >= after.own - before.own - 0.05


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@needs_proc
@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity here")
def test_a_run_watched_on_a_terminal_hints_when_other_work_holds_its_cores(tmp_path, monkeypatch):
    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        pytest.skip("one core: one training thread, which waits for no other")
    previous = torch.get_num_threads()
    torch.set_num_threads(2)  # whatever an earlier test left: the run's default threads
    try:
        watched_and_not(tmp_path, monkeypatch, cores)
    finally:
        torch.set_num_threads(previous)


def watched_and_not(tmp_path, monkeypatch, cores: int) -> None:
    # Enough busy loops that they and the 2 training threads cannot all have a core.
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores - 1)]
    monkeypatch.setattr(sys, "stderr", Terminal())
    try:
        with pytest.warns(UserWarning, match=r"other programs kept about .* --threads 1"):
            run_training(one_epoch(tmp_path / "run"))
    finally:
        for loop in loops:
            loop.kill()
            loop.wait(timeout=10)
    # The same run in a log (no terminal) is not watched: its lines stay as they were.
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run_training(one_epoch(tmp_path / "log"))
    assert not [w for w in seen if "other programs" in str(w.message)]


def one_epoch(out) -> RunConfig:
    options = {"data": ["mnist"], "out": str(out), "epochs": 1, "report": False}
    return RunConfig.from_options(options)
