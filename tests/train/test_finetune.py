"""Fine-tuning: a run started from another run's weights, its features frozen or not.

A LeNet-5 with batch norm is pre-trained on the four synthetic bacteria classes, then
fine-tuned on two of them (the head re-made) and on the same four (the head kept).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from safetensors.torch import load_file
from torch import nn

from cnnlab.datasets import synth_bacteria
from cnnlab.errors import CnnlabError, RunInterrupted
from cnnlab.runs.folder import partial_of
from cnnlab.train import Callback, freeze
from cnnlab.train.resume import resume_training
from cnnlab.train.run import RunConfig, load_toml, run_training

BASE = {"size": 16, "epochs": 2, "quiet": True, "report": False, "cache": False}


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finetune")
    synth_bacteria(root / "four", per_class=16, seed=0, min_size=16, max_size=24)
    for name in ("1cell", "rien"):
        shutil.copytree(root / "four" / name, root / "two" / name)
    return root


@pytest.fixture(scope="module")
def source(lab) -> Path:
    """The pre-trained run: LeNet-5 with batch norm on all four classes, 16x16 crops."""
    return train(lab, "source", model="lenet5_bn", data=[str(lab / "four")])


def train(lab: Path, name: str, callbacks=(), **options) -> Path:
    config = RunConfig.from_options({**BASE, "out": str(lab / name), **options})
    return run_training(config, callbacks=callbacks)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


class Watch(Callback):
    """What the loop starts from and trains: weights at the start, modes and optimizer."""

    def on_fit_start(self, logs):
        model = self.context.model
        self.start = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.optimized = [p for g in self.context.optimizer.param_groups for p in g["params"]]
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.norms_training = set()

    def on_batch_start(self, logs):
        for name, module in self.context.model.named_modules():
            if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
                self.norms_training.add((name, module.training))


def test_frozen_features_stay_bit_identical_and_only_the_head_learns(lab, source):
    watch = Watch()
    out = train(
        lab, "frozen", [watch], data=[str(lab / "two")], init_from=str(source), freeze="features"
    )
    before, after = weights(source), weights(out)
    features = [key for key in before if key.startswith("features.")]
    # Weights, biases and the batch-norm running statistics and counters alike.
    assert any("running_mean" in key for key in features)
    for key in [*features, "standardize.mean", "standardize.std"]:
        assert torch.equal(after[key], before[key]), key
    # The head was re-made for two classes, then trained: it moved from where it started.
    assert after["head.weight"].shape == (2, 84)
    assert not torch.equal(after["head.weight"], watch.start["head.weight"])
    # The optimizer holds the head's two tensors and nothing else.
    head = dict(watch.context.model.named_parameters())
    assert [id(p) for p in watch.optimized] == [id(head["head.weight"]), id(head["head.bias"])]
    assert all(p.requires_grad for p in watch.optimized) and len(watch.trainable) == 2
    # Every frozen batch-norm layer trained in eval mode.
    assert watch.norms_training and not any(training for _, training in watch.norms_training)


def test_the_same_classes_keep_the_head_and_everything_trains(lab, source):
    watch = Watch()
    out = train(lab, "same", [watch], data=[str(lab / "four")], init_from=str(source), seed=3)
    before, after = weights(source), weights(out)
    # It starts from every tensor of the source, the head included, with the source's input
    # standardization (not statistics fitted on the new training set).
    for key, tensor in before.items():
        assert torch.equal(watch.start[key], tensor), key
    assert not torch.equal(after["features.conv1.weight"], before["features.conv1.weight"])
    assert not torch.equal(after["features.bn1.running_mean"], before["features.bn1.running_mean"])
    assert torch.equal(after["standardize.mean"], before["standardize.mean"])
    init = json.loads((out / "run.json").read_text())["init"]
    assert init["head"] == "kept" and init["frozen"] == "none"
    assert init["frozen_parameters"] == 0


def test_the_network_defaults_to_the_sources(lab, source):
    out = train(lab, "defaults", data=[str(lab / "two")], init_from=str(source), epochs=1)
    config = json.loads((out / "config.json").read_text())
    # The crops range over 16-24 pixels: without the source's size they would go to 32x32.
    assert config["model"] == "lenet5_bn" and config["size"] == [16, 16]
    assert config["channels"] == 1 and "batch_norm=true" in config["model_option"]
    assert json.loads((out / "model.json").read_text())["architecture"]["name"] == "lenet5_bn"


def test_provenance_is_recorded_and_reported(lab, source, monkeypatch):
    monkeypatch.chdir(lab)
    out = train(
        lab, "told", data=[str(lab / "two")], init_from="source", freeze="features", epochs=1
    )
    digest = hashlib.sha256((source / "model.safetensors").read_bytes()).hexdigest()
    run = json.loads((out / "run.json").read_text())["init"]
    assert run["from"] == "source" and run["path"] == str(source.resolve())
    assert run["weights_sha256"] == digest
    assert run["head"] == "re-made" and run["classes"] == ["1cell", "rien"]
    assert run["frozen"] == "features"
    assert run["frozen_parameters"] == sum(
        tensor.numel()
        for key, tensor in weights(source).items()
        if key.startswith("features.") and key.endswith((".weight", ".bias"))
    )
    assert json.loads((out / "config.json").read_text())["init"] == run
    assert json.loads((out / "model.json").read_text())["training"]["init"] == run

    from cnnlab.inspect.report import write_report

    page = write_report(out).read_text()
    assert (
        f"Weights initialised from source (sha256 {digest[:12]}…), head re-made for 2 classes, "
        "features frozen" in page
    )


def kill_at(epoch: int, batch: int, error: type[BaseException]) -> Callback:
    class Kill(Callback):
        def on_batch_end(self, logs):
            if logs["epoch"] == epoch and logs["batch"] == batch:
                raise error

    return Kill()


class PowerCut(Exception):
    pass


@pytest.mark.parametrize(
    ("epoch", "error"), [(2, PowerCut), (1, KeyboardInterrupt)], ids=["saved", "unsaved"]
)
def test_a_killed_fine_tuning_resumes_identically_without_its_source(
    lab, source, tmp_path, epoch, error
):
    """Killed after an epoch was saved, or before any was (the starting weights then come
    from the run's own copy): either way the source is gone when the run resumes."""
    copy = shutil.copytree(source, tmp_path / "source")
    options = {"data": [str(lab / "two")], "init_from": str(copy), "freeze": "features"}
    whole = train(tmp_path, "whole", **options)
    with pytest.raises(RunInterrupted if error is KeyboardInterrupt else PowerCut):
        train(tmp_path, "cut", [kill_at(epoch, 1, error)], **options)
    out = tmp_path / "cut"
    assert partial_of(out).is_dir() and not out.exists()
    shutil.rmtree(copy)
    resume_training(out, quiet=True)
    assert weights(out).keys() == weights(whole).keys()
    for key, tensor in weights(whole).items():
        assert torch.equal(weights(out)[key], tensor), key
    for name in ("metrics.json", "split.csv"):
        assert (out / name).read_text() == (whole / name).read_text()
    drop_seconds = [line.rsplit(",", 1)[0] for line in (whole / "history.csv").read_text().split()]
    assert [line.rsplit(",", 1)[0] for line in (out / "history.csv").read_text().split()] == (
        drop_seconds
    )
    assert json.loads((out / "run.json").read_text())["init"]["path"] == str(copy)


@pytest.fixture(scope="module")
def eight_bit(lab) -> Path:
    """Two classes of 8-bit crops, on another scale than the 16-bit source's."""
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (lab / "eight" / name).mkdir(parents=True)
        for i in range(6):
            image = rng.integers(0, 255, (16, 16), dtype=np.uint8)
            tifffile.imwrite(lab / "eight" / name / f"{i}.tif", image)
    return lab / "eight"


def make_unfinished(lab: Path) -> str:
    """A run that is still training: only its partial folder exists, with a config."""
    partial = partial_of(lab / "busy")
    partial.mkdir(exist_ok=True)
    shutil.copy(lab / "source" / "config.json", partial / "config.json")
    return str(lab / "busy")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"init_from": "nowhere"}, r"^--init-from nowhere: no such run or model folder"),
        ({"init_from": "two"}, r"^--init-from two: no model.json in it"),
        ({"init_from": "busy"}, r"^--init-from .*busy: this run has not finished"),
        ({"init_from": ".busy.partial"}, r"^--init-from .*partial: this is the unfinished part"),
        ({"init_from": "source", "model": "lenet5"}, r"^--model lenet5: the network does not"),
        ({"init_from": "source", "size": 24}, r"^--size 24x24: the network does not fit"),
        ({"init_from": "source", "channels": 3}, r"^--channels 3: the network does not fit"),
        (
            {"init_from": "source", "model_option": ["filters=4,8"]},
            r"^--model-option filters=4,8: the network does not fit",
        ),
        ({"init_from": "source", "normalize": "unit"}, r"^--normalize unit: with --init-from"),
        ({"init_from": "source", "data": ["eight"]}, r"^--init-from source: .* 16-bit images"),
        ({"freeze": "head"}, r"^--freeze 'head': choose one of none, features"),
    ],
    ids=[
        "missing",
        "not-a-run",
        "still-training",
        "partial-folder",
        "other-model",
        "other-size",
        "other-channels",
        "other-options",
        "normalize",
        "bit-depth",
        "freeze-what",
    ],
)
def test_bad_fine_tuning_options_fail_in_one_line_and_write_nothing(
    lab, source, eight_bit, monkeypatch, options, message
):
    monkeypatch.chdir(lab)
    make_unfinished(lab)
    data = [str(lab / d) for d in options.pop("data", ["two"])]
    with pytest.raises(CnnlabError, match=message) as caught:
        train(lab, "refused", data=data, **options)
    assert "\n" not in str(caught.value)
    assert not (lab / "refused").exists() and not partial_of(lab / "refused").exists()


