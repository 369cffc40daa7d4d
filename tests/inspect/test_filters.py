"""The filter and kernel figures draw the model's own weights, on a scale centred at zero."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from cnnlab.errors import CnnlabError
from cnnlab.inspect.figures import DPI, mosaic
from cnnlab.inspect.filters import (
    conv_kernels_figure,
    filters_figure,
    first_conv_filters,
    plot_conv_kernels,
    plot_filters,
)
from cnnlab.models import create_model


def pictures(figure) -> list[np.ndarray]:
    """The arrays of every image drawn in ``figure``, NaN where a gap is."""
    return [
        np.ma.filled(axes.images[0].get_array().astype(float), np.nan)
        for axes in figure.axes
        if axes.images
    ]


def test_first_conv_filters() -> None:
    model = create_model("lenet5")
    filters = first_conv_filters(model)
    assert filters.shape == (6, 1, 5, 5)
    torch.testing.assert_close(filters, model.features.conv1.weight.detach())
    filters += 1  # a copy: drawing code may not change the model
    assert not torch.equal(filters, model.features.conv1.weight.detach())


def test_mlp_has_no_filters(tmp_path) -> None:
    model = create_model("mlp")
    with pytest.raises(CnnlabError, match="mlp has no convolution layer: no filters to show"):
        first_conv_filters(model)
    with pytest.raises(CnnlabError, match="no convolution layer"):
        plot_filters(model, tmp_path / "filters.png")
    with pytest.raises(CnnlabError, match="no convolution layer"):
        plot_conv_kernels(model, tmp_path / "kernels.png")
    assert not (tmp_path / "filters.png").exists()


def test_filters_figure_draws_the_weights_on_a_symmetric_scale() -> None:
    torch.manual_seed(0)
    model = create_model("lenet5")
    weights = model.features.conv1.weight.detach().numpy()[:, 0]
    figure = filters_figure(model)
    (band,) = pictures(figure)  # six 5x5 filters fit in one row
    np.testing.assert_allclose(band, mosaic(weights, 6, gap=1), rtol=1e-6)
    image = figure.axes[0].images[0]
    limit = float(np.abs(weights).max())
    assert image.norm.vmin == pytest.approx(-limit) and image.norm.vmax == pytest.approx(limit)
    labels = [text.get_text() for text in figure.axes[0].texts if text.get_text().startswith("f")]
    assert labels == [f"filter {i}" for i in range(6)]


def test_rgb_filters_are_a_run_of_one_kernel_per_channel() -> None:
    model = create_model("cnn_dropout", in_chans=3)
    weights = first_conv_filters(model).numpy()
    drawn = np.concatenate(pictures(filters_figure(model)), axis=0)
    out, channels, kh, kw = weights.shape
    per_row = channels * (12 // channels)
    expected = mosaic(weights.reshape(out * channels, kh, kw), per_row, gap=1)
    # The rows of kernels are drawn as separate bands; stacked with their gaps removed they
    # are the mosaic of every (filter, channel) kernel.
    rows = [expected[r * (kh + 1) : r * (kh + 1) + kh] for r in range(len(drawn) // kh)]
    np.testing.assert_allclose(drawn, np.concatenate(rows, axis=0), rtol=1e-6)


def test_conv_kernels_figure_has_one_block_per_convolution() -> None:
    model = create_model("lenet5")
    blocks = pictures(conv_kernels_figure(model, max_filters=16, max_inputs=8))
    conv2 = model.features.conv2.weight.detach().numpy()[:16, :6]  # 16 filters x 6 inputs
    expected = mosaic(np.transpose(conv2, (1, 0, 2, 3)).reshape(-1, 5, 5), 16, gap=1)
    assert len(blocks) == 2
    np.testing.assert_allclose(blocks[1], expected, rtol=1e-6)


def test_plot_filters_writes_the_figure(tmp_path) -> None:
    path = tmp_path / "filters.png"
    assert isinstance(plot_filters(create_model("lenet5_3x3"), path), Figure)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.info["dpi"][0] == pytest.approx(DPI, abs=0.1)


def test_plot_conv_kernels_writes_the_figure(tmp_path) -> None:
    path = tmp_path / "kernels.png"
    assert isinstance(plot_conv_kernels(create_model("convnet_bn"), path), Figure)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[1] > image.size[0] / 4
