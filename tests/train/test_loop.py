from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.models import create_model
from cnnlab.train import Callback, TrainConfig, fit
from cnnlab.train.checkpoint import optimizer_from_parts, optimizer_to_parts


def lenet():
    return create_model("lenet5", in_chans=1, num_classes=10, input_size=(28, 28))


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


class Recorder(Callback):
    """Every hook call in order, and the logs of every epoch as they arrived."""

    def __init__(self):
        self.calls, self.epoch_logs = [], []

    def on_fit_start(self, logs):
        assert logs == {"epoch": 1} and self.context.epochs == 3
        self.calls.append("fit_start")

    def on_epoch_start(self, logs):
        assert logs == {"epoch": self.context.epoch}
        self.calls.append(f"epoch_start {logs['epoch']}")

    def on_batch_start(self, logs):
        assert set(logs) == {"epoch", "batch", "size"}
        self.calls.append("batch_start")

    def on_batch_end(self, logs):
        assert set(logs) == {"epoch", "batch", "size", "loss", "accuracy"}
        assert math.isfinite(logs["loss"])
        self.calls.append("batch_end")

    def on_epoch_end(self, logs):
        # Plain numbers only: the live objects are in self.context.
        json.dumps(logs, allow_nan=False)
        self.epoch_logs.append(dict(logs))
        self.calls.append(f"epoch_end {logs['epoch']}")

    def on_fit_end(self, logs):
        assert logs["epochs_run"] == 3 and self.context.model is not None
        self.calls.append("fit_end")


def test_fit_learns_mnist_and_logs_every_epoch(mnist_small):
    train, test = mnist_small
    recorder = Recorder()
    model = lenet()
    history = fit(
        model, train, test, epochs=3, batch_size=25, optimizer="adam", lr=3e-3, callbacks=[recorder]
    )
    assert [row["epoch"] for row in history.rows] == [1, 2, 3]
    assert history.rows[-1]["valid_accuracy"] > 0.85
    assert history.rows[-1]["train_loss"] < history.rows[0]["train_loss"]
    steps = 1000 // 25
    assert recorder.calls.count("batch_end") == 3 * steps
    assert recorder.calls[0] == "fit_start" and recorder.calls[-1] == "fit_end"
    assert recorder.calls[1] == "epoch_start 1" and recorder.calls[2] == "batch_start"
    assert recorder.epoch_logs == history.rows  # what callbacks saw is what history keeps
    assert set(history.rows[0]) == {
        "epoch",
        "train_loss",
        "train_accuracy",
        "valid_loss",
        "valid_accuracy",
        "lr",
        "seconds",
    }
    # the model standardizes with the training set's statistics
    pixels = train.images.double()
    assert model.standardize.mean.item() == pytest.approx(pixels.mean().item(), rel=1e-5)
    assert model.standardize.std.item() == pytest.approx(pixels.std(correction=0).item(), rel=1e-5)


def test_same_seed_repeats_exactly(mnist_small):
    train, _ = mnist_small
    runs = []
    for _ in range(2):
        model = lenet()
        fit(model, train.select(range(300)), None, epochs=2, batch_size=32, seed=7, init="xavier")
        runs.append(weights(model))
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), key
    other = lenet()
    fit(other, train.select(range(300)), None, epochs=2, batch_size=32, seed=8, init="xavier")
    first_conv = next(k for k in runs[0] if k.endswith("weight"))
    assert not torch.equal(runs[0][first_conv], other.state_dict()[first_conv])


def _without_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(mnist_small, tmp_path):
    train, test = mnist_small
    train, valid = train.select(range(400)), test.select(range(100))
    options = dict(epochs=4, batch_size=40, optimizer="sgd", schedule="cosine", seed=3)

    whole = lenet()
    whole_history = fit(whole, train, valid, checkpoint_dir=tmp_path / "a", **options)

    class PowerCut(Exception):
        pass

    class Interrupt(Callback):
        def on_batch_end(self, logs):
            if logs["epoch"] == 3 and logs["batch"] == 4:
                raise PowerCut

    with pytest.raises(PowerCut):
        fit(
            lenet(), train, valid, callbacks=[Interrupt()], checkpoint_dir=tmp_path / "b", **options
        )
    resumed = lenet()
    history = fit(
        resumed, train, valid, None, checkpoint_dir=tmp_path / "b", resume=True, **options
    )
    assert [r["epoch"] for r in history.rows] == [1, 2, 3, 4]
    assert _without_seconds(history.rows) == _without_seconds(whole_history.rows)
    assert history.best_epoch == whole_history.best_epoch
    for key, value in weights(whole).items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_a_stop_by_a_callback_is_final_and_resuming_restores_the_best_epoch(mnist_small, tmp_path):
    train, test = mnist_small
    train, valid = train.select(range(300)), test.select(range(100))

    class StopAtTwo(Callback):
        def on_epoch_end(self, logs):
            if logs["epoch"] == 2:
                self.context.stop_training, self.context.stop_reason = True, "enough"

    first = lenet()
    stopped = fit(first, train, valid, epochs=5, callbacks=[StopAtTwo()], checkpoint_dir=tmp_path)
    again = lenet()
    resumed = fit(again, train, valid, epochs=5, checkpoint_dir=tmp_path, resume=True)
    assert [r["epoch"] for r in resumed.rows] == [1, 2]
    assert resumed.stop_reason == stopped.stop_reason == "enough"
    assert resumed.best_epoch == stopped.best_epoch
    for key, value in weights(first).items():
        assert torch.equal(value, again.state_dict()[key]), key


