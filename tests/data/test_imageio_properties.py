"""Property tests: whatever bytes a file holds, reading it ends in one of two ways.

Either a :class:`CnnlabError` whose message is one line naming the file, or a ``(C, H, W)`` array
(C 1 or 3) of a supported dtype with finite values; never another exception, a hang, a large
allocation, a Python warning or a line printed by a library. The inputs are random bytes under
each image extension, and valid files (8/16-bit and float32 TIFF including ImageJ big-endian,
8/16-bit PNG gray and RGB, JPEG, BMP) mutated by bit flips, truncation, inserted and deleted
bytes and overwritten header fields; and, exhaustively, every field that declares an image's
size or type set to each of a list of edge values. Runs are derandomized, so CI sees the same
examples.
"""

from __future__ import annotations

import contextlib
import io
import signal
import struct
import tempfile
import tracemalloc
import warnings
import zlib
from datetime import timedelta
from pathlib import Path
from unittest import mock

import imagecodecs
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnlab.data import imageio
from cnnlab.data.folders import load_folders
from cnnlab.data.imageio import read_array, read_image
from cnnlab.errors import CnnlabError

DTYPES = {np.dtype(np.uint8), np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.float32)}
#: While fuzzing, the decoded-size cap is lowered, so an allocation that escapes it shows up.
CAP = 16 << 20
PEAK = 256 << 20
HANG_SECONDS = 20
SETTINGS = settings(
    deadline=timedelta(seconds=5),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _tiff(array: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **options)
    return buffer.getvalue()


def _pillow(array: np.ndarray, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=format, **options)
    return buffer.getvalue()


def _seeds() -> dict[str, bytes]:
    """Small valid files of each kind, named with their extension."""
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (12, 10), dtype=np.uint8)
    u16 = rng.integers(0, 65536, (12, 10), dtype=np.uint16)
    f32 = rng.normal(size=(12, 10)).astype(np.float32)
    rgb8 = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    rgb16 = rng.integers(0, 65536, (12, 10, 3), dtype=np.uint16)
    return {
        "u8.tif": _tiff(u8),
        "u16 strips.tif": _tiff(u16, rowsperstrip=4),
        "u16 zlib.tif": _tiff(u16, compression="zlib", rowsperstrip=4),
        "u16 zlib one strip.tif": _tiff(u16, compression="zlib", metadata=None),
        "f32.tif": _tiff(f32),
        # Exponents one below all-ones: a single flipped bit makes infinity or NaN.
        "f32 near max.tif": _tiff((np.sign(f32) * 3e38).astype(np.float32)),
        "u16 imagej be.tif": _tiff(u16, imagej=True, byteorder=">"),
        "f32 imagej be.tif": _tiff(f32, imagej=True, byteorder=">"),
        "stack imagej.tif": _tiff(np.stack([u16, u16 // 2]), imagej=True),
        "rgb8.tif": _tiff(rgb8, photometric="rgb"),
        "gray8.png": _pillow(u8, "PNG"),
        "gray16.png": _pillow(u16, "PNG"),
        "rgb8.png": _pillow(rgb8, "PNG"),
        "rgb16.png": imagecodecs.png_encode(rgb16),
        "rgb8.jpg": _pillow(rgb8, "JPEG", quality=90),
        "gray8.jpg": _pillow(u8, "JPEG"),
        "rgb8.bmp": _pillow(rgb8, "BMP"),
    }


def _fields(name: str, data: bytes) -> list[tuple[int, int, str]]:
    """(offset, size, byte order) of the header fields that declare an image's size and type."""
    if name.endswith(".tif"):
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            tags = tif.pages[0].tags
            order = tif.byteorder
            return [
                (tags[code].valueoffset, 2 if tags[code].dtype == 3 else 4, order)
                for code in (256, 257, 258, 273, 277, 278, 279)
                if code in tags
            ]
    if name.endswith(".png"):
        return [(16, 4, ">"), (20, 4, ">"), (24, 1, ">"), (25, 1, ">")]
    if name.endswith(".bmp"):
        return [(18, 4, "<"), (22, 4, "<"), (28, 2, "<"), (30, 4, "<")]
    sof = data.index(b"\xff\xc0")
    return [(sof + 5, 2, ">"), (sof + 7, 2, ">"), (sof + 9, 1, ">")]


SEEDS = _seeds()
FIELDS = {name: _fields(name, data) for name, data in SEEDS.items()}
MAGIC = {".tif": b"II*\x00", ".png": imageio._PNG_MAGIC, ".jpg": b"\xff\xd8\xff", ".bmp": b"BM"}
INTERESTING = [0, 1, 2, 3, 8, 16, 255, 256, 0x7FFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF]

flips = st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(1, 255))
cuts = st.tuples(st.just("cut"), st.integers(0, 1 << 20))
inserts = st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=16))
deletes = st.tuples(st.just("delete"), st.integers(0, 1 << 20), st.integers(1, 16))
values = st.sampled_from(INTERESTING) | st.integers(0, 2**32 - 1)
# Anywhere among the first bytes (TIFF IFD, PNG IHDR, BMP and JPEG headers come first) ...
fields = st.tuples(
    st.just("field"), st.integers(0, 255), st.sampled_from([1, 2, 4]), values, st.sampled_from("<>")
)
# ... or exactly a field that declares the size or type of the image.
size_fields = st.tuples(st.just("size field"), st.integers(0, 1 << 10), values)


