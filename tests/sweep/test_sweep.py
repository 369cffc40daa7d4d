"""Sweeps end to end on synthetic crops: results, pruning, a kill and its continuation, jobs.

Every objective is checked against the trial's own ``history.csv``, read here with the csv
module, and every count against the study as Optuna itself loads it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from cnnlab.cli.main import main
from cnnlab.runs.folder import is_finished
from cnnlab.sweep import Param, run_sweep, worker
from cnnlab.sweep.study import worker_threads
from cnnlab.synth import synth_bacteria
from cnnlab.train.checkpoint import read_checkpoint_meta
from cnnlab.train.run import RunConfig, run_training

optuna = pytest.importorskip(
    "optuna", reason="cnnlab sweep needs Optuna: pip install 'cnnlab[sweep]'"
)


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "bacteria"
    synth_bacteria(root, per_class=20, seed=0, min_size=16, max_size=24)
    return root


def sweep_args(crops: Path, out: Path, *extra: str) -> list[str]:
    return ["sweep", "--data", str(crops), "--size", "16", "--out", str(out), *extra]


def load_study(out: Path, name: str | None = None) -> optuna.Study:
    return optuna.load_study(study_name=name or out.name, storage=f"sqlite:///{out}/sweep.db")


def history(run: Path) -> list[dict]:
    """A run's history.csv without its timings, as plain text fields."""
    with (run / "history.csv").open(newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def table(out: Path) -> list[dict]:
    with (out / "trials.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def finished(crops, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweeps") / "lr and batch"
    args = sweep_args(crops, out, "--epochs", "3", "--trials", "4", "--threads", "1")
    args += ["--search", "lr=log:1e-3:0.3", "--search", "batch-size=8,16", "--no-report"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(args) == 0
    return out, args, printed.getvalue()


def test_the_objective_is_each_runs_validation_loss_at_its_kept_epoch(finished):
    out, _, printed = finished
    study = load_study(out)
    rows = table(out)
    assert [int(r["number"]) for r in rows] == [t.number for t in study.trials] == [0, 1, 2, 3]
    assert [r["state"] for r in rows] == ["complete"] * 4
    assert len(re.findall(r"^cnnlab: trial \d complete: valid_loss", printed, re.M)) == 4
    for row, trial in zip(rows, study.trials, strict=True):
        run = Path(row["run"])
        assert run == out / "trials" / f"{trial.number:04d}" and is_finished(run)
        losses = [float(r["valid_loss"]) for r in history(run)]
        # --keep best by valid_loss: the kept epoch holds the lowest validation loss.
        assert trial.value == float(row["valid_loss"]) == min(losses)
        assert list(trial.intermediate_values.values()) == losses
        # The drawn values are the ones the run trained with, within the space.
        config = json.loads((run / "config.json").read_text())
        assert config["train"]["lr"] == trial.params["lr"] == float(row["lr"])
        assert 1e-3 <= trial.params["lr"] <= 0.3
        assert config["train"]["batch_size"] == trial.params["batch-size"] in (8, 16)
        assert config["train"]["threads"] == 1


def test_the_best_trial_its_command_and_the_report(finished, tmp_path):
    out, _, printed = finished
    study = load_study(out)
    best = json.loads((out / "best.json").read_text())
    values = {t.number: t.value for t in study.trials}
    assert best["trial"] == min(values, key=values.get) and best["value"] == min(values.values())
    assert best["params"] == study.trials[best["trial"]].params
    assert f"best valid_loss {best['value']:.4f} (trial {best['trial']})" in printed
    # The command line trains the best trial's run again, to the last digit.
    again = tmp_path / "again"
    command = shlex.split(best["command"])
    assert command[:2] == ["cnnlab", "train"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*command[1:], "--out", str(again), "--quiet", "--no-report"]) == 0
    assert history(again) == history(Path(best["run"]))
    # Optuna's plots, as PNG files and inside the self-contained page.
    for name in ("optimization_history", "param_importances", "slice", "intermediate_values"):
        with Image.open(out / "plots" / f"{name}.png") as image:
            assert image.format == "PNG" and min(image.size) > 100
    page = (out / "sweep.html").read_text()
    assert page.count('src="data:image/png;base64,') == 4
    trials = page[page.index('id="trials"') : page.index('id="optimization_history"')]
    assert trials.count("<tr>") == 1 + 4  # the header and one row per trial
    assert "http" not in page.replace("http-equiv", "")  # nothing fetched


def test_a_continuation_needs_the_same_settings_and_adds_only_missing_trials(finished, capsys):
    out, args, _ = finished
    changed = [a if a != "3" else "4" for a in args]  # --epochs 4
    assert main(changed) == 2
    assert "started with other settings (--epochs 3, now 4)" in capsys.readouterr().err
    more = [a if a != "4" else "5" for a in args]  # --trials 5
    assert main(more) == 0
    printed = capsys.readouterr().out
    assert re.findall(r"^cnnlab: trial (\d+) ", printed, re.M) == ["4"]
    assert len(load_study(out).trials) == 5 and len(table(out)) == 5


def test_a_pruned_trial_ends_as_a_complete_run(crops, tmp_path):
    # A pruner that must prune: every validation loss is above 0.
    result = run_sweep(
        tmp_path / "pruned",
        ["lr=log:1e-3:0.3"],
        2,
        pruner=optuna.pruners.ThresholdPruner(upper=0.0),
        data=[str(crops)],
        size=16,
        epochs=3,
        threads=1,
        quiet=True,
        report=False,
    )
    assert result.counts["pruned"] == 2 and result.best_trial is None
    study = load_study(tmp_path / "pruned")
    for trial in study.trials:
        run = tmp_path / "pruned" / "trials" / f"{trial.number:04d}"
        assert trial.state == optuna.trial.TrialState.PRUNED and is_finished(run)
        finished = json.loads((run / "run.json").read_text())
        assert finished["stop_reason"] == "pruned by the sweep"
        rows = history(run)
        assert len(rows) == 1 and trial.value == float(rows[0]["valid_loss"])
    assert not (tmp_path / "pruned" / "best.json").exists()
    assert "No trial has completed yet" in (tmp_path / "pruned" / "sweep.html").read_text()
    # Never at the last epoch: a trial that trained fully is complete.
    result = run_sweep(
        tmp_path / "one epoch",
        ["lr=log:1e-3:0.3"],
        1,
        pruner=optuna.pruners.ThresholdPruner(upper=0.0),
        data=[str(crops)],
        size=16,
        epochs=1,
        threads=1,
        quiet=True,
        report=False,
    )
    assert result.counts["complete"] == 1


def test_a_killed_sweep_resumes_its_cut_trial_to_the_same_result(crops, tmp_path):
    out = tmp_path / "killed"
    # Epochs enough that the kill lands in trial 1 even when this machine is busy.
    args = sweep_args(crops, out, "--epochs", "40", "--trials", "3", "--threads", "1")
    args += ["--search", "lr=log:1e-3:0.3", "--pruner", "none", "--no-report", "--quiet"]
    process = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    checkpoints = out / "trials" / ".0001.partial" / "checkpoints"
    try:
        deadline = time.monotonic() + 90
        while read_checkpoint_meta(checkpoints) is None:  # trial 1 has saved an epoch
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "trial 1 never started"
            time.sleep(0.01)
        process.kill()
    finally:
        process.kill()
        process.wait(timeout=30)
        process.stderr.close()
    study = load_study(out)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "RUNNING"]
    assert not (out / "trials" / "0001").exists()

    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main(args[:-1]) == 0
    assert "trial 1 was cut short" in printed.getvalue()
    study = load_study(out)
    cut, resumed, new = study.trials[1:]
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert resumed.params == cut.params and resumed.user_attrs["continues"] == 1
    assert resumed.user_attrs["run"] == str(out / "trials" / "0001")
    assert new.user_attrs["run"] == str(out / "trials" / "0003")
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["0000", "0001", "0003"]
    rows = table(out)
    assert [r["state"] for r in rows] == ["complete", "interrupted", "complete", "complete"]
    assert rows[1]["note"] == "interrupted; trial 2 continues it"
    assert rows[2]["note"] == "continues trial 1, resuming its run folder"
    assert rows[1]["run"] == rows[2]["run"] == str(out / "trials" / "0001")
    assert not (out / ".workers").exists()

    # The same run trained without a kill: the resumed trial is identical, bit for bit.
    options = {"data": [str(crops)], "size": 16, "epochs": 40, "threads": 1, "quiet": True}
    options.update(lr=cut.params["lr"], report=False, out=str(tmp_path / "reference"))
    with contextlib.redirect_stdout(io.StringIO()):
        reference = run_training(RunConfig.from_options(options))
    assert history(out / "trials" / "0001") == history(reference)
    assert resumed.value == min(float(r["valid_loss"]) for r in history(reference))


