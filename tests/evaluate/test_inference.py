"""The CPU inference network: eager PyTorch with batch norm folded and channels-last weights."""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.evaluate import predict_proba
from cnnlab.evaluate.evaluate import (
    GRAPH_MIN_BATCHES,
    _logits,
    inference_graph,
    inference_network,
)
from cnnlab.models import create_model, list_models

# The module, which the package's function of the same name hides.
evaluate_module = importlib.import_module("cnnlab.evaluate.evaluate")


def _trained_statistics(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """``model`` in eval mode with batch-norm running statistics away from their start."""
    torch.manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.weight.uniform_(0.5, 2.0)
                module.bias.uniform_(-0.5, 0.5)
        model.train()(images[:32].float())
    return model.eval()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", list_models())
def test_inference_network_gives_the_eager_logits_for_every_registered_model(
    name: str, channels: int
) -> None:
    torch.manual_seed(1)
    model = create_model(name, in_chans=channels, num_classes=4, input_size=(20, 16))
    images = torch.randint(0, 256, (67, channels, 20, 16), dtype=torch.uint8)
    model = _trained_statistics(model, images)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with torch.inference_mode():
        eager = model(images.float())
    network = inference_network(model)

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    left = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert left == [] if norms else left == norms  # every batch norm follows its layer
    convolutions = [m for m in network.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convolutions)
    assert (network is model) == (not norms and not convolutions)
    # The caller's model is untouched: same weights, its batch norms, ordinary layout.
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.is_contiguous() for p in model.parameters())

    with torch.inference_mode():
        fast = torch.cat([network(images[i : i + 8].float()) for i in range(0, len(images), 8)])
    scale = float(eager.abs().max())
    np.testing.assert_allclose(fast.numpy(), eager.numpy(), rtol=1e-4, atol=1e-5 * scale)
    assert torch.equal(fast.argmax(1), eager.argmax(1))
    logits = _logits(model.train(), images, batch_size=8, device="cpu")  # last batch of 3
    assert model.training  # its mode comes back
    np.testing.assert_allclose(logits.numpy(), eager.numpy(), rtol=1e-4, atol=1e-5 * scale)


def test_folding_matches_a_hand_computed_batch_norm() -> None:
    # conv (one 1x1 filter of weight 2, bias 1) then batch norm (mean 3, var 4, gamma 5,
    # beta 6, eps 0): y = 5 * (2x + 1 - 3) / 2 + 6 = 5x + 1, a conv of weight 5 and bias 1.
    conv = nn.Conv2d(1, 1, 1)
    norm = nn.BatchNorm2d(1, eps=0.0)
    with torch.no_grad():
        conv.weight.fill_(2.0)
        conv.bias.fill_(1.0)
        norm.running_mean.fill_(3.0)
        norm.running_var.fill_(4.0)
        norm.weight.fill_(5.0)
        norm.bias.fill_(6.0)
    network = inference_network(nn.Sequential(conv, norm).eval())
    folded, gone = network
    assert isinstance(gone, nn.Identity)
    assert folded.weight.item() == 5.0 and folded.bias.item() == 1.0
    x = torch.tensor([[[[0.0, 1.0], [2.0, -3.0]]]])
    with torch.inference_mode():
        assert torch.equal(network(x), 5 * x + 1)


def test_predict_proba_runs_the_inference_network(monkeypatch) -> None:
    model = create_model("lenet5_bn", in_chans=1, num_classes=3, input_size=(12, 12)).eval()
    used: list[nn.Module] = []
    batches: list[int] = []
    real = evaluate_module.inference_network

    def spy(module: nn.Module) -> nn.Module:
        network = real(module)
        network.register_forward_hook(lambda *_: batches.append(1))
        used.append(network)
        return network

    monkeypatch.setattr(evaluate_module, "inference_network", spy)
    predict_proba(model, torch.zeros(10, 1, 12, 12), batch_size=4)
    assert len(used) == 1 and used[0] is not model and len(batches) == 3
    assert not any(isinstance(m, nn.BatchNorm2d) for m in used[0].modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_unknown_hooked_training_and_unfoldable_models_run_as_they_are() -> None:
    class Branchy(nn.Module):  # not a cnnlab or torch.nn module: its forward may branch
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.norm = nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.norm(self.conv(x)) if x.mean() > 0 else self.conv(x)

    branchy = Branchy().eval()
    assert inference_network(branchy) is branchy
    model = create_model("convnet_bn", in_chans=1, num_classes=3, input_size=(8, 8))
    assert inference_network(model.train()) is model  # batch statistics: nothing is constant
    model.eval()
    assert inference_network(model) is not model
    calls = []
    model.features.bn1.register_forward_hook(lambda *_: calls.append(1))
    assert inference_network(model) is model
    predict_proba(model, torch.zeros(6, 1, 8, 8), batch_size=2)
    assert len(calls) == 3  # the hook ran for every batch
    # ... and each batch's own statistics, or not after its layer: kept (only the layout changes).
    per_batch = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False))
    after_relu = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BatchNorm2d(2))
    x = torch.randn(4, 1, 6, 6)
    for sequence in (per_batch.eval(), after_relu.eval()):
        network = inference_network(sequence)
        assert isinstance(network[-1], nn.BatchNorm2d)
        with torch.inference_mode():
            np.testing.assert_allclose(network(x), sequence(x), rtol=1e-5, atol=1e-6)


def test_no_warning_reaches_the_user() -> None:
    images = torch.randint(0, 256, (300, 1, 28, 28), dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("lenet5", "lenet5_bn", "convnet_bn"):
            model = create_model(name, in_chans=1, num_classes=10, input_size=(28, 28))
            eager = predict_proba(model.eval(), images)  # 3 batches: the inference network
            graph = predict_proba(model, images, batch_size=16)  # 19: the TorchScript graph
            np.testing.assert_allclose(graph.numpy(), eager.numpy(), rtol=1e-4, atol=1e-6)


def test_large_workloads_run_the_graph_and_a_failed_trace_the_inference_network(
    monkeypatch,
) -> None:
    model = create_model("lenet5_bn", in_chans=1, num_classes=3, input_size=(12, 12)).eval()
    images = torch.zeros(GRAPH_MIN_BATCHES * 2, 1, 12, 12)
    graph = inference_graph(model, images[:2])
    assert isinstance(graph, torch.jit.ScriptModule)
    used: list[nn.Module] = []
    real = evaluate_module.inference_graph
    monkeypatch.setattr(
        evaluate_module, "inference_graph", lambda *args: used.append(real(*args)) or used[-1]
    )
    _logits(model, images, batch_size=2, device="cpu")
    assert len(used) == 1 and isinstance(used[0], torch.jit.ScriptModule)

    def no_torchscript(*args, **kwargs):
        raise RuntimeError("TorchScript was removed")

    monkeypatch.setattr(torch.jit, "trace", no_torchscript)
    fallback = real(model, images[:2])
    assert not isinstance(fallback, torch.jit.ScriptModule) and fallback is not model
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fallback.modules())
    with torch.inference_mode():
        np.testing.assert_allclose(
            fallback(images + 3).numpy(), model(images + 3).numpy(), rtol=1e-4, atol=1e-5
        )
