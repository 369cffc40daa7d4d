"""Tests for whole synthetic fields: the answers agree with each other and with the image.

The ROI set is read back with ``roifile`` (the library ImageJ users rely on), the label image
with ``tifffile``, objects are checked with ``scipy.ndimage`` (bounding boxes, separations) and
the image's statistics against the crop figures of issue 11.
"""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from roifile import ROI_TYPE, roiread

from cnnlab.errors import CnnlabError
from cnnlab.synth import CLASSES, FIELD_FILES, synth_field

ndimage = pytest.importorskip("scipy.ndimage")

SIZE = (384, 448)
COUNTS = {"1cell": 8, "2cell": 6, "groups": 5, "rien": 7}


@pytest.fixture(scope="module")
def field(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("field") / "f"
    return out, synth_field(out, size=SIZE, seed=4, counts=COUNTS)


def _objects(out: Path) -> list[dict]:
    with open(out / "objects.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _class_of(name: str) -> str | None:
    """The shared convention: trailing separators and digits removed; no letter, no class."""
    match = re.match(r"^(.*?)[\s_#-]*\d+$", name)
    stem = match.group(1) if match else name
    return stem if re.search(r"[A-Za-z]", stem) else None


def test_folder_holds_the_four_files(field: tuple[Path, dict]) -> None:
    out, summary = field
    assert sorted(p.name for p in out.iterdir()) == sorted(FIELD_FILES)
    assert summary["counts"] == COUNTS and summary["objects"] == sum(COUNTS.values())
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no leftovers
    with tifffile.TiffFile(out / "field.tif") as tif:
        assert tif.is_imagej and tif.pages[0].shape == SIZE and tif.pages[0].dtype == np.uint16


def test_labels_match_the_table(field: tuple[Path, dict]) -> None:
    out, _ = field
    labels = tifffile.imread(out / "field_labels.tif")
    rows = _objects(out)
    assert labels.dtype == np.uint16 and labels.shape == SIZE
    assert [int(r["id"]) for r in rows] == list(range(1, len(rows) + 1))
    assert set(np.unique(labels)) == set(range(len(rows) + 1))
    for name in CLASSES:
        ids = [int(r["id"]) for r in rows if r["class"] == name]
        assert len(ids) == COUNTS[name]
    area = np.bincount(labels.ravel())
    centres = ndimage.center_of_mass(np.ones(SIZE), labels, range(1, len(rows) + 1))
    for row, centre in zip(rows, centres, strict=True):
        k = int(row["id"])
        assert int(row["area"]) == area[k]
        assert float(row["y"]) == pytest.approx(centre[0], abs=0.01)
        assert float(row["x"]) == pytest.approx(centre[1], abs=0.01)


def test_rois_frame_their_objects_and_round_trip(field: tuple[Path, dict]) -> None:
    out, _ = field
    labels = tifffile.imread(out / "field_labels.tif")
    rows = _objects(out)
    rois = roiread(out / "RoiSet.zip")
    assert len(rois) == len(rows)
    boxes = ndimage.find_objects(labels)
    for roi, row, box in zip(rois, rows, boxes, strict=True):
        assert roi.roitype == ROI_TYPE.RECT
        assert roi.name == row["name"] and _class_of(roi.name) == row["class"]
        assert re.fullmatch(r"(1cell|2cell|groups|rien)-\d{4}", roi.name)
        edges = (roi.top, roi.left, roi.bottom, roi.right)
        assert edges == tuple(int(row[k]) for k in ("top", "left", "bottom", "right"))
        # The label's box lies inside the ROI, a few pixels in, as a person draws it.
        assert roi.top < box[0].start and box[0].stop < roi.bottom
        assert roi.left < box[1].start and box[1].stop < roi.right
        assert roi.top >= 0 and roi.left >= 0
        assert roi.bottom <= SIZE[0] and roi.right <= SIZE[1]
    assert _class_of("0117-0354") is None


def test_objects_do_not_touch(field: tuple[Path, dict]) -> None:
    out, _ = field
    labels = tifffile.imread(out / "field_labels.tif")
    for k in range(1, labels.max() + 1):
        ring = ndimage.binary_dilation(labels == k, iterations=4)  # room for the halo
        assert set(np.unique(labels[ring])) <= {0, k}
    rows = _objects(out)
    boxes = np.array([[int(r[k]) for k in ("top", "left", "bottom", "right")] for r in rows])
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_field_looks_like_the_crops(field: tuple[Path, dict]) -> None:
    out, _ = field
    image = tifffile.imread(out / "field.tif").astype(np.float64)
    labels = tifffile.imread(out / "field_labels.tif")
    far = ndimage.distance_transform_edt(labels == 0) > 12
    assert 43_500 <= np.median(image[far]) <= 47_500
    smooth = ndimage.gaussian_filter(image, 1.0)
    cells = [r for r in _objects(out) if r["class"] != "rien"]
    lows, shares = [], []
    for row in cells:
        top, left, bottom, right = (int(row[k]) for k in ("top", "left", "bottom", "right"))
        crop = smooth[top:bottom, left:right]
        lows.append(crop.min())
        if row["class"] in ("1cell", "2cell"):
            shares.append(np.mean(crop < 33_000))
    assert 17_000 <= np.median(lows) <= 21_500
    assert 0.2 <= np.median(shares) <= 0.45
    assert image.max() == 65_535  # debris saturate the camera


def test_same_seed_same_files_and_timing(tmp_path: Path) -> None:
    start = time.perf_counter()
    synth_field(tmp_path / "a", seed=9)
    elapsed = time.perf_counter() - start
    synth_field(tmp_path / "b", seed=9)
    synth_field(tmp_path / "c", size=256, seed=10)
    for name in FIELD_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert tifffile.imread(tmp_path / "c" / "field.tif").shape == (256, 256)
    rows = _objects(tmp_path / "a")
    assert {c: sum(r["class"] == c for r in rows) for c in CLASSES} == dict.fromkeys(CLASSES, 40)
    assert elapsed < 10.0  # a few seconds at most, even on a loaded machine


def test_out_is_refused_unless_overwrite_and_only_our_files_replaced(tmp_path: Path) -> None:
    out = tmp_path / "f"
    synth_field(out, size=128, seed=1, counts={"1cell": 2})
    before = (out / "field.tif").read_bytes()
    with pytest.raises(CnnlabError, match="--overwrite"):
        synth_field(out, size=128, seed=2, counts={"1cell": 2})
    assert (out / "field.tif").read_bytes() == before
    synth_field(out, size=128, seed=2, counts={"1cell": 2}, overwrite=True)
    assert (out / "field.tif").read_bytes() != before
    (out / "notes.txt").write_text("mine")
    with pytest.raises(CnnlabError, match=r"notes\.txt"):
        synth_field(out, size=128, seed=3, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"size": 10}, "--size"),
        ({"size": (100, 9000)}, "--size"),
        ({"size": "big"}, "--size"),
        ({"seed": -1}, "--seed"),
        ({"counts": {"3cell": 1}}, "3cell"),
        ({"counts": {"1cell": -1}}, "--per-class"),
        ({"size": 64, "counts": {"groups": 60}}, "--per-class"),
    ],
)
def test_option_validation(tmp_path: Path, options: dict, named: str) -> None:
    with pytest.raises(CnnlabError, match=named):
        synth_field(tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.iterdir())
