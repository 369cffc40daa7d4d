"""Fault injection: a run killed at any instant resumes to the identical result.

Each test runs the real ``cnnlab`` command in a child process whose ``os.replace`` and
``os.rename`` (every file and folder cnnlab moves into place) are counted; the child kills itself
with SIGKILL right after the Nth one. The kill lands after every such operation in turn, first
to last, the final move of the run folder included; then ``cnnlab train --resume`` must finish
the run, and the finished folder must equal an uninterrupted run's bit for bit: weights,
checkpoint, metrics, history (all but the seconds each epoch took), split and configuration.
Meanwhile the old run that ``--overwrite`` replaces must stay complete and untouched until the
new one takes its place. Random-time kills and Ctrl-C are tested the same way.

``python -m pytest tests/train/test_faults.py`` runs this suite alone (about two minutes).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from safetensors.torch import load_file

from cnnlab.data.synth import synth_bacteria
from cnnlab.runs.folder import partial_of

DRIVER = """
import os, signal, sys
kill_after = int(os.environ.get("KILL_AFTER", "0"))
log = os.environ.get("OPS_LOG")
count = 0

def counted(real):
    def operation(*args, **kwargs):
        global count
        real(*args, **kwargs)
        count += 1
        if log:
            with open(log, "a") as handle:
                handle.write(f"{real.__name__} {args[0]} -> {args[1]}\\n")
        if count == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
    return operation

os.replace = counted(os.replace)
os.rename = counted(os.rename)
from cnnlab.cli import main
sys.exit(main(sys.argv[1:]))
"""
# One thread per child: the same thread count is what makes a resumed run bit-identical, and
# two children run side by side on a two-core machine.
TIMEOUT = 120


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    synth_bacteria(root / "data", per_class=16, seed=0, min_size=16, max_size=24)
    (root / "driver.py").write_text(DRIVER)
    return root


def train_args(lab: Path, out: Path, seed: int = 1) -> list[str]:
    return [
        "train",
        "--data",
        str(lab / "data"),
        "--size",
        "16",
        "--epochs",
        "3",
        "--augment",
        "flip:h",
        "--seed",
        str(seed),
        "--threads",
        "1",
        "--no-cache",
        "--out",
        str(out),
        "--overwrite",
    ]


def cnnlab(lab: Path, args: list[str], kill_after: int = 0, log: Path | None = None):
    env = {**os.environ, "KILL_AFTER": str(kill_after), "CNNLAB_CACHE_DIR": str(lab / "cache")}
    if log is not None:
        env["OPS_LOG"] = str(log)
    return subprocess.run(
        [sys.executable, str(lab / "driver.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )


def tensors(path: Path) -> dict[str, bytes]:
    return {k: v.numpy().tobytes() for k, v in load_file(str(path)).items()}


def result(folder: Path) -> dict:
    """What must be identical between runs: everything but times and the folder's own name."""
    config = json.loads((folder / "config.json").read_text())
    config.pop("out")
    model = json.loads((folder / "model.json").read_text())
    model.pop("created")
    model["training"]["run"].pop("out")
    finished = json.loads((folder / "run.json").read_text())
    for key in ("finished", "train_seconds"):
        finished.pop(key)
    with (folder / "history.csv").open() as handle:
        history = [row[:-1] for row in csv.reader(handle)]  # the last column is seconds
    return {
        "config": config,
        "model.json": model,
        "run.json": finished,
        "history": history,
        "metrics": json.loads((folder / "metrics.json").read_text()),
        "split": (folder / "split.csv").read_text(),
        "weights": tensors(folder / "model.safetensors"),
        "checkpoint": tensors(folder / "checkpoints" / "state.safetensors"),
        "report": (folder / "report.html").is_file(),
    }


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by content: an old run must stay exactly as it was."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def reference(lab):
    """An uninterrupted run, the list of its file operations, and an old run to replace."""
    log = lab / "ops.log"
    done = cnnlab(lab, train_args(lab, lab / "reference"), log=log)
    assert done.returncode == 0, done.stderr
    old = cnnlab(lab, [*train_args(lab, lab / "old", seed=7), "--no-report"])
    assert old.returncode == 0, old.stderr
    return result(lab / "reference"), log.read_text().splitlines(), fingerprint(lab / "old")


