"""One bit depth per dataset: mixed depths refused by name, or scaled exactly when asked."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from cnnlab.data.combine import scale_to_depth
from cnnlab.data.folders import load_folders
from cnnlab.data.sources import (
    DataSpec,
    describe_sources,
    format_description,
    load_sources,
    load_split,
)
from cnnlab.errors import CnnlabError

#: Hand-computed 8 -> 16-bit values: v * 65535 / 255 = v * 257.
BY_HAND = {0: 0, 1: 257, 128: 32896, 255: 65535}


def jpeg(path, value=128, shape=(6, 5)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(shape, value, np.uint8)).save(path, quality=100)


def png(path, values, shape=(6, 5)):
    """An 8-bit PNG holding ``values`` in its first pixels, zeros elsewhere."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros(shape, np.uint8)
    pixels.flat[: len(values)] = values
    Image.fromarray(pixels).save(path)


def tiff(path, value, shape=(6, 5), dtype=np.uint16):
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.full(shape, value, dtype))


def mixed_root(root):
    """crops/1cell/a.jpg (8-bit) among 16-bit TIFFs."""
    jpeg(root / "1cell" / "a.jpg")
    tiff(root / "1cell" / "c.tif", 1000)
    tiff(root / "2cell" / "b.tif", 2000)
    tiff(root / "2cell" / "d.tif", 3000)
    return root


def test_mixed_bit_depths_are_refused_naming_one_file_of_each(tmp_path):
    root = mixed_root(tmp_path / "crops")
    with pytest.raises(CnnlabError) as error:
        load_folders(root)
    message = str(error.value)
    assert message.startswith(
        f"{root / '1cell' / 'a.jpg'} is 8-bit but {root / '1cell' / 'c.tif'} is 16-bit "
        "(1 8-bit and 3 16-bit images): one dataset must have one bit depth; convert the files, "
        "or pass --convert-bit-depth"
    )
    assert message.endswith("to scale every image to 16-bit") and "\n" not in message
    # --skip-bad is for damaged files: neither kind is damaged, so it changes nothing.
    with pytest.raises(CnnlabError, match="one dataset must have one bit depth"):
        load_folders(root, skip_bad=True)


def test_conversion_scales_8_bit_values_exactly_with_one_warning(tmp_path):
    root = tmp_path / "crops"
    png(root / "a" / "x.png", list(BY_HAND))
    tiff(root / "a" / "y.tif", 40000)
    tiff(root / "b" / "z.tif", 65535)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_folders(root, convert_bit_depth=True)
    assert [str(w.message) for w in caught] == [
        "scaled 1 8-bit image to 16-bit (8-bit x257: full scale onto full scale) to match the "
        "2 16-bit images, as --convert-bit-depth asks"
    ]
    assert data.bit_depth == 16 and data.dtype == torch.int32
    scaled = data.images[data.paths.index(str(root / "a" / "x.png"))].flatten()
    assert scaled[: len(BY_HAND)].tolist() == list(BY_HAND.values())
    assert int(scaled[len(BY_HAND) :].abs().sum()) == 0
    # The 16-bit files keep their own values.
    assert int(data.images[data.paths.index(str(root / "a" / "y.tif"))].max()) == 40000
    assert data.meta["bit_depths"] == {"8-bit": 1, "16-bit": 2}
    assert data.meta["converted_bit_depth"] == {"to": 16, "scaled": {"8-bit": 1}}


def test_scale_to_depth_matches_rounded_full_scale_mapping():
    values = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    reference = np.rint(values.astype(np.float64) / 255 * 65535)
    assert np.array_equal(scale_to_depth(values, 8, 16), reference)
    wide = scale_to_depth(np.array([[[0, 65535, 1]]], np.int32), 16, 32)
    assert wide.dtype == np.int64 and wide.tolist() == [[[0, 2**32 - 1, 65537]]]
    assert scale_to_depth(values, 8, 32).max() == 2**32 - 1


