"""The zoo's architectures: hand-counted parameters, shapes, structure, and that they learn."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlab.models import ImageClassifier, create_model, list_models

ZOO = list_models()
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_parameter_counts() -> dict[str, int]:
    """The README's "Networks" table: name -> parameters for 1x28x28 images and 10 classes."""
    section = README.read_text(encoding="utf-8").split("\n## Networks\n", 1)[1].split("\n## ")[0]
    rows = re.findall(r"^\| `(\w+)` \|.*\| ([\d,]+) \|$", section, flags=re.MULTILINE)
    return {name: int(count.replace(",", "")) for name, count in rows}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def dense(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def conv(c_in: int, c_out: int, k: int, bias: bool = True) -> int:
    return k * k * c_in * c_out + (c_out if bias else 0)


LENET5 = conv(1, 6, 5) + conv(6, 16, 5) + dense(400, 120) + dense(120, 84) + dense(84, 10)


def test_lenet5_has_the_classic_61706_parameters_at_32_and_padded_28() -> None:
    assert LENET5 == 156 + 2416 + 48120 + 10164 + 850 == 61706
    assert n_params(create_model("lenet5", input_size=32)) == 61706
    assert n_params(create_model("lenet5", input_size=28)) == 61706
    assert create_model("lenet5", input_size=28).features.conv1.padding == (2, 2)
    assert create_model("lenet5", input_size=32).features.conv1.padding == (0, 0)
    assert n_params(create_model("lenet5_tanh")) == 61706


def test_keras_notebook_lenet_without_padding() -> None:
    # Keras notebook: 28x28 -> 24 -> 12 -> 8 -> 4, so 16 * 4 * 4 = 256 features.
    expected = conv(1, 6, 5) + conv(6, 16, 5) + dense(256, 120) + dense(120, 84) + dense(84, 10)
    model = create_model("lenet5_tanh", padding=0)
    assert n_params(model) == expected == 44426
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 4


def test_mlp_parameters() -> None:
    assert n_params(create_model("mlp")) == dense(784, 128) + dense(128, 64) + dense(64, 10)
    assert n_params(create_model("mlp")) == 109386
    expected = dense(784, 128) + dense(128, 128) + dense(128, 10)
    assert n_params(create_model("mlp_dropout")) == expected == 118282
    # 3-channel 32x32 microscopy crops, 4 classes (the MXNet course).
    assert n_params(create_model("mlp", in_chans=3, num_classes=4, input_size=32)) == (
        dense(3 * 32 * 32, 128) + dense(128, 64) + dense(64, 4)
    )
    assert n_params(create_model("mlp", hidden=[])) == dense(784, 10)


def test_cnn_dropout_matches_keras_mnist_cnn() -> None:
    expected = conv(1, 32, 3) + conv(32, 64, 3) + dense(64 * 12 * 12, 128) + dense(128, 10)
    assert n_params(create_model("cnn_dropout")) == expected == 1199882


def test_lenet5_3x3_keras_and_pytorch_tutorial_versions() -> None:
    # Keras: 28 -> 26 -> 13 -> 11 -> 5 (16*5*5); tutorial pads 2: 28 -> 30 -> 15 -> 13 -> 6.
    head = dense(120, 84) + dense(84, 10)
    keras = conv(1, 6, 3) + conv(6, 16, 3) + dense(16 * 5 * 5, 120) + head
    tutorial = conv(1, 6, 3) + conv(6, 16, 3) + dense(16 * 6 * 6, 120) + head
    assert n_params(create_model("lenet5_3x3")) == keras == 60074
    assert n_params(create_model("lenet5_3x3", padding=2)) == tutorial == 81194


def test_lenet_wide_matches_the_mxnet_blog() -> None:
    # 28 -> 24 -> 12 -> 8 -> 4: 50 * 4 * 4 = 800 features into 500 tanh units.
    expected = conv(1, 20, 5) + conv(20, 50, 5) + dense(800, 500) + dense(500, 10)
    model = create_model("lenet_wide")
    assert n_params(model) == expected == 431080
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 3


def test_lenet5_bn_normalizes_before_every_hidden_activation() -> None:
    model = create_model("lenet5_bn", input_size=32)
    batch_norm = 2 * (6 + 16 + 120 + 84)
    no_bias = conv(1, 6, 5, False) + conv(6, 16, 5, False)
    no_bias += dense(400, 120, False) + dense(120, 84, False)
    assert n_params(model) == no_bias + batch_norm + dense(84, 10) == 61932
    # Pooling may sit between a batch norm and its ReLU (the same function, see
    # test_layers.py); what matters is that a batch norm follows every weight layer first.
    kinds = [type(m) for m in model.features if not isinstance(m, nn.MaxPool2d)]
    for index, kind in enumerate(kinds):
        if kind is nn.ReLU:
            assert kinds[index - 1] in (nn.BatchNorm2d, nn.BatchNorm1d)
            assert kinds[index - 2] in (nn.Conv2d, nn.Linear)
    assert kinds.count(nn.ReLU) == 4


def test_convnet_bn_is_small_and_has_no_dense_bottleneck() -> None:
    model = create_model("convnet_bn")
    assert 50_000 <= n_params(model) <= 150_000
    assert n_params(create_model("convnet_bn", input_size=(64, 40))) == n_params(model)
    assert [type(m) for m in model.modules() if isinstance(m, nn.Linear)] == [nn.Linear]
    assert any(isinstance(m, nn.AdaptiveAvgPool2d) for m in model.features)
    assert all(m.groups == 1 for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("name", ZOO)
def test_readme_documents_the_parameter_count(name: str) -> None:
    counts = readme_parameter_counts()
    assert name in counts, f"add {name} to the Networks table of README.md"
    assert n_params(create_model(name, in_chans=1, num_classes=10, input_size=28)) == counts[name]


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize(
    ("size", "in_chans", "num_classes"),
    [(28, 1, 10), (28, 3, 2), (32, 3, 4), (32, 1, 2), (48, 1, 4), ((64, 40), 3, 10)],
)
def test_forward_shape(name: str, size, in_chans: int, num_classes: int) -> None:
    model = create_model(name, in_chans=in_chans, num_classes=num_classes, input_size=size)
    height, width = (size, size) if isinstance(size, int) else size
    logits = model(torch.rand(2, in_chans, height, width) * 255)
    assert logits.shape == (2, num_classes)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ZOO)
def test_structure_features_then_linear_head(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, in_chans=3, num_classes=4, input_size=(36, 44)).eval()
    x = torch.rand(3, 3, 36, 44) * 255
    features = model.forward_features(x)
    assert features.ndim == 2 and features.shape[0] == 3
    assert isinstance(model, ImageClassifier)
    assert isinstance(model.head, nn.Linear)
    assert model.head.in_features == features.shape[1]
    assert model.head.out_features == 4
    torch.testing.assert_close(model(x), model.forward_head(features))
    # No softmax inside: the loss applies it, and logits need not sum to one.
    assert not any(isinstance(m, (nn.Softmax, nn.LogSoftmax)) for m in model.modules())
    # Hooks must see each activation's own output, so activations are separate, not in place.
    assert not any(getattr(m, "inplace", False) for m in model.modules())
    assert any(isinstance(m, (nn.ReLU, nn.Tanh)) for m in model.features)


@pytest.mark.parametrize("name", ZOO)
def test_standardize_statistics_are_saved_and_used(name: str) -> None:
    model = create_model(name, in_chans=3, num_classes=2, input_size=32).eval()
    state = model.state_dict()
    assert "standardize.mean" in state and "standardize.std" in state
    x = torch.randint(0, 4096, (2, 3, 32, 32), dtype=torch.int32)
    mean, std = [100.0, 2000.0, 30.0], [10.0, 500.0, 3.0]
    reference = model(
        (x.float() - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    )
    model.standardize.set_statistics(mean, std)
    torch.testing.assert_close(model(x), reference)
    torch.testing.assert_close(model.state_dict()["standardize.std"], torch.tensor(std))


def separable_problem(in_chans: int, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0: a bright top half; class 1: a bright bottom half, on a noisy 8-bit background."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 60, (16, in_chans, size, size), generator=generator).float()
    labels = torch.arange(16) % 2
    half = size // 2
    images[labels == 0, :, :half] += 150
    images[labels == 1, :, half:] += 150
    return images, labels


@pytest.mark.parametrize("name", ZOO)
def test_backward_and_a_few_steps_reduce_the_loss(name: str) -> None:
    torch.manual_seed(0)
    images, labels = separable_problem(in_chans=2)
    model = create_model(name, in_chans=2, num_classes=2, input_size=16)
    model.standardize.set_statistics(
        images.mean(dim=(0, 2, 3)).tolist(), images.std(dim=(0, 2, 3)).tolist()
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            loss = loss_fn(model(images), labels).item()
        model.train()
        return loss

    before = eval_loss()
    for _ in range(10):
        optimizer.zero_grad()
        loss = loss_fn(model(images), labels)
        loss.backward()
        grads = [p.grad for p in model.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        optimizer.step()
    after = eval_loss()
    assert after < 0.5 * before
