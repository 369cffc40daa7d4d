"""cnnlab's fast layers against PyTorch's: the same values and the same gradients, bit for bit."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models import create_model, list_models
from cnnlab.models.layers import MaxPool2d, _MaxPool2x2


def _maps(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Random maps with the ties real images give: flat patches (a constant background makes
    equal convolution outputs), exact zeros and duplicated values inside windows."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator)
    x[..., : shape[-2] // 2, : shape[-1] // 3] = 0.25
    x[..., -3:, :] = 0.0
    rows, cols = shape[-2] // 2 * 2, shape[-1] // 2 * 2
    upper_right, lower_left = x[..., 0:rows:2, 1:cols:2], x[..., 1:rows:2, 0:cols:2]
    x[..., 1:rows:2, 0:cols:2] = torch.where(upper_right > 0, upper_right, lower_left)
    return x


@pytest.mark.parametrize("shape", [(4, 6, 28, 28), (3, 16, 10, 10), (2, 3, 8, 6), (1, 1, 2, 2)])
def test_fast_pooling_equals_pytorch_values_and_gradients(shape: tuple[int, ...]) -> None:
    x = _maps(shape, seed=sum(shape))
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    pooled = _MaxPool2x2.apply(ours)
    expected = F.max_pool2d(theirs, 2)
    assert torch.equal(pooled, expected)
    upstream = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1))
    pooled.backward(upstream)
    expected.backward(upstream)
    assert torch.equal(ours.grad, theirs.grad)
    # Each window passes its gradient to exactly one element, also in flat, tied patches.
    assert int((ours.grad != 0).sum()) == int((upstream != 0).sum())


def test_the_layer_takes_the_fast_path_only_when_training_with_gradients() -> None:
    layer = MaxPool2d(2, stride=2)
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    assert layer._fast(x)
    assert not layer._fast(x.detach())
    assert not layer._fast(x.contiguous(memory_format=torch.channels_last))  # PyTorch's is fast
    assert not layer._fast(x.transpose(2, 3))
    assert not layer._fast(torch.randn(2, 3, 7, 8, requires_grad=True))  # odd: PyTorch's path
    assert not MaxPool2d(3, stride=2)._fast(x)
    assert not MaxPool2d(2, stride=2, ceil_mode=True)._fast(x)
    layer.eval()
    assert not layer._fast(x)
    assert repr(layer) == repr(nn.MaxPool2d(2, stride=2))
    assert isinstance(layer, nn.MaxPool2d)


@pytest.mark.parametrize("name", [n for n in list_models() if not n.startswith("mlp")])
def test_models_compute_the_textbook_function_with_the_textbook_gradients(name: str) -> None:
    """Every built-in network (pooling before ReLU, fast pooling) against the same weights in
    the textbook order with PyTorch's pooling: identical logits and weight gradients."""
    torch.manual_seed(0)
    model = create_model(name, in_chans=1, num_classes=4, input_size=(28, 28))
    textbook = create_model(name, in_chans=1, num_classes=4, input_size=(28, 28))
    textbook.load_state_dict(model.state_dict())
    textbook.features = _textbook_order(textbook.features)
    # The pooling order alone, on PyTorch's operators: the native kernels, which sum in
    # another order, are checked against PyTorch's in tests/kernels/.
    model.native_kernels = False
    model.train()
    textbook.train()
    x = _maps((8, 1, 28, 28), seed=3) * 40 + 100
    torch.manual_seed(1)  # the same dropout masks
    logits = model(x)
    torch.manual_seed(1)
    reference = textbook(x)
    assert torch.equal(logits, reference)
    logits.square().sum().backward()
    reference.square().sum().backward()
    for (key, ours), theirs in zip(model.named_parameters(), textbook.parameters(), strict=True):
        assert torch.equal(ours.grad, theirs.grad), key


def _textbook_order(features: nn.Sequential) -> nn.Sequential:
    """``features`` with every ReLU moved back before the pooling it follows, and PyTorch's
    own pooling layer."""
    layers = list(features.named_children())
    for i in range(1, len(layers)):
        (pool_name, pool), (act_name, act) = layers[i - 1], layers[i]
        if isinstance(pool, nn.MaxPool2d) and isinstance(act, nn.ReLU):
            layers[i - 1], layers[i] = (act_name, act), (pool_name, pool)
    layers = [
        (n, nn.MaxPool2d(m.kernel_size, m.stride) if isinstance(m, nn.MaxPool2d) else m)
        for n, m in layers
    ]
    return nn.Sequential(OrderedDict(layers))
