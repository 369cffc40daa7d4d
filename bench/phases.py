"""Where the main job's seconds go, and what issue 16's 8-second goal leaves for training.

Runs ``cnnlab train`` (the main job, default options) ``--repeats`` times, each in a fresh
process that wraps the run's stages to note when each starts and ends, and prints the median
seconds of each stage::

    start        the interpreter, torch and cnnlab imports
    data         MNIST decoded, checked and split (load_split)
    model        the network built (build_model)
    setup        the run folder, the normalizer and config.json, until training starts
    training     fit: the epochs, plus the wait for the optimizer's import of torch._dynamo
                 (started in the background at the data stage) and the layout change
    evaluation   every subset scored, the model and metrics saved (finish_run)
    report       the HTML report (write_run_report)
    results      the folder moved into place and the results printed
    exit         from the end of the command to the end of the process (interpreter shutdown)
    other        the rest: parsing the options and checking the run before the data stage

Then the budget of ``--goal`` seconds: the time outside the epochs as measured, what that leaves
for the epochs, and the images/s and share of the float32 matmul rate the epochs would need.
Usage::

    python bench/phases.py [--repeats 3] [--goal 8] [--no-report]
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = {
    "data": "load_split",
    "model": "build_model",
    "training": "fit",
    "evaluation": "finish_run",
    "report": "write_run_report",
}


def child(out: str, marks_file: str, report: bool) -> None:
    """One main job in this process, noting wall-clock marks into ``marks_file`` (JSON)."""
    marks: dict[str, float] = {}
    from cnnlab.cli.main import main

    marks["imported"] = time.time()
    import cnnlab.train.run as run

    def timed(stage: str, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            marks[f"{stage}.start"] = time.time()
            try:
                return function(*args, **kwargs)
            finally:
                marks[f"{stage}.end"] = time.time()

        return wrapper

    for stage, name in STAGES.items():
        setattr(run, name, timed(stage, getattr(run, name)))
    argv = ["train", "--out", out, *([] if report else ["--no-report"])]
    try:
        code = main(argv)
    finally:
        marks["done"] = time.time()
        Path(marks_file).write_text(json.dumps(marks))
    sys.exit(code)


def one_job(work: Path, report: bool) -> dict[str, float]:
    """Seconds of each stage of one main job, started as a child process."""
    out, marks_file = work / "run", work / "marks.json"
    command = [sys.executable, __file__, "--child", str(out), str(marks_file)]
    started = time.time()
    result = subprocess.run(
        [*command, *([] if report else ["--no-report"])], capture_output=True, text=True
    )
    ended = time.time()
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"cnnlab train exited with {result.returncode}: {tail}")
    marks = json.loads(marks_file.read_text())
    record = json.loads((out / "run.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    shutil.rmtree(out)

    def span(stage: str) -> float:
        if not report and stage == "report":
            return 0.0
        if f"{stage}.end" not in marks:
            # The run no longer calls it through cnnlab.train.run's namespace: the wrapper
            # saw nothing, and its time would hide in "other".
            raise SystemExit(f"the {stage} stage ({STAGES[stage]}) was never called")
        return marks[f"{stage}.end"] - marks[f"{stage}.start"]

    seconds = {
        "start": marks["imported"] - started,
        **{stage: span(stage) for stage in STAGES},
        "setup": marks["training.start"] - marks["model.end"],
        "results": marks["done"] - marks["report.end" if report else "evaluation.end"],
        "exit": ended - marks["done"],
    }
    seconds["other"] = (ended - started) - sum(seconds.values())
    seconds["total"] = ended - started
    seconds["epochs"] = float(record["train_seconds"])
    seconds["images"] = metrics["train"]["n"] * record["epochs_run"]
    seconds["accuracy"] = metrics["test"]["accuracy"]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--goal", type=float, default=8.0, help="seconds for the whole job")
    parser.add_argument("--no-report", dest="report", action="store_false")
    parser.add_argument("--child", nargs=2, metavar=("OUT", "MARKS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, report=args.report)
        return
    from run import lenet5_mult_adds, matmul_gflops  # bench/run.py, measured the same way

    runs = []
    peaks = [matmul_gflops()]  # before and after the jobs: this machine's speed drifts
    with tempfile.TemporaryDirectory(prefix="cnnlab-phases-") as work:
        for _ in range(args.repeats):
            runs.append(one_job(Path(work), args.report))
    peaks.append(matmul_gflops())
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    order = [
        "start",
        "data",
        "model",
        "setup",
        "training",
        "evaluation",
        "report",
        "results",
        "exit",
        "other",
    ]
    job = "cnnlab train" + ("" if args.report else " --no-report")
    print(f"{job}: median of {args.repeats}, test accuracy {median['accuracy']:.2%}")
    for stage in order:
        if stage == "report" and not args.report:
            continue
        low = min(run[stage] for run in runs)
        high = max(run[stage] for run in runs)
        print(f"  {stage:<11} {median[stage]:6.2f} s  ({low:.2f}-{high:.2f})")
    print(f"  {'total':<11} {median['total']:6.2f} s, of which the epochs {median['epochs']:.2f} s")
    outside = median["total"] - median["epochs"]
    left = args.goal - outside
    if left <= 0:
        print(f"goal {args.goal:g} s: the {outside:.2f} s outside the epochs exceed it already")
        return
    rate = median["images"] / left
    peak = max(peaks)
    share = rate * 6 * lenet5_mult_adds() / 1e9 / peak
    print(
        f"goal {args.goal:g} s: {outside:.2f} s outside the epochs leave {left:.2f} s for them "
        f"(now {median['epochs']:.2f} s): {rate:,.0f} images/s, {share:.0%} of the float32 "
        f"matmul rate ({peak:.0f} GFLOP/s, the higher of two measurements)"
    )


if __name__ == "__main__":
    main()
