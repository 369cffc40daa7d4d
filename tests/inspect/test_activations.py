"""Layer outputs of every registered model, and the activation and filter figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from PIL import Image
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.inspect.activations import (
    activations_figure,
    layer_outputs,
    leaf_modules,
    plot_activations,
)
from cnnlab.inspect.figures import mosaic
from cnnlab.models import create_model, list_models


def digit(seed: int = 0, size: int = 28, channels: int = 1) -> torch.Tensor:
    """A uint8 image shaped like an MNIST digit: a bright bar on black, with a little noise."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 30, (channels, size, size), generator=generator, dtype=torch.uint8)
    image[:, 5 : size - 5, size // 2 - 2 : size // 2 + 2] = 250
    return image


def check_png(path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert 300 <= width <= 2000 and 100 <= height <= 6000
    return width, height


def no_hooks(model: nn.Module) -> bool:
    return all(not module._forward_hooks for module in model.modules())


@pytest.mark.parametrize("name", list_models())
def test_every_leaf_module_in_forward_order(name: str) -> None:
    model = create_model(name)
    outputs = layer_outputs(model, digit())
    assert [output.name for output in outputs] == [name for name, _ in leaf_modules(model)]
    assert [output.module_type for output in outputs] == [
        type(module).__name__ for _, module in leaf_modules(model)
    ]
    assert outputs[0].name == "standardize"
    assert outputs[-1].shape == (10,)
    assert no_hooks(model)
    assert model.training  # create_model returns a model in training mode; it stays so


def test_lenet5_shapes_follow_the_textbook() -> None:
    model = create_model("lenet5")
    shapes = {output.name: output.shape for output in layer_outputs(model, digit())}
    # 28 + 2*2 - 5 + 1 = 28; pool 14; 14 - 5 + 1 = 10; pool 5; 16*5*5 = 400
    assert shapes["features.conv1"] == (6, 28, 28)
    assert shapes["features.pool1"] == (6, 14, 14)
    assert shapes["features.conv2"] == (16, 10, 10)
    assert shapes["features.pool2"] == (16, 5, 5)
    assert shapes["features.flatten"] == (400,)
    assert shapes["features.fc1"] == (120,)
    assert shapes["features.fc2"] == (84,)
    assert shapes["head"] == (10,)


def test_outputs_are_the_real_values() -> None:
    torch.manual_seed(0)
    model = create_model("lenet5")
    model.standardize.set_statistics([33.0], [78.0])
    image = digit()
    outputs = {output.name: output.output for output in layer_outputs(model, image)}
    standardized = (image.float() - 33.0) / 78.0
    conv1 = model.features.conv1
    expected = F.conv2d(standardized[None], conv1.weight, conv1.bias, padding=2)[0]
    torch.testing.assert_close(outputs["standardize"], standardized)
    torch.testing.assert_close(outputs["features.conv1"], expected)
    pooled = F.max_pool2d(expected, 2)
    torch.testing.assert_close(outputs["features.pool1"], pooled)
    torch.testing.assert_close(outputs["features.relu1"], pooled.clamp(min=0))
    model.eval()
    torch.testing.assert_close(outputs["head"], model(image[None].float())[0].detach())


def test_eval_mode_during_recording_and_modes_restored() -> None:
    model = create_model("lenet5_bn")
    model.features.bn1.running_mean.fill_(5.0)
    outputs = {output.name: output.output for output in layer_outputs(model, digit())}
    conv = outputs["features.conv1"]
    bn = model.features.bn1
    expected = (conv - 5.0) / torch.sqrt(bn.running_var + bn.eps)[:, None, None]
    expected = expected * bn.weight[:, None, None] + bn.bias[:, None, None]
    torch.testing.assert_close(outputs["features.bn1"], expected.detach())  # running stats used
    assert model.training and model.features.bn1.training
    model.eval()
    model.features.bn1.train()  # a mixed state is kept module by module
    layer_outputs(model, digit())
    assert not model.training and model.features.bn1.training
    assert float(model.features.bn1.running_mean[0]) == 5.0  # running stats not updated


def test_hooks_removed_and_modes_restored_after_an_error() -> None:
    model = create_model("lenet5")
    with pytest.raises(CnnlabError, match="built for 28x28"):
        layer_outputs(model, digit(size=4))
    assert no_hooks(model)
    assert model.training
    with pytest.raises(CnnlabError, match=r"3 channel.* expects 1"):
        layer_outputs(model, digit(channels=3))


def test_a_16bit_image_is_accepted() -> None:
    crop = torch.full((1, 28, 28), 30000, dtype=torch.int32)
    crop[:, 8:20, 10:18] = 21000
    outputs = layer_outputs(create_model("lenet5"), crop)
    assert outputs[0].output.dtype == torch.float32
    assert float(outputs[0].output.min()) == 21000.0  # default statistics: identity


@pytest.mark.parametrize("name", list_models())
def test_plot_activations_for_every_model(name: str, tmp_path) -> None:
    model = create_model(name)
    path = tmp_path / f"{name}.png"
    assert isinstance(plot_activations(model, digit(), path, max_maps=8), Figure)
    assert path.exists()
    width, height = check_png(path)
    assert height > width / 2  # one row per layer
    assert no_hooks(model)


def test_activation_rows_show_the_layer_outputs_and_the_probabilities() -> None:
    torch.manual_seed(0)
    model = create_model("lenet5")
    model.class_names = tuple("abcdefghij")
    image = digit()
    outputs = {output.name: output.output for output in layer_outputs(model, image)}
    figure = activations_figure(model, image, max_maps=4)
    pictures = [axes.images[0].get_array() for axes in figure.axes if axes.images]
    # The conv1 row is its first four maps side by side, the values themselves (not rescaled).
    expected = mosaic(outputs["features.conv1"][:4].numpy(), 4, gap=3)
    assert any(
        p.shape == expected.shape and np.allclose(p.filled(np.nan), expected, equal_nan=True)
        for p in pictures
    )
    bars = [axes for axes in figure.axes if axes.patches][-1]
    heights = [patch.get_height() for patch in bars.patches]
    probabilities = torch.softmax(outputs["head"], dim=0).numpy()
    np.testing.assert_allclose(heights, probabilities, rtol=1e-6)
    assert [t.get_text() for t in bars.get_xticklabels()] == list("abcdefghij")


def test_plot_activations_three_channels_and_class_names(tmp_path) -> None:
    model = create_model("cnn_dropout", in_chans=3, num_classes=3, input_size=(20, 24))
    model.class_names = ("rod", "coccus", "spiral")
    image = torch.randint(0, 256, (3, 20, 24), dtype=torch.uint8)
    plot_activations(model, image, tmp_path / "rgb.png")
    check_png(tmp_path / "rgb.png")
    with pytest.raises(CnnlabError, match="max_maps"):
        plot_activations(model, digit(channels=3), tmp_path / "x.png", max_maps=0)


def test_numpy_images_are_accepted() -> None:
    image = np.asarray(digit()[0])
    outputs = layer_outputs(create_model("mlp"), image)
    assert outputs[1].shape == (784,)
    # a read-only uint16 buffer, as np.frombuffer gives for a 16-bit file
    counts = (np.arange(784) + 30000).astype(np.uint16).tobytes()
    readonly = np.frombuffer(counts, np.uint16).reshape(1, 28, 28)
    standardized = layer_outputs(create_model("mlp"), readonly)[0].output
    assert float(standardized.max()) == 30783.0
