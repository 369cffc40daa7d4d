"""The network drawing: one box per layer that runs, in order, with the shapes it produces."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.inspect.graph import layer_kind, network_graph_svg, trace_layers
from cnnlab.models import InputTooSmallError, create_model, list_models

SVG = "{http://www.w3.org/2000/svg}"


def leaf_names(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if name and not list(module.children())]


def layer_boxes(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)  # also proves the SVG is well-formed XML
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == "layer"]


def box_text(box: ET.Element) -> str:
    return " ".join("".join(text.itertext()) for text in box.iter(f"{SVG}text"))


# LeNet-5 on 28x28 digits padded by 2, worked out by hand: (name, type, kind, key numbers,
# output shape, parameters). 5x5 convolutions: 28 + 4 - 4 = 28, pooled 14; 14 - 4 = 10, pooled 5.
LENET5_GRAPH = [
    ("standardize", "Standardize", "norm", "z-score (train stats)", (1, 28, 28), 0),
    ("features.conv1", "Conv2d", "conv", "6 filters 5x5, pad 2", (6, 28, 28), 25 * 6 + 6),
    # Pooling before the ReLU: the same function, on a quarter of the values (models/layers.py).
    ("features.pool1", "MaxPool2d", "pool", "max 2x2, stride 2", (6, 14, 14), 0),
    ("features.relu1", "ReLU", "activation", "relu", (6, 14, 14), 0),
    ("features.conv2", "Conv2d", "conv", "16 filters 5x5", (16, 10, 10), 25 * 6 * 16 + 16),
    ("features.pool2", "MaxPool2d", "pool", "max 2x2, stride 2", (16, 5, 5), 0),
    ("features.relu2", "ReLU", "activation", "relu", (16, 5, 5), 0),
    ("features.flatten", "Flatten", "reshape", "to a vector", (400,), 0),
    ("features.fc1", "Linear", "dense", "400 → 120 units", (120,), 400 * 120 + 120),
    ("features.relu3", "ReLU", "activation", "relu", (120,), 0),
    ("features.fc2", "Linear", "dense", "120 → 84 units", (84,), 120 * 84 + 84),
    ("features.relu4", "ReLU", "activation", "relu", (84,), 0),
    ("head", "Linear", "dense", "84 → 10 units", (10,), 84 * 10 + 10),
]


def test_lenet5_is_the_textbook_graph() -> None:
    model = create_model("lenet5", in_chans=1, num_classes=10, input_size=(28, 28))
    layers = trace_layers(model)
    assert [
        (layer.name, layer.type, layer.kind, layer.params, layer.output_shape, layer.parameters)
        for layer in layers
    ] == LENET5_GRAPH
    assert sum(layer.parameters for layer in layers) == 61706
    svg = network_graph_svg(model)
    root = ET.fromstring(svg)
    assert root.find(f"{SVG}title").text == "lenet5: 13 layers"
    texts = [box_text(box) for box in layer_boxes(svg)]
    for text, (name, layer_type, _, params, shape, _) in zip(texts, LENET5_GRAPH, strict=True):
        short = name.rsplit(".", 1)[-1]  # shown after the type unless it only repeats it
        title = layer_type if short == layer_type.lower() else f"{layer_type} {short}"
        assert text == f"{title} {params} {'×'.join(map(str, shape))}"
    io = [box_text(g) for g in root.iter(f"{SVG}g") if g.get("class") == "io"]
    assert io == ["input image 1×28×28", "softmax 10 class probabilities"]


def test_convnet_bn_shapes_by_hand() -> None:
    # Width 32 on 3x20x24: 3x3 convolutions with padding 1 keep the size, each 2x2 pooling
    # halves it (20x24 -> 10x12 -> 5x6); 16, 32, 64, 64, 128 maps; global average pooling.
    model = create_model("convnet_bn", in_chans=3, num_classes=5, input_size=(20, 24))
    shapes = {layer.name: layer.output_shape for layer in trace_layers(model)}
    by_hand = {
        "features.conv1": (16, 20, 24),
        "features.conv2": (32, 20, 24),
        "features.pool1": (32, 10, 12),
        "features.conv3": (64, 10, 12),
        "features.conv4": (64, 10, 12),
        "features.pool2": (64, 5, 6),
        "features.conv5": (128, 5, 6),
        "features.bn5": (128, 5, 6),
        "features.gap": (128, 1, 1),
        "features.flatten": (128,),
        "head": (5,),
    }
    assert {name: shapes[name] for name in by_hand} == by_hand
    assert len(shapes) == len(leaf_names(model)) == 5 * 3 + 2 + 2 + 1 + 1


@pytest.mark.parametrize("name", list_models())
def test_one_box_per_leaf_layer_labelled_with_its_output_shape(name: str) -> None:
    model = create_model(name, in_chans=1, num_classes=4, input_size=(28, 28))
    model.train()
    svg = network_graph_svg(model)
    boxes = layer_boxes(svg)
    layers = trace_layers(model)
    assert [layer.name for layer in layers] == leaf_names(model)
    assert len(boxes) == len(layers)
    for box, layer in zip(boxes, layers, strict=True):
        assert layer.shape_text in box_text(box)
        assert box.get("data-kind") == layer.kind
    assert layers[-1].output_shape == (4,)
    assert sum(layer.parameters for layer in layers) == sum(p.numel() for p in model.parameters())
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    drawn = [layer for layer in layers if layer.kind == "conv"]
    assert [layer.params.split(" filters")[0] for layer in drawn] == [
        str(conv.out_channels) for conv in convs
    ]
    assert model.training  # drawing runs in eval mode and gives the mode back


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
    with pytest.raises(InputTooSmallError, match="4x4 input is too small"):
        trace_layers(nn.Sequential(nn.Conv2d(1, 1, 5)), (1, 4, 4))
