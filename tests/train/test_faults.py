"""Fault injection: a run killed at any instant resumes to the identical result.

Each test runs the real ``cnnlab`` command in a child process whose ``os.replace`` and
``os.rename`` (every file and folder cnnlab moves into place) are counted, and so are its
``os.fsync`` calls (a file is fsynced just before it is renamed: a kill there is a kill in the
middle of a write). The child kills itself with SIGKILL right after the Nth operation. The kill
lands after every rename in turn, first to last, the final moves of the run folder included;
then ``cnnlab train --resume`` must finish the run, and the finished folder must equal an
uninterrupted run's bit for bit: its list of files, weights, checkpoint, metrics, history (all
but the seconds each epoch took), split and configuration. Meanwhile the run that ``--overwrite``
replaces, or that ``--resume --epochs`` trains further, must stay complete and untouched until
the new one takes its place. Kills in mid-write, at random instants and by Ctrl-C too.

``python -m pytest tests/train/test_faults.py`` runs this suite alone (about three minutes).
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

from cnnlab.runs.folder import partial_of
from cnnlab.synth import synth_bacteria

DRIVER = """
import os, signal, sys
limits = {"rename": int(os.environ["KILL_AFTER"]), "fsync": int(os.environ["KILL_AFTER_FSYNC"])}
log = os.environ.get("OPS_LOG")
count = {"rename": 0, "fsync": 0}

def counted(real, kind):
    def operation(*args, **kwargs):
        result = real(*args, **kwargs)
        count[kind] += 1
        if log:
            with open(log, "a") as handle:
                if kind == "rename":
                    handle.write(f"rename {args[0]} -> {args[1]}\\n")
                else:
                    handle.write(f"fsync {os.readlink(f'/proc/self/fd/{args[0]}')}\\n")
        if count[kind] == limits[kind]:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return operation

os.replace = counted(os.replace, "rename")
os.rename = counted(os.rename, "rename")
os.fsync = counted(os.fsync, "fsync")
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
    # The native kernels are built into the cache beforehand, as `make` builds them: their one
    # rename is the machine's, not the run's, and every child computes alike.
    env = {**os.environ, "CNNLAB_CACHE_DIR": str(root / "cache")}
    subprocess.run([sys.executable, "-m", "cnnlab.kernels"], env=env, check=True, timeout=300)
    return root


def train_args(lab: Path, out: Path, *extra: str, seed: int = 1, epochs: int = 3) -> list[str]:
    return [
        "train",
        "--data",
        str(lab / "data"),
        "--size",
        "16",
        "--epochs",
        str(epochs),
        "--augment",
        "flip:h",
        "--seed",
        str(seed),
        "--threads",
        "1",
        "--no-cache",
        "--out",
        str(out),
        *extra,
    ]


def cnnlab(
    lab: Path,
    args: list[str],
    kill_after: int = 0,
    kill_after_fsync: int = 0,
    log: Path | None = None,
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "KILL_AFTER": str(kill_after),
        "KILL_AFTER_FSYNC": str(kill_after_fsync),
        "CNNLAB_CACHE_DIR": str(lab / "cache"),
    }
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


def resume(lab: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return cnnlab(lab, ["train", "--resume", str(out), *extra])


def tensors(path: Path) -> dict[str, bytes]:
    return {k: v.numpy().tobytes() for k, v in load_file(str(path)).items()}


def result(folder: Path) -> dict:
    """What must be identical between runs: everything but times and the folder's own name."""
    config = json.loads((folder / "config.json").read_text())
    model = json.loads((folder / "model.json").read_text())
    model.pop("created")
    for described in (config, model["training"]["run"]):
        described.pop("out"), described.pop("overwrite")  # how it was asked, not what it is
    finished = json.loads((folder / "run.json").read_text())
    for key in ("finished", "train_seconds"):
        finished.pop(key)
    with (folder / "history.csv").open() as handle:
        history = [row[:-1] for row in csv.reader(handle)]  # the last column is seconds
    return {
        "files": sorted(str(p.relative_to(folder)) for p in folder.rglob("*")),
        "config": config,
        "model.json": model,
        "run.json": finished,
        "history": history,
        "metrics": json.loads((folder / "metrics.json").read_text()),
        "split": (folder / "split.csv").read_text(),
        "weights": tensors(folder / "model.safetensors"),
        "checkpoint": tensors(folder / "checkpoints" / "state.safetensors"),
    }


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by content: an old run must stay exactly as it was."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def copy(source: Path, target: Path) -> Path:
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)
    return target