def kill_and_resume(lab: Path, name: str, old: Path, kill_after: int):
    """A copy of the old run replaced by a new run killed after operation ``kill_after``."""
    out = lab / name
    subprocess.run(["cp", "-a", str(old), str(out)], check=True)
    killed = cnnlab(lab, train_args(lab, out), kill_after=kill_after)
    between = fingerprint(out) if out.exists() else None
    resumed = cnnlab(lab, ["train", "--resume", str(out)])
    return killed, between, resumed, out


def test_a_kill_after_any_file_operation_resumes_to_the_identical_run(lab, reference):
    expected, operations, old_files = reference
    # Every rename of a run, in order: split, config, one checkpoint per epoch, metrics, model,
    # run record, report, and the moves that swap the finished run in for the old one.
    targets = [Path(line.split(" -> ")[1]).name for line in operations]
    assert targets == [
        "split.csv",
        "config.json",
        *["state.safetensors"] * 3,
        "metrics.json",
        "model.safetensors",
        "model.json",
        "run.json",
        "report.html",
        "reference",
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(
            pool.map(
                lambda n: kill_and_resume(lab, f"kill-{n}", lab / "old", n),
                # Replacing takes one rename more: the old run is set aside first.
                range(1, len(operations) + 2),
            )
        )
    for n, (killed, between, resumed, out) in enumerate(outcomes, start=1):
        assert killed.returncode == -signal.SIGKILL, (n, killed.stderr)
        # At the instant of the kill the folder holds the old run or the new one, whole.
        if between is not None and between != old_files:
            assert result(out) == expected, n
        if n == 1:  # killed before the configuration was saved: the user starts it again
            assert resumed.returncode == 2 and "start it again" in resumed.stderr
            assert fingerprint(out) == old_files
            again = cnnlab(lab, train_args(lab, out))
            assert again.returncode == 0, again.stderr
        elif n == len(operations) + 1:  # killed once the new run was in place: nothing to do
            assert resumed.returncode == 2 and "already finished" in resumed.stderr
        else:
            assert resumed.returncode == 0, (n, resumed.stderr)
            assert "cnnlab: test accuracy" in resumed.stdout, n
        assert result(out) == expected, f"kill after operation {n}: {operations[n - 1 :][:1]}"
        assert not partial_of(out).exists() and not (out.parent / f".{out.name}.replaced").exists()


def test_kills_at_random_instants_resume_to_the_identical_run(lab, reference):
    expected, _, _ = reference
    draw = random.Random(2026)

    def kill_at(delay: float) -> tuple[Path, subprocess.CompletedProcess]:
        out = lab / f"random-{delay:.2f}"
        env = {**os.environ, "CNNLAB_CACHE_DIR": str(lab / "cache")}
        child = subprocess.Popen(
            [sys.executable, str(lab / "driver.py"), *train_args(lab, out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            child.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            child.kill()
        child.wait(timeout=TIMEOUT)
        return out, cnnlab(lab, ["train", "--resume", str(out)])

    # Python and PyTorch start in about 2 s; a run of this size takes about 4 s in all.
    delays = [draw.uniform(2.0, 5.0) for _ in range(4)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for out, resumed in pool.map(kill_at, delays):
            if resumed.returncode != 0 and "already finished" not in resumed.stderr:
                # Killed before the run wrote its configuration: nothing to resume.
                assert "start it again" in resumed.stderr or "no such run" in resumed.stderr
                continue
            assert result(out) == expected, out.name


def test_ctrl_c_says_how_to_resume_and_resuming_gives_the_identical_run(lab, reference):
    expected, _, _ = reference
    out = lab / "ctrl-c"
    env = {**os.environ, "CNNLAB_CACHE_DIR": str(lab / "cache")}
    child = subprocess.Popen(
        [sys.executable, str(lab / "driver.py"), *train_args(lab, out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    state = partial_of(out) / "checkpoints" / "state.safetensors"
    deadline = time.monotonic() + TIMEOUT
    while not state.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=TIMEOUT)
    if child.returncode == 0:
        pytest.skip("the run finished before Ctrl-C arrived")
    assert child.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("cnnlab: interrupted; 'cnnlab train --resume ") and "epoch" in last
    assert not out.exists()
    resumed = cnnlab(lab, ["train", "--resume", str(out)])
    assert resumed.returncode == 0, resumed.stderr
    assert result(out) == expected
