from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from cnnlab.data.folders import load_folders
from cnnlab.errors import CnnlabError

ODD = "roi 117 - 114_1354-001.nd2 - C=0"


def write_tiff(path, value, shape=(6, 5), dtype=np.uint16):
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.full(shape, value, dtype=dtype))


def same(a, b) -> bool:
    """Datasets hold tensors, so compare field by field."""
    return (
        torch.equal(a.images, b.images)
        and torch.equal(a.labels, b.labels)
        and (a.class_names, a.paths, a.bit_depth, a.name)
        == (b.class_names, b.paths, b.bit_depth, b.name)
    )


def make_root(root, counts, start=1000, shape=(6, 5)):
    """``counts`` maps class -> number of TIFFs; pixel value encodes class and index."""
    for c, (name, count) in enumerate(counts.items()):
        for i in range(count):
            write_tiff(root / name / f"{ODD} {i:02d}.tif", start + 100 * c + i, shape)
    return root


def test_classes_sorted_files_sorted_paths_kept(tmp_path):
    root = make_root(tmp_path / "day1", {"rod": 3, "coccus": 2})
    data = load_folders(root)
    assert data.class_names == ("coccus", "rod")
    assert data.labels.tolist() == [0, 0, 1, 1, 1]
    assert data.images.shape == (5, 1, 6, 5)
    assert data.images.dtype == torch.int32
    assert data.bit_depth == 16
    assert data.paths[0] == str(root / "coccus" / f"{ODD} 00.tif")
    assert list(data.paths) == sorted(data.paths)
    for image, path in zip(data.images, data.paths, strict=True):
        np.testing.assert_array_equal(image[0].numpy(), tifffile.imread(path))
    assert data.name == "day1"


def test_two_roots_merge_same_classes(tmp_path):
    a = make_root(tmp_path / "a", {"x": 2, "y": 3})
    b = make_root(tmp_path / "b", {"y": 4, "x": 1, "z": 2}, start=5000)
    data = load_folders([a, b])
    assert data.class_names == ("x", "y", "z")
    assert data.class_counts() == {"x": 3, "y": 7, "z": 2}
    assert data.name == "a+b"
    assert same(load_folders([str(a), b]), data)


def test_pattern_hidden_and_other_files(tmp_path):
    root = make_root(tmp_path / "r", {"a": 2, "b": 2})
    Image.fromarray(np.zeros((6, 5), np.uint8)).save(root / "a" / "extra.png")
    write_tiff(root / "a" / "UPPER.TIF", 7)
    (root / "a" / "notes.txt").write_text("not an image")
    write_tiff(root / "a" / ".hidden.tif", 9)
    (root / ".git").mkdir()
    data = load_folders(root, pattern="*.tif")
    assert data.class_counts() == {"a": 3, "b": 2}
    assert not any("extra.png" in p or ".hidden" in p for p in data.paths)
    with pytest.warns(UserWarning, match="scaled 1 8-bit image to 16-bit"):
        # Every known extension: the 8-bit PNG among 16-bit TIFFs is scaled when asked.
        everything = load_folders(root, convert_bit_depth=True)
    assert everything.class_counts() == {"a": 4, "b": 2}
    assert everything.dtype == torch.int32
    assert everything.bit_depth == 16
    with pytest.raises(CnnlabError, match="holds no matching image files"):
        load_folders(root, pattern="extra*")  # class b has no match


def test_mixed_sizes_give_a_list(tmp_path):
    root = make_root(tmp_path / "r", {"a": 2, "b": 1})
    write_tiff(root / "b" / "big.tif", 3, shape=(9, 8))
    data = load_folders(root)
    assert isinstance(data.images, list)
    assert sorted(data.sizes()) == [(6, 5), (6, 5), (6, 5), (9, 8)]
    assert all(im.dtype == torch.int32 for im in data.images)


def test_channel_mismatch_needs_channels(tmp_path):
    root = make_root(tmp_path / "r", {"a": 1, "b": 1})
    rgb = np.arange(6 * 5 * 3, dtype=np.uint16).reshape(6, 5, 3) * 100
    tifffile.imwrite(root / "b" / "rgb.tif", rgb, photometric="rgb")
    with pytest.raises(CnnlabError, match=r"--channels 1 .*--channels 3"):
        load_folders(root)
    gray = load_folders(root, channels=1)
    assert gray.images.shape == (3, 1, 6, 5)
    rgb3 = load_folders(root, channels=3)
    assert rgb3.images.shape == (3, 3, 6, 5)


