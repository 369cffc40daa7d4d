"""How long loading a folder of 20,000 small 16-bit TIFFs takes, first time and from the cache.

Writes synthetic 48x48 uint16 TIFFs (two classes) under a temporary directory, loads them with
``load_folders(..., workers=2, cache=<tmp>)`` twice and prints the times. ``--compare`` also
times serial, thread-pool and process-pool decoding of the first 2,000 files, the measurement
behind the choice of threads in :mod:`cnnlab.data.folders`.

Run: ``python bench/load_folders.py [--files 20000] [--compare]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tifffile

from cnnlab.data.folders import load_folders
from cnnlab.data.imageio import read_array


def write_tiffs(root: Path, count: int, size: int = 48) -> list[Path]:
    """``count`` random uint16 TIFFs split over two class folders; returns their paths."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        folder = root / ("rod" if i % 2 else "coccus")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"cell {i:05d} - C=0.tif"
        tifffile.imwrite(path, rng.integers(0, 65536, (size, size), dtype=np.uint16))
        paths.append(path)
    return paths


def timed(function: Callable[[], object], repeats: int = 1) -> float:
    """Median wall time of ``repeats`` calls (the machine is shared; the median is steadier)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare_executors(paths: list[Path], repeats: int = 5) -> None:
    def serial() -> None:
        [read_array(path) for path in paths]

    def threads() -> None:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(read_array, paths))

    def processes() -> None:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(2, mp_context=context) as pool:
            list(pool.map(read_array, paths, chunksize=64))

    for name, function in [("serial", serial), ("2 threads", threads), ("2 processes", processes)]:
        print(f"decode {len(paths)} files, {name:12s}: {timed(function, repeats):6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--compare", action="store_true", help="also compare executors")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-") as temporary:
        root, cache_dir = Path(temporary) / "crops", Path(temporary) / "cache"
        start = time.perf_counter()
        paths = write_tiffs(root, args.files)
        print(f"wrote {args.files} 48x48 uint16 TIFFs in {time.perf_counter() - start:.1f} s")
        if args.compare:
            compare_executors(paths[:2000])
        first = timed(lambda: load_folders(root, workers=2, cache=cache_dir))
        second = timed(lambda: load_folders(root, workers=2, cache=cache_dir))
        dataset = load_folders(root, workers=2, cache=cache_dir)
        print(f"load_folders, first time (workers=2): {first:6.2f} s")
        print(f"load_folders, second time (cached):   {second:6.2f} s")
        print(f"dataset: {tuple(dataset.images.shape)} {dataset.dtype}, {dataset.class_counts()}")


if __name__ == "__main__":
    main()
