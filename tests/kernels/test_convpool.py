"""The native conv + pool + ReLU layers against PyTorch's operators, in float64 as reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.kernels import convpool, library
from cnnlab.models import create_model
from cnnlab.models import lenet as lenet_module

pytestmark = pytest.mark.skipif(library() is None, reason="this machine built no kernels")


def reference(x, weight, bias, padding):
    return F.relu(F.max_pool2d(F.conv2d(x, weight, bias, padding=padding), 2))


def run_both(x, weight, bias, padding, first, last, upstream=None, input_grad=True):
    """Output and gradients (x, weight, bias) of the native layer and of PyTorch's in float64."""
    results = []
    for native in (True, False):
        dtype = torch.float32 if native else torch.float64
        leaves = [t.detach().to(dtype).requires_grad_() for t in (x, weight, bias)]
        leaves[0].requires_grad_(input_grad)
        if native:
            out = convpool.conv_pool_relu(*leaves, padding, first=first, last=last)
            assert out is not None
        else:
            out = reference(*leaves, padding)
        if upstream is None:
            upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(5))
        out.backward(upstream.to(dtype))
        results.append([out.detach(), *(leaf.grad for leaf in leaves)])
    return results


def assert_close(ours, theirs, what):
    if theirs is None:
        assert ours is None, what
        return
    assert ours.shape == theirs.shape, what
    scale = max(float(theirs.abs().max()), 1.0)
    error = float((ours.double() - theirs).abs().max())
    assert error <= 2e-5 * scale, f"{what}: {error:.2e} against a scale of {scale:.2e}"


SHAPES = [
    # N, C, H, W, Co, K, padding, first, last
    (32, 1, 28, 28, 6, 5, 2, True, False),  # LeNet-5's first layer on MNIST
    (32, 6, 14, 14, 16, 5, 0, False, True),  # and its second
    (5, 3, 33, 45, 10, 3, 1, True, False),  # RGB, odd sides, blocks of 6 not filled
    (3, 1, 28, 28, 16, 5, 2, True, True),
    (4, 6, 14, 14, 16, 5, 0, False, False),
    (3, 16, 21, 17, 20, 3, 1, False, True),  # vectors of 16 channels not filled, padding
    (2, 20, 12, 12, 50, 5, 0, False, True),  # MXNet's wide LeNet: 50 channels
    (9, 1, 6, 6, 1, 5, 0, True, True),  # one pooled pixel, one channel
    (2, 2, 70, 40, 4, 7, 3, True, False),  # wide rows: several vectors per row
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:7])))
def test_values_and_gradients_match_pytorch(shape):
    n, c, h, w, co, k, padding, first, last = shape
    generator = torch.Generator().manual_seed(sum(shape[:7]))
    x = torch.randn((n, c, h, w), generator=generator)
    weight = torch.randn((co, c, k, k), generator=generator) / k
    bias = torch.randn(co, generator=generator) * 0.1
    ours, theirs = run_both(x, weight, bias, padding, first, last)
    for what, mine, expected in zip(("output", "x", "weight", "bias"), ours, theirs, strict=True):
        assert_close(mine, expected, what)
    assert ours[0].is_contiguous(memory_format=torch.channels_last) != (last and not first)