def mutate(name: str, operations: list[tuple]) -> bytes:
    data = bytearray(SEEDS[name])
    for kind, position, *rest in operations:
        if not data:
            break
        if kind == "size field":
            position, size, order = FIELDS[name][position % len(FIELDS[name])]
            kind, rest = "field", [size, rest[0], order]
        position %= len(data)
        if kind == "flip":
            data[position] ^= rest[0]
        elif kind == "cut":
            del data[position:]
        elif kind == "insert":
            data[position:position] = rest[0]
        elif kind == "delete":
            del data[position : position + rest[0]]
        else:
            size, value, order = rest
            packed = struct.pack(order + {1: "B", 2: "H", 4: "I"}[size], value % (1 << 8 * size))
            data[position : position + size] = packed[: len(data) - position]
    return bytes(data)


def fix_png_crcs(data: bytes) -> bytes:
    """The chunks' CRCs made right again, so that a mutation gets past the CRC check."""
    data, pos = bytearray(data), len(imageio._PNG_MAGIC)
    while pos + 12 <= len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        if pos + 12 + length > len(data):
            break
        crc = zlib.crc32(bytes(data[pos + 4 : pos + 8 + length]))
        struct.pack_into(">I", data, pos + 8 + length, crc)
        pos += 12 + length
    return bytes(data)


@st.composite
def mutated_files(draw) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(SEEDS)))
    operation = st.one_of(flips, cuts, inserts, deletes, fields, size_fields)
    data = mutate(name, draw(st.lists(operation, max_size=4)))
    if name.endswith(".png") and draw(st.booleans()):
        data = fix_png_crcs(data)
    return Path(name).suffix, data


@st.composite
def random_files(draw) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from(sorted(MAGIC)))
    data = draw(st.binary(max_size=1024))
    return suffix, (MAGIC[suffix] + data if draw(st.booleans()) else data)


any_file = st.one_of(random_files(), mutated_files())


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory(prefix="cnnlab-fuzz-") as name:
        yield Path(name)


