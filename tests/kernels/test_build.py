"""Building the kernels: once per machine and source, atomically, and never a hard failure."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from cnnlab.kernels import build, convpool
from cnnlab.kernels.build import FLAGS, compiler, library, status

needs_compiler = pytest.mark.skipif(compiler() is None, reason="no C++ compiler here")


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty cache folder and a library() that looks again; the suite's own afterwards."""
    monkeypatch.setenv("CNNLAB_CACHE_DIR", str(tmp_path / "cache"))
    build.forget()
    yield tmp_path
    build.forget()


@needs_compiler
def test_built_once_into_the_cache_and_loaded(fresh):
    path = build.build(compiler())
    assert path.is_relative_to(fresh / "cache" / "kernels")
    assert os.listdir(path.parent) == [path.name]  # no temporary file left beside it
    first = path.stat().st_mtime_ns
    assert build.build(compiler()) == path
    assert path.stat().st_mtime_ns == first  # not compiled again
    assert library() is not None
    assert status().startswith("native kernels: in use")


@needs_compiler
def test_another_source_compiler_processor_or_flags_get_their_own_build(monkeypatch, fresh):
    cxx = compiler()
    key = build.build_key(cxx)
    assert build.build_key(cxx) == key
    assert build.build_key(cxx, (*FLAGS, "-mno-avx512f")) != key
    edited = fresh / "convpool.cpp"
    edited.write_bytes(build.SOURCE.read_bytes() + b"\n// edited\n")
    with monkeypatch.context() as patch:
        patch.setattr(build, "SOURCE", edited)
        assert build.build_key(cxx) != key
    with monkeypatch.context() as patch:
        patch.setattr(build, "_compiler_version", lambda cxx: "g++ (another) 99.0")
        assert build.build_key(cxx) != key
    monkeypatch.setattr(build, "_cpu_identity", lambda: "model name : another processor")
    assert build.build_key(cxx) != key


def test_without_a_compiler_pytorch_trains(monkeypatch, fresh):
    monkeypatch.setenv("CXX", str(fresh / "no-such-compiler"))
    assert library() is None
    assert status() == (
        "native kernels: not in use, no C++ compiler found (install g++, or set CXX); "
        "PyTorch's operators train instead"
    )
    x, weight, bias = torch.randn(2, 1, 8, 8), torch.randn(3, 1, 3, 3), torch.randn(3)
    assert convpool.conv_pool_relu(x, weight, bias, 0, first=True, last=True) is None


def test_a_failed_build_says_why_and_leaves_nothing(monkeypatch, fresh):
    broken = fresh / "broken-g++"
    broken.write_text('#!/bin/sh\necho "fatal error: no space left" >&2\nexit 1\n')
    broken.chmod(broken.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("CXX", str(broken))
    assert library() is None
    assert "the build failed: broken-g++ failed on convpool.cpp: fatal error: no space left" in (
        status()
    )
    built = list((fresh / "cache" / "kernels").rglob("*"))
    assert all(p.is_dir() for p in built)


def test_turned_off_by_the_environment(monkeypatch, fresh):
    monkeypatch.setenv("CNNLAB_NATIVE", "0")
    assert library() is None
    assert "turned off by CNNLAB_NATIVE=0" in status()
    assert not list(fresh.glob("cache/kernels/*"))  # nothing built


def test_stale_temporary_files_of_killed_builds_are_removed(fresh):
    folder = fresh / "leftovers"
    folder.mkdir()
    old, recent = folder / ".building-old.so", folder / ".building-recent.so"
    old.write_bytes(b"half")
    recent.write_bytes(b"being written")
    os.utime(old, (0, 0))
    build._remove_stale(folder)
    assert not old.exists() and recent.exists()


@needs_compiler
def test_the_eight_lane_build_for_processors_without_avx512(monkeypatch, fresh):
    """Processors without AVX-512 get vectors of 8 floats: the same values and gradients."""
    try:
        eight = build.load(build.build(compiler(), (*FLAGS, "-mno-avx512f")))
    except RuntimeError as error:  # a compiler that does not know the flag
        pytest.skip(str(error))
    assert eight.cnnlab_vector_lanes() == 8
    monkeypatch.setattr(convpool, "library", lambda: eight)
    from test_convpool import SHAPES, test_values_and_gradients_match_pytorch

    for shape in SHAPES:
        test_values_and_gradients_match_pytorch(shape)