def test_flat_images_pass_each_window_to_its_first_element():
    """A flat background gives equal convolution outputs in every window: as in PyTorch, the
    first element in row-major order wins, so the same input pixels receive the gradient."""
    x = torch.zeros(4, 1, 12, 12)
    x[:, :, 6:, 6:] = torch.randn(4, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    weight = torch.randn(3, 1, 3, 3, generator=torch.Generator().manual_seed(1))
    bias = torch.tensor([0.5, 0.1, 0.2])  # all positive: every tied window passes its gradient
    ours, theirs = run_both(x, weight, bias, 1, True, False)
    for what, mine, expected in zip(("output", "x", "weight", "bias"), ours, theirs, strict=True):
        assert_close(mine, expected, what)
    # Exactly one element per window received its gradient, also in the flat part.
    assert int((ours[1][:, :, :5, :5] != 0).sum()) == int((theirs[1][:, :, :5, :5] != 0).sum())


def test_nan_propagates_as_in_pytorch():
    x = torch.randn(2, 1, 10, 10)
    x[0, 0, 4, 4] = float("nan")
    weight, bias = torch.randn(2, 1, 3, 3), torch.zeros(2)
    out = convpool.conv_pool_relu(x, weight, bias, 1, first=True, last=True)
    expected = reference(x, weight, bias, 1)
    assert torch.equal(out.isnan(), expected.isnan())
    assert out.isnan().any()


@pytest.mark.parametrize("first", [True, False])
def test_results_do_not_depend_on_the_number_of_threads(first):
    """Weight gradients are summed in fixed chunks of images, in order: bit for bit the same
    with one thread or two (a run resumed with other settings continues exactly)."""
    c, co, size = (1, 6, 28) if first else (6, 16, 14)
    generator = torch.Generator().manual_seed(2)
    x = torch.randn((37, c, size, size), generator=generator)
    weight = torch.randn((co, c, 5, 5), generator=generator) / 5
    bias = torch.randn(co, generator=generator)
    upstream = None
    results = []
    threads = torch.get_num_threads()
    try:
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
            out = convpool.conv_pool_relu(*leaves, 2 if first else 0, first=first, last=True)
            if upstream is None:
                upstream = torch.randn(out.shape, generator=generator)
            out.backward(upstream)
            results.append([out, *(leaf.grad for leaf in leaves)])
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for mine, theirs in zip(results[0], other, strict=True):
            assert torch.equal(mine, theirs)


def test_second_derivatives_are_refused():
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    weight = torch.randn(2, 1, 3, 3, requires_grad=True)
    out = convpool.conv_pool_relu(x, weight, torch.zeros(2), 0, first=True, last=True)
    (grad,) = torch.autograd.grad(out.sum(), weight, create_graph=True)
    with pytest.raises(RuntimeError, match=r"does not require grad|once_differentiable"):
        grad.sum().backward()


def test_what_the_kernels_do_not_take_is_left_to_pytorch():
    x, weight, bias = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3), torch.randn(4)
    assert convpool.conv_pool_relu(x, weight, bias, 0, first=True, last=True) is not None
    refused = [
        (x.double(), weight.double(), bias.double(), 0),
        (x, weight, None, 0),
        (x[:, :2], weight, bias, 0),  # channels do not match: PyTorch gives the error
        (torch.randn(2, 3, 3, 3), weight, bias, 0),  # no pooled pixel
        (x, torch.randn(4, 3, 3, 2), bias, 0),  # not square
        (torch.randn(0, 3, 8, 8), weight, bias, 0),
        (x, weight, bias, -1),  # PyTorch refuses negative padding; the kernels never see it
        (x, weight[:1].expand(4, 3, 3, 3), bias, 0),  # shared weights: one gradient each
        (x[:, :0], weight[:, :0], bias, 0),  # no channel
        (torch.randn(1, 1, 600, 600), weight[:, :1], bias, 0),  # 89,401 pooled positions
    ]
    for args in refused:
        assert convpool.conv_pool_relu(*args, first=True, last=True) is None


def lenet_pair(name="lenet5", **options):
    torch.manual_seed(0)
    native = create_model(name, in_chans=1, num_classes=10, input_size=(28, 28), **options)
    plain = create_model(name, in_chans=1, num_classes=10, input_size=(28, 28), **options)
    plain.load_state_dict(native.state_dict())
    plain.native_kernels = False
    return native.train(), plain.train()


OPTIONS = [
    {},
    {"kernel": 3},
    {"filters": (8, 12, 16), "kernel": 3, "padding": 2},  # three stages
    {"filters": (20,)},  # one stage
]


