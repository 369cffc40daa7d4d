"""Atomic writes: the old file or the new one, never half; errors that name the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cnnlab.errors import describe_os_error
from cnnlab.files import write_bytes, write_folder, write_json


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


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_write_folder_builds_a_whole_folder_with_the_usual_permissions(tmp_path):
    out = tmp_path / "out"
    write_folder(out, {"a.txt": b"1", "sub/b.txt": b"2", "sub/deeper/c.txt": b"3"})
    assert _tree(out) == {"a.txt": b"1", "sub/b.txt": b"2", "sub/deeper/c.txt": b"3"}
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's owner-only 0o700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no hidden leftovers

    write_folder(out, {"new.txt": b"4"})  # replaces the whole folder: no stale files
    assert _tree(out) == {"new.txt": b"4"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_write_folder_keeps_the_old_folder_when_writing_or_its_check_fails(tmp_path, monkeypatch):
    out = tmp_path / "out"
    write_folder(out, {"old.txt": b"old"})
    calls = []
    real_fsync = os.fsync

    def failing_fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError) as raised:
        write_folder(out, {"a.txt": b"1", "b.txt": b"2"})
    assert raised.value.filename.endswith("b.txt")  # the error names the file it failed on
    monkeypatch.undo()
    assert _tree(out) == {"old.txt": b"old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

    def refuse() -> None:
        raise RuntimeError("something appeared at out")

    with pytest.raises(RuntimeError):
        write_folder(out, {"a.txt": b"1"}, check=refuse)
    assert _tree(out) == {"old.txt": b"old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
