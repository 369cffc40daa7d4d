"""Registry behaviour: names, validation, configs that rebuild, exact minimum input sizes."""

from __future__ import annotations

import json

import pytest
import torch
from zoo_arithmetic import fits

from cnnlab.errors import CnnlabError
from cnnlab.models import (
    ImageClassifier,
    create_model,
    list_models,
    min_input_size,
    model_from_config,
    model_info,
    register_model,
    registry,
)

ZOO = list_models()
# Names that runs, saved models and the course recipes use: they must stay registered.
KNOWN = {
    "cnn_dropout",
    "convnet_bn",
    "lenet5",
    "lenet5_3x3",
    "lenet5_bn",
    "lenet5_tanh",
    "lenet_wide",
    "mlp",
    "mlp_dropout",
}
# Smallest sides worked out by hand: each layer's output must keep at least one pixel.
HAND_MIN_SIDE = {
    "mlp": 1,  # no convolutions
    "lenet5": 12,  # padded by 2: 12 -> 12 -> 6 -> 2 -> 1
    "lenet5_3x3": 10,  # 10 -> 8 -> 4 -> 2 -> 1
    "lenet_wide": 16,  # 16 -> 12 -> 6 -> 2 -> 1
    "cnn_dropout": 6,  # 6 -> 4 -> 2 -> 1
    "convnet_bn": 4,  # two 2x2 poolings: 4 -> 2 -> 1
}


def test_list_models_is_sorted_and_holds_the_zoo() -> None:
    names = list_models()
    assert names == sorted(names)
    assert set(names) >= KNOWN


def test_unknown_name_suggests_the_closest_and_lists_all() -> None:
    with pytest.raises(CnnlabError) as info:
        create_model("lenet5_tnh")
    message = str(info.value)
    assert "'lenet5_tanh'" in message and "Did you mean" in message
    assert all(name in message for name in ZOO)
    with pytest.raises(CnnlabError, match="Did you mean 'convnet_bn'"):
        model_info("convnet")


@pytest.mark.parametrize(
    ("option", "value", "pattern"),
    [
        ("in_chans", 0, "channels"),
        ("in_chans", -3, "channels"),
        ("in_chans", 1.5, "channels"),
        ("in_chans", True, "channels"),
        ("num_classes", 1, "classes must be >= 2"),
        ("num_classes", 0, "classes"),
        ("num_classes", "10", "classes"),
        ("input_size", 0, "input size"),
        ("input_size", (28,), "input size"),
        ("input_size", (28, 0), "input width"),
        ("input_size", "28", "input size"),
        ("input_size", (28.5, 28), "input height"),
    ],
)
def test_bad_shared_arguments_are_user_errors(option: str, value: object, pattern: str) -> None:
    with pytest.raises(CnnlabError, match=pattern):
        create_model("mlp", **{option: value})


def test_unknown_and_invalid_options_are_user_errors() -> None:
    with pytest.raises(CnnlabError, match=r"no option 'dropuot'.*padding"):
        create_model("lenet5", dropuot=0.5)
    with pytest.raises(CnnlabError, match="padding"):
        create_model("lenet5", padding=-1)
    with pytest.raises(CnnlabError, match="padding"):
        create_model("lenet5", padding="same")
    with pytest.raises(CnnlabError, match="dropout"):
        create_model("mlp_dropout", dropout=1.0)
    with pytest.raises(CnnlabError, match="hidden"):
        create_model("mlp", hidden=[128, 0])
    with pytest.raises(CnnlabError, match="width"):
        create_model("convnet_bn", width=1)


def test_input_size_accepts_int_and_non_square() -> None:
    square = create_model("lenet5", input_size=32)
    assert square.input_size == (32, 32)
    tall = create_model("lenet5", input_size=(64, 40))
    assert tall.input_size == (64, 40)
    assert tall(torch.zeros(2, 1, 64, 40)).shape == (2, 10)


@pytest.mark.parametrize("name", ZOO)
def test_config_is_json_and_rebuilds_the_same_architecture(name: str) -> None:
    model = create_model(name, in_chans=3, num_classes=4, input_size=(40, 36))
    config = json.loads(json.dumps(model.cnnlab_config))
    assert config == model.cnnlab_config
    assert config["name"] == name
    assert (config["in_chans"], config["num_classes"], config["input_size"]) == (3, 4, [40, 36])
    assert set(config["kwargs"]) == set(model_info(name)["kwargs"])
    for rebuilt in (
        model_from_config(config),
        create_model(
            config["name"],
            in_chans=config["in_chans"],
            num_classes=config["num_classes"],
            input_size=config["input_size"],
            **config["kwargs"],
        ),
    ):
        assert isinstance(rebuilt, ImageClassifier)
        assert rebuilt.cnnlab_config == config
        shapes = {key: value.shape for key, value in rebuilt.state_dict().items()}
        assert shapes == {key: value.shape for key, value in model.state_dict().items()}


