"""Issue 5, "Fast on a 2-core laptop CPU": cnnlab timed against the course notebooks' loops.

One command (``make bench`` = ``python bench/run.py``) measures, ``--repeats`` times each and
interleaved (cnnlab, reference A, reference B, cnnlab, ...) because the machine is shared and its
speed drifts, and quotes medians with their range:

* the machine: CPU, cores, memory, versions, and the float32 matrix-multiply rate (2048x2048
  ``torch.matmul``), so every speed can be read as a share of what the CPU can do;
* cnnlab's training throughput: ``cnnlab.fit`` with the defaults of ``TrainConfig`` (LeNet-5,
  batch 128, SGD with Nesterov momentum, one-cycle) on MNIST's 54,000 training images,
  two epochs without validation; timed from ``on_epoch_start`` to ``on_epoch_end`` of the
  second epoch (shuffling, every step, the epoch's loss and accuracy), first-epoch warm-up
  excluded;
* reference A, the PyTorch notebook: per-image PIL/ToTensor/Normalize ``Dataset``,
  ``DataLoader(batch_size=32, shuffle=True)`` with 0 (the notebook) and 2 workers, SGD;
* reference B, the Keras notebooks: the same LeNet-5, ``model.fit(batch_size=128)`` with Adam,
  in an interpreter that has TensorFlow (``--tf-python``);
* the whole ``cnnlab train`` process (the main job, default options) from start to exit, its
  test accuracy and peak memory, with and without the HTML report;
* ``cnnlab.predict_proba`` on the 10,000 MNIST test images;
* loading 20,000 small 16-bit TIFFs from folders, first time and from the cache.

It prints a table and the issue's targets (met / not met); ``--json FILE`` keeps every number,
``--markdown FILE`` (``-`` for standard output) writes the table for the README. ``--quick`` is a
one-minute smoke run on smaller counts.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import cnnlab
from cnnlab.data.dataset import ImageDataset, Normalizer
from cnnlab.data.folders import load_folders
from cnnlab.data.split import carve_validation
from cnnlab.models.summary import model_summary
from load_folders import write_tiffs
from references import time_torch_reference

BENCH_DIR = Path(__file__).resolve().parent
PARTS = ("fit", "ref-a", "ref-a2", "keras", "train", "train-no-report", "predict", "folders")
GIB = 1024**3


# ------------------------------------------------------------------------------ bookkeeping


@dataclass
class Series:
    """One measured quantity: its repeated values and how to read them."""

    label: str
    unit: str
    values: list[float] = field(default_factory=list)
    # FLOPs per unit of the value (per image for images/s, per call for seconds): gives the
    # share of the machine's matrix-multiply rate that the measurement achieved.
    flops: float | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def gflops(self) -> float | None:
        if self.flops is None or self.median is None:
            return None
        if self.unit == "images/s":
            return self.median * self.flops / 1e9
        return self.flops / self.median / 1e9

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "unit": self.unit,
            "values": self.values,
            "median": self.median,
            "min": min(self.values) if self.values else None,
            "max": max(self.values) if self.values else None,
            "gflops": self.gflops(),
        }


@dataclass(frozen=True)
class Plan:
    """What to measure and how much of it."""

    repeats: int
    threads: int
    train_images: int | None
    ref_batches: int
    keras_images: int | None
    keras_batch_size: int
    folder_files: int
    predict_calls: int
    tf_python: str | None
    parts: tuple[str, ...]


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as elapsed: ...``; afterwards ``elapsed[0]`` holds the seconds."""
    elapsed: list[float] = []
    start = time.perf_counter()
    yield elapsed
    elapsed.append(time.perf_counter() - start)


def child_environment(threads: int) -> dict[str, str]:
    """The bench's thread count for child processes, only where it differs from the default.

    PyTorch uses one thread per core by default; on a machine with more cores than ``threads``
    the children are held to ``threads`` so that the figures still describe a small laptop.
    """
    env = dict(os.environ)
    if (os.cpu_count() or 1) > threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


# Runs argv[2:] as its child and writes "exit code, wall seconds, peak RSS in KiB" to argv[1].
LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(sys.argv[1], "w") as out:
    cpu = usage.ru_utime + usage.ru_stime
    out.write(f"{os.waitstatus_to_exitcode(status)} {seconds} {usage.ru_maxrss} {cpu}")
