"""Files that would give a wrong image, a library's log lines or a huge allocation are refused."""

from __future__ import annotations

import errno
import io
import logging
import os
import struct
import threading
import tracemalloc
import warnings
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image

from cnnlab.data import imageio
from cnnlab.data.folders import load_folders
from cnnlab.data.imageio import read_array, read_image_file
from cnnlab.data.sources import format_description
from cnnlab.errors import CnnlabError


def one_line_naming(error: pytest.ExceptionInfo, path) -> str:
    message = str(error.value)
    assert str(path) in message
    assert "\n" not in message
    return message


def tiff_bytes(array: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **options)
    return buffer.getvalue()


def tag_offset(data: bytes, tag: int) -> int:
    """Where the value (or pointer to the values) of ``tag`` of the first page lies."""
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        return tif.pages[0].tags[tag].valueoffset


def make_classes(root, values_by_class):
    for name, values in values_by_class.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i, value in enumerate(values):
            tifffile.imwrite(root / name / f"{i}.tif", np.full((4, 5), value, np.float32))
    return root


# ----------------------------------------------------------------------------- non-finite
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused(tmp_path, value):
    pixels = np.linspace(0, 1, 30, dtype=np.float32).reshape(5, 6)
    pixels[[0, 2, 4], [1, 3, 5]] = value
    path = tmp_path / "roi 1.tif"
    tifffile.imwrite(path, pixels)
    with pytest.raises(CnnlabError) as info:
        read_array(path)
    message = one_line_naming(info, path)
    assert "3 of 30 pixels are not finite" in message
    assert "--skip-bad" in message


