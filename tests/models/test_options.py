"""Model options from ``--model-option KEY=VALUE``: the course networks, typing and refusals."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import pytest
import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models import (
    ImageClassifier,
    count_parameters,
    create_model,
    list_models,
    model_from_config,
    model_info,
    parse_model_options,
    register_model,
    registry,
)
from cnnlab.models.options import format_option
from cnnlab.models.trace import trace_model


def conv(c_in: int, c_out: int, k: int) -> int:
    return k * k * c_in * c_out + c_out


def dense(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def build(name: str, items: list[str], **shared) -> ImageClassifier:
    return create_model(name, **shared, **parse_model_options(items, name))


def layout(model: ImageClassifier) -> list[tuple[str, tuple[int, ...]]]:
    """(layer type, output shape without the batch axis) of every layer after standardizing."""
    layers = trace_model(model, (model.in_chans, *model.input_size)).layers
    return [(layer.type, layer.output_shape[1:]) for layer in layers if layer.name != "standardize"]


# The networks of the course notebooks (/work/shared/seeds), each one command:
#   cnnlab train --model lenet5_3x3 --model-option padding=2        (PyTorch notebook)
#   cnnlab train --model lenet5_tanh --model-option padding=0       (Keras MNIST notebook)
#   cnnlab train --model mlp --model-option hidden=256,128
PYTORCH_NOTEBOOK = ("lenet5_3x3", ["padding=2"])
KERAS_TANH_LENET = ("lenet5_tanh", ["padding=0"])
WIDE_MLP = ("mlp", ["hidden=256,128"])


def test_the_pytorch_notebook_lenet() -> None:
    # nn.Conv2d(1, 6, 3, padding=2), nn.Conv2d(6, 16, 3), fc 16*6*6 -> 120 -> 84 -> 10, ReLU and
    # 2x2 max pooling after each convolution: 28 -> 30 -> 15 -> 13 -> 6. cnnlab pools before
    # the ReLU, which is the same function (tests/models/test_layers.py).
    model = build(*PYTORCH_NOTEBOOK)
    expected = conv(1, 6, 3) + conv(6, 16, 3) + dense(576, 120) + dense(120, 84) + dense(84, 10)
    assert count_parameters(model) == expected == 81194
    assert layout(model) == [
        ("Conv2d", (6, 30, 30)),
        ("MaxPool2d", (6, 15, 15)),
        ("ReLU", (6, 15, 15)),
        ("Conv2d", (16, 13, 13)),
        ("MaxPool2d", (16, 6, 6)),
        ("ReLU", (16, 6, 6)),
        ("Flatten", (576,)),
        ("Linear", (120,)),
        ("ReLU", (120,)),
        ("Linear", (84,)),
        ("ReLU", (84,)),
        ("Linear", (10,)),
    ]
    conv1, conv2 = (m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert (conv1.kernel_size, conv1.padding) == ((3, 3), (2, 2))
    assert (conv2.kernel_size, conv2.padding) == ((3, 3), (0, 0))
    # The same network from plain LeNet-5 with two options.
    same = build("lenet5", ["kernel=3", "padding=2"])
    assert repr(same.features) == repr(model.features)


def test_the_keras_notebook_tanh_lenet_without_padding() -> None:
    # Conv2D(6, 5, tanh), MaxPool2D(2, 2), Conv2D(16, 5, tanh), MaxPool2D(2, 2), Flatten,
    # Dense 120 tanh, Dense 84 tanh, Dense 10: 28 -> 24 -> 12 -> 8 -> 4.
    model = build(*KERAS_TANH_LENET)
    expected = conv(1, 6, 5) + conv(6, 16, 5) + dense(256, 120) + dense(120, 84) + dense(84, 10)
    assert count_parameters(model) == expected == 44426
    assert layout(model) == [
        ("Conv2d", (6, 24, 24)),
        ("Tanh", (6, 24, 24)),
        ("MaxPool2d", (6, 12, 12)),
        ("Conv2d", (16, 8, 8)),
        ("Tanh", (16, 8, 8)),
        ("MaxPool2d", (16, 4, 4)),
        ("Flatten", (256,)),
        ("Linear", (120,)),
        ("Tanh", (120,)),
        ("Linear", (84,)),
        ("Tanh", (84,)),
        ("Linear", (10,)),
    ]
    assert repr(build("lenet5", ["activation=tanh", "padding=0"]).features) == repr(model.features)


def test_mlp_widths() -> None:
    model = build(*WIDE_MLP)
    assert count_parameters(model) == dense(784, 256) + dense(256, 128) + dense(128, 10) == 235146
    assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [256, 128, 10]
    assert count_parameters(build("mlp", ["hidden="])) == dense(784, 10)


@pytest.mark.parametrize("network", [PYTORCH_NOTEBOOK, KERAS_TANH_LENET, WIDE_MLP])
def test_options_are_saved_in_the_config_and_reload(network) -> None:
    name, items = network
    model = build(name, items, in_chans=3, num_classes=4, input_size=(40, 36))
    config = json.loads(json.dumps(model.cnnlab_config))
    for key, value in parse_model_options(items, name).items():
        assert config["kwargs"][key] == (list(value) if isinstance(value, tuple) else value)
    rebuilt = model_from_config(config)
    assert rebuilt.cnnlab_config == config
    assert repr(rebuilt) == repr(model)
    rebuilt.load_state_dict(model.state_dict())  # the same tensors fit


@pytest.mark.parametrize(
    ("name", "items", "expected"),
    [
        ("lenet5", ["kernel=3", "padding=2"], {"kernel": 3, "padding": 2}),
        ("lenet5", ["padding=auto"], {"padding": "auto"}),  # int | str: not a number, a word
        ("lenet5", [" padding = 0 "], {"padding": 0}),
        ("lenet5", ["filters=20,50", "hidden=500"], {"filters": (20, 50), "hidden": (500,)}),
        ("lenet5", ["activation=tanh"], {"activation": "tanh"}),
        ("lenet5", ["batch_norm=true"], {"batch_norm": True}),
        ("lenet5_bn", ["batch_norm=No"], {"batch_norm": False}),
        ("lenet5", ["batch_norm=1"], {"batch_norm": True}),
        ("mlp", ["hidden=256, 128"], {"hidden": (256, 128)}),
        ("mlp", ["hidden="], {"hidden": ()}),
        ("mlp_dropout", ["dropout=0.25"], {"dropout": 0.25}),
        ("mlp_dropout", ["dropout=0"], {"dropout": 0.0}),
        ("cnn_dropout", ["dense_dropout=1e-1"], {"dense_dropout": 0.1}),
        ("convnet_bn", ["width=16"], {"width": 16}),
        ("lenet5", [], {}),
    ],
)
def test_values_are_typed_from_the_builder(name: str, items: list[str], expected: dict) -> None:
    options = parse_model_options(items, name)
    assert options == expected
    assert [type(value) for value in options.values()] == [type(v) for v in expected.values()]
    create_model(name, **options)


@pytest.mark.parametrize("name", list_models())
def test_every_option_of_every_model_can_be_given_as_its_default(name: str) -> None:
    # Each option written as the listing in the error messages writes it parses back to itself.
    defaults = model_info(name)["kwargs"]
    items = [f"{key}={format_option(value)}" for key, value in defaults.items()]
    options = parse_model_options(items, name)
    as_json = {key: list(v) if isinstance(v, tuple) else v for key, v in options.items()}
    assert as_json == defaults
    reference = create_model(name, in_chans=2, num_classes=3, input_size=24)
    model = create_model(name, in_chans=2, num_classes=3, input_size=24, **options)
    assert model.cnnlab_config == reference.cnnlab_config
    assert repr(model) == repr(reference)


@pytest.mark.parametrize(
    ("name", "item", "reason"),
    [
        ("lenet5", "dropout=0.5", "model 'lenet5' has no option 'dropout'"),
        ("lenet5", "kernel", "expected KEY=VALUE"),
        ("lenet5", "=3", "expected KEY=VALUE"),
        ("lenet5", "kernel=three", "expected a whole number"),
        ("lenet5", "kernel=2.5", "expected a whole number"),
        ("lenet5", "kernel=0", "'kernel'.*>= 1"),
        ("lenet5", "padding=-1", "'padding'.*\"auto\" or a whole number >= 0"),
        ("lenet5", "padding=same", "'padding'.*\"auto\" or a whole number >= 0, got 'same'"),
        ("lenet5", "activation=sigmoid", "'activation'.*relu, tanh"),
        ("lenet5", "batch_norm=maybe", "expected true or false"),
        ("lenet5", "hidden=128,0", "'hidden'.*whole numbers >= 1"),
        ("lenet5", "hidden=128,x", "expected whole numbers separated by commas"),
        ("lenet5", "filters=", "'filters'.*at least one convolution"),
        ("mlp", "hidden=1.5", "expected whole numbers separated by commas"),
        ("mlp_dropout", "dropout=1", r"'dropout'.*\[0, 1\)"),
        ("mlp_dropout", "dropout=nan", "expected a number"),
        ("mlp_dropout", "dropout=inf", "expected a number"),
        ("convnet_bn", "width=1", "'width'.*>= 2"),
    ],
)
def test_bad_options_are_one_line_naming_the_flag(name: str, item: str, reason: str) -> None:
    with pytest.raises(CnnlabError) as info:
        parse_model_options([item], name)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"--model-option {item}: ")
    assert re.search(reason, message), message
    listing = message.rsplit(f"the options of {name!r} (with their defaults) are: ", 1)[1]
    defaults = model_info(name)["kwargs"]
    assert listing == ", ".join(f"{key}={format_option(v)}" for key, v in defaults.items())


def test_an_option_given_twice_and_an_unknown_model() -> None:
    with pytest.raises(CnnlabError, match=r"^--model-option kernel=4: option 'kernel' is given"):
        parse_model_options(["kernel=3", "kernel=4"], "lenet5")
    with pytest.raises(CnnlabError, match=r"unknown model 'lenet6'.*Did you mean"):
        parse_model_options(["kernel=3"], "lenet6")


def test_a_kernel_too_large_for_the_images_is_left_to_create_model() -> None:
    # Whether the images are large enough depends on them, not on the option. 13x13 kernels
    # without padding (sides >= 32): conv s-12, pool (s-12)//2, conv (s-12)//2-12, pool needs
    # that >= 2, so s >= 40; with the padding of 2 below 32 it would need s >= 36: none.
    options = parse_model_options(["kernel=13"], "lenet5")
    assert options == {"kernel": 13}
    with pytest.raises(CnnlabError, match="at least 40x40 pixels, got 28x28"):
        create_model("lenet5", **options)
    create_model("lenet5", input_size=40, **options)


def test_types_come_from_annotations_defaults_and_any_option(monkeypatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    class Tiny(ImageClassifier):
        def __init__(self, in_chans: int, num_classes: int, input_size) -> None:
            super().__init__(in_chans, num_classes, input_size)
            self.features = nn.Sequential(nn.Flatten(), nn.ReLU())
            self.head = nn.Linear(in_chans * input_size[0] * input_size[1], num_classes)

    @register_model("options_test", "a builder with options of every kind")
    def options_test(
        in_chans,
        num_classes,
        input_size,
        rate: float = 0.5,
        sizes: tuple[int, ...] = (2, 3),
        scales: Sequence[float] = (1.0,),
        label: str | None = None,
        unannotated=7,
        **extra,
    ) -> Tiny:
        return Tiny(in_chans, num_classes, input_size)

    parsed = parse_model_options(
        [
            "rate=2",
            "sizes=4,5,6",
            "scales=0.5,2",
            "label=none",
            "unannotated=8",
            "depth=3",
            "gain=0.5",
            "fast=yes",
            "mode=max",
        ],
        "options_test",
    )
    assert parsed == {
        "rate": 2.0,
        "sizes": (4, 5, 6),
        "scales": (0.5, 2.0),
        "label": None,
        "unannotated": 8,
        "depth": 3,
        "gain": 0.5,
        "fast": True,
        "mode": "max",
    }
    assert type(parsed["rate"]) is float and type(parsed["depth"]) is int
    assert parse_model_options(["label=cells"], "options_test") == {"label": "cells"}
    with pytest.raises(CnnlabError, match="unannotated=x: expected a whole number"):
        parse_model_options(["unannotated=x"], "options_test")
    model = create_model("options_test", **parsed)
    assert torch.equal(model(torch.zeros(1, 1, 28, 28)), model.head.bias.detach()[None])
