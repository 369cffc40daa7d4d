"""TensorBoard events, read back with TensorBoard's own reader."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.data.dataset import ImageDataset
from cnnlab.errors import CnnlabError
from cnnlab.evaluate import per_sample
from cnnlab.evaluate.metrics import confusion_matrix
from cnnlab.inspect.confusion import confusion_figure
from cnnlab.inspect.figures import figure_png, png_pixels
from cnnlab.inspect.plots import samples_figure
from cnnlab.models import create_model
from cnnlab.models.base import ImageClassifier
from cnnlab.train.callbacks import Callback
from cnnlab.train.loop import fit
from cnnlab.train.tensorboard import (
    CONFUSION_TAG,
    PARAMETERS_SECTION,
    SAMPLES_TAG,
    SCALAR_TAGS,
    TensorBoardLogger,
)

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def read_events(log_dir: Path):
    accumulator = event_accumulator.EventAccumulator(
        str(log_dir),
        size_guidance={
            event_accumulator.SCALARS: 0,
            event_accumulator.IMAGES: 0,
            event_accumulator.HISTOGRAMS: 0,
        },
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
    logger.set_context(SimpleNamespace(model=create_model("mlp", num_classes=3, input_size=4)))
    logger.on_fit_start({"epoch": 1})
    for logs in epochs:
        logger.on_epoch_end(dict(logs))
    logger.on_fit_end({"epochs_run": 2})
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
    # The pictures are the confusion figure of the validation counts under the kept weights,
    # and the samples figure of the validation set.
    results = per_sample(model, valid)
    counts = confusion_matrix(results["labels"], results["predictions"], 3)
    expected = {
        CONFUSION_TAG: png_pixels(figure_png(confusion_figure(counts, valid.class_names))),
        SAMPLES_TAG: png_pixels(figure_png(samples_figure(valid, 6))),
    }
    for tag, pixels in expected.items():
        (image,) = events.Images(tag)
        assert image.step == 2 and (image.height, image.width) == pixels.shape[:2]
        np.testing.assert_array_equal(png_pixels(image.encoded_image_string), pixels)


class Snapshots(Callback):
    """Every parameter's values at the end of every epoch, as the logger sees them."""

    def __init__(self) -> None:
        self.epochs: dict[int, dict[str, torch.Tensor]] = {}

    def on_epoch_end(self, logs: dict) -> None:
        self.epochs[logs["epoch"]] = {
            name: p.detach().clone() for name, p in self.context.model.named_parameters()
        }


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return create_model("cnn_dropout", in_chans=1, num_classes=3, input_size=(12, 12))


def test_graph_and_a_histogram_of_every_parameter_per_epoch(tmp_path: Path) -> None:
    train, valid = digits(48, 0, "train"), digits(18, 1, "valid")
    model, snapshots = small_cnn(), Snapshots()
    logger = TensorBoardLogger(tmp_path / "tb")
    options = {"epochs": 3, "batch_size": 16, "threads": 1}
    fit(model, train, valid, callbacks=[logger, snapshots], **options)
    events = read_events(tmp_path / "tb")
    assert events.Tags()["graph"]
    nodes = [node.name for node in events.Graph().node]
    assert any("Conv2d" in name for name in nodes) and any("Linear" in name for name in nodes)
    names = [name for name, _ in model.named_parameters()]
    assert sorted(events.Tags()["histograms"]) == sorted(f"{PARAMETERS_SECTION}/{n}" for n in names)
    for name in names:
        got = events.Histograms(f"{PARAMETERS_SECTION}/{name}")
        assert [event.step for event in got] == [1, 2, 3]
        for event in got:
            values = snapshots.epochs[event.step][name].double()
            histogram = event.histogram_value
            assert histogram.num == values.numel()
            assert histogram.min == pytest.approx(float(values.min()), rel=1e-6)
            assert histogram.max == pytest.approx(float(values.max()), rel=1e-6)
            assert histogram.sum == pytest.approx(float(values.sum()), rel=1e-5, abs=1e-6)
    # Tracing and histograms change nothing: the same training without the logger.
    alone = small_cnn()
    fit(alone, train, valid, **options)
    for (name, a), b in zip(model.state_dict().items(), alone.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert model.training  # the logger gave the model its mode back


class Untraceable(ImageClassifier):
    """Returns a Python list, which the tracer cannot record."""

    def __init__(self) -> None:
        super().__init__(1, 2, (4, 4))
        self.head = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor):
        return self.head(x.flatten(1)).tolist()


def test_a_model_that_cannot_be_traced_is_one_warning_and_no_graph(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    logger = TensorBoardLogger(tmp_path / "tb")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logger.set_context(SimpleNamespace(model=Untraceable()))
        logger.on_fit_start({"epoch": 1})
        logger.on_epoch_end({"epoch": 1, "train_loss": 0.5})
        logger.on_fit_end({})
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and messages[0].startswith("TensorBoard: no graph of the model")
    assert "\n" not in messages[0]
    assert capsys.readouterr().out == ""  # the tracer's own error print is kept off stdout
    events = read_events(tmp_path / "tb")
    assert not events.Tags()["graph"]
    assert events.Tags()["histograms"] == ["parameters/head.weight", "parameters/head.bias"]


def test_resumed_run_replaces_the_epochs_trained_again(tmp_path: Path) -> None:
    model = SimpleNamespace(model=create_model("mlp", num_classes=3, input_size=4))
    first = TensorBoardLogger(tmp_path / "tb")
    first.set_context(model)
    first.on_fit_start({"epoch": 1})
    for epoch in (1, 2, 3):
        first.on_epoch_end({"epoch": epoch, "train_loss": float(epoch)})
    first.on_fit_end({})
    resumed = TensorBoardLogger(tmp_path / "tb")
    resumed.set_context(model)
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