@contextlib.contextmanager
def guarded(capfd, caplog):
    """No hang, no allocation over PEAK, no warning, no log record, nothing printed inside."""

    def hang(signum, frame):
        raise TimeoutError(f"reading took over {HANG_SECONDS} s")

    caplog.clear()
    alarm = hasattr(signal, "SIGALRM")  # POSIX; elsewhere the hypothesis deadline must do
    previous = signal.signal(signal.SIGALRM, hang) if alarm else None
    if alarm:
        signal.alarm(HANG_SECONDS)
    tracemalloc.start()
    try:
        # Recorded, not turned into errors: the readers would catch those as a bad file.
        with (
            mock.patch.object(imageio, "MAX_IMAGE_BYTES", CAP),
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always")
            yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        if alarm:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    assert peak < PEAK, f"{peak / 2**20:.0f} MiB allocated"
    assert [str(warning.message) for warning in caught] == []
    assert capfd.readouterr() == ("", "")
    # Under pytest the root logger has handlers, so a leaked record would not reach stderr.
    assert [record.getMessage() for record in caplog.records] == []


def check_error(error: CnnlabError, path: Path) -> None:
    message = str(error)
    assert "\n" not in message
    assert str(path) in message


def check_image(array: np.ndarray) -> None:
    assert array.dtype in DTYPES
    assert array.ndim == 3 and array.shape[0] in (1, 3) and min(array.shape) >= 1
    if array.dtype.kind == "f":
        assert np.isfinite(array).all()


def test_seeds_are_valid_images(folder):
    for name, data in SEEDS.items():
        path = folder / name
        path.write_bytes(data)
        array, _ = read_array(path, plane=0)
        check_image(array)


@settings(SETTINGS, max_examples=1000)
@given(file=any_file, channels=st.sampled_from([None, 1, 3]), plane=st.sampled_from([None, 0, 1]))
def test_read_array_gives_an_image_or_one_line_error(folder, capfd, caplog, file, channels, plane):
    suffix, data = file
    path = folder / f"fuzzed image{suffix}"
    path.write_bytes(data)
    with guarded(capfd, caplog):
        try:
            array, bit_depth = read_array(path, channels=channels, plane=plane)
        except CnnlabError as error:
            check_error(error, path)
            return
    check_image(array)
    assert bit_depth in (8, 16, 32, 64)
    assert channels is None or array.shape[0] == channels


@st.composite
def resized_files(draw) -> tuple[str, bytes]:
    """A valid file with one or two of its size and type fields overwritten."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    operation = st.tuples(
        st.just("size field"), st.integers(0, 1 << 10), st.sampled_from(INTERESTING)
    )
    data = mutate(name, draw(st.lists(operation, min_size=1, max_size=2)))
    return Path(name).suffix, fix_png_crcs(data) if name.endswith(".png") else data


@settings(SETTINGS, max_examples=300)
@given(file=resized_files())
def test_any_declared_size_gives_an_image_or_one_line_error(folder, capfd, caplog, file):
    suffix, data = file
    path = folder / f"resized{suffix}"
    path.write_bytes(data)
    with guarded(capfd, caplog):
        try:
            array, _ = read_array(path, plane=0)
        except CnnlabError as error:
            check_error(error, path)
            return
    check_image(array)


def test_every_size_field_overwrite_gives_an_image_or_one_line_error(folder, capfd, caplog):
    """Each size or type field set to each interesting value, and width and height together.

    Exhaustive rather than drawn: the one field of one seed that a decoder trusts (a single
    compressed strip, say) is too rare a draw to rely on.
    """
    large = [0, 1, 0x7FFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF]
    for name, fields in FIELDS.items():
        changes = [[(index, value)] for index in range(len(fields)) for value in INTERESTING]
        changes += [[(0, width), (1, height)] for width in large for height in large]
        for change in changes:
            data = mutate(name, [("size field", index, value) for index, value in change])
            path = folder / f"sized {name}"
            path.write_bytes(fix_png_crcs(data) if name.endswith(".png") else data)
            with guarded(capfd, caplog):
                try:
                    array, _ = read_array(path, plane=0)
                except CnnlabError as error:
                    check_error(error, path)
                    continue
            check_image(array)


@settings(SETTINGS, max_examples=150)
@given(file=any_file)
def test_read_image_gives_a_tensor_or_one_line_error(folder, capfd, caplog, file):
    suffix, data = file
    path = folder / f"fuzzed tensor{suffix}"
    path.write_bytes(data)
    with guarded(capfd, caplog):
        try:
            tensor, _ = read_image(path, plane=0)
        except CnnlabError as error:
            check_error(error, path)
            return
    check_image(tensor.numpy())


@settings(SETTINGS, max_examples=300)
@given(file=any_file)
def test_load_folders_gives_a_dataset_or_one_line_error(folder, capfd, caplog, file):
    suffix, data = file
    root = folder / "classes"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for old in (root / name).iterdir():
            old.unlink()
    (root / "b" / "good.tif").write_bytes(SEEDS["u16 strips.tif"])
    path = root / "a" / f"fuzzed{suffix}"
    path.write_bytes(data)
    with guarded(capfd, caplog):
        try:
            dataset = load_folders(root, workers=1)
        except CnnlabError as error:
            check_error(error, path)
            return
    assert len(dataset) == 2 and dataset.class_names == ("a", "b")
    for image in dataset.images:
        check_image(image.numpy())
