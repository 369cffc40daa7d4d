"""The run folder contract, on the synthetic microscopy data the folder workflow is made for."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from cnnlab import kernels
from cnnlab.errors import CnnlabError
from cnnlab.export import load
from cnnlab.export.evaluation import evaluate_saved
from cnnlab.runs.folder import partial_of
from cnnlab.synth import synth_bacteria
from cnnlab.train import Callback
from cnnlab.train.resume import resume_training
from cnnlab.train.run import RunConfig, load_toml, run_training

HISTORY = "epoch,train_loss,train_accuracy,valid_loss,valid_accuracy,lr,seconds"


@pytest.fixture(scope="module")
def bacteria(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "bacteria"
    synth_bacteria(root, per_class=30, seed=0, min_size=20, max_size=40)
    return root


@pytest.fixture(scope="module")
def finished_run(bacteria, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run one"
    config = RunConfig.from_options(
        {
            "data": [str(bacteria)],
            "size": "24",
            "epochs": 3,
            "out": str(out),
            "quiet": True,
            "report": False,
            "augment": ["flip:hv"],
            "equalize": True,
            "cache": False,
        }
    )
    return run_training(config, callbacks=[SEEN])


class Seen(Callback):
    """What the loop trained on: the training set after equalizing and augmenting."""

    def on_fit_start(self, logs):
        self.train_size = self.context.train_size


SEEN = Seen()


def test_run_folder_holds_the_contract(finished_run):
    out = finished_run
    for name in (
        "config.json",
        "history.csv",
        "metrics.json",
        "model.json",
        "model.safetensors",
        "split.csv",
        "run.json",
    ):
        assert (out / name).exists(), name
    lines = (out / "history.csv").read_text().splitlines()
    assert lines[0] == HISTORY and len(lines) == 4
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"train", "valid", "test"}
    for subset in metrics.values():
        for key in ("accuracy", "accuracy_ci", "kappa", "loss", "confusion", "per_class", "n"):
            assert key in subset
        assert sum(map(sum, subset["confusion"])) == subset["n"]
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["epochs"] == 3 and config["size"] == [24, 24]
    assert config["resolved"]["class_names"] == ["1cell", "2cell", "groups", "rien"]
    assert config["resolved"]["bit_depth"] == 16
    # Trained on this machine's CPU: no GPU named, native kernels as this machine has them.
    assert config["resolved"]["device"] == "cpu" and "gpu" not in config["resolved"]
    assert config["resolved"]["native_kernels"] == (kernels.library() is not None)
    with (out / "split.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["subset"] for r in rows} == {"train", "valid", "test"}
    assert metrics["test"]["n"] == sum(r["subset"] == "test" for r in rows)
    # --equalize: as many training images of each class; flip:hv adds a left-right and a
    # top-bottom copy of each, so the loop saw three times the training set.
    train = Counter(r["class"] for r in rows if r["subset"] == "train")
    assert len(set(train.values())) == 1 and sum(train.values()) == metrics["train"]["n"]
    assert SEEN.train_size == 3 * metrics["train"]["n"]
    assert load(out).bit_depth == 16


def test_existing_run_is_never_overwritten_without_asking(finished_run):
    before = (finished_run / "metrics.json").read_text()
    config = RunConfig(data=["mnist"], out=str(finished_run), quiet=True)
    with pytest.raises(CnnlabError, match="--overwrite"):
        run_training(config)
    assert (finished_run / "metrics.json").read_text() == before


def test_overwrite_replaces_only_run_folders(tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("precious")
    with pytest.raises(CnnlabError, match="not a cnnlab run folder"):
        run_training(RunConfig(out=str(user), overwrite=True, quiet=True))
    assert (user / "notes.txt").read_text() == "precious"
    (user / "config.json").write_text('{"name": "my-app"}')
    with pytest.raises(CnnlabError, match="not a cnnlab run folder"):
        run_training(RunConfig(out=str(user), overwrite=True, quiet=True))
    assert (user / "notes.txt").read_text() == "precious"


def test_a_failing_run_leaves_the_old_run_and_no_empty_folder(finished_run, tmp_path, monkeypatch):
    before = (finished_run / "metrics.json").read_text()
    bad = {
        "data": [str(tmp_path / "typo")],
        "out": str(finished_run),
        "overwrite": True,
        "quiet": True,
    }
    with pytest.raises(CnnlabError, match="typo"):
        run_training(RunConfig.from_options(bad))
    assert (finished_run / "metrics.json").read_text() == before
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CnnlabError, match="at least 12x12"):
        run_training(RunConfig.from_options({"size": 8, "quiet": True}))
    assert not (tmp_path / "runs").exists()


def test_a_run_folder_works_from_any_directory(finished_run, tmp_path, monkeypatch):
    config = json.loads((finished_run / "config.json").read_text())
    assert all(Path(d).is_absolute() for d in config["data"])
    monkeypatch.chdir(tmp_path)
    assert evaluate_saved(finished_run)["test"]["n"] > 0


def test_an_interrupted_run_resumes_where_it_stopped(bacteria, tmp_path):
    from cnnlab.train import Callback

    class PowerCut(Exception):
        pass

    class Interrupt(Callback):
        """Kills the run half-way through epoch 3, after epoch 3 was logged but not saved."""

        def on_batch_end(self, logs):
            if logs["epoch"] == 3 and logs["batch"] == 2:
                raise PowerCut

    out = tmp_path / "run"
    options = {
        "data": [str(bacteria)],
        "size": 24,
        "epochs": 4,
        "out": str(out),
        "quiet": True,
        "report": False,
        "cache": False,
    }
    with pytest.raises(PowerCut):
        run_training(RunConfig.from_options(options), callbacks=[Interrupt()])
    # The run grows in a hidden sibling folder until it is complete.
    assert not out.exists()
    assert len((partial_of(out) / "history.csv").read_text().splitlines()) == 3
    with pytest.raises(CnnlabError, match="planned for 4 epochs"):
        resume_training(out, epochs=6, quiet=True)
    resume_training(out, quiet=True)
    lines = (out / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2", "3", "4"]
    whole = run_training(RunConfig.from_options({**options, "out": str(tmp_path / "whole")}))
    assert (whole / "history.csv").read_text().splitlines()[4].split(",")[:5] == lines[4].split(
        ","
    )[:5]


def test_evaluate_saved_reuses_the_runs_split(finished_run):
    again = evaluate_saved(finished_run)
    stored = json.loads((finished_run / "metrics.json").read_text())
    assert again["test"]["accuracy"] == stored["test"]["accuracy"]
    assert again["test"]["confusion"] == stored["test"]["confusion"]


def test_a_finished_run_is_not_resumed(finished_run):
    with pytest.raises(CnnlabError, match="already finished"):
        resume_training(finished_run, quiet=True)
    # Its one-cycle schedule cannot be stretched either; resuming without --epochs would only
    # say "already finished" again, so the hint is a new run.
    with pytest.raises(CnnlabError, match=r"cannot be stretched; start a new run with --epochs 5$"):
        resume_training(finished_run, epochs=5, quiet=True)


def test_options_come_from_toml_and_flags(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        'model = "mlp"\nsize = "32x24"\n[train]\nepochs = 3\noptimizer = "sgd"\nwd = 1e-4\n'
    )
    options = load_toml(path)
    config = RunConfig.from_options({**options, "epochs": 5})
    assert config.model == "mlp" and config.size == (32, 24)
    assert config.train.epochs == 5 and config.train.optimizer == "sgd"
    assert config.train.weight_decay == 1e-4
    with pytest.raises(CnnlabError, match="unknown option 'colour'"):
        RunConfig.from_options({"colour": "blue"})
    with pytest.raises(CnnlabError, match="--split"):
        RunConfig.from_options({"split": "60,30"})
    with pytest.raises(CnnlabError, match="--size"):
        RunConfig.from_options({"size": "big"})
    (tmp_path / "types.toml").write_text('lr = "0.01"\n')
    with pytest.raises(CnnlabError, match="--lr must be a number"):
        RunConfig.from_options(load_toml(tmp_path / "types.toml"))
    with pytest.raises(CnnlabError, match="--seed must be 0 or more"):
        RunConfig.from_options({"seed": -1})
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.toml").write_text('data = "crops"\nno-report = true\n')
    config = RunConfig.from_options(load_toml(tmp_path / "sub" / "c.toml"))
    assert config.data == [str(tmp_path / "sub" / "crops")] and config.report is False
    (tmp_path / "bad.toml").write_text("model = ")
    with pytest.raises(CnnlabError, match="not a valid TOML"):
        load_toml(tmp_path / "bad.toml")


def test_images_too_small_for_the_size_are_refused_or_skipped(tmp_path):
    # The classic look draws crop sides uniformly between 20 and 40 pixels, so every class has
    # crops on both sides of half of --size 64; lab crops follow their object and a class of
    # small crops (rien, about 25 pixels) would be left out whole.
    data = tmp_path / "classic"
    synth_bacteria(data, per_class=30, seed=0, min_size=20, max_size=40, style="classic")
    options = {
        "data": [str(data)],
        "size": 64,
        "epochs": 1,
        "quiet": True,
        "report": False,
        "cache": False,
    }
    with pytest.raises(CnnlabError, match=r"too small for --size 64x64.*--skip-bad"):
        run_training(RunConfig.from_options({**options, "out": str(tmp_path / "a")}))
    with pytest.warns(UserWarning, match="left out"):
        out = run_training(
            RunConfig.from_options({**options, "out": str(tmp_path / "b"), "skip_bad": True})
        )
    metrics = json.loads((out / "metrics.json").read_text())
    kept = sum(m["n"] for m in metrics.values())
    assert 0 < kept < 120


def test_training_a_finished_run_further_replaces_it_only_when_done(bacteria, tmp_path):
    from cnnlab.train import Callback

    class Crash(Exception):
        pass

    class CrashInEpochThree(Callback):
        def on_epoch_start(self, logs):
            if logs["epoch"] == 3:
                raise Crash

    out = tmp_path / "run"
    options = {
        "data": [str(bacteria)],
        "size": 24,
        "epochs": 2,
        "schedule": "constant",
        "out": str(out),
        "quiet": True,
        "report": False,
        "cache": False,
    }
    run_training(RunConfig.from_options(options))
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(Crash):
        resume_training(out, epochs=4, quiet=True, callbacks=[CrashInEpochThree()])
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    resume_training(out, quiet=True)  # the longer run goes on from its copy
    lines = (out / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2", "3", "4"]
    assert json.loads((out / "config.json").read_text())["train"]["epochs"] == 4
    assert not partial_of(out).exists()
    longer = run_training(
        RunConfig.from_options({**options, "epochs": 4, "out": str(tmp_path / "whole")})
    )
    whole = (longer / "history.csv").read_text().splitlines()
    assert [line.rsplit(",", 1)[0] for line in whole] == [line.rsplit(",", 1)[0] for line in lines]


def test_validating_on_the_test_set_is_only_for_mnist_without_a_validation_share(bacteria):
    for options in (
        {"valid_on": "test"},
        {"valid_on": "test", "split": "90,10"},
        {"valid_on": "test", "split": "100,0,0", "data": [str(bacteria)]},
    ):
        with pytest.raises(CnnlabError, match="--valid-on 'test': needs --data mnist"):
            run_training(RunConfig.from_options({**options, "quiet": True}))


def test_validating_on_the_test_set_uses_the_test_images(monkeypatch):
    from cnnlab.data import sources

    small = sources.mnist()[0].select(range(300)), sources.mnist()[1].select(range(100))
    monkeypatch.setattr(sources, "mnist", lambda: small)
    spec = RunConfig.from_options({"split": "100,0", "valid_on": "test"}).data_spec()
    split = sources.load_split(spec)
    assert split.valid is not None and split.valid.subset == "valid"
    assert split.valid.paths == split.test.paths and len(split.train) == 300


def test_model_options_reach_the_network_and_its_saved_description(bacteria, tmp_path):
    options = {
        "data": [str(bacteria)],
        "size": 28,
        "epochs": 1,
        "model": "lenet5_tanh",
        "model_option": ["padding=0"],
        "quiet": True,
        "report": False,
        "cache": False,
    }
    with pytest.raises(CnnlabError, match="--model-option padding=-1"):
        run_training(RunConfig.from_options({**options, "model_option": ["padding=-1"]}))
    out = run_training(RunConfig.from_options({**options, "out": str(tmp_path / "run")}))
    model = load(out)
    assert model.cnnlab_config["kwargs"]["padding"] == 0
    # conv 6@5x5 (156), conv 16@5x5 (2,416), dense 256->120, 120->84, 84->4: by hand
    assert sum(p.numel() for p in model.parameters()) == 156 + 2416 + 30840 + 10164 + 340
    assert json.loads((out / "config.json").read_text())["model_option"] == ["padding=0"]


def test_new_images_of_one_known_class_are_scored_but_not_trained_on(finished_run, bacteria):
    # A new batch of one class is a normal thing to score; training needs two classes.
    one = finished_run.parent / "one class"
    shutil.copytree(bacteria / "2cell", one / "2cell")
    scores = evaluate_saved(finished_run, [str(one)])["all"]
    assert scores["n"] == 30 and scores["per_class"]["2cell"]["support"] == 30
    assert sum(map(sum, scores["confusion"])) == 30
    with pytest.raises(CnnlabError, match="only 1 class with images"):
        run_training(RunConfig(data=[str(one)], out=str(one.parent / "x"), quiet=True))
    (one / "2cell" / "empty").mkdir()
    for crop in (one / "2cell").glob("*.tif"):
        crop.unlink()
    dropped = pytest.warns(UserWarning, match="dropped empty class folder")
    with dropped, pytest.raises(CnnlabError, match="no class folder holds images"):
        evaluate_saved(finished_run, [str(one)], skip_bad=True)


def test_a_run_that_diverges_late_is_kept_with_its_best_epoch(bacteria, tmp_path, poison_at):
    out = tmp_path / "run"
    options = {"data": [str(bacteria)], "size": 24, "epochs": 4, "out": str(out)}
    config = RunConfig.from_options({**options, "quiet": True, "cache": False})
    with pytest.warns(UserWarning, match=r"diverged at epoch 3.*ends with its best epoch"):
        run_training(config, callbacks=[poison_at(3)])
    record = json.loads((out / "run.json").read_text())
    assert record["stop_reason"].startswith("training diverged at epoch 3, batch 1")
    assert record["epochs_run"] == 2 and record["best_epoch"] in (1, 2)
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["test"]["loss"] < 10  # scored with finite weights
    assert "training diverged at epoch 3" in (out / "report.html").read_text()