"""


@dataclass(frozen=True)
class Measured:
    """One child process: its exit code, wall seconds, peak resident bytes and CPU seconds
    (user + system: what the work cost, less sensitive than wall time to other load)."""

    code: int
    wall: float
    peak: int
    cpu: float


def measure_child(command: list[str], env: dict[str, str], log: Path) -> Measured:
    """:func:`run_measured` with the child's CPU seconds too."""
    result = log.with_suffix(".measured")
    with log.open("wb") as output:
        subprocess.run(
            [sys.executable, "-c", LAUNCHER, str(result), *command],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
        )
    code, seconds, kib, cpu = result.read_text().split()
    result.unlink()
    return Measured(int(code), float(seconds), int(kib) * 1024, float(cpu))


def run_measured(command: list[str], env: dict[str, str], log: Path) -> tuple[int, float, int]:
    """(exit code, wall seconds, peak resident memory in bytes) of one child process.

    Linux carries a process's peak resident size across ``fork`` and ``exec``: a child forked
    from this bench, which holds MNIST, several models and TensorFlow's data, would report at
    least the bench's own size. So a small launcher interpreter forks the command instead, and
    reads ``os.wait4``'s ``ru_maxrss`` (KiB on Linux) and the wall time of exactly that process.
    The output goes to ``log`` so a full pipe can never block the child.
    """
    measured = measure_child(command, env, log)
    return measured.code, measured.wall, measured.peak


# ------------------------------------------------------------------------------ the machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def describe_machine(threads: int) -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "memory_gib": (memory_bytes() or 0) / GIB,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cnnlab": cnnlab.__version__,
        "platform": platform.platform(),
        "load_average_at_start": load[0] if load else None,
    }


def matmul_gflops(size: int = 2048, calls: int = 10) -> float:
    """The float32 matrix-multiply rate of this CPU at the bench's thread count (median)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.matmul(a, b)
    times = []
    for _ in range(calls):
        with stopwatch() as elapsed:
            torch.matmul(a, b)
        times.append(elapsed[0])
    return 2 * size**3 / statistics.median(times) / 1e9


def lenet5_mult_adds() -> int:
    """Forward multiply-adds of cnnlab's LeNet-5 for one 28x28 image (torchinfo's count)."""
    model = cnnlab.create_model("lenet5", in_chans=1, num_classes=10, input_size=(28, 28))
    return model_summary(model).total_mult_adds


# ------------------------------------------------------------------------------ the parts


class EpochTimer:
    """A ``cnnlab.fit`` callback: wall time from ``on_epoch_start`` to ``on_epoch_end``."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_start(self, logs: dict) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, logs: dict) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def time_cnnlab_fit(train: ImageDataset) -> float:
    """Images per second of the second of two epochs of ``cnnlab.fit`` with its defaults.

    No validation set, so the timed span is training only; the first epoch absorbs one-time
    costs (oneDNN primitive creation, allocator growth).
    """
    model = cnnlab.create_model("lenet5", in_chans=1, num_classes=10, input_size=(28, 28))
    timer = EpochTimer()
    cnnlab.fit(model, train, None, epochs=2, callbacks=[timer], verbose=0)
    return len(train) / timer.seconds[-1]


