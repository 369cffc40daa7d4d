"""The notebook views (``_repr_html_``) and plain reprs, read back with ``html.parser``.

Each view is parsed as a browser would: its tables' cells are compared with hand counts and
with the numbers the objects hold, its images are decoded as PNG and measured, and names full
of ``<&"`` must come back as written (escaped, never breaking the markup).
"""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from PIL import Image

import cnnlab
from cnnlab.data.dataset import ImageDataset
from cnnlab.data.split import Split
from cnnlab.evaluate import Metrics, classification_metrics
from cnnlab.export.predict import PREVIEW_ROWS
from cnnlab.notebook.data_views import STRIP
from cnnlab.train.loop import History

NAMES = ("a<b", "c&d", 'e"f')


class Page(HTMLParser):
    """The tables (rows of cell texts), images (decoded PNGs) and SVGs of an HTML fragment."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self.images: list[Image.Image] = []
        self.shown: list[tuple[int, int]] = []  # (width, height) the page shows each image at
        self.svgs = 0
        self.text: list[str] = []
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "svg":
            self.svgs += 1
        elif tag == "img":
            src = dict(attrs)["src"]
            assert src.startswith("data:image/png;base64,")  # self-contained
            data = base64.b64decode(src.split(",", 1)[1])
            image = Image.open(io.BytesIO(data))
            assert image.format == "PNG"
            self.images.append(image)
            size = dict(attrs)
            self.shown.append((int(size.get("width") or 0), int(size.get("height") or 0)))
            if self._cell is not None:
                self._cell.append("[img]")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def toy(n_per_class=(5, 3, 1), size=(12, 10), bit_depth=16) -> ImageDataset:
    labels = torch.cat([torch.full((n,), i) for i, n in enumerate(n_per_class)])
    rng = torch.Generator().manual_seed(0)
    images = torch.randint(1000, 30000, (len(labels), 1, *size), generator=rng, dtype=torch.int32)
    paths = tuple(f"/data/<{i}>&.tif" for i in range(len(labels)))
    return ImageDataset(images, labels, NAMES, paths, bit_depth=bit_depth, name='toy <"set">')


def test_dataset_repr_is_one_line_with_the_numbers() -> None:
    dataset = toy()
    assert repr(dataset) == "ImageDataset('toy <\"set\">', 9 images, 1x12x10, 16-bit, 3 classes)"
    mixed = ImageDataset(
        [torch.zeros(1, 8, 9, dtype=torch.uint8), torch.zeros(1, 20, 6, dtype=torch.uint8)],
        torch.tensor([0, 0]),
        ("x",),
        ("p", "q"),
        subset="train",
        name="m",
    )
    assert repr(mixed) == "ImageDataset('m', 2 images, 1x8x6 to 1x20x9, 8-bit, 1 class, train set)"


def test_dataset_html_class_table_and_image_strips() -> None:
    dataset = toy()
    page = Page(dataset._repr_html_())
    (rows,) = page.tables
    assert rows[0] == ["class", "images", "share", f"samples (up to {STRIP})"]
    body = rows[1:-1]
    assert [row[0] for row in body] == list(NAMES)  # escaped names come back as written
    assert [row[1] for row in body] == ["5", "3", "1"]
    assert [row[2] for row in body] == ["55.6%", "33.3%", "11.1%"]
    assert rows[-1][:2] == ["total", "9"]
    # One strip per class: min(count, STRIP) tiles of 10 px with 2 px gaps, shown 3x (36 px).
    sizes = [(k * 10 + (k - 1) * 2, 12) for k in (5, 3, 1)]
    assert [image.size for image in page.images] == sizes
    assert page.shown == [(3 * w, 3 * h) for w, h in sizes]
    assert "16-bit" in "".join(page.text) and "1×12×10" in "".join(page.text)


def test_dataset_html_stays_compact_for_a_big_dataset() -> None:
    big = toy(n_per_class=(400, 300, 500), size=(28, 28), bit_depth=8)
    page = Page(big._repr_html_())
    assert len(page.images) == 3  # one strip per class, STRIP images each
    assert all(image.size[0] == STRIP * 28 + (STRIP - 1) * 2 for image in page.images)


def test_split_repr_and_html_count_each_subset() -> None:
    dataset = toy()
    split = Split(dataset.select([0, 1, 2, 5, 6, 8]), dataset.select([3, 7]), dataset.select([4]))
    assert repr(split) == "Split(train 6, valid 2, test 1 images; 3 classes)"
    page = Page(split._repr_html_())
    (rows,) = page.tables
    assert rows == [
        ["class", "train", "valid", "test"],
        ["a<b", "3", "1", "1"],
        ["c&d", "2", "1", "0"],
        ['e"f', "1", "0", "0"],
        ["total", "6", "2", "1"],
    ]
    assert "no images of class" in "".join(page.text)  # the balance warning is shown


def test_model_html_layer_table_and_graph() -> None:
    model = cnnlab.create_model("lenet5", in_chans=1, num_classes=3, input_size=(28, 28))
    page = Page(model._repr_html_())
    assert page.svgs >= 1  # the network graph, inline
    (rows,) = page.tables
    params = sum(p.numel() for p in model.parameters())
    assert rows[-1] == ["total", "", "", f"{params:,}"]
    body = {row[0]: row for row in rows[1:-1]}
    conv1 = next(row for name, row in body.items() if name.endswith("conv1"))
    assert conv1[2] == "6×28×28" and conv1[3] == f"{6 * 25 + 6:,}"
    assert sum(int(row[3].replace(",", "")) for row in body.values()) == params


def history() -> History:
    rows = [
        {
            "epoch": e,
            "train_loss": 1.0 / e,
            "train_accuracy": 0.5 + 0.01 * e,
            "valid_loss": 1.2 / e,
            "valid_accuracy": 0.4 + 0.02 * e,
            "lr": 0.01,
            "seconds": 0.5,
        }
        for e in range(1, 31)
    ]
    return History(rows=rows, best_epoch=27, stop_reason=None, seconds=15.0)


def test_history_repr_html_and_plot() -> None:
    h = history()
    assert repr(h) == "History(30 epochs, best epoch 27: valid accuracy 94.0%, 15.0 s)"
    page = Page(h._repr_html_())
    (rows,) = page.tables
    epochs = [row[0] for row in rows[1:] if row[0].isdigit()]
    assert epochs == [str(e) for e in [*range(1, 9), *range(23, 31)]]  # first and last eight
    assert "… 14 more epochs …" in [row[0] for row in rows]
    row27 = next(row for row in rows if row[0] == "27")
    assert row27[1:] == [f"{1 / 27:.4f}", "77.00%", f"{1.2 / 27:.4f}", "94.00%", "0.50"]
    assert len(page.images) == 1 and page.images[0].size[0] > 600  # the learning curves
    figure = h.plot()
    assert [ax.get_ylabel() for ax in figure.axes] == ["loss (cross-entropy)", "accuracy"]


def test_metrics_is_a_dict_with_a_short_repr_and_caret_html() -> None:
    y_true = [0] * 5 + [1] * 3 + [2] * 2
    y_pred = [0, 0, 0, 0, 1, 1, 1, 2, 2, 0]
    metrics = Metrics(classification_metrics(y_true, y_pred, NAMES))
    assert json.loads(json.dumps(metrics)) == dict(metrics)
    assert metrics["accuracy"] == pytest.approx(0.7)
    assert repr(metrics).startswith("Metrics(accuracy 70.0% [") and "10 images" in repr(metrics)
    page = Page(metrics._repr_html_())
    overall, by_class, confusion = page.tables
    assert overall[1] == ["Accuracy", "70.00%"]
    assert by_class[1][0] == "a<b" and by_class[1][1] == "0.8000"  # sensitivity 4 of 5
    assert by_class[1][-1] == "5"
    # Confusion cells hold the count and the share of the row: true c&d, predicted c&d = 2 of 3.
    counts = [[cell.split("%")[0] for cell in row[1:4]] for row in confusion[1:4]]
    assert counts[1][1] == "266.7" and counts[0][0] == "480.0"  # "2" + "66.7", "4" + "80.0"


def test_evaluate_returns_metrics() -> None:
    dataset = toy(size=(28, 28))
    model = cnnlab.create_model("mlp", in_chans=1, num_classes=3, input_size=(28, 28))
    metrics = cnnlab.evaluate(model, dataset)
    assert isinstance(metrics, Metrics) and isinstance(metrics, dict)
    assert metrics["n"] == 9


def test_prediction_table_html_shows_twenty_rows_with_thumbnails() -> None:
    model = cnnlab.create_model("mlp", in_chans=1, num_classes=3, input_size=(12, 10))
    model.class_names, model.bit_depth = NAMES, 16
    images = [np.full((12, 10), 1000 * i, dtype=np.uint16) for i in range(25)]
    names = [f"<img {i}>&" for i in range(25)]
    table = cnnlab.predict_arrays(model, images, names, 16)
    assert repr(table).startswith("PredictionTable(25 images, 3 classes; predicted ")
    page = Page(table._repr_html_())
    (rows,) = page.tables
    assert len(rows) == 1 + PREVIEW_ROWS
    assert rows[1][:3] == ["1", "[img]", "<img 0>&"]
    top = table.probabilities[0].max().item()
    assert rows[1][3] == table.predicted[0] and rows[1][4] == f"{top:.3f}"
    assert len(page.images) == PREVIEW_ROWS and page.images[0].size == (10, 12)
    assert page.shown[0] == (30, 36)  # enlarged 3x by the browser, pixels kept sharp
    assert "… and 5 more rows" in "".join(page.text)