def test_float_images_among_integer_ones_are_refused_even_with_conversion(tmp_path):
    root = tmp_path / "r"
    tiff(root / "a" / "f.tif", 0.5, dtype=np.float32)
    tiff(root / "a" / "i.tif", 100)
    tiff(root / "b" / "j.tif", 200)
    for convert in (False, True):
        with pytest.raises(CnnlabError) as error:
            load_folders(root, convert_bit_depth=convert)
        assert str(error.value).startswith(
            f"{root / 'a' / 'i.tif'} is 16-bit integer but {root / 'a' / 'f.tif'} is 32-bit "
            "float (2 16-bit and 1 32-bit float images): one dataset must hold integer or float"
        )


def test_merged_folders_are_checked_together(tmp_path):
    day1, day2 = tmp_path / "day1", tmp_path / "day2"
    for i, name in enumerate(("x", "y")):
        jpeg(day1 / name / "old.jpg", value=255 - i)
        tiff(day2 / name / "new.tif", 500 + i)
    with pytest.raises(CnnlabError) as error:
        load_folders([day1, day2])
    assert str(error.value).startswith(
        f"{day1 / 'x' / 'old.jpg'} is 8-bit but {day2 / 'x' / 'new.tif'} is 16-bit"
    )
    with pytest.warns(UserWarning, match="scaled 2 8-bit images"):
        data = load_folders([day1, day2], convert_bit_depth=True)
    by_path = dict(zip(data.paths, data.images, strict=True))
    assert int(by_path[str(day1 / "x" / "old.jpg")].max()) == 65535
    assert int(by_path[str(day2 / "x" / "new.tif")].max()) == 500


def test_a_warm_cache_refuses_and_converts_as_a_cold_one(tmp_path, decodes):
    """The cache holds the files' own values, so one cache file serves both choices."""
    root = mixed_root(tmp_path / "crops")
    store = tmp_path / "cache"
    with pytest.warns(UserWarning, match="scaled 1 8-bit image"):
        cold = load_folders(root, cache=store, convert_bit_depth=True)
    assert len(decodes) == 4
    with pytest.raises(CnnlabError, match=r"a\.jpg is 8-bit but .*c\.tif is 16-bit"):
        load_folders(root, cache=store)
    with pytest.warns(UserWarning, match="scaled 1 8-bit image"):
        warm = load_folders(root, cache=store, convert_bit_depth=True)
    assert len(decodes) == 4  # both later loads came from the cache
    assert torch.equal(warm.images, cold.images)


def test_summary_describes_mixed_data_instead_of_refusing(tmp_path):
    root = mixed_root(tmp_path / "crops")
    datasets = load_sources([str(root)], allow_mixed_bit_depths=True)
    info = describe_sources(datasets)["all"]
    assert info["bit_depths"] == {"8-bit": 1, "16-bit": 3}
    assert "one dataset must have one bit depth" in info["mixed_bit_depths"]
    text = format_description(datasets)
    assert "4 images, 6x5, 1 channel(s), mixed bit depths: 1 8-bit, 3 16-bit, held as int32" in text
    assert f"warning: {root / '1cell' / 'a.jpg'} is 8-bit but" in text
    with pytest.warns(UserWarning, match="scaled"):
        converted = load_sources([str(root)], convert_bit_depth=True)
    assert "16-bit (1 8-bit image scaled to it), held as int32" in format_description(converted)
    # `data summary --convert-bit-depth` asks for both: the data as training with it sees them.
    with pytest.warns(UserWarning, match="scaled"):
        both = load_sources([str(root)], convert_bit_depth=True, allow_mixed_bit_depths=True)
    assert format_description(both) == format_description(converted)
    with pytest.raises(CnnlabError, match="one bit depth"):
        load_sources([str(root)])


def test_a_run_spec_carries_the_choice(tmp_path):
    root = mixed_root(tmp_path / "crops")
    spec = DataSpec(data=(str(root),), split=(50, 50), cache=False)
    with pytest.raises(CnnlabError, match="--convert-bit-depth"):
        load_split(spec)
    with pytest.warns(UserWarning, match="scaled 1 8-bit image"):
        split = load_split(DataSpec(**{**spec.__dict__, "convert_bit_depth": True}))
    assert split.train.bit_depth == 16
