"""Compiling cnnlab's native kernels with the machine's own C++ compiler, once per machine.

The source (``convpool.cpp``, beside this file) is compiled for the processor it runs on
(``-march=native``: AVX-512 where the CPU has it, AVX2 otherwise) into
``$CNNLAB_CACHE_DIR/kernels/<key>/`` (default ``~/.cache/cnnlab``). The key is a hash of the
source, the compiler's version, the flags and the CPU's model and feature flags, so a changed
source, compiler or processor (a cache folder shared between machines) gets its own build and a
stale one is never loaded. ``make`` builds it right after installing (``python -m
cnnlab.kernels``); otherwise the first training run that can use it does, in about a second.
The library is written to a temporary name and renamed into place, so processes starting
together (``--nproc``, sweep workers) never load half a file.

The library is linked against the OpenMP runtime that PyTorch itself loaded (``libgomp.so.1``:
the loader matches the name), so its threads are PyTorch's own and never compete with them.

Where no compiler is found, the build fails, or ``CNNLAB_NATIVE=0`` is set, :func:`library`
returns None and cnnlab trains and scores with PyTorch's operators: the same function, about
half as fast for LeNet-5 (README, "Measured"). :func:`status` says which, and why.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from cnnlab.files import default_cache_dir, fsync_folder, replace

SOURCE = Path(__file__).with_name("convpool.cpp")
FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-fno-math-errno")
LIBRARY_NAME = "libcnnlab_convpool.so"
DISABLE_VARIABLE = "CNNLAB_NATIVE"
COMPILE_TIMEOUT_S = 120.0
STALE_AFTER_S = 3600.0

_lock = threading.Lock()

_why_not: list[str] = []


def compiler() -> str | None:
    """The C++ compiler to use: ``$CXX`` if set, else ``g++`` or ``c++`` on the PATH."""
    configured = os.environ.get("CXX")
    if configured:
        return shutil.which(configured)
    return shutil.which("g++") or shutil.which("c++")


def _cpu_identity() -> str:
    # The model name and feature flags: a build for one processor is never loaded on another.
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() + platform.machine()
    wanted = [line for line in text.splitlines() if line.startswith(("model name", "flags"))]
    return "\n".join(sorted(set(wanted)))


def _compiler_version(cxx: str) -> str:
    done = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30)
    return done.stdout


def build_key(cxx: str, flags: tuple[str, ...] = FLAGS) -> str:
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), _compiler_version(cxx).encode(), " ".join(flags).encode()):
        digest.update(part)
        digest.update(b"\0")
    digest.update(_cpu_identity().encode())
    digest.update(platform.machine().encode())
    return digest.hexdigest()[:20]


def library_path(cxx: str, flags: tuple[str, ...] = FLAGS) -> Path:
    return default_cache_dir() / "kernels" / build_key(cxx, flags) / LIBRARY_NAME


def build(cxx: str, flags: tuple[str, ...] = FLAGS) -> Path:
    """Compiles the library unless this machine's build is already there; returns its path.

    Raises RuntimeError with the compiler's last line when the build fails.
    """
    target = library_path(cxx, flags)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target.parent)
    handle, temporary = tempfile.mkstemp(prefix=".building-", suffix=".so", dir=target.parent)
    os.close(handle)
    try:
        done = subprocess.run(
            [cxx, *flags, "-o", temporary, str(SOURCE)],
            capture_output=True,
            text=True,
            timeout=COMPILE_TIMEOUT_S,
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise RuntimeError(f"{Path(cxx).name} failed on {SOURCE.name}: {last}")
        with open(temporary, "rb+") as built:
            os.fsync(built.fileno())
        replace(temporary, target)
        fsync_folder(target.parent)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


def _remove_stale(folder: Path) -> None:
    """Temporary files of builds killed mid-way (an hour old: never a build still running)."""
    cutoff = time.time() - STALE_AFTER_S
    for leftover in folder.glob(".building-*"):
        try:
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
        except OSError:
            pass  # another process removed it, or it is not ours to remove


def library() -> ctypes.CDLL | None:
    """The loaded kernels, built first if needed; None where they cannot be (see status()).

    Thread-safe: the training run's warm-up thread and its first forward pass may both ask,
    and the second waits for the first instead of building again.
    """
    with _lock:
        return _library()


def forget() -> None:
    """Makes the next library() look again (after a change of environment, in tests)."""
    with _lock:
        _library.cache_clear()


@functools.cache
def _library() -> ctypes.CDLL | None:
    if os.environ.get(DISABLE_VARIABLE, "1").strip().lower() in ("0", "false", "no", "off"):
        _why_not.append(f"turned off by {DISABLE_VARIABLE}=0")
        return None
    cxx = compiler()
    if cxx is None:
        _why_not.append("no C++ compiler found (install g++, or set CXX)")
        return None
    import torch  # noqa: F401  (its OpenMP runtime must be loaded first, to be shared)

    try:
        return load(build(cxx))
    except (OSError, RuntimeError, AttributeError, subprocess.SubprocessError) as error:
        _why_not.append(f"the build failed: {error}")
        return None


def load(path: Path) -> ctypes.CDLL:
    """The library at ``path`` with its functions' argument types declared."""
    loaded = ctypes.CDLL(str(path))
    loaded.cnnlab_vector_lanes.restype = ctypes.c_int
    loaded.cnnlab_vector_lanes.argtypes = []
    kinds = {"p": ctypes.c_void_p, "i": ctypes.c_int, "l": ctypes.c_long}
    signatures = {
        # x, N, C, H, W, pad, weight and its 4 strides, bias, Co, K, xp, Wpa, y, idx, threads
        "cnnlab_wide_forward": "piiiii" + "pllll" + "pii" + "pi" + "pp" + "i",
        # x, N, C, H, W, weight and its 4 strides, bias, Co, K, y, idx, hwc, threads
        "cnnlab_deep_forward": "piiii" + "pllll" + "pii" + "pp" + "ii",
        # xp, N, C, Hp, row, hwc_in, weight and its 4 strides, Co, K, y, idx, gy, Hq, Wq,
        # hwc_out, gw and its 4 strides, gb, gx, scratch, threads
        "cnnlab_backward": "piiiii" + "pllll" + "ii" + "ppp" + "iii" + "pllll" + "ppp" + "i",
    }
    for name, kind in signatures.items():
        function = getattr(loaded, name)
        function.restype = ctypes.c_int  # 0, or 1: a working copy could not be allocated
        function.argtypes = [kinds[letter] for letter in kind]
    return loaded


def status() -> str:
    """One line: whether cnnlab uses the native kernels, and why not where it does not."""
    loaded = library()
    if loaded is not None:
        return f"native kernels: in use ({loaded.cnnlab_vector_lanes() * 32}-bit vectors)"
    return f"native kernels: not in use, {_why_not[-1]}; PyTorch's operators train instead"