def assert_clean(out: Path) -> None:
    """Nothing of the run's machinery is left beside the finished folder."""
    assert sorted(p.name for p in out.parent.glob(f".{out.name}.*")) == []


@pytest.fixture(scope="module")
def reference(lab):
    """An uninterrupted run, the list of its renames, and an old run for it to replace."""
    log = lab / "ops.log"
    done = cnnlab(lab, train_args(lab, lab / "reference"), log=log)
    assert done.returncode == 0, done.stderr
    old = cnnlab(lab, train_args(lab, lab / "old", "--no-report", seed=7))
    assert old.returncode == 0, old.stderr
    return result(lab / "reference"), operations(log), fingerprint(lab / "old")


def operations(log: Path) -> dict[str, list[str]]:
    """The names a run renamed into place, and the files it fsynced, in order."""
    done: dict[str, list[str]] = {"rename": [], "fsync": []}
    for line in log.read_text().splitlines():
        kind, path = line.split(" ", 1)
        done[kind].append(Path(path.split(" -> ")[-1]).name)
    return done


def test_a_kill_after_any_file_operation_resumes_to_the_identical_run(lab, reference):
    expected, done, old_files = reference
    renames = done["rename"]
    # Every rename of a run, in order, as an uninterrupted run makes them.
    assert renames == [
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

    def kill_and_resume(n: int):
        out = copy(lab / "old", lab / f"kill-{n}")
        killed = cnnlab(lab, train_args(lab, out, "--overwrite"), kill_after=n)
        between = fingerprint(out) if out.exists() else None
        return killed, between, resume(lab, out), out

    # Replacing an old run takes one rename more: the old run is set aside first.
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(kill_and_resume, range(1, len(renames) + 2)))
    for n, (killed, between, resumed, out) in enumerate(outcomes, start=1):
        assert killed.returncode == -signal.SIGKILL, (n, killed.stderr)
        # At the instant of the kill the folder holds the old run or the new one, whole.
        if between is not None and between != old_files:
            assert result(out) == expected, n
        if n == 1:  # killed before the configuration was saved: the user starts it again
            assert resumed.returncode == 2 and "start it again" in resumed.stderr
            assert fingerprint(out) == old_files
            again = cnnlab(lab, train_args(lab, out, "--overwrite"))
            assert again.returncode == 0, again.stderr
        elif n == len(renames) + 1:  # killed once the new run was in place: nothing to do
            assert resumed.returncode == 2 and "already finished" in resumed.stderr
        else:
            assert resumed.returncode == 0, (n, resumed.stderr)
            assert "cnnlab: test accuracy" in resumed.stdout, n
        assert result(out) == expected, f"kill after rename {n} ({renames[n - 1 :][:1]})"
        assert_clean(out)


@pytest.mark.parametrize(
    "written", [".state.safetensors.", ".metrics.json.", ".run.json.", ".report.html."]
)
def test_a_kill_in_the_middle_of_a_write_resumes_to_the_identical_run(lab, reference, written):
    """Killed with a checkpoint, the metrics, the run record or the report half-written."""
    expected, done, old_files = reference
    out = copy(lab / "old", lab / f"mid-write{written}")
    # The first fsync of such a temporary file: the write is done, its rename is not.
    fsync = 1 + next(i for i, name in enumerate(done["fsync"]) if name.startswith(written))
    killed = cnnlab(lab, train_args(lab, out, "--overwrite"), kill_after_fsync=fsync)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert fingerprint(out) == old_files
    assert list(partial_of(out).rglob(".*.tmp")), "the kill should leave a half-made write"
    resumed = resume(lab, out)
    assert resumed.returncode == 0, resumed.stderr
    assert result(out) == expected
    assert_clean(out)


