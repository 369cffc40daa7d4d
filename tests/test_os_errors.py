"""Operating-system refusals (read-only or full disks) end in one line that names the path.

The disks are real: small tmpfs mounts, made for the test and unmounted after it. Where the
test cannot mount (not root, no mount privilege), it is skipped and says why.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cnnlab.cli import main
from cnnlab.synth import synth_bacteria


@contextmanager
def tmpfs(where: Path, size_kb: int, read_only: bool = False) -> Iterator[Path]:
    where.mkdir()
    options = f"size={size_kb}k" + (",ro" if read_only else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    root = tmp_path_factory.mktemp("os") / "crops"
    synth_bacteria(root, per_class=10, seed=0, min_size=16, max_size=20)
    return root


def train(crops: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--data",
        str(crops),
        "--size",
        "16",
        "--model",
        "mlp",
        "--epochs",
        "2",
        "--no-cache",
        "--no-report",
        "--quiet",
        "--out",
        str(out),
        *extra,
    ]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_a_read_only_disk_is_named_in_one_line(crops, tmp_path, capsys):
    with tmpfs(tmp_path / "ro", 1024, read_only=True) as disk:
        assert main(train(crops, disk / "run")) == 2
        line = one_error_line(capsys)
    assert line == (f"cnnlab: error: {disk}: read-only file system; choose a writable place")


def test_a_full_disk_fails_in_one_line_and_keeps_the_old_run(crops, tmp_path, capsys):
    old = tmp_path / "old"
    assert main(train(crops, old)) == 0
    capsys.readouterr()
    size = sum(p.stat().st_size for p in old.rglob("*") if p.is_file()) // 1024
    # Room for the old run and a little more: not for a second run's checkpoint.
    with tmpfs(tmp_path / "full", size + 200) as disk:
        shutil.copytree(old, disk / "run")
        before = fingerprint(disk / "run")
        assert main(train(crops, disk / "run", "--overwrite")) == 2
        line = one_error_line(capsys)
        assert line.startswith(f"cnnlab: error: {disk}/.run.partial")
        assert line.endswith("no space left on device; free some disk space")
        assert fingerprint(disk / "run") == before
        assert sorted(p.name for p in disk.iterdir()) == ["run"]  # nothing half-made is left


def test_predictions_to_a_full_device_fail_in_one_line(crops, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train(crops, run)) == 0
    capsys.readouterr()
    assert main(["predict", str(run), str(crops / "rien"), "--out", "/dev/full"]) == 2
    line = one_error_line(capsys)
    assert line.startswith("cnnlab: error: /dev/full: ")
    assert "no space left on device" in line.lower()