def test_a_finished_run_extends_only_where_its_schedule_allows(mnist_small, tmp_path):
    train, _ = mnist_small
    data = train.select(range(100))
    fit(lenet(), data, None, epochs=1, checkpoint_dir=tmp_path / "a")
    with pytest.raises(CnnlabError, match="planned for 1 epochs and cannot be stretched to 2"):
        fit(lenet(), data, None, epochs=2, checkpoint_dir=tmp_path / "a", resume=True)
    fit(lenet(), data, None, epochs=1, schedule="constant", checkpoint_dir=tmp_path / "b")
    longer = fit(
        lenet(),
        data,
        None,
        epochs=3,
        schedule="constant",
        checkpoint_dir=tmp_path / "b",
        resume=True,
    )
    assert [r["epoch"] for r in longer.rows] == [1, 2, 3]


def test_a_checkpoint_of_other_options_is_refused(mnist_small, tmp_path):
    train, _ = mnist_small
    data = train.select(range(100))
    fit(lenet(), data, None, epochs=2, schedule="constant", checkpoint_dir=tmp_path)
    with pytest.raises(CnnlabError, match="saved with other training options"):
        fit(
            lenet(),
            data,
            None,
            epochs=2,
            schedule="constant",
            lr=0.01,
            checkpoint_dir=tmp_path,
            resume=True,
        )


def test_resuming_before_the_first_checkpoint_starts_from_the_beginning(mnist_small, tmp_path):
    train, _ = mnist_small
    data = train.select(range(100))
    fresh, resumed = lenet(), lenet()
    fit(fresh, data, None, epochs=2, seed=5)
    fit(resumed, data, None, epochs=2, seed=5, checkpoint_dir=tmp_path, resume=True)
    for key, value in weights(fresh).items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_without_validation_the_training_metrics_drive_patience_and_plateau(mnist_small):
    train, _ = mnist_small
    history = fit(
        lenet(),
        train.select(range(200)),
        None,
        epochs=30,
        patience=1,
        schedule="plateau",
        optimizer="sgd",
        lr=1e-12,
        momentum=0.0,
    )
    assert len(history.rows) == 2
    assert history.stop_reason.startswith("train_loss did not improve for 1 epochs")


def test_divergence_stops_with_a_clear_message(mnist_small):
    train, _ = mnist_small
    with pytest.raises(CnnlabError, match=r"diverged.*--lr"):
        fit(
            lenet(), train.select(range(200)), None, epochs=2, optimizer="sgd", lr=1e6, momentum=0.9
        )


def test_a_run_that_diverges_after_good_epochs_ends_with_its_best_epoch(mnist_small, poison_at):
    train, valid = mnist_small
    options = {"epochs": 4, "lr": 0.05, "seed": 3}
    model = lenet()
    with pytest.warns(UserWarning, match=r"diverged at epoch 3, batch 1.*best epoch, 2"):
        history = fit(model, train, valid, callbacks=[poison_at(3)], verbose=0, **options)
    assert [row["epoch"] for row in history.rows] == [1, 2]
    assert history.stop_reason.startswith("training diverged at epoch 3, batch 1")
    assert history.best_epoch == history.kept_epoch == 2
    # The weights of epoch 2, as a run of two epochs of the same schedule left them.
    assert all(torch.isfinite(p).all() for p in model.parameters())
    stopped = lenet()
    fit(stopped, train, valid, callbacks=[StopAfter(2)], verbose=0, **options)
    kept, expected = weights(model), weights(stopped)
    assert all(torch.equal(kept[name], expected[name]) for name in expected)


