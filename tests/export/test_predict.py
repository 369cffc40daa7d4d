"""predict --skip-bad, and predict_arrays giving what predict gives for the same pixels."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from cnnlab.errors import CnnlabError
from cnnlab.export import predict, predict_arrays
from cnnlab.models import create_model


@pytest.fixture(scope="module")
def model16():
    """An (untrained) 16-bit gray model: prediction needs no training to be compared."""
    torch.manual_seed(0)
    model = create_model("lenet5", in_chans=1, num_classes=3, input_size=(28, 28))
    model.bit_depth = 16
    model.class_names = ("1cell", "2cell", "rien")
    # Statistics of 16-bit counts, so that different crops give visibly different outputs.
    model.standardize.set_statistics([30000.0], [10000.0])
    return model.eval()


@pytest.fixture
def crops(tmp_path):
    """Three 16-bit crops of different sizes (resized on the way), in name order."""
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 65536, shape, dtype=np.uint16) for shape in ((30, 34), (28, 28))]
    arrays.append(rng.integers(20000, 50000, (40, 25), dtype=np.uint16))
    paths = [tmp_path / f"crop {i}.tif" for i in range(3)]
    for path, array in zip(paths, arrays, strict=True):
        tifffile.imwrite(path, array)
    return paths, arrays


def add_bad_files(folder):
    """A truncated TIFF and an 8-bit PNG, which sort between the good crops."""
    good = (folder / "crop 0.tif").read_bytes()
    (folder / "crop 1a damaged.tif").write_bytes(good[: len(good) // 2])
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(folder / "crop 1b eight.png")
    return folder / "crop 1a damaged.tif", folder / "crop 1b eight.png"


def test_predict_arrays_equals_predict_on_the_same_files(model16, crops):
    paths, arrays = crops
    from_files = predict(model16, paths)
    names = [str(p) for p in paths]
    from_arrays = predict_arrays(model16, arrays, names, 16)
    assert from_arrays.paths == from_files.paths
    assert torch.equal(from_arrays.probabilities, from_files.probabilities)
    assert from_arrays.predicted == from_files.predicted and from_arrays.skipped == ()
    # Tensors, and channel-first (1, H, W) arrays, are the same pixels.
    as_tensors = [torch.from_numpy(a.astype(np.int32))[None] for a in arrays]
    again = predict_arrays(model16, as_tensors, names, [16, 16, 16], batch_size=2)
    assert torch.equal(again.probabilities, from_files.probabilities)
    # The test is only worth something if the crops are told apart.
    assert not torch.allclose(from_files.probabilities[0], from_files.probabilities[2])


def test_predict_arrays_checks_like_files_are_checked(model16, crops):
    _, arrays = crops
    eight = np.full((28, 28), 200, np.uint8)
    with pytest.raises(CnnlabError, match=r"^eight: an 8-bit image, but the model learned on 16"):
        predict_arrays(model16, [arrays[0], eight], ["a", "eight"], [16, 8])
    with pytest.raises(CnnlabError, match=r"^a: holds values up to 65,\d+, beyond 8-bit"):
        predict_arrays(model16, [arrays[0]], ["a"], 8)
    with pytest.raises(CnnlabError, match=r"^names: 1 name for 2 images"):
        predict_arrays(model16, arrays[:2], ["a"], 16)
    with pytest.raises(CnnlabError, match=r"^two: an array of shape \(2, 5, 5\); give \(H, W\)"):
        predict_arrays(model16, [np.zeros((2, 5, 5), np.uint16)], ["two"], 16)
    with pytest.warns(UserWarning) as caught:
        table = predict_arrays(model16, [arrays[0], eight], ["a", "eight"], [16, 8], skip_bad=True)
    assert str(caught[-1].message) == "skipped 1 of 2 images: eight"
    assert table.paths == ("a",) and table.skipped[0][0] == "eight"


def test_skip_bad_leaves_out_damaged_and_incompatible_files(model16, crops):
    paths, _ = crops
    damaged, eight = add_bad_files(paths[0].parent)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = predict(model16, paths[0].parent, skip_bad=True)
    assert table.paths == tuple(str(p) for p in paths)
    assert torch.equal(table.probabilities, predict(model16, paths).probabilities)
    assert [name for name, _ in table.skipped] == [str(damaged), str(eight)]
    assert "truncated" in table.skipped[0][1]
    assert table.skipped[1][1].startswith("an 8-bit image, but the model learned on 16-bit")
    messages = [str(w.message) for w in caught]
    assert messages == [
        f"skipped {damaged}: {table.skipped[0][1]}",
        f"skipped {eight}: {table.skipped[1][1]}",
        f"skipped 2 of 5 files: {damaged}, {eight}",
    ]


def test_without_skip_bad_the_first_bad_file_stops_naming_it(model16, crops):
    paths, _ = crops
    damaged, eight = add_bad_files(paths[0].parent)
    with pytest.raises(CnnlabError, match="truncated") as error:
        predict(model16, paths[0].parent)
    assert str(error.value).startswith(f"{damaged}: ") and "\n" not in str(error.value)
    with pytest.raises(CnnlabError) as error:
        predict(model16, [paths[0], eight])
    assert str(error.value).startswith(f"{eight}: an 8-bit image")


def test_skip_bad_with_nothing_good_is_an_error(model16, crops):
    paths, _ = crops
    damaged, eight = add_bad_files(paths[0].parent)
    with warnings.catch_warnings(), pytest.raises(CnnlabError) as error:
        warnings.simplefilter("ignore")
        predict(model16, [damaged, eight], skip_bad=True)
    assert str(error.value).startswith(f"none of the 2 images could be used, e.g. {damaged}: ")


def test_skip_bad_leaves_out_images_without_finite_probabilities(tmp_path):
    model = create_model("lenet5", in_chans=1, num_classes=2, input_size=(28, 28)).eval()
    model.bit_depth = 32
    # Float images of small values standardize with a small std: 3e38 / 1e-3 overflows.
    model.standardize.set_statistics([0.5], [1e-3])
    tifffile.imwrite(tmp_path / "a fine.tif", np.full((28, 28), 0.5, np.float32))
    tifffile.imwrite(tmp_path / "b extreme.tif", np.full((28, 28), 3e38, np.float32))
    with pytest.warns(UserWarning) as caught:
        table = predict(model, tmp_path, skip_bad=True)
    assert table.paths == (str(tmp_path / "a fine.tif"),)
    assert table.skipped == (
        (
            str(tmp_path / "b extreme.tif"),
            "the model gives no finite class probabilities for this image",
        ),
    )
    assert str(caught[-1].message) == f"skipped 1 of 2 files: {tmp_path / 'b extreme.tif'}"


def test_an_image_too_small_for_the_model_is_refused_or_skipped(model16, crops):
    paths, _ = crops
    tiny = paths[0].parent / "tiny.tif"
    tifffile.imwrite(tiny, np.full((4, 4), 30000, np.uint16))  # 28x28 needs 14x14 at least
    with pytest.raises(CnnlabError, match=r"tiny\.tif: 4x4 pixels is too small .* 28x28"):
        predict(model16, [*paths, tiny])
    with pytest.warns(UserWarning, match="tiny.tif"):
        table = predict(model16, [*paths, tiny], skip_bad=True)
    assert len(table) == 3 and [path for path, _ in table.skipped] == [str(tiny)]
    # Exactly half the input size is still accepted, as training accepts it.
    edge = paths[0].parent / "edge.tif"
    tifffile.imwrite(edge, np.full((14, 14), 30000, np.uint16))
    assert len(predict(model16, [edge])) == 1


def test_a_file_far_larger_than_the_training_images_is_predicted_with_a_warning(
    model16, crops, monkeypatch
):
    paths, _ = crops
    folder = paths[0].parent
    field, edge = folder / "field.tif", folder / "edge.tif"
    tifffile.imwrite(field, np.full((161, 137), 30000, np.uint16))
    tifffile.imwrite(edge, np.full((160, 200), 30000, np.uint16))  # 4x the height exactly
    monkeypatch.setattr(model16, "largest_source", (40, 34), raising=False)
    with pytest.warns(UserWarning) as caught:
        table = predict(model16, [*paths, field, edge])
    assert len(table) == 5 and not table.skipped  # a warning, not a refusal
    assert [str(w.message) for w in caught] == [
        f"{field} (161x137 pixels) is more than 4x the model's training images (up to 40x34) "
        "on each side: it is shrunk whole to 28x28 and gets one class for the whole picture; "
        "if it holds many objects (a field), give --field with --rois or --labels to classify "
        "each"
    ]
    assert caught[0].filename == __file__  # points at the caller's line
    other = folder / "other.tif"
    tifffile.imwrite(other, np.full((170, 140), 30000, np.uint16))
    with pytest.warns(
        UserWarning, match=r"^2 images are, e\.g\. .*field\.tif \(161x137 pixels\), "
    ):
        predict(model16, [field, other])
    # Arrays are crops a program cut (predict --field's own): nothing to say of them.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict_arrays(model16, [np.full((161, 137), 9, np.uint16)], ["a"], 16)
    # Within 4x, or a model that does not know its training images: nothing to say.
    monkeypatch.setattr(model16, "largest_source", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict(model16, [field])
    monkeypatch.setattr(model16, "largest_source", (40, 35))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict(model16, [field, edge])