def time_keras(plan: Plan, data_file: Path, log: Path) -> float:
    """Images per second of reference B, run by ``plan.tf_python`` as a child process."""
    command = [
        str(plan.tf_python),
        str(BENCH_DIR / "references.py"),
        "keras",
        "--data",
        str(data_file),
        "--batch-size",
        str(plan.keras_batch_size),
        "--threads",
        str(plan.threads),
    ]
    if plan.keras_images:
        command += ["--images", str(plan.keras_images)]
    env = child_environment(plan.threads) | {"TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    log.write_text(result.stdout + result.stderr)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"exit code {result.returncode}: {tail}")
    return float(json.loads(lines[-1])["images_per_second"])


def cnnlab_command() -> list[str]:
    """The ``cnnlab`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("cnnlab")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from cnnlab.cli import main; sys.exit(main())"]


def time_cnnlab_train(plan: Plan, work: Path, report: bool) -> dict[str, float]:
    """The main job, ``cnnlab train`` with default options, as its user runs it.

    Wall time from starting the process to its exit (imports, MNIST decoding, training,
    evaluation of every subset, saving, and the HTML report unless ``--no-report``), its test
    accuracy from ``metrics.json``, its training seconds from ``run.json`` and its peak memory.
    The run folder is deleted afterwards.
    """
    out = work / f"run-{time.monotonic_ns()}"
    command = [*cnnlab_command(), "train", "--out", str(out)]
    if not report:
        command.append("--no-report")
    log = work / "train.log"
    code, seconds, peak = run_measured(command, child_environment(plan.threads), log)
    try:
        if code != 0:
            tail = (log.read_text().strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"cnnlab train exited with {code}: {tail}")
        metrics = json.loads((out / "metrics.json").read_text())
        run = json.loads((out / "run.json").read_text())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {
        "seconds": seconds,
        "test_accuracy": float(metrics["test"]["accuracy"]),
        "train_seconds": float(run.get("train_seconds", float("nan"))),
        "peak_bytes": peak,
    }


def time_predict(model: torch.nn.Module, images: torch.Tensor, calls: int) -> list[float]:
    """Seconds of ``cnnlab.predict_proba`` over ``images``, after one warm-up call."""
    cnnlab.predict_proba(model, images)
    times = []
    for _ in range(calls):
        with stopwatch() as elapsed:
            cnnlab.predict_proba(model, images)
        times.append(elapsed[0])
    return times


def time_folders(root: Path, cache: Path) -> tuple[float, float]:
    """Seconds to load the TIFF folders into a fresh cache, then again from that cache."""
    with stopwatch() as first:
        load_folders(root, workers=2, cache=cache)
    with stopwatch() as second:
        load_folders(root, workers=2, cache=cache)
    return first[0], second[0]


# ------------------------------------------------------------------------------ the run


def measure(plan: Plan, work: Path, say: Callable[[str], None]) -> dict[str, Series]:
    """Every series of the plan, repeats interleaved part by part."""
    torch.set_num_threads(plan.threads)
    mult_adds = lenet5_mult_adds()
    train_flops = 6.0 * mult_adds  # forward 2 FLOPs per multiply-add, backward twice forward
    train_all, test = cnnlab.datasets.mnist()
    train, _ = carve_validation(train_all, 10, seed=0)  # cnnlab train's own 54,000 images
    if plan.train_images:
        train = train.select(range(plan.train_images))
    images_np, labels_np = train.images[:, 0].numpy(), train.labels.numpy()
    ref_images = len(train) if plan.keras_images is None else plan.keras_images
    n_train = f"{len(train):,}"

    series = {
        "matmul": Series("float32 matmul 2048x2048 (machine peak)", "GFLOP/s"),
        "fit": Series(
            f"cnnlab.fit, LeNet-5, batch 128, SGD one-cycle ({n_train} images, 2nd epoch)",
            "images/s",
            flops=train_flops,
        ),
        "ref-a": Series(
            f"A: PyTorch notebook loop, batch 32, 0 workers ({plan.ref_batches} batches)",
            "images/s",
            flops=train_flops,
        ),
        "ref-a2": Series(
            f"A: PyTorch notebook loop, batch 32, 2 workers ({plan.ref_batches} batches)",
            "images/s",
            flops=train_flops,
        ),
        "keras": Series(
            f"B: Keras model.fit, batch {plan.keras_batch_size}, Adam "
            f"({ref_images:,} images, 2nd epoch)",
            "images/s",
            flops=train_flops,
        ),
        "train": Series("`cnnlab train` whole process (default options)", "s"),
        "train_accuracy": Series("`cnnlab train` test accuracy", "%"),
        "train_loop": Series("`cnnlab train` training seconds (run.json)", "s"),
        "train_memory": Series("`cnnlab train` peak memory", "GiB"),
        "train-no-report": Series("`cnnlab train --no-report` whole process", "s"),
        "predict": Series(
            f"predict_proba, {len(test):,} MNIST test images",
            "s",
            flops=2.0 * mult_adds * len(test),
        ),
        "folders_first": Series(
            f"load_folders, {plan.folder_files:,} 48x48 16-bit TIFFs, first time", "s"
        ),
        "folders_cached": Series(
            f"load_folders, {plan.folder_files:,} 48x48 16-bit TIFFs, cached", "s"
        ),
    }

    keras_data = work / "mnist-train.npz"
    if "keras" in plan.parts:
        np.savez(keras_data, images=images_np, labels=labels_np)
    folder_root = work / "tiffs"
    if "folders" in plan.parts:
        with stopwatch() as elapsed:
            write_tiffs(folder_root, plan.folder_files)
        say(f"wrote {plan.folder_files:,} TIFFs in {elapsed[0]:.1f} s")
    predictor = cnnlab.create_model("lenet5", in_chans=1, num_classes=10, input_size=(28, 28))
    normalizer = Normalizer.fit(train)
    predictor.standardize.set_statistics(normalizer.mean, normalizer.std)

    def ref_a(workers: int) -> float:
        return time_torch_reference(
            images_np, labels_np, num_workers=workers, batches=plan.ref_batches
        )["images_per_second"]

    def record_train(key: str, report: bool) -> str:
        result = time_cnnlab_train(plan, work, report)
        series[key].values.append(result["seconds"])
        if report:
            series["train_accuracy"].values.append(100 * result["test_accuracy"])
            series["train_loop"].values.append(result["train_seconds"])
            series["train_memory"].values.append(result["peak_bytes"] / GIB)
        return (
            f"{result['seconds']:.1f} s, test {result['test_accuracy']:.2%}, "
            f"peak {result['peak_bytes'] / GIB:.2f} GiB"
        )

    def record_folders(repeat: int) -> str:
        first, cached = time_folders(folder_root, work / f"cache-{repeat}")
        series["folders_first"].values.append(first)
        series["folders_cached"].values.append(cached)
        return f"{first:.2f} s, cached {cached:.2f} s"

    def record(key: str, value: float) -> str:
        series[key].values.append(value)
        return f"{value:,.1f} {series[key].unit}"

    steps: list[tuple[str, Callable[[int], str]]] = [
        ("matmul", lambda r: record("matmul", matmul_gflops())),
        ("fit", lambda r: record("fit", time_cnnlab_fit(train))),
        ("ref-a", lambda r: record("ref-a", ref_a(0))),
        ("keras", lambda r: record("keras", time_keras(plan, keras_data, work / "keras.log"))),
        ("ref-a2", lambda r: record("ref-a2", ref_a(2))),
        ("train", lambda r: record_train("train", report=True)),
        ("train-no-report", lambda r: record_train("train-no-report", report=False)),
        (
            "predict",
            lambda r: (
                "median "
                + record(
                    "predict",
                    statistics.median(time_predict(predictor, test.images, plan.predict_calls)),
                )
            ),
        ),
        ("folders", record_folders),
    ]
    failed: set[str] = set()
    for repeat in range(plan.repeats):
        for part, step in steps:
            if part != "matmul" and (part not in plan.parts or part in failed):
                continue
            start = time.perf_counter()
            try:
                text = step(repeat)
            except Exception as error:  # one broken reference must not lose the others
                failed.add(part)
                say(f"[{repeat + 1}/{plan.repeats}] {part}: FAILED ({error}) - skipped")
                continue
            took = time.perf_counter() - start
            say(f"[{repeat + 1}/{plan.repeats}] {part}: {text}  ({took:.0f} s)")
        if hasattr(os, "getloadavg"):  # the machine is shared: say how busy it was
            say(f"[{repeat + 1}/{plan.repeats}] load average {os.getloadavg()[0]:.1f}")
    return series


# ------------------------------------------------------------------------------ reporting


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "images/s":
        return f"{value:,.0f}"
    if unit in ("GFLOP/s", "%"):
        return f"{value:.1f}" if unit == "GFLOP/s" else f"{value:.2f}"
    return f"{value:.2f}"


def ratio(numerator: Series, denominator: Series) -> float | None:
    if numerator.median is None or denominator.median is None:
        return None
    return numerator.median / denominator.median


def table_rows(series: dict[str, Series]) -> list[list[str]]:
    """(what, median, min-max, unit, cnnlab speed-up, share of peak) for each measured row."""
    peak = series["matmul"].median
    fit = series["fit"]
    rows = []
    for key, item in series.items():
        if not item.values:
            continue
        spread = (
            f"{fmt(min(item.values), item.unit)}-{fmt(max(item.values), item.unit)}"
            if len(item.values) > 1
            else ""
        )
        speedup = ""
        if key in ("ref-a", "ref-a2", "keras"):
            value = ratio(fit, item)
            speedup = f"{value:.1f}x" if value is not None else ""
        elif key == "fit":
            speedup = "1.0x"
        gflops = item.gflops()
        share = f"{gflops / peak:.1%}" if gflops is not None and peak else ""
        rows.append([item.label, fmt(item.median, item.unit), spread, item.unit, speedup, share])
    return rows


def targets(series: dict[str, Series]) -> list[dict]:
    """The issue's targets, each with its measured value and whether it is met."""

    def target(name: str, measured: float | None, goal: str, met: bool | None, text: str) -> dict:
        status = "not measured" if measured is None else ("met" if met else "NOT met")
        return {"target": name, "measured": text, "goal": goal, "status": status}

    # Issue 16 replaced issue 5's 6x/8x speed-ups (more arithmetic than these CPUs have) with
    # goals measured against the machine itself: a share of its float32 matmul rate.
    vs_b = ratio(series["fit"], series["keras"])
    fit_gflops, peak = series["fit"].gflops(), series["matmul"].median
    share = fit_gflops / peak if fit_gflops is not None and peak else None
    seconds, accuracy = series["train"].median, series["train_accuracy"].median
    predict, memory = series["predict"].median, series["train_memory"].median
    return [
        target(
            "`cnnlab.fit` LeNet-5: share of the float32 matmul peak",
            share,
            ">= 40%",
            share is not None and share >= 0.40,
            f"{share:.1%}" if share is not None else "-",
        ),
        target(
            "cnnlab / B (Keras model.fit), per image",
            vs_b,
            ">= 1.5x",
            vs_b is not None and vs_b >= 1.5,
            f"{vs_b:.1f}x" if vs_b is not None else "-",
        ),
        target(
            "`cnnlab train`: whole process, test accuracy",
            seconds,
            "<= 8 s, >= 99.0%",
            seconds is not None and accuracy is not None and seconds <= 8 and accuracy >= 99.0,
            f"{seconds:.1f} s, {accuracy:.2f}%" if seconds is not None and accuracy else "-",
        ),
        target(
            "predict 10,000 test images",
            predict,
            "<= 0.5 s",
            predict is not None and predict <= 0.5,
            f"{predict:.3f} s" if predict is not None else "-",
        ),
        target(
            "`cnnlab train` peak memory",
            memory,
            "<= 1.5 GiB",
            memory is not None and memory <= 1.5,
            f"{memory:.2f} GiB" if memory is not None else "-",
        ),
    ]


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = [False] + [True] * (len(header) - 1)

    def line(row: list[str]) -> str:
        cells = [
            cell.rjust(width) if align else cell.ljust(width)
            for cell, width, align in zip(row, widths, right, strict=True)
        ]
        return "  ".join(cells).rstrip()

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


MEASURE_HEADER = ["what", "median", "min-max", "unit", "cnnlab faster", "share of peak"]
TARGET_HEADER = ["target", "measured", "goal", "status"]


def machine_line(machine: dict) -> str:
    return (
        f"{machine['cpu']}, {machine['cpu_count']} cores, {machine['torch_threads']} torch "
        f"threads, {machine['memory_gib']:.0f} GiB, Python {machine['python']}, "
        f"torch {machine['torch']}, load average at start {machine['load_average_at_start']:.1f}"
    )


def notes(mult_adds: int, plan: Plan) -> list[str]:
    return [
        f"LeNet-5: {mult_adds:,} multiply-adds per 28x28 image forward; training counted as "
        f"3 x 2 x that = {6 * mult_adds / 1e6:.2f} MFLOP per image.",
        "share of peak: achieved GFLOP/s over the machine's float32 matmul GFLOP/s.",
        f"medians of {plan.repeats} interleaved repeat(s); min-max over the repeats.",
    ]


def markdown_report(
    machine: dict, rows: list[list[str]], goals: list[dict], extra: list[str]
) -> str:
    goal_rows = [[g["target"], g["measured"], g["goal"], g["status"]] for g in goals]
    return "\n\n".join(
        [
            f"Machine: {machine_line(machine)}.",
            markdown_table(MEASURE_HEADER, rows),
            markdown_table(TARGET_HEADER, goal_rows),
            "\n".join(f"- {line}" for line in extra),
        ]
    )


# ------------------------------------------------------------------------------ command line


def default_tf_python() -> str | None:
    """``$CNNLAB_BENCH_TF_PYTHON``, else this interpreter when it has TensorFlow, else None."""
    configured = os.environ.get("CNNLAB_BENCH_TF_PYTHON")
    if configured:
        return configured
    return sys.executable if importlib.util.find_spec("tensorflow") else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, help="repeats of each part (default 3; quick 1)")
    parser.add_argument("--quick", action="store_true", help="smoke run of about a minute")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--json", type=Path, help="write every number to this JSON file")
    parser.add_argument(
        "--markdown", metavar="FILE", help="write the tables as Markdown to FILE ('-': stdout)"
    )
    parser.add_argument(
        "--tf-python",
        default=default_tf_python(),
        help="Python with TensorFlow for reference B (default: $CNNLAB_BENCH_TF_PYTHON, "
        "else this one if it has TensorFlow, else B is skipped)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="PART[,PART]",
        help=f"leave parts out: {', '.join(PARTS)}",
    )
    args = parser.parse_args(argv)
    skipped = {part.strip() for value in args.skip for part in value.split(",") if part.strip()}
    unknown = skipped - set(PARTS)
    if unknown:
        parser.error(f"--skip {', '.join(sorted(unknown))}: choose among {', '.join(PARTS)}")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    args.skipped = skipped
    return args


