"""Objects from label images (checked against SciPy) and from ImageJ ROIs (checked by hand)."""

from __future__ import annotations

import numpy as np
import pytest
from fields import line_roi, oval_roi, polygon_roi, rect_roi, write_rois
from roifile import ROI_TYPE, ImagejRoi
from scipy import ndimage

from cnnlab.errors import CnnlabError
from cnnlab.microscopy.objects import class_of_name, objects_from_labels, read_labels
from cnnlab.microscopy.rois import objects_from_rois


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("1cell-0003", "1cell"),
        ("rien-0017", "rien"),
        ("2cell_12", "2cell"),
        ("groups #2", "groups"),
        ("groups", "groups"),
        ("0117-0354", None),  # ImageJ's default names carry no class
        ("117", None),
        ("my cell 7", "my cell"),
    ],
)
def test_class_of_name(name, expected):
    assert class_of_name(name) == expected


# --------------------------------------------------------------------------- label images
def _label_image() -> np.ndarray:
    labels = np.zeros((40, 50), dtype=np.uint16)
    labels[5:12, 8:20] = 3  # a rectangle
    rows, cols = np.indices(labels.shape)
    labels[(rows - 25) ** 2 / 36 + (cols - 30) ** 2 / 81 <= 1] = 7  # an ellipse
    labels[30:40, 0:4] = 200  # touching two edges
    labels[2, 45] = 9  # a single pixel
    labels[15:18, 40:43] = 11
    labels[16, 41] = 0  # a ring: holes stay out of the mask
    return labels


def test_objects_from_labels_match_scipy():
    labels = _label_image()
    objects = objects_from_labels(labels)
    ids = [o.id for o in objects]
    assert ids == [3, 7, 9, 11, 200]  # label values kept, in order
    slices = ndimage.find_objects(labels)
    areas = ndimage.sum_labels(np.ones_like(labels), labels, ids)
    centres = ndimage.center_of_mass(np.ones_like(labels), labels, ids)
    for obj, area, (cy, cx) in zip(objects, areas, centres, strict=True):
        rows, cols = slices[obj.id - 1]
        assert obj.bbox == (rows.start, cols.start, rows.stop, cols.stop)
        assert obj.area == area
        assert obj.y == pytest.approx(cy, abs=1e-9) and obj.x == pytest.approx(cx, abs=1e-9)
        np.testing.assert_array_equal(obj.mask, labels[rows, cols] == obj.id)
        assert obj.name == str(obj.id) and obj.class_name is None
    assert [o.touches_border for o in objects] == [False, False, False, False, True]
    assert objects[3].area == 8 and not objects[3].mask[1, 1]


def test_objects_from_labels_of_an_empty_image():
    assert objects_from_labels(np.zeros((5, 5), dtype=np.uint8)) == []


def test_float_and_negative_labels_are_refused(tmp_path):
    with pytest.raises(CnnlabError, match="whole numbers") as error:
        objects_from_labels(np.ones((4, 4), dtype=np.float32))
    assert "\n" not in str(error.value)
    labels = np.zeros((4, 4), dtype=np.int32)
    labels[1, 1] = -2
    with pytest.raises(CnnlabError, match="negative label -2"):
        objects_from_labels(labels)
    import tifffile

    tifffile.imwrite(tmp_path / "labels.tif", np.full((4, 4), 1.5, dtype=np.float32))
    with pytest.raises(CnnlabError, match=r"labels\.tif: a label image holds whole numbers"):
        read_labels(tmp_path / "labels.tif")


# --------------------------------------------------------------------------- ROIs
def _objects(tmp_path, rois, shape=(60, 80)):
    return objects_from_rois(write_rois(tmp_path / "RoiSet.zip", rois), shape)


def test_rectangle_and_oval_rois(tmp_path):
    objects, skipped = _objects(
        tmp_path, [rect_roi("1cell-0001", 10, 8, 14, 13), oval_roi("rien-0002", 30, 40, 35, 45)]
    )
    assert skipped == []
    rect, oval = objects
    assert (rect.id, rect.name, rect.class_name) == (1, "1cell-0001", "1cell")
    assert rect.bbox == (10, 8, 14, 13) and rect.area == 20 and rect.mask.all()
    assert (rect.y, rect.x) == (11.5, 10.0)
    # A 5x5 oval: pixel centres within 2.5 of the centre, i.e. the square less its 4 corners.
    expected = np.ones((5, 5), dtype=bool)
    expected[[0, 0, -1, -1], [0, -1, 0, -1]] = False
    assert oval.bbox == (30, 40, 35, 45) and oval.class_name == "rien"
    np.testing.assert_array_equal(oval.mask, expected)
    assert oval.area == 21 and (oval.y, oval.x) == (32.0, 42.0)


def test_an_elongated_oval(tmp_path):
    # 4 rows x 8 columns: the outer rows lose their end pixels, whose centres (dy 1.5, dx 3.5)
    # give (1.5/2)^2 + (3.5/4)^2 > 1, while (dy 1.5, dx 2.5) gives 0.95, inside.
    (oval,), _ = _objects(tmp_path, [oval_roi("c-1", 3, 5, 7, 13)])
    expected = np.ones((4, 8), dtype=bool)
    expected[[0, 0, 3, 3], [0, 7, 0, 7]] = False
    np.testing.assert_array_equal(oval.mask, expected)


