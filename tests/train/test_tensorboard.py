"""TensorBoard events, read back with TensorBoard's own reader."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from cnnlab.data.dataset import ImageDataset
from cnnlab.errors import CnnlabError
from cnnlab.models import create_model
from cnnlab.train.loop import fit
from cnnlab.train.tensorboard import CONFUSION_TAG, SAMPLES_TAG, SCALAR_TAGS, TensorBoardLogger

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def read_events(log_dir: Path):
    accumulator = event_accumulator.EventAccumulator(
        str(log_dir), size_guidance={event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0}
    )
    accumulator.Reload()
    return accumulator


def digits(n: int, seed: int, subset: str) -> ImageDataset:
    """Three 'classes' of 12x12 images that differ in brightness: learnable in two epochs."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    images = labels.view(-1, 1, 1, 1) * 80 + torch.randint(
        0, 60, (n, 1, 12, 12), generator=generator
    )
    return ImageDataset(
        images.to(torch.uint8),
        labels,
        ("dark", "mid", "bright"),
        tuple(f"{subset}/{i}.png" for i in range(n)),
        subset=subset,
    )


def test_scalars_per_epoch_have_the_logged_values(tmp_path: Path) -> None:
    logger = TensorBoardLogger(tmp_path / "tb")
    epochs = [
        {
            "epoch": 1,
            "train_loss": 1.25,
            "train_accuracy": 0.5,
            "valid_loss": 1.5,
            "valid_accuracy": 0.25,
            "lr": 0.01,
            "seconds": 3.0,
        },
        {
            "epoch": 2,
            "train_loss": 0.75,
            "train_accuracy": 0.75,
            "valid_loss": None,
            "valid_accuracy": None,
            "lr": 0.001,
            "seconds": 2.5,
        },
    ]
    logger.on_fit_start({"epoch": 1})
    for logs in epochs:
        logger.on_epoch_end(dict(logs))
    logger.on_fit_end({"model": None})
    events = read_events(tmp_path / "tb")
    for key, tag in SCALAR_TAGS.items():
        expected = [row for row in epochs if row[key] is not None]
        got = events.Scalars(tag)
        assert [event.step for event in got] == [row["epoch"] for row in expected], tag
        assert [event.value for event in got] == pytest.approx([row[key] for row in expected])
    assert events.Tags()["images"] == []  # no validation data given: no pictures


def test_training_run_logs_history_and_pictures(tmp_path: Path) -> None:
    train, valid = digits(48, 0, "train"), digits(18, 1, "valid")
    model = create_model("mlp", in_chans=1, num_classes=3, input_size=(12, 12), hidden=(16,))
    logger = TensorBoardLogger(tmp_path / "tb", valid=valid)
    history = fit(model, train, valid, callbacks=[logger], epochs=2, batch_size=16, threads=1)
    events = read_events(tmp_path / "tb")
    for key, tag in SCALAR_TAGS.items():
        got = events.Scalars(tag)
        assert [event.step for event in got] == [row["epoch"] for row in history.rows], tag
        # Event files store float32: equal to the history to float32 precision.
        expected = [row[key] for row in history.rows]
        assert [event.value for event in got] == pytest.approx(expected, rel=1e-6), tag
    assert set(events.Tags()["images"]) == {CONFUSION_TAG, SAMPLES_TAG}
    for tag in (CONFUSION_TAG, SAMPLES_TAG):
        (image,) = events.Images(tag)
        assert image.step == 2 and image.width > 100 and image.height > 100
        assert image.encoded_image_string.startswith(b"\x89PNG")


def test_resumed_run_replaces_the_epochs_trained_again(tmp_path: Path) -> None:
    first = TensorBoardLogger(tmp_path / "tb")
    first.on_fit_start({"epoch": 1})
    for epoch in (1, 2, 3):
        first.on_epoch_end({"epoch": epoch, "train_loss": float(epoch)})
    first.on_fit_end({})
    resumed = TensorBoardLogger(tmp_path / "tb")
    resumed.on_fit_start({"epoch": 3})
    resumed.on_epoch_end({"epoch": 3, "train_loss": 30.0})
    resumed.on_fit_end({})
    got = [(e.step, e.value) for e in read_events(tmp_path / "tb").Scalars("loss/train")]
    assert got == [(1, 1.0), (2, 2.0), (3, 30.0)]


def test_missing_tensorboard_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(CnnlabError, match=r"pip install 'cnnlab\[tensorboard\]'"):
        TensorBoardLogger(tmp_path / "tb")
