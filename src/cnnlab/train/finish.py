"""The end of a run: evaluate, save, mark it finished, report, and print the results.

``run.json``, written last, says the run is finished; the report is made from the run's files
and a failure to draw it only warns, since everything it shows is saved already.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import torch

from cnnlab.data.split import Split
from cnnlab.evaluate import format_metrics, metrics_of, per_sample_subsets
from cnnlab.export.saved import save_model
from cnnlab.files import read_json, write_json
from cnnlab.runs import folder as runs
from cnnlab.runs.reading import headline_subset
from cnnlab.train.loop import History
from cnnlab.train.options import RunConfig


def finish_run(
    folder: Path, model: torch.nn.Module, config: RunConfig, split: Split, history: History
) -> dict[str, dict]:
    """Evaluates every subset, saves the model and metrics, and marks the run finished.

    ``run.json`` is written last: a folder holding it holds everything but the report, which
    is made from these files. A fine-tuned run's ``init`` record (where its weights came from,
    what was frozen), written into ``config.json`` when it started, goes into both. Returns
    each subset's per-image scores (:func:`cnnlab.evaluate.per_sample`), for the report to
    reuse instead of running the model over the images again.
    """
    init = runs.read_config(folder).get("init")
    # ``split.train`` is the training set before augmentation: the one a user reports on.
    subsets = {"train": split.train, "valid": split.valid, "test": split.test}
    scores = per_sample_subsets(model, subsets)
    metrics = {name: metrics_of(samples, subsets[name]) for name, samples in scores.items()}
    write_json(folder / "metrics.json", metrics)
    save_model(
        model,
        folder,
        split.train.class_names,
        bit_depth=split.train.bit_depth,
        largest_source=split.train.largest_source(),
        training={
            "run": config.to_dict(),
            "best_epoch": history.best_epoch,
            "kept_epoch": history.kept_epoch,
            **({"init": init} if init else {}),
        },
    )
    write_json(
        folder / runs.FINISHED,
        {
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "epochs_run": len(history.rows),
            "best_epoch": history.best_epoch,
            "kept_epoch": history.kept_epoch,
            "stop_reason": history.stop_reason,
            "train_seconds": round(history.seconds, 3),
            **({"init": init} if init else {}),
        },
    )
    return scores


def write_run_report(folder: Path, **loaded: object) -> None:
    """The HTML report; the run is saved already, so a failure warns and loses nothing."""
    try:
        from cnnlab.inspect.report import write_report

        write_report(folder, **loaded)
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        warnings.warn(f"no HTML report ({reason})", stacklevel=2)


def print_result(out: Path, quiet: bool) -> None:
    """The run's results on stdout: the headline metrics, the subset table, the final line."""
    metrics = read_json(out / "metrics.json", "metrics")
    finished = read_json(out / runs.FINISHED, "run record")
    subset = headline_subset(metrics)
    final = metrics[subset]
    if not quiet:
        print(format_metrics(final, title=f"{subset} ({final['n']} images)"))
        print(format_subset_table(metrics))
        if (out / "report.html").exists():
            print(f"cnnlab: report {out / 'report.html'}")
    low, high = final["accuracy_ci"]
    best, kept = finished["best_epoch"], finished.get("kept_epoch", finished["best_epoch"])
    epochs = f"best epoch {best}" + ("" if kept == best else f", kept the last, {kept}")
    print(
        f"cnnlab: {subset} accuracy {final['accuracy']:.2%} "
        f"(95% CI {low:.2%}-{high:.2%}), {epochs}, "
        f"{finished['train_seconds']:.1f}s training; results in {out}",
        flush=True,
    )


def format_subset_table(metrics: dict[str, dict]) -> str:
    """One line per subset: size, loss, accuracy with its interval, kappa and macro F1."""
    lines = [
        f"{'subset':<7} {'n':>7} {'loss':>8} {'accuracy':>9} {'95% CI':>17} "
        f"{'kappa':>7} {'macro F1':>9}"
    ]
    for name, m in metrics.items():
        low, high = m["accuracy_ci"]
        f1 = "" if m.get("macro_f1") is None else f"{m['macro_f1']:.4f}"
        kappa = "" if m.get("kappa") is None else f"{m['kappa']:.4f}"
        lines.append(
            f"{name:<7} {m['n']:>7} {m['loss']:>8.4f} {m['accuracy']:>9.4f} "
            f"{f'{low:.4f}-{high:.4f}':>17} {kappa:>7} {f1:>9}"
        )
    return "\n".join(lines)
