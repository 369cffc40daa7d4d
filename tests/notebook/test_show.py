"""The ``show_*`` figures, the light ``import cnnlab``, and inline display in a real kernel."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import nbformat
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from nbclient import NotebookClient

import cnnlab
from cnnlab.data.dataset import ImageDataset
from cnnlab.evaluate import classification_metrics


def digits() -> ImageDataset:
    labels = torch.arange(12) % 3
    images = torch.randint(0, 256, (12, 1, 28, 28), generator=torch.Generator().manual_seed(1))
    paths = tuple(f"d{i}.png" for i in range(12))
    return ImageDataset(images.to(torch.uint8), labels, ("0", "1", "2"), paths, name="digits")


def test_show_functions_return_the_figures_asked_for() -> None:
    dataset = digits()
    model = cnnlab.create_model("lenet5", in_chans=1, num_classes=3, input_size=(28, 28))
    samples = cnnlab.show_samples(dataset, per_class=2)
    assert isinstance(samples, Figure) and len(samples.axes) == 1
    assert [t.get_text() for t in samples.axes[0].get_yticklabels()] == [
        "0\n(4)",
        "1\n(4)",
        "2\n(4)",
    ]
    assert (
        dataset.show(per_class=2).get_size_inches().tolist() == samples.get_size_inches().tolist()
    )
    assert len(cnnlab.show_intensities(dataset, bins=4).axes) == 3  # a row per class
    metrics = cnnlab.evaluate(model, dataset)
    confusion = cnnlab.show_confusion(metrics)
    assert [t.get_text() for t in confusion.axes[0].get_xticklabels()][:3] == ["0", "1", "2"]
    assert cnnlab.show_confusion({"test": dict(metrics)}).axes  # a run's metrics.json contents
    assert len(cnnlab.show_worst(model, dataset, count=4).axes) >= 4
    kernels = cnnlab.show_kernels(np.eye(10), ["edge2", "sharpen"], padding="same", pool=("max", 2))
    assert len([ax for ax in kernels.axes if ax.images]) == 3  # the image and two outputs
    assert "max-pool 2" in kernels.axes[1].get_title()
    assert any(ax.images for ax in cnnlab.show_activations(model, dataset.images[0]).axes)
    assert cnnlab.show_filters(model).axes and cnnlab.show_saliency(model, dataset.images[0]).axes
    with pytest.raises(cnnlab.CnnlabError, match="show_history"):
        cnnlab.show_history(3)


def test_show_history_of_a_run_folder(tmp_path) -> None:
    (tmp_path / "history.csv").write_text(
        "epoch,train_loss,train_accuracy,valid_loss,valid_accuracy,seconds\n"
        "1,0.9,0.5,1.0,0.4,1.0\n2,0.5,0.7,0.6,0.6,1.0\n3,0.4,0.8,0.7,0.5,1.0\n"
    )
    (tmp_path / "run.json").write_text('{"best_epoch": 2}')
    metrics = classification_metrics([0, 1, 1], [0, 1, 0], "xy")
    (tmp_path / "metrics.json").write_text(json.dumps({"test": metrics}))
    figure = cnnlab.show_history(tmp_path)
    loss = figure.axes[0]
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["training", "validation"]
    assert any("best epoch" in t.get_text() for t in loss.texts)  # run.json's best epoch
    star = [line for line in loss.lines if len(line.get_xdata()) == 1]
    assert star[0].get_xdata()[0] == 2 and star[0].get_ydata()[0] == 0.6
    confusion = cnnlab.show_confusion(tmp_path)
    assert [t.get_text() for t in confusion.axes[0].get_xticklabels()][:2] == ["x", "y"]


def test_import_cnnlab_loads_no_display_code() -> None:
    code = (
        "import sys, cnnlab; "
        "print(sorted(m for m in ('matplotlib', 'IPython', 'markupsafe', 'cnnlab.inspect', "
        "'cnnlab.notebook.data_views') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


CELLS = [
    """
    import torch, cnnlab
    from cnnlab.data.dataset import ImageDataset
    labels = torch.arange(6) % 2
    images = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    ds = ImageDataset(images, labels, ("a<b", "c"), tuple(f"{i}.png" for i in range(6)))
    ds
    """,
    "cnnlab.show_samples(ds, per_class=2)",
    "ds.show(per_class=1);",  # a semicolon hides it, as for any value
    "import matplotlib.pyplot as plt\ncnnlab.show_intensities(ds, bins=3)",
    "fig, ax = plt.subplots(); ax.plot([1, 2]);",  # the user's own pyplot figure still shows
]


def test_figures_and_views_show_inline_in_a_real_kernel() -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(textwrap.dedent(cell)) for cell in CELLS]
    NotebookClient(notebook, kernel_name="python3", timeout=120).execute()
    outputs = [cell.outputs for cell in notebook.cells]

    def images(cell: list) -> int:
        return sum("image/png" in output.get("data", {}) for output in cell)

    assert "text/html" in outputs[0][0]["data"]
    assert "a&lt;b" in outputs[0][0]["data"]["text/html"]
    # Exactly one PNG per figure, before pyplot is imported and after the inline backend is on.
    assert [images(cell) for cell in outputs] == [0, 1, 0, 1, 1]
    assert not any(output.output_type == "error" for cell in outputs for output in cell)
