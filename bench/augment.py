"""Issue 14's figures: static augmentation (copies made before training) against on the fly.

``python bench/augment.py`` runs, in a temporary folder, ``cnnlab synth bacteria`` and
``cnnlab train`` as a user would, each training in its own process, and prints a Markdown table:

1. the issue's row: ``--images`` (20,000) synthetic 48x48 16-bit crops, the practical's
   "rotate+flip+noise" augmentation (``rotate:90,-90,270,-270,-45,45 flip noise:0.1
   flip+noise:0.1``, ten images from one), ``--epochs`` (30) of ``lenet5_bn``, once per mode:
   wall time, peak resident memory and test accuracy;
2. the bacteria task, which decides the default mode: lab-style crops at 32x32 with the same
   augmentation, ``--seeds`` seeds; both modes for half, once and twice ``--bacteria-epochs``
   epochs (an on-the-fly epoch shows as many images as the static set holds, so the same
   epochs are the same images seen), with mean test accuracy and training seconds: which mode
   reaches a given accuracy in less time.

Figures are read from the files the commands write (``metrics.json``, ``run.json``); peak
memory is ``os.wait4``'s ``ru_maxrss`` of exactly the training process (see ``bench/run.py``).
``--quick`` is a smoke run (2,000 images, 3 epochs, 1 seed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cnnlab.files import write_json
from run import child_environment, cnnlab_command, cpu_model, measure_child, run_measured

# The practical's augmentation: 6 angles, a flip, noise, noisy flips: 720 crops become 7,200.
AUGMENT = ["rotate:90,-90,270,-270,-45,45", "flip", "noise:0.1", "flip+noise:0.1"]
VARIANTS = 10
MODES = ("static", "on-the-fly")


def synth(work: Path, name: str, per_class: int, *extra: str) -> float:
    """``cnnlab synth bacteria`` into ``work/name``; returns its wall seconds."""
    command = [*cnnlab_command(), "synth", "bacteria", "--out", str(work / name)]
    command += ["--per-class", str(per_class), "--seed", "1", *extra]
    start = time.perf_counter()
    code, _, _ = run_measured(command, child_environment(2), work / f"{name}.log")
    if code != 0:
        sys.exit(f"cnnlab synth failed: see {work / name}.log")
    return time.perf_counter() - start


def train(work: Path, data: str, out: str, options: list[str], threads: int) -> dict:
    """One ``cnnlab train`` in its own process: test accuracy, seconds and peak memory."""
    augment = [item for spec in AUGMENT for item in ("--augment", spec)]
    command = [*cnnlab_command(), "train", "--data", str(work / data), *augment, *options]
    command += ["--model", "lenet5_bn", "--out", str(work / out), "--no-report", "--quiet"]
    command += ["--threads", str(threads)]
    log = work / f"{out.replace('/', '_')}.log"
    measured = measure_child(command, child_environment(threads), log)
    code, wall, peak = measured.code, measured.wall, measured.peak
    if code != 0:
        sys.exit(f"cnnlab train failed ({' '.join(command)}): see {log}")
    test = json.loads((work / out / "metrics.json").read_text())["test"]
    run = json.loads((work / out / "run.json").read_text())
    return {
        "accuracy": test["accuracy"],
        "n": test["n"],
        "train_seconds": run["train_seconds"],
        "wall_seconds": wall,
        "cpu_seconds": measured.cpu,
        "peak_bytes": peak,
    }


def issue_row(work: Path, images: int, epochs: int, threads: int) -> list[dict]:
    """Part 1: the same command in both modes on ``images`` 48x48 crops."""
    seconds = synth(work, "crops48", images // 4, "--min-size", "48", "--max-size", "48")
    print(f"synthesized {images} crops in {seconds:.0f} s", file=sys.stderr, flush=True)
    rows = []
    for mode in MODES:
        options = ["--split", "80,10,10", "--epochs", str(epochs), "--augment-mode", mode]
        result = train(work, "crops48", f"row/{mode}", options, threads)
        print(f"row {mode}: {result}", file=sys.stderr, flush=True)
        rows.append({"mode": mode, "epochs": epochs, **result})
    return rows


def bacteria(work: Path, per_class: int, epochs: int, seeds: list[int], split: str, threads: int):
    """Part 2: mean accuracy and seconds per setting over ``seeds``."""
    synth(work, "bacteria", per_class)
    lengths = sorted({max(1, epochs // 2), epochs, 2 * epochs})
    settings = [(mode, length) for length in lengths for mode in MODES]
    rows = []
    for mode, mode_epochs in settings:
        runs = []
        for seed in seeds:
            options = ["--size", "32", "--split", split, "--equalize", "--seed", str(seed)]
            options += ["--epochs", str(mode_epochs), "--augment-mode", mode]
            out = f"bacteria-runs/{mode}-{mode_epochs}-{seed}"
            runs.append(train(work, "bacteria", out, options, threads))
            print(f"bacteria {mode} {mode_epochs} seed {seed}: {runs[-1]}", file=sys.stderr)
        accuracies = [r["accuracy"] for r in runs]
        rows.append(
            {
                "mode": mode,
                "epochs": mode_epochs,
                "accuracy": statistics.mean(accuracies),
                "accuracies": accuracies,
                "n": runs[0]["n"],
                "train_seconds": statistics.mean(r["train_seconds"] for r in runs),
                "peak_bytes": max(r["peak_bytes"] for r in runs),
            }
        )
    return rows


def markdown(row: list[dict], task: list[dict], args: argparse.Namespace) -> str:
    lines = [f"Machine: {cpu_model()}, {args.threads} threads.", ""]
    if row:
        lines += [
            f"{args.images} synthetic 48x48 16-bit crops (80/10/10), `lenet5_bn`, "
            f"{args.epochs} epochs, rotate+flip+noise ({VARIANTS} images from one):",
            "",
            "| mode | images per epoch | wall time | CPU time | training | peak memory | "
            "test accuracy |",
            "|---|---|---|---|---|---|---|",
        ]
        train_size = round(0.8 * args.images)
        for r in row:
            per_epoch = train_size * VARIANTS
            lines.append(
                f"| {r['mode']} | {per_epoch:,} | {r['wall_seconds']:.0f} s | "
                f"{r['cpu_seconds']:.0f} s | "
                f"{r['train_seconds']:.0f} s | {r['peak_bytes'] / 2**20:,.0f} MiB | "
                f"{100 * r['accuracy']:.2f}% (n={r['n']}) |"
            )
        lines.append("")
    if task:
        lines += [
            f"Bacteria task: {4 * args.per_class} lab-style crops at 32x32, split {args.split}, "
            f"`lenet5_bn`, rotate+flip+noise, seeds {args.seeds}:",
            "",
            "| mode | epochs | images seen | training (mean) | test accuracy (mean) | per seed |",
            "|---|---|---|---|---|---|",
        ]
        for r in task:
            seen = r["epochs"] * VARIANTS
            each = ", ".join(f"{100 * a:.1f}" for a in r["accuracies"])
            lines.append(
                f"| {r['mode']} | {r['epochs']} | {seen} x train set | "
                f"{r['train_seconds']:.1f} s | {100 * r['accuracy']:.2f}% (n={r['n']}) | {each} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20_000, help="crops of the issue's row")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of the issue's row")
    parser.add_argument("--per-class", type=int, default=300, help="bacteria crops per class")
    parser.add_argument("--bacteria-epochs", type=int, default=4, help="static epochs, part 2")
    parser.add_argument("--split", default="20,20,60", help="bacteria split (a large test set)")
    parser.add_argument("--seeds", default="0,1,2", help="bacteria seeds, comma-separated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip", default="", help="row and/or bacteria, comma-separated")
    parser.add_argument("--quick", action="store_true", help="2,000 images, 3 epochs, 1 seed")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep what was written")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    if args.quick:
        args.images, args.epochs, args.bacteria_epochs, args.seeds = 2000, 3, 2, "0"
    args.seeds = [int(s) for s in args.seeds.split(",")]
    skip = set(filter(None, args.skip.split(",")))

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cnnlab-augment-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        row = [] if "row" in skip else issue_row(work, args.images, args.epochs, args.threads)
        task = (
            []
            if "bacteria" in skip
            else bacteria(
                work, args.per_class, args.bacteria_epochs, args.seeds, args.split, args.threads
            )
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        write_json(args.json, {"row": row, "bacteria": task})
    print(markdown(row, task, args), end="")


if __name__ == "__main__":
    main()
