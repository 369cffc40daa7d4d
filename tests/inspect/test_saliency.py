"""Saliency maps on a hand-built network whose answer depends on known image regions."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.inspect.saliency import (
    GRAD_CAM,
    INPUT_SALIENCY,
    plot_saliency,
    saliency,
    saliency_figure,
    saliency_map,
)
from cnnlab.models import create_model
from cnnlab.models.base import ImageClassifier

SIZE = 16
HALF = SIZE // 2


class LineDetectors(ImageClassifier):
    """Channel 0 finds vertical lines, channel 1 horizontal ones; no training involved.

    Class 0 reads channel 0 in the left half only, class 1 reads channel 1 everywhere. The
    biases of -150 silence the weak responses at line ends (100) and keep line centres (450), so
    each channel fires exactly on its own kind of line.
    """

    def __init__(self) -> None:
        super().__init__(1, 2, (SIZE, SIZE))
        conv = nn.Conv2d(1, 2, 3, padding=1)
        vertical = torch.tensor([[-1.0, 2.0, -1.0]] * 3)
        with torch.no_grad():
            conv.weight.copy_(torch.stack([vertical, vertical.T])[:, None])
            conv.bias.fill_(-150.0)
        self.features = nn.Sequential(conv, nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(2 * SIZE * SIZE, 2, bias=False)
        weights = torch.zeros(2, 2, SIZE, SIZE)
        weights[0, 0, :, :HALF] = 1.0
        weights[1, 1] = 1.0
        with torch.no_grad():
            self.head.weight.copy_(weights.reshape(2, -1) / 1000)


def lines_image() -> torch.Tensor:
    """Vertical lines in the left half, horizontal lines in the right half, as raw uint8."""
    image = torch.zeros(1, SIZE, SIZE, dtype=torch.uint8)
    image[0, :, [1, 4]] = 100
    for row in (2, 6, 10, 13):
        image[0, row, HALF + 1 :] = 100
    return image


def left_fraction(saliency_values: np.ndarray) -> float:
    return float(saliency_values[:, :HALF].sum() / saliency_values.sum())


def hand_grad_cam(model: LineDetectors, image: torch.Tensor, target: int) -> np.ndarray:
    """Grad-CAM by its definition, with the gradient of this linear head written out by hand."""
    conv = model.features[0]
    with torch.no_grad():
        activation = conv(image[None].float())[0]  # (2, H, W), before the ReLU
        gradient = model.head.weight[target].reshape(2, SIZE, SIZE) * (activation > 0)
        weights = gradient.mean(dim=(1, 2))
        cam = torch.relu((weights[:, None, None] * activation).sum(0)).numpy()
    return cam / cam.max()


@pytest.mark.parametrize("target", [0, 1])
def test_grad_cam_matches_its_definition_and_the_relevant_half(target: int) -> None:
    model, image = LineDetectors(), lines_image()
    result = saliency(model, image, target)
    assert result.method == GRAD_CAM and result.layer == "features.0"
    assert result.map.shape == (SIZE, SIZE)
    assert result.map.min() >= 0.0 and result.map.max() == pytest.approx(1.0)
    np.testing.assert_allclose(result.map, hand_grad_cam(model, image, target), atol=1e-5)
    fraction = left_fraction(result.map)
    assert fraction > 0.99 if target == 0 else fraction < 0.01


def test_a_network_without_convolutions_gets_the_input_gradient() -> None:
    torch.manual_seed(0)
    model = create_model("mlp", input_size=(12, 12))
    image = torch.randint(0, 256, (1, 12, 12), dtype=torch.uint8)
    result = saliency(model, image, target=3)
    assert result.method == INPUT_SALIENCY and result.layer is None
    # |d logit / d pixel|: for an MLP of ReLUs that is a product of matrices
    x = image[None].float().requires_grad_(True)
    model.eval()
    model(x)[0, 3].backward()
    reference = x.grad[0, 0].abs().numpy()
    np.testing.assert_allclose(result.map, reference / reference.max(), atol=1e-6)


def test_captum_is_required_not_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without captum there is no silent fallback to another kind of map."""
    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(ImportError):
        saliency(LineDetectors(), lines_image(), target=0)


def test_target_defaults_to_the_prediction_and_is_checked() -> None:
    model, image = LineDetectors(), lines_image()
    result = saliency(model, image)
    logits = model(image[None].float())[0]
    assert result.target == int(logits.argmax()) == result.predicted
    np.testing.assert_allclose(
        result.probabilities, torch.softmax(logits, 0).detach().numpy(), rtol=1e-6
    )
    np.testing.assert_array_equal(saliency_map(model, image), result.map)
    with pytest.raises(CnnlabError, match="target class 2 does not exist"):
        saliency_map(model, image, target=2)


def test_map_without_positive_evidence_is_zero_not_nan() -> None:
    model = LineDetectors()
    blank = torch.zeros(1, SIZE, SIZE, dtype=torch.uint8)  # every unit below its bias
    values = saliency_map(model, blank, target=0)
    assert np.isfinite(values).all() and not values.any()


def test_modes_restored_and_no_hooks_left() -> None:
    model = create_model("lenet5_bn")
    image = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8)
    saliency_map(model, image)
    assert model.training and all(module.training for module in model.modules())
    assert all(not module._forward_hooks for module in model.modules())
    assert all(not module._backward_hooks for module in model.modules())
    assert all(parameter.grad is None for parameter in model.parameters())


def test_wrong_image_size_is_a_user_error() -> None:
    with pytest.raises(CnnlabError, match="does not fit"):
        saliency_map(create_model("lenet5"), torch.zeros(1, 4, 4))


def check_png(path) -> None:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and 600 < image.size[0] < 1600 and image.size[1] > 250


def test_plot_saliency(tmp_path) -> None:
    model = create_model("lenet5")
    model.class_names = tuple("abcdefghij")
    image = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8)
    plot_saliency(model, image, tmp_path / "saliency.png")
    check_png(tmp_path / "saliency.png")
    plot_saliency(model, image, tmp_path / "t.png", class_names=list("0123456789"), target=4)
    check_png(tmp_path / "t.png")


def test_plot_saliency_rgb_16bit(tmp_path) -> None:
    model = create_model("cnn_dropout", in_chans=3, num_classes=2, input_size=(20, 20))
    image = torch.randint(20000, 40000, (3, 20, 20), dtype=torch.int32)
    plot_saliency(model, image, tmp_path / "rgb.png", class_names=("rod", "coccus"))
    check_png(tmp_path / "rgb.png")


def test_saliency_figure_shows_the_map_and_names_what_it_explains() -> None:
    model, image = LineDetectors(), lines_image()
    names = ("vertical", "horizontal")
    model.class_names = names
    other = 1 - saliency(model, image).predicted  # explain the class the model did not pick
    result = saliency(model, image, target=other)
    figure = saliency_figure(model, image, target=other)
    image_axes, map_axes, overlay_axes = figure.axes[:3]
    np.testing.assert_array_equal(map_axes.images[0].get_array(), result.map)
    np.testing.assert_array_equal(overlay_axes.images[1].get_array(), result.map)
    assert image_axes.images[0].get_array().shape == (SIZE, SIZE)
    title = figure.get_suptitle()
    assert f"predicts {names[result.predicted]!r}" in title
    assert f"map explains {names[other]!r}" in title and "Grad-CAM on features.0" in title
