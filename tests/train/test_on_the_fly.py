"""On-the-fly augmentation in the training loop: fresh, seeded, resumable, memory of the plain set.

The transformations themselves are tested with the engine (tests/data/test_augment_online.py);
here, what the loop does with them.
"""

from __future__ import annotations

import json

import pytest
import torch

from cnnlab.cli import main
from cnnlab.data.augment import augment
from cnnlab.data.augment_online import OnTheFly
from cnnlab.errors import CnnlabError
from cnnlab.models import create_model
from cnnlab.synth import synth_bacteria
from cnnlab.train import Callback, fit
from cnnlab.train.batches import Batches, augment_generator
from cnnlab.train.distributed import Shard
from cnnlab.train.run import read_run_config

SPECS = ["rotate:90,180,270", "flip", "noise:0.1"]


def lenet():
    return create_model("lenet5", in_chans=1, num_classes=10, input_size=(28, 28))


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def small(mnist_small):
    train, _ = mnist_small
    return train.select(range(256)).with_subset("train"), train.select(range(256, 384))


def test_every_epoch_sees_new_images_and_the_set_stays_plain(mnist_small):
    train, _ = small(mnist_small)
    engine = OnTheFly.from_specs(SPECS, channel_std=[70.0])
    batches = Batches(
        train.images, train.labels, torch.device("cpu"), None, engine, augment_generator(0)
    )
    index = torch.arange(64)
    first, labels = batches.make(index)
    second, _ = batches.make(index)
    plain = train.images[:64].float()
    assert first.dtype == torch.float32 and first.shape == plain.shape
    assert torch.equal(labels, train.labels[:64])
    # Most images are changed (6 in 7 draw a copy), and differently the second time.
    changed = (first != plain).flatten(1).any(1).float().mean()
    assert 0.6 < changed < 1.0
    assert not torch.equal(first, second)
    # The set itself is the plain integer set, not copies.
    assert batches.images.dtype == train.images.dtype
    assert batches.images.shape == train.images.shape


def test_a_process_share_is_the_same_images_as_one_process_makes(mnist_small):
    train, _ = small(mnist_small)
    engine = OnTheFly.from_specs(SPECS, channel_std=[70.0])
    index = torch.randperm(len(train), generator=torch.Generator().manual_seed(1))[:64]
    whole, _ = Batches(
        train.images, train.labels, torch.device("cpu"), None, engine, augment_generator(5)
    ).make(index)
    shard = Shard(1, 2)
    part, labels = Batches(
        train.images, train.labels, torch.device("cpu"), shard, engine, augment_generator(5)
    ).make(index)
    positions = shard.positions(index)
    assert torch.equal(labels, train.labels[index[positions]])
    torch.testing.assert_close(part, whole[positions], rtol=0, atol=1e-4)


def test_same_seed_repeats_and_a_resumed_run_equals_the_uninterrupted_one(mnist_small, tmp_path):
    train, valid = small(mnist_small)
    options = {"epochs": 4, "batch_size": 32, "schedule": "constant", "verbose": 0}

    torch.manual_seed(0)
    whole = lenet()
    fit(whole, train, valid, augment=SPECS, **options)
    again = lenet()
    fit(again, train, valid, augment=SPECS, **options)
    for key, value in weights(whole).items():
        assert torch.equal(value, weights(again)[key]), key
    plain = lenet()
    fit(plain, train, valid, **options)
    assert not torch.equal(weights(plain)["head.weight"], weights(whole)["head.weight"])

    cut = lenet()
    fit(cut, train, valid, augment=SPECS, checkpoint_dir=tmp_path, **{**options, "epochs": 2})
    resumed = lenet()
    history = fit(
        resumed, train, valid, augment=SPECS, checkpoint_dir=tmp_path, resume=True, **options
    )
    assert len(history.rows) == 4
    for key, value in weights(whole).items():
        assert torch.equal(value, weights(resumed)[key]), key


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fly") / "crops"
    synth_bacteria(folder, per_class=30, seed=4)
    return folder


def test_the_mode_is_recorded_and_old_runs_read_as_static(crops, tmp_path, capsys):
    common = ["train", "--data", str(crops), "--size", "20", "--epochs", "1", "--quiet"]
    common += ["--no-report", "--augment", "flip", "--augment", "noise:0.1"]
    assert main([*common, "--augment-mode", "on-the-fly", "--out", str(tmp_path / "fly")]) == 0
    run = tmp_path / "fly"
    config = json.loads((run / "config.json").read_text())
    assert config["augment_mode"] == "on-the-fly"
    assert read_run_config(run).augment_mode == "on-the-fly"
    # A run folder from before the option made its copies before training.
    del config["augment_mode"]
    (run / "config.json").write_text(json.dumps(config))
    assert read_run_config(run).augment_mode == "static"

    assert main([*common, "--augment-mode", "sideways", "--out", str(tmp_path / "x")]) == 2
    assert "--augment-mode" in capsys.readouterr().err


def test_an_epoch_shows_every_image_once_per_variant(mnist_small):
    """As many batches as the static set would give: 256 images x 6 variants / 32 = 48."""
    train, valid = small(mnist_small)

    class Count(Callback):
        def __init__(self) -> None:
            self.batches = 0

        def on_batch_end(self, logs: dict) -> None:
            self.batches += 1

    counter = Count()
    fit(
        lenet(),
        train,
        valid,
        callbacks=[counter],
        augment=SPECS,
        epochs=1,
        batch_size=32,
        verbose=0,
    )
    assert OnTheFly.from_specs(SPECS, channel_std=[1.0]).variants == 6
    assert counter.batches == 256 * 6 // 32


def test_a_shift_out_of_the_frame_is_refused_in_both_modes(mnist_small):
    train, valid = small(mnist_small)
    with pytest.raises(CnnlabError, match="a shift of 28 pixels moves 28x28 images out"):
        fit(lenet(), train, valid, augment=["shift:28"], epochs=1, verbose=0)
    with pytest.raises(CnnlabError, match="a shift of 30 pixels moves 28x28 images out"):
        augment(train, ["flip", "shift:30"])
