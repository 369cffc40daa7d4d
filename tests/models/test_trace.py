"""The one zero-image trace: every layer's shape and count against the textbook arithmetic."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from zoo_arithmetic import expected_shapes, layer_params, leaves

from cnnlab.models import InputTooSmallError, create_model, list_models
from cnnlab.models.trace import feature_shape, output_shape, trace_model

SIZES = [(28, 1, 10), ((40, 36), 3, 4), ((64, 20), 2, 3)]


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize(("size", "in_chans", "num_classes"), SIZES)
def test_every_layer_has_the_arithmetic_shape_and_count(name, size, in_chans, num_classes) -> None:
    model = create_model(name, in_chans=in_chans, num_classes=num_classes, input_size=size)
    input_shape = (in_chans, *model.input_size)
    expected = expected_shapes(model, input_shape)
    trace = trace_model(model, input_shape, batch_size=3)
    assert [layer.name for layer in trace.layers] == [n for n, _ in leaves(model)]
    for layer in trace.layers:
        assert layer.output_shape == (3, *expected[layer.name]), layer.name
        assert layer.params == layer_params(layer.module), layer.name
        assert layer.type == type(layer.module).__name__
    assert trace.layers[-1].name == "head" and expected["head"] == (num_classes,)
    by_hand = sum(layer_params(module) for _, module in leaves(model))
    assert trace.total_params == trace.trainable_params == by_hand
    assert trace.input_shape == (3, *input_shape)
    assert output_shape(model, input_shape) == (num_classes,)


def test_lenet5_multiply_adds_by_hand() -> None:
    # torchinfo counts a convolution's 25 weights and its bias once per output value, a dense
    # layer's weights and biases once per image; pooling and ReLU count 0. Batch of 2.
    trace = trace_model(create_model("lenet5"), (1, 28, 28), batch_size=2)
    adds = {layer.name: layer.mult_adds for layer in trace.layers}
    assert adds["features.conv1"] == 2 * (6 * 28 * 28) * (5 * 5 + 1)
    assert adds["features.conv2"] == 2 * (16 * 10 * 10) * (5 * 5 * 6 + 1)
    assert adds["features.fc1"] == 2 * (400 * 120 + 120)
    assert adds["features.relu1"] == adds["features.pool1"] == 0


def test_mode_device_and_gradients_are_left_alone() -> None:
    model = create_model("lenet5_bn", input_size=32)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trace_model(model, (1, 32, 32))
    output_shape(model, (1, 32, 32))
    assert model.training
    # Eval mode: a zero batch must not move batch norm's running statistics.
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in model.parameters())


def test_a_module_called_twice_is_listed_once_and_the_model_is_never_a_row() -> None:
    shared = nn.Linear(4, 4)
    chain = nn.Sequential(shared, nn.ReLU(), shared)
    layers = trace_model(chain, (4,)).layers
    assert [layer.name for layer in layers] == ["0", "1"]
    assert [layer.output_shape for layer in layers] == [(1, 4), (1, 4)]
    assert trace_model(nn.Linear(2, 3), (2,)).layers == []


def test_too_small_inputs_are_one_user_error() -> None:
    convs = nn.Sequential(nn.Conv2d(1, 2, 5), nn.MaxPool2d(2))
    assert feature_shape(convs, 1, (6, 9)) == (2, 1, 2)
    for too_small in [(4, 9), (5, 5)]:
        with pytest.raises(InputTooSmallError, match=f"{too_small[0]}x{too_small[1]} input"):
            feature_shape(convs, 1, too_small)
    with pytest.raises(InputTooSmallError, match="too small"):
        trace_model(convs, (1, 4, 4))
    with pytest.raises(InputTooSmallError, match=r"shape \(3,\) does not fit"):
        output_shape(nn.Linear(2, 2), (3,))

    # Layers that empty the features without refusing the image say so as well.
    class NoChannels(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :0]

    with pytest.raises(InputTooSmallError, match="4x4 input leaves no features"):
        feature_shape(nn.Sequential(NoChannels(), nn.Flatten()), 1, (4, 4))
    assert convs.training


def test_other_errors_are_not_mistaken_for_a_small_input() -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise TypeError("not a shape problem")

    for run in (lambda: trace_model(Broken(), (1, 4, 4)), lambda: output_shape(Broken(), (1,))):
        with pytest.raises(TypeError, match="not a shape problem"):
            run()