def test_interrupted_trials_are_told_apart_and_continued_only_when_they_drew_values(
    crops, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "ctrl-c"
    options = {"data": [str(crops)], "size": 16, "epochs": 1, "threads": 1, "report": False}
    real_training, real_suggest = worker.run_training, Param.suggest

    def ctrl_c_in_run_0001(config, **kwargs):
        if Path(config.out).name == "0001":
            raise KeyboardInterrupt
        return real_training(config, **kwargs)

    def ctrl_c_at_trial_3(param, trial):
        if trial.number == 3:
            raise KeyboardInterrupt
        return real_suggest(param, trial)

    # Trial 1 is cut short in its run, trial 3 before it drew its values; a third command ends
    # the sweep.
    monkeypatch.setattr(worker, "run_training", ctrl_c_in_run_0001)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(out, ["lr=log:1e-3:0.3"], 3, **options)
    monkeypatch.setattr(worker, "run_training", real_training)
    monkeypatch.setattr(Param, "suggest", ctrl_c_at_trial_3)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(out, ["lr=log:1e-3:0.3"], 3, **options)
    monkeypatch.setattr(Param, "suggest", real_suggest)
    capsys.readouterr()
    result = run_sweep(out, ["lr=log:1e-3:0.3"], 3, **options)

    trials = load_study(out).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "FAIL", "COMPLETE"]
    assert trials[2].params == trials[1].params and trials[3].params == {}
    assert "continues" not in trials[4].user_attrs  # nothing of trial 3 to continue
    rows = table(out)
    assert [r["state"] for r in rows] == [
        "complete",
        "interrupted",
        "complete",
        "interrupted",
        "complete",
    ]
    # Each row names the folder its trial trained in: trial 2 resumed trial 1's.
    folders = [r["run"] and Path(r["run"]).name for r in rows]
    assert folders == ["0000", "0001", "0001", "", "0004"]
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["0000", "0001", "0004"]
    assert [r["note"] for r in rows] == [
        "",
        "interrupted; trial 2 continues it",
        "continues trial 1, resuming its run folder",
        "interrupted before its values were drawn; nothing to continue",
        "",
    ]
    assert (result.counts["complete"], result.counts["interrupted"], result.counts["fail"]) == (
        3,
        2,
        0,
    )
    assert "3 trials finished (3 complete, 0 pruned), 2 interrupted, best" in (
        capsys.readouterr().out
    )
    assert not (out / ".workers").exists()