def test_float64_beyond_float32_is_refused_and_finite_floats_pass(tmp_path):
    pixels = np.full((3, 4), 0.5)
    tifffile.imwrite(tmp_path / "fine.tif", pixels)
    array, depth = read_array(tmp_path / "fine.tif")
    assert (array.dtype, depth, float(array.max())) == (np.float32, 32, 0.5)
    pixels[1, 1] = 1e300  # finite in float64, infinite as float32
    tifffile.imwrite(tmp_path / "big.tif", pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from the cast either
        with pytest.raises(CnnlabError, match=r"1 of 12 pixels .*float32 range"):
            read_array(tmp_path / "big.tif")


def test_folder_with_non_finite_image_needs_skip_bad(tmp_path):
    root = make_classes(tmp_path / "r", {"a": [1, 2], "b": [3, 4]})
    nan = np.ones((4, 5), np.float32)
    nan[0, 0] = np.nan
    tifffile.imwrite(root / "b" / "nan.tif", nan)
    with pytest.raises(CnnlabError) as info:
        load_folders(root)
    message = one_line_naming(info, root / "b" / "nan.tif")
    assert message.count("--skip-bad") == 1  # the reader's advice is not repeated
    with pytest.warns(UserWarning, match="skipped 1 unreadable file"):
        data = load_folders(root, skip_bad=True)
    assert data.meta["skipped"] == [str(root / "b" / "nan.tif")]
    assert data.class_counts() == {"a": 2, "b": 2}
    assert bool(data.images.isfinite().all())


# ----------------------------------------------------------------------------- damaged TIFF
def imagej_cut_into_pixels() -> bytes:
    """An ImageJ stack missing its last planes: tifffile logs errors and offers one plane."""
    data = tiff_bytes(np.arange(4 * 16 * 16, dtype=np.uint16).reshape(4, 16, 16), imagej=True)
    return data[:-600]


def test_damaged_tiff_prints_nothing_and_is_one_line(tmp_path, capfd, caplog):
    path = tmp_path / "cut stack.tif"
    path.write_bytes(imagej_cut_into_pixels())
    with pytest.raises(CnnlabError) as info:
        read_array(path)
    message = one_line_naming(info, path)
    assert "damaged TIFF (ImageJ series metadata invalid or corrupted file)" in message
    assert capfd.readouterr() == ("", "")
    assert caplog.records == []  # not handed to any logging handler either


def test_damaged_tiffs_in_a_thread_pool_print_nothing(tmp_path, capfd, caplog):
    root = make_classes(tmp_path / "r", {"a": [1, 2, 3], "b": [4, 5, 6]})
    for i in range(40):
        data = imagej_cut_into_pixels()
        (root / "ab"[i % 2] / f"cut {i}.tif").write_bytes(data[: len(data) - i])  # all differ
    with pytest.warns(UserWarning, match="skipped 40 unreadable files"):
        data = load_folders(root, skip_bad=True, workers=4)
    assert len(data) == 6
    assert capfd.readouterr() == ("", "")
    assert caplog.records == []


def test_log_capture_keeps_each_threads_records_apart(caplog):
    """Two overlapping reads on two threads: each sees its own records, none leaks."""
    log, steps = logging.getLogger("tifffile"), threading.Barrier(2)
    seen: dict[str, list[str]] = {}

    def read(name: str, first: bool) -> None:
        with imageio._LIBRARY_LOG.capture() as records:
            steps.wait()  # both inside
            if first:
                log.warning(f"{name} early")
                steps.wait()  # the other logs only after this one has
            else:
                steps.wait()
                log.warning(f"{name} late")
        seen[name] = [record.getMessage() for record in records]

    threads = [threading.Thread(target=read, args=(name, name == "a")) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"a": ["a early"], "b": ["b late"]}
    assert caplog.records == []


def test_tifffile_warning_with_data_still_counts_as_damage(tmp_path):
    data = tiff_bytes(np.arange(4 * 16 * 16, dtype=np.uint16).reshape(4, 16, 16), imagej=True)
    path = tmp_path / "lying metadata.tif"
    path.write_bytes(data.replace(b"channels=4", b"channels=8"))  # tifffile falls back, logs
    with pytest.raises(CnnlabError, match="damaged TIFF"):
        read_array(path, plane=0)


def test_tifffile_logging_outside_reads_is_untouched(caplog):
    with caplog.at_level(logging.WARNING, logger="tifffile"):
        logging.getLogger("tifffile").warning("a message of the user's own tifffile use")
    assert "user's own" in caplog.text


@pytest.mark.parametrize(("tag", "value"), [(279, 0), (273, 0), (273, 10**6)])
def test_missing_or_outside_strip_is_refused_not_zero_filled(tmp_path, tag, value):
    pixels = np.arange(1, 64 * 64 + 1, dtype=np.uint16).reshape(64, 64)
    data = bytearray(tiff_bytes(pixels, rowsperstrip=8))
    struct.pack_into("<I", data, tag_offset(bytes(data), tag) + 4 * 3, value)  # strip 3
    path = tmp_path / "sparse.tif"
    path.write_bytes(bytes(data))
    with pytest.raises(CnnlabError, match=r"damaged|truncated") as info:
        read_array(path)
    one_line_naming(info, path)


# ----------------------------------------------------------------------------- huge headers
def with_size(data: bytes, kind: str, width: int, height: int) -> bytes:
    data = bytearray(data)
    if kind == "tif":  # one compressed strip, so only the size is wrong
        tags = {256: width, 257: height, 278: 2**32 - 1}
        for offset, value in [(tag_offset(bytes(data), tag), value) for tag, value in tags.items()]:
            struct.pack_into("<I", data, offset, value)
    elif kind == "png":
        struct.pack_into(">II", data, 16, width, height)
        struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    elif kind == "bmp":
        struct.pack_into("<ii", data, 18, width, height)
    else:
        sof = data.index(b"\xff\xc0")
        struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def small_file(kind: str) -> bytes:
    if kind == "tif":
        return tiff_bytes(np.zeros((8, 8), np.uint16), compression="zlib", metadata=None)
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format={"jpg": "JPEG"}.get(kind, kind.upper()))
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["tif", "png", "bmp", "jpg"])
@pytest.mark.parametrize("big", ["bytes", "pixels"])
def test_huge_declared_size_is_refused_before_allocating(tmp_path, kind, big):
    # Over 1 GiB decoded; or, for Pillow's formats, 96 M pixels: over Pillow's 89 M, whose
    # DecompressionBombWarning would otherwise be printed.
    size = (65_000, 65_000) if big == "bytes" or kind == "tif" else (12_000, 8_000)
    path = tmp_path / f"huge.{kind}"
    path.write_bytes(with_size(small_file(kind), kind, *size))
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no DecompressionBombWarning
            with pytest.raises(CnnlabError, match="declares") as info:
                read_array(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_line_naming(info, path)
    assert peak < 16 << 20


def test_pillow_decompression_bomb_error_is_a_cnnlab_error(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("L", (30, 30)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(CnnlabError, match="declares a 30x30 image"):
        read_array(path)  # refused by cnnlab's own check, before Pillow warns
    monkeypatch.setattr(imageio, "_check_declared_size", lambda data, path: None)
    with pytest.raises(CnnlabError, match="too large") as info:
        read_array(path)  # Pillow's own error, when a header escapes cnnlab's check
    one_line_naming(info, path)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_png16_zlib_bomb_stops_at_the_declared_size(tmp_path):
    header = struct.pack(">IIBBBBB", 4, 4, 16, 2, 0, 0, 0)  # 4x4 16-bit RGB
    idat = zlib.compress(bytes(64 << 20), 9)  # 64 MiB of zeros in about 64 KiB
    path = tmp_path / "bomb.png"
    path.write_bytes(
        imageio._PNG_MAGIC
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )
    tracemalloc.start()
    try:
        with pytest.raises(CnnlabError, match=r"damaged PNG .*Too much image data"):
            read_array(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_png_with_a_flipped_byte_in_its_pixels_is_refused(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[data.index(b"IDAT") + 8] ^= 0x01  # Pillow alone does not check the IDAT CRC
    path = tmp_path / "flipped.png"
    path.write_bytes(bytes(data))
    with pytest.raises(CnnlabError, match="CRC"):
        read_array(path)


# ----------------------------------------------------------------------------- channels
def test_rgba_is_described_as_four_channels(tmp_path):
    root = tmp_path / "r"
    for name, mode in (("gray", "L"), ("rgba", "RGBA")):
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.new(mode, (4, 4), (40 * i + 1,) * len(mode)).save(root / name / f"{i}.png")
    with pytest.raises(CnnlabError) as info:
        load_folders(root)
    message = one_line_naming(info, root / "rgba" / "0.png")
    assert "has 4 channels (RGBA)" in message and "has 1 channel (gray)" in message
    assert "3 channels" not in message
    assert "--channels 1 (gray) or --channels 3 (RGB)" in message
    image = read_image_file(root / "rgba" / "0.png")
    assert (image.array.shape, image.samples) == ((3, 4, 4), 4)
    data = load_folders(root, channels=3)
    assert data.meta["alpha_dropped"] == 2
    assert "3 channel(s) (alpha channel dropped from 2 files)" in format_description({"all": data})


# ----------------------------------------------------------------------------- OS errors
def test_symbolic_link_loops_are_named(tmp_path):
    root = make_classes(tmp_path / "r", {"a": [1, 2], "b": [3, 4]})
    loop = root / "a" / "loop.tif"
    loop.symlink_to(loop)
    with pytest.raises(CnnlabError, match="symbolic link loop") as info:
        read_array(loop)
    one_line_naming(info, loop)
    with pytest.raises(CnnlabError, match="symbolic link loop") as info:
        load_folders(root)
    one_line_naming(info, loop)
    with pytest.warns(UserWarning, match="skipped 1"):
        assert len(load_folders(root, skip_bad=True)) == 4
    loop.unlink()
    folder_loop = root / "c"
    folder_loop.symlink_to(folder_loop)
    with pytest.raises(CnnlabError, match="symbolic link loop") as info:
        load_folders(root)
    one_line_naming(info, folder_loop)
    root_loop = tmp_path / "root loop"
    root_loop.symlink_to(root_loop)
    with pytest.raises(CnnlabError, match="symbolic link loop") as info:
        load_folders(root_loop)
    one_line_naming(info, root_loop)


def test_broken_link_among_images_is_reported_not_ignored(tmp_path):
    root = make_classes(tmp_path / "r", {"a": [1, 2], "b": [3, 4]})
    (root / "b" / "moved.tif").symlink_to(tmp_path / "gone.tif")
    with pytest.raises(CnnlabError, match="broken symbolic link") as info:
        load_folders(root)
    one_line_naming(info, root / "b" / "moved.tif")


@pytest.mark.parametrize("call", ["open", "stat", "scandir"])
def test_other_os_errors_name_the_path(tmp_path, monkeypatch, call):
    root = make_classes(tmp_path / "r", {"a": [1, 2], "b": [3, 4]})
    target = root / "b" / ("1.tif" if call != "scandir" else "")
    original = {"open": open, "stat": os.stat, "scandir": os.scandir}[call]

    def failing(path, *args, **kwargs):
        if os.fspath(path).rstrip("/") == os.fspath(target).rstrip("/"):
            raise OSError(errno.EIO, "Input/output error", os.fspath(path))
        return original(path, *args, **kwargs)

    module = __import__("builtins") if call == "open" else os
    monkeypatch.setattr(module, call, failing)
    with pytest.raises(CnnlabError, match=r"(?i)input/output error") as info:
        load_folders(root)
    one_line_naming(info, str(target).rstrip("/"))