def test_freezing_random_features_warns_and_trains_the_head_alone(lab):
    watch = Watch()
    with pytest.warns(UserWarning, match="--freeze features without --init-from"):
        out = train(lab, "random", [watch], data=[str(lab / "two")], freeze="features", epochs=1)
    after = weights(out)
    for key, tensor in watch.start.items():
        if key.startswith("features."):
            assert torch.equal(after[key], tensor), key
    assert json.loads((out / "run.json").read_text())["init"]["from"] is None


def test_a_network_without_feature_layers_cannot_be_frozen():
    with pytest.raises(CnnlabError, match=r"^--freeze features: the network .* no feature layers"):
        freeze(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), "features")


def test_a_config_file_names_its_source_relative_to_itself(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "tune.toml").write_text('init_from = "../pre"\nfreeze = "features"\n')
    options = load_toml(tmp_path / "conf" / "tune.toml")
    assert Path(options["init_from"]).resolve() == (tmp_path / "pre").resolve()


def test_the_command_line_refuses_a_bad_source_with_exit_code_2(lab, capsys):
    from cnnlab.cli import main

    code = main(["train", "--data", str(lab / "two"), "--init-from", str(lab / "nowhere")])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"cnnlab: error: --init-from {lab / 'nowhere'}: no such run or model folder; check the path"
    ]