@pytest.mark.parametrize("options", OPTIONS)
def test_lenet_trains_through_the_kernels_with_pytorchs_function(options):
    native, plain = lenet_pair(**options)
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(3)) * 255
    labels = torch.arange(16) % 10
    grads = []
    for model in (native, plain):
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        grads.append({key: p.grad for key, p in model.named_parameters()})
    for key, theirs in grads[1].items():
        assert_close(grads[0][key].double(), theirs.double(), key)
    assert any("ConvPoolReLU" in name for name in map(_name, _graph(native(x).grad_fn)))
    assert not any("ConvPoolReLU" in name for name in map(_name, _graph(plain(x).grad_fn)))


def _graph(node):
    seen, stack = [], [node]
    while stack:
        current = stack.pop()
        if current is None or current in seen:
            continue
        seen.append(current)
        stack.extend(parent for parent, _ in current.next_functions)
    return seen


def _name(node) -> str:
    return type(node).__name__


@pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")
def test_lenet_takes_pytorchs_path_where_layers_are_watched_or_recorded(monkeypatch):
    """Training and scoring take the kernels; hooks (inspection, captum's layer methods),
    traces and other networks take PyTorch's operators."""
    native, _ = lenet_pair()
    x = torch.rand(4, 1, 28, 28) * 255
    calls = []
    real = lenet_module.conv_pool_relu
    monkeypatch.setattr(
        lenet_module, "conv_pool_relu", lambda *a, **k: calls.append(1) or real(*a, **k)
    )

    def native_used(model, images):
        calls.clear()
        model(images)
        return bool(calls)

    assert native_used(native, x) and native.takes_native_kernels(x)
    with torch.no_grad():
        assert native_used(native, x)
    native.eval()
    with torch.inference_mode():
        assert native_used(native, x)
    handle = native.features.relu1.register_forward_hook(lambda *args: None)
    assert not native_used(native, x) and not native.takes_native_kernels(x)
    handle.remove()
    seen = []
    handle = native.features.register_forward_hook(lambda *args: seen.append(1))
    assert not native_used(native, x) and seen == [1]
    handle.remove()
    assert native_used(native, x)
    traced = torch.jit.trace(native, x, check_trace=False)
    assert not any("ConvPoolReLU" in str(node) for node in traced.graph.nodes())
    torch.testing.assert_close(traced(x), native(x), rtol=1e-4, atol=1e-5)
    with FlopCounterMode(display=False) as counter:  # counts what PyTorch's operators do
        assert not native_used(native, x)
    assert counter.get_flop_counts()["Global"][torch.ops.aten.convolution] > 0
    native.native_kernels = False
    assert not native_used(native, x) and not native.takes_native_kernels(x)
    for other in ("lenet5_bn", "lenet5_tanh", "convnet_bn", "mlp"):
        model = lenet_pair(other)[0]
        assert not native_used(model, x) and not model.takes_native_kernels(x)


def test_scoring_takes_the_kernels_and_gives_pytorchs_probabilities():
    from cnnlab.evaluate import predict_proba

    native, plain = lenet_pair()
    images = (torch.rand(300, 1, 28, 28) * 255).round()
    ours = predict_proba(native, images, batch_size=16)  # 19 batches: would trace otherwise
    theirs = predict_proba(plain, images, batch_size=16)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


def test_gradients_come_in_the_weights_own_layout():
    """fit trains LeNet in channels-last: each gradient has its weight's strides, which
    DistributedDataParallel's buckets expect (it warns otherwise)."""
    native, _ = lenet_pair()
    native = native.to(memory_format=torch.channels_last)
    F.cross_entropy(native(torch.rand(8, 1, 28, 28) * 255), torch.arange(8)).backward()
    for key, parameter in native.named_parameters():
        assert parameter.grad.stride() == parameter.stride(), key
