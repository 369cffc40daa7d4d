from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import tifffile
import torch
from safetensors.numpy import save_file

from cnnlab.data import cache as cache_module
from cnnlab.data.cache import Decoded, Record, cache_file, read_cache, write_cache
from cnnlab.data.folders import load_folders
from cnnlab.files import default_cache_dir


def make_root(root):
    for c, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True)
        for i in range(3):
            tifffile.imwrite(root / name / f"img {i}.tif", np.full((4, 5), 300 * c + i, np.uint16))
    return root


def equal(a, b):
    return (
        torch.equal(a.images, b.images) and a.paths == b.paths and torch.equal(a.labels, b.labels)
    )


def test_second_load_comes_from_cache(tmp_path, decodes):
    root, store = make_root(tmp_path / "data"), tmp_path / "cache"
    first = load_folders(root, cache=store)
    assert len(decodes) == 6
    second = load_folders(root, cache=store)
    assert len(decodes) == 6  # nothing decoded again
    assert equal(first, second)
    assert (second.dtype, second.bit_depth) == (torch.int32, 16)
    assert [p.suffix for p in store.iterdir()] == [".safetensors"]


def test_options_get_their_own_cache(tmp_path, decodes):
    root, store = make_root(tmp_path / "data"), tmp_path / "cache"
    load_folders(root, cache=store)
    three = load_folders(root, cache=store, channels=3)
    assert three.images.shape == (6, 3, 4, 5)
    assert len(list(store.iterdir())) == 2


def test_changed_file_is_decoded_again(tmp_path, decodes):
    root, store = make_root(tmp_path / "data"), tmp_path / "cache"
    load_folders(root, cache=store)
    target = root / "b" / "img 1.tif"
    tifffile.imwrite(target, np.full((4, 5), 4321, np.uint16))  # same size, new content
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    decodes.clear()
    data = load_folders(root, cache=store)
    assert decodes == ["img 1.tif"]
    assert int(data.images[data.paths.index(str(target))].max()) == 4321


def test_touched_file_is_decoded_again(tmp_path, decodes):
    root, store = make_root(tmp_path / "data"), tmp_path / "cache"
    load_folders(root, cache=store)
    target = root / "a" / "img 0.tif"
    os.utime(target, ns=(0, 1_000_000_000))
    decodes.clear()
    load_folders(root, cache=store)
    assert decodes == ["img 0.tif"]


def test_deleted_and_added_files(tmp_path, decodes):
    root, store = make_root(tmp_path / "data"), tmp_path / "cache"
    load_folders(root, cache=store)
    (root / "a" / "img 2.tif").unlink()
    tifffile.imwrite(root / "b" / "new.tif", np.full((4, 5), 999, np.uint16))
    decodes.clear()
    data = load_folders(root, cache=store)
    assert decodes == ["new.tif"]
    assert data.class_counts() == {"a": 2, "b": 4}
    assert str(root / "a" / "img 2.tif") not in data.paths
    fresh = load_folders(root)
    assert equal(data, fresh)
    (path,) = store.iterdir()
    assert "a/img 2.tif" not in read_cache(path)  # the stale entry was dropped


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "bad-index"])
def test_corrupt_cache_is_rebuilt(tmp_path, decodes, damage):
    root, store = make_root(tmp_path / "data"), tmp_path / "cache"
    first = load_folders(root, cache=store)
    (path,) = store.iterdir()
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) - 40])
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a well-formed file whose index points outside its data
        entry = ["a/img 0.tif", 1, 2, "int32", 15, [1, 4, 5], 16, None, "0" * 32, 1]
        index = json.dumps({"version": cache_module.FORMAT_VERSION, "entries": [entry]})
        save_file({"int32": np.zeros(20, np.int32)}, str(path), metadata={"index": index})
    assert read_cache(path) == {}
    decodes.clear()
    second = load_folders(root, cache=store)
    assert len(decodes) == 6
    assert equal(first, second)
    assert len(read_cache(path)) == 6


def test_bad_files_are_read_again_until_fixed(tmp_path, decodes):
    root, store = make_root(tmp_path / "data"), tmp_path / "cache"
    broken = root / "a" / "broken.tif"
    broken.write_text("nope")
    with pytest.warns(UserWarning, match="skipped 1"):
        load_folders(root, cache=store, skip_bad=True)
    decodes.clear()
    with pytest.warns(UserWarning, match="skipped 1"):
        data = load_folders(root, cache=store, skip_bad=True)
    assert decodes == ["broken.tif"]  # only the bad file is decoded again, the rest is cached
    assert data.meta["skipped"] == [str(broken)]
    # Fixed in place with the same size and time stamp (as chmod would): it is read now.
    stat = broken.stat()
    tifffile.imwrite(broken, np.full((4, 5), 7, np.uint16))
    os.utime(broken, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert len(load_folders(root, cache=store)) == 7


def test_default_directory_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_CACHE_DIR", str(tmp_path / "env-cache"))
    root = make_root(tmp_path / "data")
    load_folders(root, cache=True)
    assert len(list((tmp_path / "env-cache").iterdir())) == 1
    assert default_cache_dir() == tmp_path / "env-cache"


def test_write_is_atomic_and_unwritable_dir_only_warns(tmp_path, monkeypatch):
    pixels = np.arange(6, dtype=np.uint8).reshape(1, 2, 3)
    record = Record(10, 20, Decoded(pixels, 8, None, "ab" * 16, 4))
    target = cache_file(tmp_path, tmp_path / "root", "*.tif", 1, None)
    write_cache(target, {"a/x.tif": record})
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary left over
    loaded = read_cache(target)["a/x.tif"]
    assert (loaded.size, loaded.mtime_ns, loaded.decoded.bit_depth) == (10, 20, 8)
    assert (loaded.decoded.digest, loaded.decoded.samples) == ("ab" * 16, 4)
    np.testing.assert_array_equal(loaded.decoded.array, record.decoded.array)

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_module, "save_file", fail)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_cache(target, {})
    assert "could not write the image cache" in str(caught[0].message)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert len(read_cache(target)) == 1  # the old cache survives a failed write