class StopAfter(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, logs):
        if logs["epoch"] == self.epoch:
            self.context.stop_training = True


def test_a_run_that_keeps_its_last_epoch_still_fails_when_it_diverges(mnist_small, poison_at):
    train, valid = mnist_small
    with pytest.raises(CnnlabError, match="diverged at epoch 2"):
        fit(lenet(), train, valid, callbacks=[poison_at(2)], verbose=0, epochs=3, keep="last")


def test_early_stopping_counts_epochs_without_improvement():
    from cnnlab.train.callbacks import EarlyStopping

    stopper = EarlyStopping("valid_loss", patience=2)
    stopped = []
    for epoch, loss in enumerate([1.0, 0.8, 0.9, 0.7, 0.75, 0.71, 0.5], start=1):
        stopper.set_context(SimpleNamespace(stop_training=False, stop_reason=None))
        stopper.on_epoch_end({"epoch": epoch, "valid_loss": loss})
        stopped.append(stopper.context.stop_training)
    assert stopped == [False, False, False, False, False, True, False]
    assert stopper.context.stop_reason is None  # the last epoch improved again


def test_early_stopping_ends_a_stalled_run(mnist_small):
    train, test = mnist_small
    # A vanishing learning rate leaves the weights as they are, so accuracy cannot improve.
    history = fit(
        lenet(),
        train.select(range(200)),
        test.select(range(50)),
        epochs=30,
        patience=1,
        monitor="train_accuracy",
        lr=1e-12,
        optimizer="sgd",
        momentum=0.0,
    )
    assert len(history.rows) == 2
    assert "train_accuracy did not improve for 1 epochs" in history.stop_reason


def test_best_weights_are_restored(mnist_small):
    train, test = mnist_small
    model = lenet()
    history = fit(
        model, train.select(range(300)), test.select(range(200)), epochs=4, lr=0.05, optimizer="sgd"
    )
    losses = history.column("valid_loss")
    assert history.best_epoch == 1 + losses.index(min(losses))
    from cnnlab.train.loop import loss_and_accuracy

    loss, _ = loss_and_accuracy(
        model, test.select(range(200)).images, test.select(range(200)).labels
    )
    assert loss == pytest.approx(min(losses), rel=1e-5)


@pytest.mark.parametrize("schedule", ["constant", "step", "cosine", "onecycle", "plateau"])
def test_schedules_shape_the_learning_rate(mnist_small, schedule):
    train, test = mnist_small
    history = fit(
        lenet(),
        train.select(range(100)),
        test.select(range(50)),
        epochs=4,
        batch_size=25,
        optimizer="sgd",
        lr=0.1,
        schedule=schedule,
        step_size=2,
        gamma=0.5,
    )
    lrs = history.column("lr")
    if schedule == "constant":
        assert lrs == [0.1] * 4
    elif schedule == "step":
        assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.05])
    elif schedule == "cosine":
        assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 1e-3
    elif schedule == "onecycle":
        assert max(lrs) > 0.05 and lrs[-1] < 0.01
    else:  # the validation loss improves every epoch on this easy start: no reduction yet
        assert lrs == [0.1] * 4


def test_plateau_reduces_the_rate_after_its_patience(mnist_small):
    """With a rate too small to learn, the loss stalls: after 1 + 2 epochs it is cut by gamma."""
    train, test = mnist_small
    history = fit(
        lenet(),
        train.select(range(100)),
        test.select(range(50)),
        epochs=6,
        batch_size=25,
        optimizer="sgd",
        momentum=0.0,
        lr=1e-5,
        schedule="plateau",
        gamma=0.5,
    )
    assert history.column("lr") == pytest.approx([1e-5] * 4 + [5e-6] * 2)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop", "adadelta"])
def test_every_optimizer_reduces_the_loss(mnist_small, optimizer):
    train, _ = mnist_small
    history = fit(
        lenet(), train.select(range(300)), None, epochs=3, batch_size=30, optimizer=optimizer
    )
    assert history.rows[-1]["train_loss"] < history.rows[0]["train_loss"]


def test_normal_initializer_uses_sigma():
    from cnnlab.train.optim import initialize

    model = create_model("mlp", in_chans=1, num_classes=4, input_size=(32, 32))
    torch.manual_seed(0)
    initialize(model, "normal", sigma=0.1)
    for layer in (m for m in model.modules() if isinstance(m, torch.nn.Linear)):
        assert layer.weight.std().item() == pytest.approx(0.1, rel=0.1)
        assert torch.count_nonzero(layer.bias) == 0


