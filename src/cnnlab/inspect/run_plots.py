"""Every picture of a finished run as PNG files, for slides and papers rather than the report."""

from __future__ import annotations

import warnings
from collections.abc import Callable
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
    written: list[Path] = []

    def draw(plot: Callable[..., object], name: str, *args: object, **options: object) -> None:
        plot(*args, out / name, **options)
        written.append(out / name)

    draw(plots.plot_learning_curves, "learning_curves.png", run.history, best_epoch=best)
    draw(plots.plot_epoch_times, "epoch_times.png", run.history)
    subsets = {
        name: m for name, m in run.metrics.items() if isinstance(m, dict) and "confusion" in m
    }
    counts = {
        name: {c: v["support"] for c, v in m["per_class"].items()} for name, m in subsets.items()
    }
    draw(plots.plot_class_counts, "class_counts.png", counts)
    for name, metrics in subsets.items():
        names = list(metrics["per_class"])
        draw(plot_confusion_pair, f"confusion_{name}.png", metrics["confusion"], names)
    try:
        split = load_run_split(run.path)
    except CnnlabError as error:
        warnings.warn(f"no pictures of images: {error}", stacklevel=2)
        return written
    shown = split.test or split.valid or split.train
    draw(plots.plot_samples, "samples.png", split.train)
    samples = mistakes.sample_results(model, shown)
    draw(mistakes.plot_worst_cases, "worst_cases.png", model, shown, samples=samples)
    draw(mistakes.plot_confused_pairs, "confused_pairs.png", model, shown, samples=samples)
    return written