def make_plan(args: argparse.Namespace) -> Plan:
    parts = [part for part in PARTS if part not in args.skipped]
    if args.quick:
        # A smoke run: the second cnnlab train variant and the worker start-up of A with two
        # workers cost more than they tell at this size.
        parts = [part for part in parts if part not in ("ref-a2", "train-no-report")]
    if "keras" in parts and not args.tf_python:
        print("Keras/TensorFlow: not installed (pip install tensorflow-cpu) - skipped")
        parts.remove("keras")
    return Plan(
        repeats=args.repeats or (1 if args.quick else 3),
        threads=args.threads,
        train_images=12_800 if args.quick else None,
        ref_batches=60 if args.quick else 300,
        keras_images=12_800 if args.quick else None,
        keras_batch_size=128,
        folder_files=2_000 if args.quick else 20_000,
        predict_calls=3 if args.quick else 5,
        tf_python=args.tf_python if "keras" in parts else None,
        parts=tuple(parts),
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    plan = make_plan(args)
    machine = describe_machine(plan.threads)
    print(f"machine: {machine_line(machine)}", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-") as temporary:
        series = measure(plan, Path(temporary), lambda text: print(text, flush=True))
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    machine["load_average_at_end"] = load[0] if load else None
    mult_adds = lenet5_mult_adds()
    rows, goals, extra = table_rows(series), targets(series), notes(mult_adds, plan)

    print()
    print(text_table(MEASURE_HEADER, rows))
    print()
    print(text_table(TARGET_HEADER, [list(goal.values()) for goal in goals]))
    print()
    print("\n".join(extra))
    print(f"bench took {time.perf_counter() - started:.0f} s")

    if args.markdown:
        text = markdown_report(machine, rows, goals, extra)
        if args.markdown == "-":
            print()
            print(text)
        else:
            Path(args.markdown).write_text(text + "\n")
    if args.json:
        result = {
            "machine": machine,
            "plan": {name: getattr(plan, name) for name in plan.__dataclass_fields__},
            "lenet5_mult_adds_per_image": mult_adds,
            "lenet5_training_flops_per_image": 6 * mult_adds,
            "measurements": {key: item.to_dict() for key, item in series.items()},
            "targets": goals,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
