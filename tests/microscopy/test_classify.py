"""Classifying a field: a model whose answers are known, the CSV, counts, accuracy, the overlay."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch
from fields import draw_field, oval_roi, write_rois
from PIL import Image
from scipy import ndimage

import cnnlab
from cnnlab.errors import CnnlabError
from cnnlab.export.saved import load, save_model
from cnnlab.microscopy.classify import classify_field
from cnnlab.microscopy.crops import cut_crops
from cnnlab.microscopy.overlay import PALETTE, boundary, to_8bit

SHAPE = (60, 80)
# Two dark cells and two faint objects (one of them named as a cell: a wrong ROI class).
ELLIPSES = [
    (15, 20, 5, 8, 20_000),
    (40, 55, 6, 6, 20_000),
    (45, 20, 4, 4, 40_000),
    (15, 60, 4, 5, 40_000),
]
BOXES = [(10, 12, 21, 29), (34, 49, 47, 62), (41, 16, 50, 25), (11, 55, 20, 66)]
NAMES = ["1cell-0001", "1cell-0002", "rien-0003", "1cell-0004"]
CLASSES = ("1cell", "rien")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """An MLP that calls a crop ``1cell`` when its mean is below 38,000 counts, else ``rien``.

    Standardized pixels are (x - 38000) / 500; one hidden unit sums the dark excess, the other
    the bright one, and each feeds one class: the answer follows the crop's mean brightness.
    """
    net = cnnlab.create_model("mlp", in_chans=1, num_classes=2, input_size=(16, 16), hidden=[2])
    with torch.no_grad():
        net.standardize.set_statistics([38_000.0], [500.0])
        fc1, head = net.features.fc1, net.head
        fc1.weight.copy_(torch.stack([-torch.ones(256), torch.ones(256)]) / 256)
        fc1.bias.zero_()
        head.weight.copy_(torch.eye(2))
        head.bias.zero_()
    folder = tmp_path_factory.mktemp("model")
    save_model(net, folder, CLASSES, bit_depth=16)
    return load(folder)


@pytest.fixture
def field(tmp_path):
    drawn = draw_field(tmp_path / "in", SHAPE, ELLIPSES)
    rois = [oval_roi(n, *box) for n, box in zip(NAMES, BOXES, strict=True)]
    drawn.rois = write_rois(tmp_path / "in" / "RoiSet.zip", rois)
    return drawn


def test_predictions_table_counts_and_accuracy(model, field, tmp_path):
    result = classify_field(model, field.path, rois=field.rois)
    assert result.predicted == ("1cell", "1cell", "rien", "rien")
    assert result.counts() == {"1cell": 2, "rien": 2}
    assert result.accuracy() == {"1cell": (2, 3), "rien": (1, 1)}
    text = result.summary_text()
    assert "agreement with the ROI names' classes: 3/4" in text and "1cell  2/3" in text

    result.to_csv(tmp_path / "p.csv")
    with (tmp_path / "p.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    stream = io.StringIO(newline="")
    result.to_csv(stream)  # the CLI writes to stdout without --out
    assert stream.getvalue() == (tmp_path / "p.csv").read_bytes().decode()
    assert reader.fieldnames == [
        "id", "name", "y", "x", "top", "left", "bottom", "right", "area", "predicted",
        "p_1cell", "p_rien", "roi_class",
    ]  # fmt: skip
    assert [r["name"] for r in rows] == NAMES and [r["id"] for r in rows] == ["1", "2", "3", "4"]
    assert [r["roi_class"] for r in rows] == ["1cell", "1cell", "rien", "1cell"]
    for row, box, obj in zip(rows, BOXES, result.crops, strict=True):
        assert tuple(int(row[k]) for k in ("top", "left", "bottom", "right")) == box
        assert int(row["area"]) == obj.object.mask.sum()
        assert float(row["p_1cell"]) + float(row["p_rien"]) == pytest.approx(1, abs=1e-5)
        assert float(row[f"p_{row['predicted']}"]) > 0.99


def test_field_predictions_equal_predictions_on_the_written_crops(model, field, tmp_path):
    """The crops in memory are the crops on disk: same pixels, hence the same probabilities."""
    options = {"margin": 1, "border": "pad"}
    result = classify_field(model, field.path, labels=field.labels_path, **options)
    cut_crops(field.path, tmp_path / "crops", labels=field.labels_path, **options)
    files = [tmp_path / "crops" / f"roi {c.object.name} - field.tif" for c in result.crops]
    from_files = cnnlab.predict(model, files)
    torch.testing.assert_close(result.table.probabilities, from_files.probabilities)
    assert result.predicted == from_files.predicted == ("1cell", "1cell", "rien", "rien")
    assert "roi_class" not in result.columns and result.accuracy() == {}


def test_overlay_outlines_each_object_in_its_class_colour(model, field, tmp_path):
    result = classify_field(model, field.path, labels=field.labels_path)
    path = tmp_path / "overlay.png"
    result.write_overlay(path)
    picture = np.asarray(Image.open(path).convert("RGB"))
    assert picture.shape[0] > SHAPE[0] and picture.shape[1] >= SHAPE[1]  # legend band below
    gray = to_8bit(field.image)
    colour = {"1cell": PALETTE[0], "rien": PALETTE[1]}
    for crop, predicted in zip(result.crops, result.predicted, strict=True):
        obj = crop.object
        edge = field.labels == obj.id
        edge &= ~ndimage.binary_erosion(edge)  # 4-connected erosion: the outline
        ys, xs = np.nonzero(edge)
        assert (picture[ys, xs] == colour[predicted]).all()
        cy, cx = round(obj.y), round(obj.x)  # the centre of an ellipse is inside, not outline
        assert tuple(picture[cy, cx]) == (gray[cy, cx],) * 3
    assert tuple(picture[0, 0]) == (gray[0, 0],) * 3


def test_boundary_is_the_mask_less_its_erosion():
    rng = np.random.default_rng(3)
    mask = ndimage.binary_opening(rng.random((30, 40)) > 0.4)
    np.testing.assert_array_equal(boundary(mask), mask & ~ndimage.binary_erosion(mask))


def test_contrast_ignores_a_few_saturated_pixels():
    image = np.linspace(40_000, 50_000, 10_000).reshape(100, 100).astype(np.uint16)
    image.flat[:10] = 65_535
    shown = to_8bit(image)
    low, high = np.percentile(image, [0.5, 99.5])
    assert shown.flat[10] == 0 or image.flat[10] <= low
    assert shown.flat[5000] == round((image.flat[5000] - low) * 255 / (high - low))
    assert shown.flat[0] == 255
    assert (to_8bit(np.full((3, 3), 7, dtype=np.uint16)) == 128).all()


def test_refusals(model, field, tmp_path):
    with pytest.raises(CnnlabError, match=r"no object of field\.tif to classify; 4 left out"):
        classify_field(model, field.path, labels=field.labels_path, size=70)
    eight_bit = tmp_path / "8bit"
    save_model(model, eight_bit, CLASSES, bit_depth=8)
    with pytest.raises(CnnlabError, match="16-bit") as error:
        classify_field(load(eight_bit), field.path, labels=field.labels_path)
    assert "\n" not in str(error.value)
    with pytest.raises(CnnlabError, match="exactly one of"):
        classify_field(model, field.path, rois=field.rois, labels=field.labels_path)


def test_writing_needs_a_writable_place(model, field, tmp_path):
    result = classify_field(model, field.path, rois=field.rois)
    with pytest.raises(CnnlabError, match="cannot write the predictions"):
        result.to_csv(tmp_path / "missing" / "p.csv")
    with pytest.raises(CnnlabError, match="cannot write the overlay"):
        result.write_overlay(tmp_path / "missing" / "p.png")


def test_field_predictions_repr_is_one_short_line(model, field):
    text = repr(classify_field(model, field.path, rois=field.rois))
    assert text == "FieldPredictions(field.tif, 4 objects: 1cell 2, rien 2)"


def test_an_object_too_small_for_the_model_is_left_out_with_its_reason(model, tmp_path):
    # A 16x16 model takes crops of 8x8 and more; a 1-pixel speck with margin 2 is 5x5.
    drawn = draw_field(tmp_path / "in", SHAPE, [ELLIPSES[0], (45, 60, 0.5, 0.5, 20_000)])
    result = classify_field(model, drawn.path, labels=drawn.labels_path, margin=2)
    assert len(result) == 1 and result.predicted == ("1cell",)
    assert [(name, "5x5" in why) for name, why in result.skipped] == [("2", True)]
    assert "skipped 1" in result.summary_text() or "left out" in result.summary_text()