def test_optimizer_state_round_trips_without_pickle():
    model = lenet()
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.rand(4, 1, 28, 28)).sum().backward()
    optimizer.step()
    tensors, meta = optimizer_to_parts(optimizer.state_dict())
    restored = optimizer_from_parts(tensors, meta)
    fresh = torch.optim.Adam(lenet().parameters())
    fresh.load_state_dict(restored)
    for index, values in optimizer.state_dict()["state"].items():
        for name, value in values.items():
            assert torch.equal(value, fresh.state_dict()["state"][index][name])


def test_config_rejects_bad_values():
    with pytest.raises(CnnlabError, match="--optimizer 'sgdd'"):
        TrainConfig(optimizer="sgdd")
    with pytest.raises(CnnlabError, match="--epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(CnnlabError, match="--lr"):
        TrainConfig(lr=-1.0)


def test_automatic_epochs_and_batch_size_follow_the_training_set():
    mnist_sized = TrainConfig().resolved(54_000)
    assert (mnist_sized.epochs, mnist_sized.batch_size) == (3, 128)
    small = TrainConfig().resolved(360)
    assert (small.epochs, small.batch_size) == (100, 18)
    assert TrainConfig(epochs=7, batch_size=32).resolved(360).epochs == 7
    assert TrainConfig().learning_rate == 0.1
    assert TrainConfig(optimizer="adam", schedule="constant").learning_rate == 1e-3
    assert TrainConfig(optimizer="adam").to_dict()["nesterov"] is False


def test_incompatible_data_is_refused_before_training(mnist_small):
    train, _ = mnist_small
    with pytest.raises(CnnlabError, match="--size 32x32"):
        fit(create_model("lenet5", input_size=(32, 32)), train, None, epochs=1)
    with pytest.raises(CnnlabError, match="--channels 3"):
        fit(create_model("lenet5", in_chans=3), train, None, epochs=1)


def test_mixed_precision_trains(mnist_small):
    train, _ = mnist_small
    history = fit(lenet(), train.select(range(300)), None, epochs=3, batch_size=30, amp=True)
    assert history.rows[-1]["train_loss"] < history.rows[0]["train_loss"]
    assert all(math.isfinite(row["train_loss"]) for row in history.rows)


class LayoutSpy(Callback):
    """Records whether the convolutions trained in channels-last, and can fail on demand."""

    def __init__(self, fail: bool = False):
        self.fail, self.channels_last = fail, []

    def on_batch_end(self, logs):
        weight = self.context.model.features.conv2.weight
        self.channels_last.append(weight.is_contiguous(memory_format=torch.channels_last))
        if self.fail:
            raise KeyboardInterrupt


@pytest.mark.parametrize(("name", "expected"), [("lenet5", True), ("lenet5_bn", False)])
def test_channels_last_only_while_training_and_only_where_it_is_faster(mnist_small, name, expected):
    train, _ = mnist_small
    small = train.select(range(100))
    model = create_model(name, in_chans=1, num_classes=10, input_size=(28, 28))
    assert model.cpu_channels_last is expected
    spy = LayoutSpy()
    fit(model, small, None, epochs=1, batch_size=50, device="cpu", callbacks=[spy])
    assert spy.channels_last == [expected, expected]
    assert all(p.is_contiguous() for p in model.parameters())
    # An interrupted run hands back ordinary tensors too.
    failing = create_model(name, in_chans=1, num_classes=10, input_size=(28, 28))
    with pytest.raises(KeyboardInterrupt):
        fit(failing, small, None, epochs=1, batch_size=50, callbacks=[LayoutSpy(fail=True)])
    assert all(p.is_contiguous() for p in failing.parameters())


def test_channels_last_training_matches_contiguous_training(mnist_small, monkeypatch):
    train, _ = mnist_small
    small = train.select(range(200))
    trained = {}
    for channels_last in (True, False):
        model = lenet()
        monkeypatch.setattr(model, "cpu_channels_last", channels_last)
        fit(model, small, None, epochs=2, batch_size=40, seed=3)
        trained[channels_last] = weights(model)
    for key, value in trained[True].items():
        torch.testing.assert_close(value, trained[False][key], rtol=1e-3, atol=1e-4)


def test_keep_last_keeps_the_last_epochs_weights(mnist_small):
    train, test = mnist_small
    train, valid = train.select(range(300)), test.select(range(100))
    options = dict(epochs=4, schedule="constant", lr=0.5, momentum=0.0, seed=2)

    class Snapshot(Callback):
        def on_epoch_end(self, logs):
            self.last = weights(self.context.model)

    snapshot = Snapshot()
    last = lenet()
    history = fit(last, train, valid, callbacks=[snapshot], keep="last", **options)
    assert history.kept_epoch == 4
    for key, value in snapshot.last.items():
        assert torch.equal(value, last.state_dict()[key]), key
    best = lenet()
    history = fit(best, train, valid, **options)
    assert history.kept_epoch == history.best_epoch


@pytest.mark.parametrize(
    ("mode", "mean", "std"), [("zscore", None, None), ("unit", 0.0, 255.0), ("none", 0.0, 1.0)]
)
def test_the_input_scaling_modes(mnist_small, mode, mean, std):
    train, _ = mnist_small
    data = train.select(range(200))
    model = lenet()
    fit(model, data, None, epochs=1, normalize=mode)
    if mode == "zscore":
        pixels = data.images.double()
        mean, std = float(pixels.mean()), float(pixels.std(unbiased=False))
    assert float(model.standardize.mean) == pytest.approx(mean, rel=1e-6)
    assert float(model.standardize.std) == pytest.approx(std, rel=1e-6)


def test_validation_loss_is_smoothed_like_the_training_loss(mnist_small):
    import torch.nn.functional as F

    from cnnlab.train.loop import loss_and_accuracy

    _, test = mnist_small
    model = lenet().eval()
    x, y = test.images[:64], test.labels[:64]
    loss, _ = loss_and_accuracy(model, x, y, label_smoothing=0.2)
    with torch.no_grad():
        expected = F.cross_entropy(model(x.float()), y, label_smoothing=0.2)
    assert loss == pytest.approx(float(expected), rel=1e-5)


def test_a_callback_stops_training_through_its_context(mnist_small):
    train, _ = mnist_small
    data = train.select(range(100))

    class StopAtTwo(Callback):
        def on_epoch_end(self, logs):
            if logs["epoch"] == 2:
                self.context.stop_training, self.context.stop_reason = True, "two is enough"

    history = fit(lenet(), data, None, epochs=5, callbacks=[StopAtTwo()])
    assert len(history.rows) == 2 and history.stop_reason == "two is enough"

    class OldStyle(Callback):
        def on_epoch_end(self, logs):
            logs["stop_training"] = True

    with pytest.raises(CnnlabError, match=r"self\.context\.stop_training"):
        fit(lenet(), data, None, epochs=5, callbacks=[OldStyle()])


def test_a_gpu_trains_with_cudnns_deterministic_algorithms_and_gets_its_settings_back():
    from cnnlab.train.loop import deterministic_kernels

    cudnn = torch.backends.cudnn
    before = cudnn.deterministic, cudnn.benchmark
    try:
        cudnn.deterministic, cudnn.benchmark = False, True  # a user's own choice
        with pytest.raises(ZeroDivisionError), deterministic_kernels(torch.device("cuda", 0)):
            assert (cudnn.deterministic, cudnn.benchmark) == (True, False)
            raise ZeroDivisionError  # an error in training still puts them back
        assert (cudnn.deterministic, cudnn.benchmark) == (False, True)
        with deterministic_kernels(torch.device("cpu")):  # nothing to change on a CPU
            assert (cudnn.deterministic, cudnn.benchmark) == (False, True)
    finally:
        cudnn.deterministic, cudnn.benchmark = before


def test_options_that_the_rest_of_the_config_leaves_idle_are_named():
    config = TrainConfig(schedule="cosine", optimizer="adam", init="xavier")
    given = ["step_size", "gamma", "momentum", "nesterov", "init_sigma", "lr"]
    assert config.idle(given) == [
        "--step-size has no effect with --schedule cosine: it shapes --schedule step only",
        "--gamma has no effect with --schedule cosine: it shapes --schedule step and plateau only",
        "--momentum has no effect with --optimizer adam: it shapes --optimizer sgd and "
        "rmsprop only",
        "--nesterov has no effect with --optimizer adam: it shapes --optimizer sgd with "
        "--momentum above 0 only",
        "--init-sigma has no effect with --init xavier: it shapes --init normal only",
    ]
    used = TrainConfig(schedule="step", optimizer="sgd", init="normal")
    assert used.idle(given) == [] and config.idle(["lr", "epochs"]) == []
    assert TrainConfig(schedule="plateau").idle(["gamma", "step_size"]) == [
        "--step-size has no effect with --schedule plateau: it shapes --schedule step only"
    ]
