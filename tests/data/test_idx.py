from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from cnnlab.data.idx import read_idx, write_idx
from cnnlab.errors import CnnlabError

CASES = [
    (np.uint8, 0x08),
    (np.int8, 0x09),
    (np.int16, 0x0B),
    (np.int32, 0x0C),
    (np.float32, 0x0D),
    (np.float64, 0x0E),
]


def idx_bytes(code: int, shape: tuple[int, ...], body: bytes) -> bytes:
    """An IDX file built by hand from the format description."""
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + body


@pytest.mark.parametrize(("dtype", "code"), CASES)
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (2, 1, 3, 2)])
def test_reads_hand_built_files_of_every_type_and_rank(tmp_path, dtype, code, shape):
    values = (np.arange(np.prod(shape)) - 3).astype(dtype).reshape(shape)
    path = tmp_path / "data.idx"
    path.write_bytes(
        idx_bytes(code, shape, values.astype(np.dtype(dtype).newbyteorder(">")).tobytes())
    )
    result = read_idx(path)
    assert result.dtype == dtype
    assert result.dtype.isnative
    np.testing.assert_array_equal(result, values)


@pytest.mark.parametrize(("dtype", "code"), CASES)
def test_write_produces_the_documented_layout(tmp_path, dtype, code):
    values = np.array([[1, 2, 3], [4, 5, 6]], dtype=dtype)
    write_idx(tmp_path / "a.idx", values)
    expected = idx_bytes(code, (2, 3), values.astype(np.dtype(dtype).newbyteorder(">")).tobytes())
    assert (tmp_path / "a.idx").read_bytes() == expected


def test_gzip_is_detected_by_content_not_name(tmp_path):
    values = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.idx.gz", values)
    assert (tmp_path / "a.idx.gz").read_bytes()[:2] == b"\x1f\x8b"
    renamed = tmp_path / "no-extension"
    renamed.write_bytes((tmp_path / "a.idx.gz").read_bytes())
    np.testing.assert_array_equal(read_idx(renamed), values)
    plain = tmp_path / "plain.gz"  # named .gz but not compressed
    plain.write_bytes(gzip.decompress(renamed.read_bytes()))
    np.testing.assert_array_equal(read_idx(plain), values)


def test_result_is_writable(tmp_path):
    write_idx(tmp_path / "a.idx", np.zeros((2, 2), dtype=np.int32))
    read_idx(tmp_path / "a.idx")[0, 0] = 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "magic"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "type code 0x07"),
        (idx_bytes(0x08, (2, 3), bytes(5)), "truncated"),
        (idx_bytes(0x0C, (2,), bytes(7)), "truncated"),
        (idx_bytes(0x08, (2, 3), bytes(7)), "extra data"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
        (b"\x00\x00", "too short"),
    ],
)
def test_malformed_files_are_refused_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad file.idx"
    path.write_bytes(content)
    with pytest.raises(CnnlabError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_truncated_gzip_is_refused(tmp_path):
    write_idx(tmp_path / "a.gz", np.arange(1000, dtype=np.int32))
    data = (tmp_path / "a.gz").read_bytes()
    (tmp_path / "a.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CnnlabError, match=r"a\.gz"):
        read_idx(tmp_path / "a.gz")


def test_missing_file(tmp_path):
    with pytest.raises(CnnlabError, match="not found"):
        read_idx(tmp_path / "missing.idx")


def test_write_refuses_types_idx_cannot_hold(tmp_path):
    with pytest.raises(CnnlabError, match="int64"):
        write_idx(tmp_path / "a.idx", np.zeros(3, dtype=np.int64))
