"""Keras-style summaries: shapes and counts checked against hand computation."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from zoo_arithmetic import expected_shapes, layer_params, leaves

from cnnlab.models import count_parameters, create_model, list_models, model_summary


def rows_by_name(summary) -> dict[str, dict]:
    return {row["name"]: row for row in summary.rows}


def test_lenet5_on_mnist_layer_by_layer() -> None:
    summary = model_summary(create_model("lenet5", input_size=28))
    rows = rows_by_name(summary)
    expected = {
        "features.conv1": ("Conv2d", (1, 6, 28, 28), 5 * 5 * 1 * 6 + 6),
        "features.pool1": ("MaxPool2d", (1, 6, 14, 14), 0),
        "features.conv2": ("Conv2d", (1, 16, 10, 10), 5 * 5 * 6 * 16 + 16),
        "features.pool2": ("MaxPool2d", (1, 16, 5, 5), 0),
        "features.flatten": ("Flatten", (1, 400), 0),
        "features.fc1": ("Linear", (1, 120), 400 * 120 + 120),
        "features.fc2": ("Linear", (1, 84), 120 * 84 + 84),
        "head": ("Linear", (1, 10), 84 * 10 + 10),
    }
    for name, (kind, shape, params) in expected.items():
        assert (rows[name]["type"], rows[name]["output_shape"], rows[name]["params"]) == (
            kind,
            shape,
            params,
        )
    assert summary.total_params == summary.trainable_params == 61706
    assert summary.non_trainable_params == 0
    # conv1 multiply-adds as torchinfo counts them: 25 weights and the bias per output value.
    assert rows["features.conv1"]["mult_adds"] == 6 * 28 * 28 * (25 + 1)
    text = str(summary)
    assert "features.conv1 (Conv2d)" in text and "(1, 6, 28, 28)" in text
    assert "Total params: 61,706" in text and "Trainable params: 61,706" in text


@pytest.mark.parametrize("name", list_models())
def test_every_layer_listed_with_the_arithmetic_shape_and_count(name: str) -> None:
    model = create_model(name, in_chans=3, num_classes=4, input_size=(40, 36))
    summary = model_summary(model)
    expected = expected_shapes(model, (3, 40, 36))
    assert [row["name"] for row in summary.rows] == [n for n, _ in leaves(model)]
    for row, (_, module) in zip(summary.rows, leaves(model), strict=True):
        assert row["type"] == type(module).__name__
        assert row["output_shape"] == (1, *expected[row["name"]])
        assert row["params"] == layer_params(module)
    assert summary.total_params == count_parameters(model) == sum(r["params"] for r in summary.rows)
    assert rows_by_name(summary)["head"]["output_shape"] == (1, 4)
    assert f"Total params: {summary.total_params:,}" in str(summary)
    assert model.training  # summarising leaves the mode alone


def test_batch_size_and_other_input_size() -> None:
    model = create_model("convnet_bn")
    summary = model_summary(model, input_size=(64, 40), batch_size=8)
    rows = rows_by_name(summary)
    assert summary.input_shape == (8, 1, 64, 40)
    assert rows["features.conv1"]["output_shape"] == (8, 16, 64, 40)
    assert rows["features.pool2"]["output_shape"] == (8, 64, 16, 10)
    assert rows["features.gap"]["output_shape"] == (8, 128, 1, 1)
    assert rows["head"]["output_shape"] == (8, 10)


def test_frozen_parameters_are_not_trainable() -> None:
    model = create_model("mlp")
    for parameter in model.features.parameters():
        parameter.requires_grad_(False)
    summary = model_summary(model)
    assert count_parameters(model) == 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    assert summary.trainable_params == count_parameters(model, trainable_only=True) == 650
    assert summary.non_trainable_params == 109386 - 650
    assert "Non-trainable params: 108,736" in str(summary)


def test_shared_parameters_counted_once() -> None:
    layer = nn.Linear(4, 4)
    assert count_parameters(nn.Sequential(layer, nn.ReLU(), layer)) == 20
    assert count_parameters(torch.nn.Identity()) == 0
