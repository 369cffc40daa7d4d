"""Every picture of a finished run as PNG files, for slides and papers rather than the report."""

from __future__ import annotations

import warnings
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.export.saved import load
from cnnlab.inspect import mistakes, plots
from cnnlab.inspect.confusion import plot_confusion_pair
from cnnlab.inspect.report import read_run
from cnnlab.runs.reading import load_run_split


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> list[Path]:
    """Writes the run's curves, epoch times, class counts, confusion matrices, samples, worst
    cases and most confused pairs into ``out`` (default ``RUN_DIR/plots``); returns the files.

    The pictures that need the images (samples, worst cases, confused pairs) re-read the run's
    data; if that is no longer where the run found it, they are skipped with a warning and the
    others are still drawn.
    """
    run = read_run(run_dir)
    # Everything that can refuse the run is read before the first picture is written.
    model = load(run.path)
    out = Path(out) if out is not None else run.path / "plots"
    out.mkdir(parents=True, exist_ok=True)
    best = run.run.get("best_epoch")
    written = [
        plots.plot_learning_curves(run.history, out / "learning_curves.png", best_epoch=best),
        plots.plot_epoch_times(run.history, out / "epoch_times.png"),
    ]
    subsets = {
        name: m for name, m in run.metrics.items() if isinstance(m, dict) and "confusion" in m
    }
    counts = {
        name: {c: v["support"] for c, v in m["per_class"].items()} for name, m in subsets.items()
    }
    written.append(plots.plot_class_counts(counts, out / "class_counts.png"))
    for name, metrics in subsets.items():
        written.append(
            plot_confusion_pair(
                metrics["confusion"], list(metrics["per_class"]), out / f"confusion_{name}.png"
            )
        )
    try:
        split = load_run_split(run.path)
    except CnnlabError as error:
        warnings.warn(f"no pictures of images: {error}", stacklevel=2)
        return written
    shown = split.test or split.valid or split.train
    written.append(plots.plot_samples(split.train, out / "samples.png"))
    samples = mistakes.sample_results(model, shown)
    written.append(
        mistakes.plot_worst_cases(model, shown, out / "worst_cases.png", samples=samples)
    )
    written.append(
        mistakes.plot_confused_pairs(model, shown, out / "confused_pairs.png", samples=samples)
    )
    return written
