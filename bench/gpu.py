"""Issue 16's GPU goal: the main job on a GPU, whole process, and its time to 99% test accuracy.

1. ``cnnlab train --device DEVICE --seed S`` for each of ``--seeds`` (default 0,1,2), each in a
   fresh process as a user runs it: whole-process seconds (start to exit), the run's training
   seconds (its epochs, validation included) and its test accuracy.
2. Time to 99%: the same run in this process (``run_training``, the main job's recipe), the
   test set scored on the device after every epoch, or every ``--check-every`` steps, the
   scoring's own time left out: the training seconds until the test accuracy first reaches
   99%, next to the known record for this task (99% in 0.76 s on a laptop GPU). Steps are
   timed from the first epoch's start, after the data, the model and the optimizer are made.

Runs anywhere (``--device cpu`` is how it is tested without a GPU); ``bench/device_check.sh``
runs it on a lent GPU. Usage::

    python bench/gpu.py [--device cuda] [--seeds 0,1,2] [--check-every STEPS] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from cnnlab.data.mnist import mnist
from cnnlab.evaluate import per_sample
from cnnlab.train import Callback
from cnnlab.train.run import RunConfig, run_training

RECORD_S = 0.76  # 99% on MNIST in 0.76 s on a laptop GPU (issue 16)
GOAL = 0.99


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main_job(device: str, seed: int, work: Path) -> dict:
    """One ``cnnlab train`` in a child process: its wall time and what the run recorded."""
    out = work / f"seed{seed}"
    command = [sys.executable, "-m", "cnnlab", "train", "--device", device, "--seed", str(seed)]
    started = time.perf_counter()
    done = subprocess.run([*command, "--out", str(out), "--quiet"], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"cnnlab train --seed {seed} exited with {done.returncode}: {tail}")
    metrics = json.loads((out / "metrics.json").read_text())
    record = json.loads((out / "run.json").read_text())
    resolved = json.loads((out / "config.json").read_text())["resolved"]
    return {
        "seed": seed,
        "seconds": round(seconds, 3),
        "train_seconds": record["train_seconds"],
        "epochs": record["epochs_run"],
        "test_accuracy": metrics["test"]["accuracy"],
        "device": resolved.get("device"),
        "gpu": resolved.get("gpu"),
    }


class TestChecks(Callback):
    """Scores the test set every ``every`` steps (0: at each epoch's end), off the clock."""

    def __init__(self, test, device: str, every: int) -> None:
        self.test, self.device, self.every = test, device, every
        self.started = self.paused = 0.0
        self.steps = 0
        self.checks: list[dict] = []

    def on_epoch_start(self, logs):
        if logs["epoch"] == 1:
            sync(self.device)
            self.started = time.perf_counter()

    def on_batch_end(self, logs):
        self.steps += 1
        if self.every and self.steps % self.every == 0:
            self.check(logs["epoch"])

    def on_epoch_end(self, logs):
        if not self.every:
            self.check(logs["epoch"])

    def check(self, epoch: int) -> None:
        sync(self.device)
        paused = time.perf_counter()
        trained = paused - self.started - self.paused
        scores = per_sample(self.context.model, self.test, device=self.device)
        accuracy = float((scores["predictions"] == scores["labels"]).mean())
        steps = self.steps if self.every else epoch * self.context.steps_per_epoch
        self.checks.append(
            {"epoch": epoch, "steps": steps, "seconds": trained, "accuracy": accuracy}
        )
        self.paused += time.perf_counter() - paused


# Only the class's on_batch_end makes the loop wait for every step; at epoch ends it need not.
class EpochChecks(TestChecks):
    on_batch_end = Callback.on_batch_end


def time_to_goal(device: str, seed: int, every: int, work: Path) -> dict:
    """The main job's run in this process, the test set scored as it trains."""
    _, test = mnist()
    checks = (TestChecks if every else EpochChecks)(test, device, every)
    options = {"data": ["mnist"], "device": device, "seed": seed, "quiet": True}
    # recipe=True: the options of the main job (cnnlab train), not the general defaults.
    config = RunConfig.from_options(
        {**options, "out": str(work / "checked"), "report": False}, recipe=True
    )
    run_training(config, callbacks=[checks])
    reached = next((c for c in checks.checks if c["accuracy"] >= GOAL), None)
    return {"checks": checks.checks, "reached": reached}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--check-every", type=int, default=0, help="steps; 0: every epoch")
    parser.add_argument("--json", help="write the results to this file too")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("bench/gpu.py: PyTorch sees no GPU here; --device cpu runs it anyway")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"{where}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads", flush=True)
    with tempfile.TemporaryDirectory(prefix="cnnlab-gpu-") as folder:
        work = Path(folder)
        jobs = [main_job(args.device, seed, work) for seed in seeds]
        for job in jobs:
            print(
                f"cnnlab train --device {args.device} --seed {job['seed']}: "
                f"{job['test_accuracy']:.2%}, {job['seconds']:.2f} s whole process, "
                f"{job['train_seconds']:.2f} s training ({job['epochs']} epochs)",
                flush=True,
            )
        goal = time_to_goal(args.device, seeds[0], args.check_every, work)
    median = statistics.median(job["seconds"] for job in jobs)
    lowest = min(job["test_accuracy"] for job in jobs)
    print(
        f"main job on {where}: median {median:.2f} s whole process, lowest test accuracy "
        f"{lowest:.2%} over seeds {args.seeds} (goal: <= 8 s at >= 99.0%)"
    )
    for check in goal["checks"]:
        print(
            f"  epoch {check['epoch']}, step {check['steps']}: {check['accuracy']:.2%} after "
            f"{check['seconds']:.2f} s of training"
        )
    reached = goal["reached"]
    if reached is None:
        print(f"time to 99%: not reached (seed {seeds[0]}); the record is {RECORD_S} s")
    else:
        print(
            f"time to 99%: {reached['seconds']:.2f} s of training (seed {seeds[0]}, step "
            f"{reached['steps']}); the record for this task is {RECORD_S} s on a laptop GPU"
        )
    if args.json:
        results = {"device": args.device, "where": where, "jobs": jobs, **goal}
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
