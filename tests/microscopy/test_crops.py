"""Crops cut from a field: pixels, boxes at the edges, names, folders, the table, the out folder."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile
from fields import draw_field, oval_roi, polygon_roi, rect_roi, write_rois

from cnnlab.errors import CnnlabError
from cnnlab.microscopy import crops as crops_module
from cnnlab.microscopy.crops import cut_crops
from cnnlab.microscopy.cutting import crop_file_name
from cnnlab.microscopy.formats import Field, read_field

SHAPE = (60, 80)
# cy, cx, ry, rx, value: two cells, one faint "nothing", one cell on the left edge.
ELLIPSES = [
    (15, 20, 5, 8, 20_000),
    (40, 55, 6, 6, 20_000),
    (45, 20, 3, 3, 40_000),
    (30, 2, 4, 5, 20_000),
]


@pytest.fixture
def field(tmp_path):
    return draw_field(tmp_path / "in", SHAPE, ELLIPSES)


def _files(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}


def _table(out: Path) -> list[dict]:
    with (out / "crops.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _read(path: Path) -> np.ndarray:
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        return tif.asarray()


def test_label_crops_hold_the_field_pixels_unchanged(field, tmp_path):
    out = tmp_path / "crops"
    summary = cut_crops(field.path, out, labels=field.labels_path, margin=3)
    # Object 4 touches the left edge: skipped, as its box would leave the field.
    assert _files(out) == {"crops.csv", *(f"roi {k} - field.tif" for k in (1, 2, 3))}
    assert summary.counts == {None: 3}
    assert summary.skipped == [("4", "its crop leaves the field (border=skip)")]
    for row in _table(out):
        crop = _read(out / row["file"])
        assert crop.dtype == np.uint16
        rows, cols = np.nonzero(field.labels == int(row["id"]))
        top, left = rows.min() - 3, cols.min() - 3
        bottom, right = rows.max() + 4, cols.max() + 4
        np.testing.assert_array_equal(crop, field.image[top:bottom, left:right])
        assert [int(row[k]) for k in ("crop_top", "crop_left", "crop_bottom", "crop_right")] == [
            top, left, bottom, right,
        ]  # fmt: skip
        assert int(row["area"]) == rows.size and float(row["y"]) == pytest.approx(
            rows.mean(), abs=1e-3
        )
        assert row["field"] == str(field.path) and row["field_label"] == "field.tif"


def test_fixed_size_is_centred_on_the_centroid(field, tmp_path):
    out = tmp_path / "crops"
    cut_crops(field.path, out, labels=field.labels_path, size=(11, 17))
    for row in _table(out):
        crop = _read(out / row["file"])
        assert crop.shape == (11, 17)
        top, left = int(row["crop_top"]), int(row["crop_left"])
        # The box's middle pixel is the one holding the centroid.
        assert abs(top + 5 - float(row["y"])) <= 0.5 and abs(left + 8 - float(row["x"])) <= 0.5
        np.testing.assert_array_equal(crop, field.image[top : top + 11, left : left + 17])
    # With a square size an int works too, and a box bigger than the gap to the edge skips.
    summary = cut_crops(field.path, tmp_path / "sq", labels=field.labels_path, size=31)
    assert {name for name, _ in summary.skipped} == {"1", "2", "3", "4"} - {
        r["name"] for r in _table(tmp_path / "sq")
    }
    assert all(
        _read(tmp_path / "sq" / r["file"]).shape == (31, 31) for r in _table(tmp_path / "sq")
    )


def test_border_pad_repeats_edge_pixels_and_clip_cuts(field, tmp_path):
    rows, cols = np.nonzero(field.labels == 4)
    top, bottom, right = rows.min() - 2, rows.max() + 3, cols.max() + 3
    inside = field.image[top:bottom, 0:right]

    cut_crops(field.path, tmp_path / "pad", labels=field.labels_path, margin=2, border="pad")
    padded = _read(tmp_path / "pad" / "roi 4 - field.tif")
    assert padded.shape == (bottom - top, right + 2)  # the full box: 2 columns left of the field
    np.testing.assert_array_equal(padded[:, 2:], inside)
    np.testing.assert_array_equal(padded[:, 0], field.image[top:bottom, 0])
    np.testing.assert_array_equal(padded[:, 1], field.image[top:bottom, 0])
    row = next(r for r in _table(tmp_path / "pad") if r["name"] == "4")
    assert (int(row["crop_left"]), int(row["crop_right"])) == (-2, right)

    cut_crops(field.path, tmp_path / "clip", labels=field.labels_path, margin=2, border="clip")
    np.testing.assert_array_equal(_read(tmp_path / "clip" / "roi 4 - field.tif"), inside)


def test_margin_zero_still_skips_an_object_cut_by_the_edge(field, tmp_path):
    summary = cut_crops(field.path, tmp_path / "c", labels=field.labels_path, margin=0)
    assert summary.skipped == [("4", "it touches the field's edge (border=skip)")]
    assert summary.written == 3


def test_class_folders_from_roi_names(field, tmp_path):
    rois = write_rois(
        tmp_path / "RoiSet.zip",
        [
            oval_roi("1cell-0001", 10, 12, 21, 29),
            rect_roi("groups-0002", 33, 48, 48, 63),
            polygon_roi("0117-0354", [(16, 41), (25, 41), (25, 50), (16, 50)]),
            rect_roi("rien-0004", 200, 200, 210, 210),  # outside the field
        ],
    )
    out = tmp_path / "crops"
    summary = cut_crops(field.path, out, rois=rois)
    assert _files(out) == {
        "crops.csv",
        "1cell/roi 1cell-0001 - field.tif",
        "groups/roi groups-0002 - field.tif",
        "unlabelled/roi 0117-0354 - field.tif",
    }
    assert summary.counts == {"1cell": 1, "groups": 1, None: 1}
    assert summary.skipped == [("rien-0004", "outside the field")]
    # By default a ROI's crop is the ROI itself, as ImageJ's Duplicate cuts it.
    np.testing.assert_array_equal(
        _read(out / "groups/roi groups-0002 - field.tif"), field.image[33:48, 48:63]
    )
    assert "skipped 1 objects: 1 outside the field" in summary.summary_text()


def test_crop_names_follow_imagej():
    image = np.zeros((4, 4), dtype=np.uint16)
    obj = type("O", (), {"name": "117"})()
    nd2 = Field(image, 16, Path("114_1354-001.nd2"), {"channel": 0}, "114_1354-001.nd2 - C=0")
    assert crop_file_name(obj, nd2) == "roi 117 - 114_1354-001.nd2 - C=0.tif"
    tif = Field(image, 16, Path("Field.TIFF"), {}, "Field.TIFF")
    assert crop_file_name(obj, tif) == "roi 117 - Field.tif"
    obj.name = "a/b"
    assert crop_file_name(obj, tif) == "roi a_b - Field.tif"


def test_a_field_read_beforehand_is_used_as_is(field, tmp_path):
    loaded = read_field(field.path)
    summary = cut_crops(loaded, tmp_path / "c", labels=field.labels)
    assert summary.written == 3
    with pytest.raises(CnnlabError, match=r"--channel: the field field\.tif is already read"):
        cut_crops(loaded, tmp_path / "d", labels=field.labels, channel=0)


def test_an_existing_folder_is_replaced_only_when_asked_and_only_if_crops_made_it(field, tmp_path):
    out = tmp_path / "crops"
    cut_crops(field.path, out, labels=field.labels_path)
    (out / "old.txt").write_text("old")
    with pytest.raises(CnnlabError, match="crops already; choose another folder or pass --overw"):
        cut_crops(field.path, out, labels=field.labels_path)
    assert (out / "old.txt").exists()
    cut_crops(field.path, out, labels=field.labels_path, margin=1, overwrite=True)
    assert "old.txt" not in _files(out) and _read(out / "roi 1 - field.tif").shape == (13, 19)

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.docx").write_text("precious")
    for overwrite in (False, True):  # either way the refusal says --overwrite will not help
        with pytest.raises(CnnlabError, match=r"holds no crops\.csv.*choose another folder \("):
            cut_crops(field.path, mine, labels=field.labels_path, overwrite=overwrite)
    assert _files(mine) == {"thesis.docx"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crops", "in", "mine"]  # no leftovers


def test_a_failure_leaves_neither_out_nor_a_partial_folder(field, tmp_path, monkeypatch):
    calls = []

    def failing(image):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return tifffile_bytes(image)

    tifffile_bytes = crops_module.tiff_bytes
    monkeypatch.setattr(crops_module, "tiff_bytes", failing)
    with pytest.raises(OSError):
        cut_crops(field.path, tmp_path / "crops", labels=field.labels_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_bad_requests_are_one_line_errors(field, tmp_path):
    rois = write_rois(
        tmp_path / "RoiSet.zip", [rect_roi("a-1", 5, 5, 9, 9), rect_roi("A-1", 20, 20, 25, 25)]
    )
    cases = [
        ({}, "exactly one of --rois ZIP or --labels TIF"),
        ({"rois": rois, "labels": field.labels_path}, "exactly one of"),
        (
            {"labels": np.zeros((10, 10), dtype=np.uint16)},
            "labels of 10x10 pixels for a field of 60x80",
        ),
        ({"rois": rois}, "objects 'a-1' and 'A-1' give the same crop file"),
        (
            {"labels": field.labels_path, "border": "wrap"},
            "--border 'wrap': choose one of skip, pad, clip",
        ),
        ({"labels": field.labels_path, "margin": -1}, "--margin -1"),
        ({"labels": field.labels_path, "size": (0, 4)}, r"--size \(0, 4\)"),
    ]
    for options, message in cases:
        with pytest.raises(CnnlabError, match=message) as error:
            cut_crops(field.path, tmp_path / "out", **options)
        assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_default_margin_is_zero_for_rois_and_five_for_labels(field, tmp_path):
    rows, cols = np.nonzero(field.labels == 2)
    cut_crops(field.path, tmp_path / "labels", labels=field.labels_path)
    row = next(r for r in _table(tmp_path / "labels") if r["name"] == "2")
    box = [int(row[k]) for k in ("crop_top", "crop_left", "crop_bottom", "crop_right")]
    assert box == [rows.min() - 5, cols.min() - 5, rows.max() + 6, cols.max() + 6]

    rois = write_rois(tmp_path / "one.zip", [rect_roi("1cell-0001", 20, 22, 31, 37)])
    cut_crops(field.path, tmp_path / "rois", rois=rois)
    (row,) = _table(tmp_path / "rois")
    box = [int(row[k]) for k in ("crop_top", "crop_left", "crop_bottom", "crop_right")]
    assert box == [20, 22, 31, 37]
