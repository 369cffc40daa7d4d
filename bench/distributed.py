"""Issue 14's data-parallel figures: the main job in one process or in several.

``python bench/distributed.py`` runs ``cnnlab train --no-report`` (LeNet-5 on MNIST, the
default recipe) ``--repeats`` times each way, interleaved: one process with all the threads,
and ``cnnlab train --nproc N`` (N processes with a share of the threads each). It prints a
Markdown table of the medians: whole-process wall time, training seconds and images per second
of training (from ``run.json``), test accuracy, and the largest weight difference from the
single process (two processes train the same model up to the order of float additions).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from safetensors.torch import load_file

from run import cnnlab_command, cpu_model, run_measured


def weight_difference(a: Path, b: Path) -> float:
    first, second = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return max(
        float((first[k].double() - second[k].double()).abs().max())
        for k in first
        if first[k].is_floating_point()
    )


def one_run(work: Path, name: str, processes: int, threads: int) -> dict:
    out = work / name
    command = [*cnnlab_command(), "train", "--no-report", "--quiet", "--out", str(out)]
    env = dict(os.environ)
    if processes > 1:
        command += ["--nproc", str(processes)]
        env["OMP_NUM_THREADS"] = str(max(1, threads // processes))
    else:
        env["OMP_NUM_THREADS"] = str(threads)
    code, wall, _ = run_measured(command, env, work / f"{name}.log")
    if code != 0:
        sys.exit(f"cnnlab train failed: see {work / name}.log")
    run = json.loads((out / "run.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "config.json").read_text())
    images = config["resolved"]["subsets"]["train"] * config["train"]["epochs"]
    return {
        "wall": wall,
        "train": run["train_seconds"],
        "images_per_second": images / run["train_seconds"],
        "accuracy": metrics["test"]["accuracy"],
        "out": out,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cnnlab-ddp-"))
    results: dict[str, list[dict]] = {"one": [], "many": []}
    try:
        for repeat in range(args.repeats):
            results["one"].append(one_run(work, f"one{repeat}", 1, args.threads))
            results["many"].append(one_run(work, f"many{repeat}", args.processes, args.threads))
            print(
                f"repeat {repeat}: "
                + ", ".join(f"{k} {v[-1]['wall']:.1f} s" for k, v in results.items()),
                file=sys.stderr,
                flush=True,
            )
        differences = [
            weight_difference(a["out"], b["out"])
            for a, b in zip(results["one"], results["many"], strict=True)
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    print(f"Machine: {cpu_model()}, {args.threads} cores; medians of {args.repeats} runs each.")
    print()
    print("| how | whole process | training | training images/s | test accuracy |")
    print("|---|---:|---:|---:|---:|")
    labels = {
        "one": f"`cnnlab train`, 1 process x {args.threads} threads",
        "many": f"`cnnlab train --nproc {args.processes}`, {args.processes} processes x "
        f"{max(1, args.threads // args.processes)} thread(s)",
    }
    for kind, label in labels.items():
        print(
            f"| {label} | {median(kind, 'wall'):.1f} s | {median(kind, 'train'):.1f} s | "
            f"{median(kind, 'images_per_second'):,.0f} | {100 * median(kind, 'accuracy'):.2f}% |"
        )
    print()
    print(f"Largest weight difference between the two: {max(differences):.1e}.")


if __name__ == "__main__":
    main()