@pytest.mark.parametrize("problem", ["missing", "file", "no-classes", "empty-class", "one-class"])
def test_bad_layouts(tmp_path, problem):
    root = make_root(tmp_path / "r", {"a": 1, "b": 1})
    named = root
    if problem == "missing":
        named = root = tmp_path / "nope"
    elif problem == "file":
        named = root = root / "a" / f"{ODD} 00.tif"
    elif problem == "no-classes":
        named = root = tmp_path / "flat"
        write_tiff(root / "x.tif", 1)
    elif problem == "empty-class":
        (root / "c").mkdir()
        (root / "c" / "readme.txt").write_text("")
        named = root / "c"
    elif problem == "one-class":
        named = tmp_path / "single"
        make_root(named, {"only": 2})
        root = named
    with pytest.raises(CnnlabError) as info:
        load_folders(root)
    assert str(named) in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_file_is_named(tmp_path):
    root = make_root(tmp_path / "r", {"a": 2, "b": 2})
    bad = root / "b" / f"{ODD} broken.tif"
    bad.write_bytes(b"II*\x00" + bytes(10))
    with pytest.raises(CnnlabError, match="skip_bad") as info:
        load_folders(root)
    assert str(bad) in str(info.value)


def test_skip_bad_warns_once_and_records(tmp_path):
    root = make_root(tmp_path / "r", {"a": 2, "b": 2, "c": 1})
    bad = [root / "a" / "bad1.png", root / "b" / "bad2.tif", root / "c" / "bad3.tif"]
    for path in bad:
        path.write_text("garbage")
    (root / "c" / f"{ODD} 00.tif").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_folders(root, skip_bad=True)
    messages = [str(w.message) for w in caught]
    skipped = [m for m in messages if m.startswith("skipped")]
    assert len(skipped) == 1
    assert "skipped 3 unreadable files" in skipped[0]
    assert str(bad[0]) in skipped[0]
    assert any("dropped empty class" in m and str(root / "c") in m for m in messages)
    assert data.class_names == ("a", "b")
    assert data.class_counts() == {"a": 2, "b": 2}
    assert data.meta["skipped"] == [str(p) for p in bad]


def test_skip_bad_still_needs_two_classes(tmp_path):
    root = make_root(tmp_path / "r", {"a": 2, "b": 0})
    (root / "b").mkdir()
    with pytest.warns(UserWarning, match="dropped"), pytest.raises(CnnlabError, match="two"):
        load_folders(root, skip_bad=True)


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_give_the_same_result(tmp_path, workers):
    root = make_root(tmp_path / "r", {"a": 5, "b": 4})
    assert same(load_folders(root, workers=workers), load_folders(root))


def test_8bit_png_folder_stays_uint8(tmp_path):
    for c, name in enumerate(("cat", "dog")):
        (tmp_path / name).mkdir()
        for i in range(2):
            pixels = np.full((4, 4), 10 * i + 100 * c, np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    data = load_folders(tmp_path)
    assert (data.dtype, data.bit_depth) == (torch.uint8, 8)


def test_an_option_that_no_file_fits_is_not_met_with_skip_bad_advice(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for index in range(2):
            tifffile.imwrite(tmp_path / name / f"{index}.tif", np.full((8, 8), index, np.uint16))
    with pytest.raises(CnnlabError) as refused:
        load_folders(tmp_path, plane=3)
    message = str(refused.value)
    assert "has 1 planes" in message and "(and so did all 3 other files)" in message
    assert "skip" not in message  # leaving out every file would leave nothing
    stack = np.zeros((4, 8, 8), np.uint16)
    tifffile.imwrite(tmp_path / "a" / "stack.tif", stack, photometric="minisblack")
    with pytest.raises(CnnlabError, match=r"(?s)has 1 planes.*3 more bad files.*--skip-bad"):
        load_folders(tmp_path, plane=3)  # one file fits: the others may be left out


def test_when_every_file_is_bad_no_advice_leaves_them_all_out(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        tifffile.imwrite(tmp_path / name / "x.tif", np.full((8, 8), np.nan, np.float32))
    with pytest.raises(CnnlabError) as refused:
        load_folders(tmp_path)
    message = str(refused.value)
    assert "pixels are not finite" in message and message.endswith("(and so did the other file)")
    assert "skip" not in message
