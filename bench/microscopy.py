"""Issue 11's figures: the microscopy path from synthetic crops and whole fields, through the CLI.

``python bench/microscopy.py`` runs, in a temporary folder, exactly the commands the README shows
and prints a Markdown table of what they gave:

1. ``cnnlab synth bacteria --per-class 300 --seed 1`` and the README's bacteria command
   (LeNet-5 with batch normalization, 60 epochs, the course's augmentation): test accuracy with
   its exact 95% interval, training seconds and the command's wall time;
2. ``cnnlab synth field --seed 2`` (1024x1024): how many crops ``cnnlab crops`` cuts from its
   ``RoiSet.zip`` and from its label image, against the truth in ``objects.csv``;
3. ``cnnlab predict RUN --field`` on that field: the per-class accuracy of the model of step 1
   against the classes of the ROIs, with ROIs and with the label image;
4. fine-tuning: 10 crops per class cut from another field (seed 3) stand in for "a few dozen
   labelled real crops"; a network trained on them alone, and the run of step 1 fine-tuned on
   them (``--init-from``, with and without ``--freeze features``), each judged on field 2.

Every number comes from the files the commands wrote (``metrics.json``, ``run.json``, the CSV
tables), never from the commands' printed text. ``--quick`` uses 60 crops per class and 10
epochs for a smoke run.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

CLASSES = ("1cell", "2cell", "groups", "rien")
AUGMENT = [
    "--augment",
    "rotate:90,-90,270,45,-45",
    "--augment",
    "flip:hv",
    "--augment",
    "noise:0.1",
]


def cnnlab(*args: str, cwd: Path) -> float:
    """Runs one ``cnnlab`` command; returns its wall time in seconds, or stops with its error."""
    script = Path(sys.executable).with_name("cnnlab")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "cnnlab.cli"]
    start = time.perf_counter()
    result = subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"cnnlab {' '.join(args)} failed: {result.stderr.strip()}")
    return seconds


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def field_accuracy(predictions: Path, truth: dict[str, str], key: str) -> dict[str, str]:
    """Correct/total per true class (and overall) of a ``predict --field`` table."""
    correct, total = Counter(), Counter()
    for row in read_csv(predictions):
        true = truth[row[key]]
        total[true] += 1
        correct[true] += row["predicted"] == true
    cells = {name: f"{correct[name]}/{total[name]}" for name in CLASSES}
    overall = sum(correct.values()) / max(sum(total.values()), 1)
    cells["all"] = f"{100 * overall:.1f}%"
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 crops per class, 10 epochs")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep what was written")
    args = parser.parse_args()
    per_class, epochs = (60, 10) if args.quick else (300, 60)

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cnnlab-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str]] = []
    try:
        # 1. Synthetic crops and the README's bacteria command.
        cnnlab("synth", "bacteria", "--out", "crops", "--per-class", str(per_class),
               "--seed", "1", cwd=work)  # fmt: skip
        wall = cnnlab(
            "train", "--data", "crops", "--size", "32", "--split", "60,30,10", "--equalize",
            *AUGMENT, "--model", "lenet5_bn", "--epochs", str(epochs), "--out", "runs/bacteria",
            "--no-report", "--quiet", cwd=work,
        )  # fmt: skip
        test = json.loads((work / "runs/bacteria/metrics.json").read_text())["test"]
        run = json.loads((work / "runs/bacteria/run.json").read_text())
        low, high = test["accuracy_ci"]
        rows.append(
            (
                f"bacteria command ({4 * per_class} synthetic crops, {epochs} epochs)",
                f"test accuracy {100 * test['accuracy']:.1f}% (95% CI {100 * low:.1f}-"
                f"{100 * high:.1f}%, {test['n']} images); {run['train_seconds']:.0f} s training, "
                f"{wall:.0f} s in all",
            )
        )

        # 2. A whole field, and the crops cut from it.
        for seed in (2, 3):
            cnnlab("synth", "field", "--out", f"field{seed}", "--seed", str(seed), cwd=work)
        truth_rows = read_csv(work / "field2/objects.csv")
        truth = Counter(row["class"] for row in truth_rows)
        cnnlab("crops", "field2/field.tif", "--rois", "field2/RoiSet.zip", "--out", "roi-crops",
               cwd=work)  # fmt: skip
        cut = Counter(row["class"] for row in read_csv(work / "roi-crops/crops.csv"))
        found = ", ".join(f"{name} {cut[name]}/{truth[name]}" for name in CLASSES)
        rows.append(("`crops --rois` on field 2 (crops / objects)", found))
        cnnlab("crops", "field2/field.tif", "--labels", "field2/field_labels.tif", "--out",
               "label-crops", cwd=work)  # fmt: skip
        cut_labels = len(read_csv(work / "label-crops/crops.csv"))
        rows.append(
            ("`crops --labels` on field 2 (crops / objects)", f"{cut_labels}/{len(truth_rows)}")
        )

        # 3. Classify the field with the model trained on synthetic crops.
        by_name = {row["name"]: row["class"] for row in truth_rows}
        by_id = {row["id"]: row["class"] for row in truth_rows}
        cnnlab("predict", "runs/bacteria", "--field", "field2/field.tif", "--rois",
               "field2/RoiSet.zip", "--out", "field2-rois.csv", cwd=work)  # fmt: skip
        cnnlab("predict", "runs/bacteria", "--field", "field2/field.tif", "--labels",
               "field2/field_labels.tif", "--out", "field2-labels.csv", cwd=work)  # fmt: skip
        for source, table, key in (("ROIs", "field2-rois.csv", "name"),
                                   ("label image", "field2-labels.csv", "id")):  # fmt: skip
            cells = field_accuracy(work / table, by_name if key == "name" else by_id, key)
            detail = ", ".join(f"{name} {cells[name]}" for name in CLASSES)
            rows.append((f"`predict --field` with the {source}", f"{cells['all']} ({detail})"))

        # 4. Fine-tuning on a few dozen crops of another field.
        cnnlab("crops", "field3/field.tif", "--rois", "field3/RoiSet.zip", "--out", "field3-crops",
               cwd=work)  # fmt: skip
        chosen = random.Random(0)
        for name in CLASSES:
            files = sorted((work / "field3-crops" / name).glob("*.tif"))
            (work / "few" / name).mkdir(parents=True, exist_ok=True)
            for file in chosen.sample(files, 10):
                shutil.copy(file, work / "few" / name / file.name)
        common = ["--data", "few", "--size", "32", "--split", "80,20", *AUGMENT,
                  "--epochs", "30", "--no-report", "--quiet"]  # fmt: skip
        variants = {
            "from scratch": ["--model", "lenet5_bn"],
            "--init-from": ["--init-from", "runs/bacteria"],
            "--init-from --freeze features": [
                "--init-from", "runs/bacteria", "--freeze", "features"
            ],
        }  # fmt: skip
        for label, extra in variants.items():
            out = f"runs/few-{len(rows)}"
            wall = cnnlab("train", *common, *extra, "--out", out, cwd=work)
            cnnlab("predict", out, "--field", "field2/field.tif", "--rois", "field2/RoiSet.zip",
                   "--out", f"{out}.csv", cwd=work)  # fmt: skip
            cells = field_accuracy(work / f"{out}.csv", by_name, "name")
            detail = ", ".join(f"{name} {cells[name]}" for name in CLASSES)
            rows.append(
                (
                    f"40 crops of field 3, {label}: field 2",
                    f"{cells['all']} ({detail}); {wall:.0f} s",
                )
            )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(
        f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    print("\n| what | result |\n|---|---|")
    for what, result in rows:
        print(f"| {what} | {result} |")


if __name__ == "__main__":
    main()