def test_jobs_share_the_cores_and_stop_at_the_number_of_trials(crops, tmp_path, capfd):
    out = tmp_path / "two jobs"
    args = sweep_args(crops, out, "--epochs", "1", "--trials", "3", "--jobs", "2")
    assert main([*args, "--search", "batch-size=8,16,24", "--no-report"]) == 0
    printed = capfd.readouterr().out
    numbers = re.findall(r"^cnnlab: trial (\d+) complete", printed, re.M)
    # No more than asked for, even when both workers ask for the last trial at once (the
    # later one then gives its number up).
    trials = [t for t in load_study(out).trials if not t.user_attrs.get("surplus")]
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert sorted(int(n) for n in numbers) == [t.number for t in trials]
    for trial in trials:
        config = json.loads((Path(trial.user_attrs["run"]) / "config.json").read_text())
        assert config["train"]["threads"] == worker_threads(2)
    assert len(table(out)) == 3
    assert not (out / ".workers").exists()  # both workers' locks gone, and their folder


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--monitor", "train_loss"], "--monitor train_loss: a sweep is scored on the validation"),
        (["--data", "mnist", "--split", "100,0", "--valid-on", "test"], "never choose by the test"),
        (["--data", "mnist", "--split", "100,0"], "a sweep needs a validation share"),
        (["--lr", "0.1"], "--lr is also given a fixed value"),
        (["--data", "no/such/folder"], "no/such/folder: no such folder"),
        (["--trials", "0"], "--trials must be a positive integer"),
        (["--pruner", "hyperband"], "--pruner 'hyperband': choose one of median, none"),
    ],
)
def test_a_sweep_that_cannot_be_fair_is_refused_before_it_starts(
    crops, tmp_path, capsys, flags, expected
):
    out = tmp_path / "refused"
    args = ["sweep", "--out", str(out), "--search", "lr=0.01:0.1", *flags]
    if "--data" not in flags:
        args += ["--data", str(crops)]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert expected in error and error.count("\n") == 1
    assert not out.exists()


def test_a_folder_of_other_files_is_never_a_sweep_folder(crops, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    assert main([*sweep_args(crops, out), "--search", "lr=0.01:0.1"]) == 2
    assert "is not empty and holds no cnnlab sweep" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_a_worker_stops_after_three_failed_trials_in_a_row(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "failing"
    assert main([*sweep_args(empty, out), "--search", "lr=0.01:0.1", "--trials", "5"]) == 2
    assert "3 trials in a row failed, the last with:" in capsys.readouterr().err
    trials = load_study(out).trials
    assert [t.state.name for t in trials] == ["FAIL"] * 3
    assert all(t.user_attrs["error"] for t in trials)