def test_config_records_given_options() -> None:
    model = create_model("mlp_dropout", hidden=(32, 16), dropout=0.1)
    assert model.cnnlab_config["kwargs"] == {"hidden": [32, 16], "dropout": 0.1}
    assert [m.out_features for m in model.features if isinstance(m, torch.nn.Linear)] == [32, 16]
    with pytest.raises(CnnlabError, match="lacks"):
        model_from_config({"name": "mlp"})


def test_model_info_describes_options() -> None:
    info = model_info("lenet5")
    assert info["kwargs"] == {
        "padding": "auto",
        "kernel": 5,
        "activation": "relu",
        "filters": [6, 16],
        "hidden": [120, 84],
        "batch_norm": False,
    }
    assert "LeNet" in info["description"]
    assert info["min_input_size"] == 12
    assert model_info("mlp_dropout")["kwargs"] == {"hidden": [128, 128], "dropout": 0.2}


def test_lenet_variants_are_presets_of_one_builder() -> None:
    # The defaults each name stands for; all other options are LeNet-5's.
    differences = {
        "lenet5": {},
        "lenet5_tanh": {"activation": "tanh"},
        "lenet5_bn": {"batch_norm": True},
        "lenet5_3x3": {"padding": 0, "kernel": 3},
        "lenet_wide": {"padding": 0, "activation": "tanh", "filters": [20, 50], "hidden": [500]},
    }
    base = model_info("lenet5")["kwargs"]
    for name, changed in differences.items():
        assert model_info(name)["kwargs"] == {**base, **changed}
        variant = create_model(name, input_size=(36, 30))
        plain = create_model("lenet5", input_size=(36, 30), **changed)
        assert repr(variant) == repr(plain)
        assert variant.cpu_channels_last == plain.cpu_channels_last == (name != "lenet5_bn")
    # A saved config from before the options existed (only "padding") still rebuilds.
    old = {"name": "lenet5_3x3", "in_chans": 1, "num_classes": 10, "input_size": [28, 28]}
    rebuilt = model_from_config({**old, "kwargs": {"padding": 2}})
    assert rebuilt.cnnlab_config["kwargs"] == {**model_info("lenet5_3x3")["kwargs"], "padding": 2}
    assert sum(p.numel() for p in rebuilt.parameters()) == 81194


@pytest.mark.parametrize("name", sorted(HAND_MIN_SIDE))
def test_minimum_input_size_by_hand(name: str) -> None:
    assert min_input_size(name) == HAND_MIN_SIDE[name]


@pytest.mark.parametrize("name", ZOO)
def test_minimum_input_size_is_exact(name: str) -> None:
    side = min_input_size(name)
    # By the convolution arithmetic on the layers built for side x side: every layer keeps a
    # pixel at that side and one loses its last at side - 1.
    smallest = create_model(name, in_chans=2, input_size=side)
    assert fits(smallest, (2, side, side))
    assert side == 1 or not fits(smallest, (2, side - 1, side - 1))
    create_model(name, input_size=side)
    create_model(name, input_size=(side, side + 21))
    create_model(name, input_size=(side + 21, side))
    if side == 1:
        return
    for too_small in [(side - 1, side - 1), (side - 1, side + 21), (side + 21, side - 1)]:
        with pytest.raises(CnnlabError) as info:
            create_model(name, input_size=too_small)
        message = str(info.value)
        assert repr(name) in message
        assert f"{too_small[0]}x{too_small[1]}" in message
        assert f"at least {side}x{side}" in message


def test_minimum_size_follows_options() -> None:
    assert min_input_size("lenet5", padding=0) == 16
    assert min_input_size("lenet5_3x3", padding=2) == 6
    with pytest.raises(CnnlabError, match="at least 16x16"):
        create_model("lenet5", input_size=15, padding=0)


def test_register_model_reads_options_and_finds_minimum_generically(monkeypatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    class Strided(ImageClassifier):
        def __init__(self, in_chans: int, num_classes: int, input_size, stride: int) -> None:
            super().__init__(in_chans, num_classes, input_size)
            self.features = torch.nn.Sequential(
                torch.nn.Conv2d(in_chans, 4, 7, stride=stride),
                torch.nn.ReLU(),
                torch.nn.AdaptiveAvgPool2d(1),
                torch.nn.Flatten(),
            )
            self.head = torch.nn.Linear(4, num_classes)

    @register_model("strided_test", "7x7 convolution then global pooling")
    def strided(in_chans, num_classes, input_size, stride: int = 2) -> Strided:
        return Strided(in_chans, num_classes, input_size, stride)

    assert "strided_test" in list_models()
    assert model_info("strided_test")["kwargs"] == {"stride": 2}
    assert min_input_size("strided_test") == 7
    with pytest.raises(CnnlabError, match=r"'strided_test'.*at least 7x7.*got 6x9"):
        create_model("strided_test", input_size=(6, 9))
    with pytest.raises(ValueError, match="already registered"):
        register_model("strided_test", "again")(strided)
