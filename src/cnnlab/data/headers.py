"""What image files say about themselves, checked before a decoder trusts it.

A header may declare any size and a chunk may be damaged; a library may log a warning and carry
on with a wrong image. These helpers of :mod:`cnnlab.data.imageio` read frame headers and chunk
checksums, and keep libraries' log records per reading thread, so that damage becomes a
one-line error instead of a silently wrong image or a line on the user's terminal.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

from cnnlab.errors import CnnlabError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class LogCapture(logging.Filter):
    """Keeps libraries' log records on the thread that reads a file, instead of printing them.

    Installed once on the libraries' loggers. Outside :meth:`capture` records pass as usual, so
    a user's own use of the library is unaffected; each thread of the decoding pool sees its own.
    """

    def __init__(self, *names: str) -> None:
        super().__init__()
        self._local = threading.local()
        for name in names:
            logging.getLogger(name).addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        records = getattr(self._local, "records", None)
        if records is None:
            return True
        records.append(record)
        return False

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[logging.LogRecord]]:
        outer = getattr(self._local, "records", None)
        self._local.records = records = []
        try:
            yield records
        finally:
            self._local.records = outer


def logged_damage(
    path: Path, records: list[logging.LogRecord], kind: str = "TIFF"
) -> CnnlabError | None:
    """The first warning a library logged, as an error; None when it logged none."""
    warned = [record for record in records if record.levelno >= logging.WARNING]
    if not warned:
        return None
    message = " ".join(warned[0].getMessage().split())
    if message.startswith("<") and "> " in message:  # drop "<tifffile.TiffFile 'x.tif'> "
        message = message.split("> ", 1)[1]
    return CnnlabError(f"{path}: damaged {kind} ({message[:160]}); re-export or replace the file")


def jpeg_size(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, bytes per pixel) from a JPEG's frame header, if one comes before the scan."""
    pos = 2
    while pos + 10 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker in JPEG_SOF:
            height, width, components = struct.unpack(">HHB", data[pos + 5 : pos + 10])
            return width, height, min(max(components, 1), 4)
        elif marker == 0xDA:
            return None
        else:
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None


def check_png_chunks(data: bytes, path: Path) -> None:
    """Refuse a PNG with a damaged chunk: Pillow does not check the CRC of the pixel data."""
    pos, view = len(PNG_MAGIC), memoryview(data)
    while True:
        if pos + 12 > len(data):
            raise CnnlabError(f"{path}: truncated PNG file (no IEND chunk)")
        length, kind = struct.unpack_from(">I4s", data, pos)
        if pos + 12 + length > len(data):
            raise CnnlabError(f"{path}: truncated PNG file (chunk {kind!r} cut short)")
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(view[pos + 4 : pos + 8 + length]) != crc:
            raise CnnlabError(f"{path}: corrupt PNG file (chunk {kind!r} fails its CRC check)")
        pos += 12 + length
        if kind == b"IEND":
            return
