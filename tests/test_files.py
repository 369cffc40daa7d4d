"""Atomic writes: the old file or the new one, never half; errors that name the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cnnlab.errors import describe_os_error
from cnnlab.files import write_bytes, write_json


def test_atomic_writes_leave_the_old_file_when_they_fail(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    write_json(target, {"a": 1})

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["metrics.json"]  # no temporary file left behind


def test_atomic_writes_follow_links_and_stream_to_devices(tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    write_bytes(link, b"new")
    assert link.is_symlink() and real.read_text() == "new"
    with pytest.raises(OSError) as raised:
        write_bytes("/dev/full", b"x" * 10)
    assert Path("/dev/full").is_char_device()
    assert describe_os_error(raised.value) == (
        "/dev/full: no space left on device; free some disk space"
    )
