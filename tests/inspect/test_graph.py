"""The network drawing: one box per layer that runs, in order, with the shapes it produces."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.inspect.graph import layer_kind, network_graph_svg, trace_layers
from cnnlab.models import create_model

SVG = "{http://www.w3.org/2000/svg}"


def leaf_names(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if name and not list(module.children())]


def layer_boxes(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)  # also proves the SVG is well-formed XML
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == "layer"]


def box_text(box: ET.Element) -> str:
    return " ".join("".join(text.itertext()) for text in box.iter(f"{SVG}text"))


def test_lenet5_layers_and_shapes_match_the_textbook() -> None:
    model = create_model("lenet5", in_chans=1, num_classes=10, input_size=(28, 28))
    layers = trace_layers(model)
    assert [layer.name for layer in layers] == leaf_names(model)
    shapes = {layer.name: layer.output_shape for layer in layers}
    # LeNet-5 on 28x28 digits padded by 2: 6@28x28, 6@14x14, 16@10x10, 16@5x5, 400, 120, 84, 10.
    assert shapes["features.conv1"] == (6, 28, 28)
    assert shapes["features.pool1"] == (6, 14, 14)
    assert shapes["features.conv2"] == (16, 10, 10)
    assert shapes["features.pool2"] == (16, 5, 5)
    assert shapes["features.flatten"] == (400,)
    assert shapes["features.fc1"] == (120,) and shapes["features.fc2"] == (84,)
    assert shapes["head"] == (10,)
    conv1 = next(layer for layer in layers if layer.name == "features.conv1")
    assert conv1.kind == "conv" and "6 filters 5x5" in conv1.params and "pad 2" in conv1.params
    assert conv1.parameters == 6 * 25 + 6


@pytest.mark.parametrize("name", ["lenet5", "mlp_dropout", "convnet_bn", "cnn_dropout"])
def test_one_box_per_leaf_layer_labelled_with_its_output_shape(name: str) -> None:
    model = create_model(name, in_chans=1, num_classes=4, input_size=(28, 28))
    model.train()
    svg = network_graph_svg(model)
    boxes = layer_boxes(svg)
    layers = trace_layers(model)
    assert len(boxes) == len(leaf_names(model)) == len(layers)
    for box, layer in zip(boxes, layers, strict=True):
        assert layer.shape_text in box_text(box)
        assert box.get("data-kind") == layer.kind
    assert model.training  # drawing runs in eval mode and gives the mode back


def test_shapes_come_from_a_real_forward_pass() -> None:
    model = create_model("convnet_bn", in_chans=3, num_classes=5, input_size=(20, 24))
    outputs: dict[str, tuple[int, ...]] = {}

    def keep(name: str):
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            outputs.setdefault(name, tuple(output.shape[1:]))

        return hook

    hooks = [
        module.register_forward_hook(keep(name))
        for name, module in model.named_modules()
        if name and not list(module.children())
    ]
    model.eval()
    model(torch.zeros(2, 3, 20, 24))
    for hook in hooks:
        hook.remove()
    assert {layer.name: layer.output_shape for layer in trace_layers(model)} == outputs


def test_vertical_layout_stacks_boxes_in_one_column() -> None:
    model = create_model("mlp", in_chans=1, num_classes=3, input_size=(8, 8))
    boxes = layer_boxes(network_graph_svg(model, direction="vertical"))
    xs = {box.find(f"{SVG}rect").get("x") for box in boxes}
    ys = [float(box.find(f"{SVG}rect").get("y")) for box in boxes]
    assert len(xs) == 1 and ys == sorted(ys)


def test_horizontal_layout_wraps_rows_to_the_width() -> None:
    model = create_model("convnet_bn", in_chans=1, num_classes=3, input_size=(16, 16))
    root = ET.fromstring(network_graph_svg(model, max_width=700))
    assert float(root.get("width")) <= 700


def test_layer_kinds() -> None:
    assert layer_kind(nn.Conv2d(1, 2, 3)) == "conv"
    assert layer_kind(nn.MaxPool2d(2)) == "pool"
    assert layer_kind(nn.AdaptiveAvgPool2d(1)) == "pool"
    assert layer_kind(nn.ReLU()) == "activation" and layer_kind(nn.Tanh()) == "activation"
    assert layer_kind(nn.Linear(2, 3)) == "dense"
    assert layer_kind(nn.BatchNorm2d(2)) == "norm"
    assert layer_kind(nn.Dropout(0.5)) == "dropout"
    assert layer_kind(nn.Flatten()) == "reshape"


def test_names_with_markup_are_escaped() -> None:
    model = create_model("mlp", in_chans=1, num_classes=2, input_size=(4, 4))
    model.class_names = ("<b>", "a&b")
    svg = network_graph_svg(model)
    ET.fromstring(svg)
    assert "&lt;b&gt;" in svg and "<b>" not in svg


def test_errors_are_one_line() -> None:
    model = create_model("mlp", in_chans=1, num_classes=2, input_size=(4, 4))
    with pytest.raises(CnnlabError, match="direction"):
        network_graph_svg(model, direction="diagonal")
    with pytest.raises(CnnlabError, match="input_shape"):
        trace_layers(nn.Sequential(nn.Linear(2, 2)))
    assert [layer.output_shape for layer in trace_layers(nn.Sequential(nn.Linear(2, 3)), (2,))] == [
        (3,)
    ]
