"""Every picture of a finished run as PNG files, for slides and papers rather than the report."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.export.saved import load
from cnnlab.inspect import mistakes, plots
from cnnlab.inspect.confusion import plot_confusion_pair
from cnnlab.inspect.figures import check_pictures_free
from cnnlab.inspect.report import read_run
from cnnlab.runs.reading import load_run_split

#: The pictures plot_run draws besides one confusion matrix per subset.
PICTURES = (
    "learning_curves.png",
    "epoch_times.png",
    "class_counts.png",
    "samples.png",
    "worst_cases.png",
    "confused_pairs.png",
)


def plot_run(
    run_dir: str | Path, out: str | Path | None = None, overwrite: bool = True
) -> list[Path]:
    """Writes the run's curves, epoch times, class counts, confusion matrices, samples, worst
    cases and most confused pairs into ``out`` (default ``RUN_DIR/plots``); returns the files.

    The pictures that need the images (samples, worst cases, confused pairs) re-read the run's
    data; if that is no longer where the run found it, they are skipped with a warning and the
    others are still drawn. ``overwrite=False`` (``cnnlab plots --out`` without
    ``--overwrite``) refuses a folder that holds a file of one of those names already; the
    run's own ``plots`` folder is always redrawn.
    """
    run = read_run(run_dir)
    # Everything that can refuse the run is read before the first picture is written.
    model = load(run.path)
    subsets = {
        name: m for name, m in run.metrics.items() if isinstance(m, dict) and "confusion" in m
    }
    names = [*PICTURES, *(f"confusion_{name}.png" for name in subsets)]
    own = run.path / "plots"
    if out is not None and Path(out).resolve() != own.resolve():
        check_pictures_free(Path(out), names, overwrite)
    out = Path(out) if out is not None else own
    out.mkdir(parents=True, exist_ok=True)
    best = run.run.get("best_epoch")
    written: list[Path] = []

    def draw(plot: Callable[..., object], name: str, *args: object, **options: object) -> None:
        plot(*args, out / name, **options)
        written.append(out / name)

    draw(plots.plot_learning_curves, "learning_curves.png", run.history, best_epoch=best)
    draw(plots.plot_epoch_times, "epoch_times.png", run.history)
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