def test_a_kill_while_training_a_finished_run_further_loses_nothing(lab):
    """``--resume RUN --epochs N``: the shorter run stays whole until the longer one replaces it."""
    short = lab / "short"
    args = ["--schedule", "constant", "--no-report"]
    assert cnnlab(lab, train_args(lab, short, *args, epochs=2)).returncode == 0
    short_files = fingerprint(short)
    log = lab / "extend.log"
    longer = copy(short, lab / "longer")
    done = cnnlab(lab, ["train", "--resume", str(longer), "--epochs", "4"], log=log)
    assert done.returncode == 0, done.stderr
    expected = result(longer)
    assert expected["history"][-1][0] == "4" and expected["config"]["train"]["epochs"] == 4
    renames = operations(log)["rename"]

    def kill_and_resume(n: int):
        out = copy(short, lab / f"extend-{n}")
        killed = cnnlab(lab, ["train", "--resume", str(out), "--epochs", "4"], kill_after=n)
        between = fingerprint(out)
        return killed, between, resume(lab, out), out

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(kill_and_resume, range(1, len(renames) + 1)))
    # The copy is edited, then renamed to the partial folder: before that, nothing started.
    started = renames.index(".longer.partial") + 1
    for n, (killed, between, resumed, out) in enumerate(outcomes, start=1):
        assert killed.returncode == -signal.SIGKILL, (n, killed.stderr)
        if between != short_files:
            assert result(out) == expected, n
        if n < started or n == len(renames):
            assert resumed.returncode == 2 and "already finished" in resumed.stderr
            if n < started:
                again = resume(lab, out, "--epochs", "4")
                assert again.returncode == 0, again.stderr
        else:
            assert resumed.returncode == 0, (n, resumed.stderr)
        assert result(out) == expected, n
        assert_clean(out)


def test_kills_at_random_instants_resume_to_the_identical_run(lab, reference):
    expected, _, _ = reference
    draw = random.Random(2026)

    def kill_at(delay: float) -> tuple[Path, subprocess.CompletedProcess]:
        out = lab / f"random-{delay:.2f}"
        env = {**os.environ, "KILL_AFTER": "0", "KILL_AFTER_FSYNC": "0"}
        env["CNNLAB_CACHE_DIR"] = str(lab / "cache")
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
        return out, resume(lab, out)

    # Python and PyTorch start in about 2 s; a run of this size takes about 4 s in all.
    delays = [draw.uniform(2.0, 5.0) for _ in range(4)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for out, resumed in pool.map(kill_at, delays):
            if resumed.returncode != 0 and "already finished" not in resumed.stderr:
                # Killed before the run wrote its configuration: nothing to resume.
                assert "start it again" in resumed.stderr or "no such run" in resumed.stderr
                continue
            assert result(out) == expected, out.name


def test_ctrl_c_says_how_to_resume_and_resuming_gives_the_identical_run(lab):
    """Interrupted while it trains (30 short epochs), then resumed."""
    args = ["--no-report"]
    whole = cnnlab(lab, train_args(lab, lab / "whole-30", *args, epochs=30))
    assert whole.returncode == 0, whole.stderr
    out = lab / "ctrl-c"
    env = {**os.environ, "KILL_AFTER": "0", "KILL_AFTER_FSYNC": "0"}
    env["CNNLAB_CACHE_DIR"] = str(lab / "cache")
    child = subprocess.Popen(
        [sys.executable, str(lab / "driver.py"), *train_args(lab, out, *args, epochs=30)],
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
    assert child.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"cnnlab: interrupted; 'cnnlab train --resume {out}' continues it")
    assert "saved)" in last
    assert not out.exists()
    resumed = resume(lab, out)
    assert resumed.returncode == 0, resumed.stderr
    assert result(out) == result(lab / "whole-30")