def test_traced_outline_gives_back_its_pixels(tmp_path):
    # An L traced along pixel edges, (x, y) on pixel corners as ImageJ's wand makes them.
    points = [(2, 1), (6, 1), (6, 3), (4, 3), (4, 7), (2, 7)]
    (obj,), _ = _objects(tmp_path, [polygon_roi("2cell-0005", points)])
    field = np.zeros((60, 80), dtype=bool)
    field[1:3, 2:6] = True
    field[3:7, 2:4] = True
    placed = np.zeros_like(field)
    placed[obj.top : obj.bottom, obj.left : obj.right] = obj.mask
    np.testing.assert_array_equal(placed, field)
    assert obj.area == 16 and obj.class_name == "2cell"


def test_sloped_polygon_and_subpixel_freehand(tmp_path):
    triangle = [(10, 10), (30, 10), (10, 50)]  # hypotenuse 2x + y = 70, never through a centre
    cy, cx, a, b = 20.3, 60.6, 8.2, 5.4  # a diamond with float corners
    diamond = [(cx, cy - a), (cx + b, cy), (cx, cy + a), (cx - b, cy)]
    (tri, dia), _ = _objects(tmp_path, [polygon_roi("t-1", triangle), polygon_roi("d-2", diamond)])
    rows, cols = np.indices((60, 80)) + 0.5  # pixel centres
    expected_tri = (cols > 10) & (rows > 10) & (2 * cols + rows < 70)
    expected_dia = np.abs(cols - cx) / b + np.abs(rows - cy) / a < 1
    for obj, expected in ((tri, expected_tri), (dia, expected_dia)):
        placed = np.zeros((60, 80), dtype=bool)
        placed[obj.top : obj.bottom, obj.left : obj.right] = obj.mask
        np.testing.assert_array_equal(placed, expected)
        assert obj.area == expected.sum()
        assert obj.y == pytest.approx(np.nonzero(expected)[0].mean())


def test_rois_at_and_beyond_the_edge(tmp_path):
    objects, skipped = _objects(
        tmp_path,
        [
            rect_roi("1cell-0001", -3, 70, 5, 85),  # reaches past the top right corner
            rect_roi("1cell-0002", 100, 100, 110, 110),  # wholly outside
            rect_roi("1cell-0003", 20, 20, 25, 25),
        ],
    )
    edge, inner = objects
    assert edge.bbox == (0, 70, 5, 80) and edge.mask.all() and edge.touches_border
    assert (edge.id, inner.id) == (1, 3) and not inner.touches_border
    assert skipped == [("1cell-0002", "outside the field")]


def test_line_and_point_rois_are_refused_by_name(tmp_path):
    with pytest.raises(CnnlabError, match="ROI 'scale-bar' is a straight line") as error:
        _objects(tmp_path, [rect_roi("a-1", 1, 1, 5, 5), line_roi("scale-bar")])
    assert "\n" not in str(error.value) and "RoiSet.zip" in str(error.value)
    point = ImagejRoi.frompoints(np.array([[5, 5]]), name="spot")
    point.roitype = ROI_TYPE.POINT
    with pytest.raises(CnnlabError, match="ROI 'spot' is a point selection"):
        _objects(tmp_path, [point])


def test_composite_rois_are_refused_by_name(tmp_path):
    # A square with a square hole: path operations MOVETO (0), LINETO (1), CLOSE (4).
    ops = [0, 1, 1, 1, 5, 1, 1, 5, 5, 1, 1, 5, 4, 0, 2, 2, 1, 3, 2, 1, 3, 3, 1, 2, 3, 4]
    path = np.array(ops, dtype=np.float32)
    ring = ImagejRoi(
        roitype=ROI_TYPE.RECT, name="ring-1", top=1, left=1, bottom=5, right=5,
        shape_roi_size=path.size, multi_coordinates=path,
    )  # fmt: skip
    with pytest.raises(CnnlabError, match="ROI 'ring-1' is a composite selection; split it"):
        _objects(tmp_path, [ring])


def test_a_single_roi_file(tmp_path):
    rect_roi("groups-0009", 3, 4, 9, 12).tofile(tmp_path / "one.roi")
    (obj,), _ = objects_from_rois(tmp_path / "one.roi", (20, 20))
    assert (obj.name, obj.class_name, obj.bbox, obj.area) == (
        "groups-0009",
        "groups",
        (3, 4, 9, 12),
        48,
    )


def test_damaged_roi_sets_are_one_line_errors(tmp_path):
    path = write_rois(
        tmp_path / "RoiSet.zip", [rect_roi(f"c-{i}", i, i, i + 5, i + 5) for i in range(9)]
    )
    data = path.read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.zip").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    (tmp_path / "empty.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    for name, problem in (
        ("cut", "not a readable"),
        ("noise", "not a readable"),
        ("empty", "holds no ROI"),
    ):
        with pytest.raises(CnnlabError, match=problem) as error:
            objects_from_rois(tmp_path / f"{name}.zip", (30, 30))
        assert f"{name}.zip" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(CnnlabError, match="no such ROI file"):
        objects_from_rois(tmp_path / "missing.zip", (30, 30))


def test_an_image_without_background_is_not_taken_for_labels():
    # The field itself (bright everywhere) given as --labels would make thousands of "objects".
    field = np.random.default_rng(0).integers(19_000, 60_000, size=(40, 50), dtype=np.uint16)
    with pytest.raises(CnnlabError, match=r"no background pixel \(0\).*field itself"):
        objects_from_labels(field)
