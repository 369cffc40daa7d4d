"""Tests for the synthetic phase-contrast bacteria generator.

The images are checked against what a phase-contrast crop is (16-bit counts on a bright
background, dark cells, Poisson shot noise) with SciPy as the independent image-processing
reference, and the dataset against the course's layout and the safety rules of the CLI.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from cnnlab.data.synth import CLASSES, MANIFEST_NAME, gaussian_blur, render_crop, synth_bacteria
from cnnlab.errors import CnnlabError

ndimage = pytest.importorskip("scipy.ndimage")

PER_CLASS = 20


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("synth") / "bacteria"
    counts = synth_bacteria(out, per_class=PER_CLASS, seed=3)
    return out, counts


def _crops(out: Path, name: str) -> list[np.ndarray]:
    return [tifffile.imread(path) for path in sorted((out / name).glob("*.tif"))]


def _dark_fraction(image: np.ndarray) -> float:
    """Fraction of pixels darker than 3/4 of the crop's median after a light smoothing."""
    smooth = ndimage.gaussian_filter(image.astype(np.float64), 1.0)
    return float(np.mean(smooth < 0.75 * np.median(image)))


def _flattened(image: np.ndarray) -> np.ndarray:
    """The lightly smoothed crop divided by its illumination (a very broad blur)."""
    data = image.astype(np.float64)
    broad = ndimage.gaussian_filter(data, min(data.shape) / 3, mode="nearest")
    return ndimage.gaussian_filter(data, 1.0) / broad


def _is_flat(image: np.ndarray) -> bool:
    return bool(_flattened(image).min() > 0.9)


def test_layout_counts_and_names(dataset: tuple[Path, dict[str, int]]) -> None:
    out, counts = dataset
    assert counts == dict.fromkeys(CLASSES, PER_CLASS)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(CLASSES)
    for name in CLASSES:
        files = sorted((out / name).iterdir())
        assert len(files) == PER_CLASS
        for path in files:
            assert path.suffix == ".tif"
            assert " " in path.name and "=" in path.name and path.name.count(".") >= 2
            assert path.name.startswith("roi ")


def test_crops_are_16_bit_with_bright_background(dataset: tuple[Path, dict[str, int]]) -> None:
    out, _ = dataset
    for name in CLASSES:
        for image in _crops(out, name):
            assert image.dtype == np.uint16 and image.ndim == 2
            assert image.max() > 10_000  # genuinely 16-bit, far beyond the 8-bit range
    for name in ("1cell", "rien"):
        for image in _crops(out, name):
            assert 20_000 <= np.median(image) <= 40_000


def test_files_carry_imagej_metadata(dataset: tuple[Path, dict[str, int]]) -> None:
    out, _ = dataset
    with tifffile.TiffFile(next((out / "1cell").glob("*.tif"))) as tif:
        assert tif.is_imagej
        assert tif.pages[0].bitspersample == 16


def test_sizes_within_range_and_varying(tmp_path: Path) -> None:
    counts = synth_bacteria(tmp_path / "d", per_class=15, seed=1, min_size=24, max_size=40)
    assert sum(counts.values()) == 60
    shapes = [img.shape for name in CLASSES for img in _crops(tmp_path / "d", name)]
    assert all(24 <= side <= 40 for shape in shapes for side in shape)
    assert len(set(shapes)) > 10
    assert max(max(s) / min(s) for s in shapes) <= 1.2  # square or slightly rectangular
    fixed = synth_bacteria(tmp_path / "f", per_class=2, seed=1, min_size=30, max_size=30)
    assert fixed["rien"] == 2
    assert {img.shape for img in _crops(tmp_path / "f", "groups")} == {(30, 30)}


def test_cells_are_darker_than_background(dataset: tuple[Path, dict[str, int]]) -> None:
    out, _ = dataset
    for name in ("1cell", "2cell", "groups"):
        for image in _crops(out, name):
            smooth = ndimage.gaussian_filter(image.astype(np.float64), 1.0)
            assert smooth.min() < 0.85 * np.median(image), name


def test_cells_have_a_bright_halo(dataset: tuple[Path, dict[str, int]]) -> None:
    """Just outside a cell the image is brighter than the background further away."""
    out, _ = dataset
    gains = []
    for image in _crops(out, "1cell"):
        smooth = ndimage.gaussian_filter(image.astype(np.float64), 1.0)
        cell = smooth < 0.75 * np.median(image)
        distance = ndimage.distance_transform_edt(~cell)
        near = (distance > 2.5) & (distance <= 5.5)
        far = distance > 9
        if cell.any() and far.sum() > 20:
            gains.append(np.median(smooth[near]) / np.median(smooth[far]))
    assert len(gains) >= PER_CLASS // 2
    assert np.median(gains) > 1.03


def test_rien_is_empty_or_a_bead(dataset: tuple[Path, dict[str, int]]) -> None:
    """Empty crops are flat once the illumination is divided out; beads are a dark ring around
    a brighter centre."""
    out, _ = dataset
    empty = beads = 0
    for image in _crops(out, "rien"):
        smooth = ndimage.gaussian_filter(image.astype(np.float64), 1.0)
        flat = _flattened(image)
        if _is_flat(image):
            empty += 1
            assert flat.max() < 1.1
        else:
            beads += 1
            ys, xs = np.nonzero(flat < 0.9)
            centre = smooth[round(ys.mean()), round(xs.mean())]
            assert centre > 1.03 * smooth.min()
    assert empty >= 3 and beads >= 3


def test_noise_is_shot_noise(dataset: tuple[Path, dict[str, int]]) -> None:
    """Pixel-to-pixel noise of empty crops follows Poisson statistics of the camera: its
    variance is a small gain (1.5-3 counts per photoelectron) times the intensity, plus read
    noise, so its standard deviation scales with the square root of the counts."""
    out, _ = dataset
    ratios = []
    for image in _crops(out, "rien"):
        data = image.astype(np.float64)
        if _is_flat(image):
            noise = np.std(np.diff(data, axis=1)) / np.sqrt(2)
            ratios.append(noise**2 / data.mean())
    assert ratios
    assert all(1.0 < ratio < 3.6 for ratio in ratios), ratios


def test_classes_are_distinguishable_by_dark_area(dataset: tuple[Path, dict[str, int]]) -> None:
    """The dark area per crop grows from empty backgrounds to one cell, two cells and groups:
    a guard against degenerate shapes (empty, or all classes alike)."""
    out, _ = dataset
    means = {name: np.mean([_dark_fraction(img) for img in _crops(out, name)]) for name in CLASSES}
    empty = [_dark_fraction(img) for img in _crops(out, "rien") if _is_flat(img)]
    assert np.mean(empty) < 0.2 * means["1cell"], (np.mean(empty), means)
    assert means["rien"] < means["1cell"] < means["2cell"] < means["groups"], means


def test_same_seed_same_bytes_and_prefix_stability(tmp_path: Path) -> None:
    synth_bacteria(tmp_path / "a", per_class=4, seed=7)
    synth_bacteria(tmp_path / "b", per_class=4, seed=7)
    synth_bacteria(tmp_path / "c", per_class=4, seed=8)
    synth_bacteria(tmp_path / "small", per_class=2, seed=7)
    for name in CLASSES:
        a = {p.name: p.read_bytes() for p in (tmp_path / "a" / name).iterdir()}
        b = {p.name: p.read_bytes() for p in (tmp_path / "b" / name).iterdir()}
        c = {p.name: p.read_bytes() for p in (tmp_path / "c" / name).iterdir()}
        small = {p.name: p.read_bytes() for p in (tmp_path / "small" / name).iterdir()}
        assert a == b
        assert set(a.values()).isdisjoint(c.values())
        assert small.items() <= a.items()  # more images per class keep the first ones


def test_render_crop_is_deterministic_and_checked() -> None:
    first = render_crop("2cell", (33, 41), np.random.default_rng(5))
    again = render_crop("2cell", (33, 41), np.random.default_rng(5))
    assert first.shape == (33, 41) and first.dtype == np.uint16
    np.testing.assert_array_equal(first, again)
    with pytest.raises(CnnlabError, match="kind"):
        render_crop("3cell", (32, 32), np.random.default_rng(0))
    with pytest.raises(CnnlabError, match="size"):
        render_crop("1cell", (4, 32), np.random.default_rng(0))


def test_refuses_non_empty_out_and_overwrite_keeps_user_files(tmp_path: Path) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(CnnlabError, match=r"not empty.*--overwrite"):
        synth_bacteria(out, per_class=2)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]

    synth_bacteria(out, per_class=3, overwrite=True)
    (out / "rien" / "my own crop.tif").write_bytes(b"user data")
    counts = synth_bacteria(out, per_class=2, seed=1, overwrite=True)
    assert counts == dict.fromkeys(CLASSES, 2)
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "rien" / "my own crop.tif").read_bytes() == b"user data"
    for name in CLASSES:
        generated = [p for p in (out / name).iterdir() if p.name.startswith("roi ")]
        assert len(generated) == 2  # the third crop of the first run is gone
    assert len((out / MANIFEST_NAME).read_text().split("\n")) == 4 * 2 + 1


def test_empty_existing_folder_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert synth_bacteria(tmp_path / "empty", per_class=1)["1cell"] == 1


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"per_class": 0}, "per_class"),
        ({"min_size": 7}, "min_size"),
        ({"min_size": 50, "max_size": 40}, "min_size"),
        ({"max_size": 5000}, "max_size"),
        ({"seed": -1}, "seed"),
        ({"per_class": 2.5}, "per_class"),
    ],
)
def test_option_validation(tmp_path: Path, options: dict, named: str) -> None:
    with pytest.raises(CnnlabError, match=named):
        synth_bacteria(tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(CnnlabError, match="not a folder"):
        synth_bacteria(target, per_class=1, overwrite=True)


@pytest.mark.parametrize("sigma", [0.8, 1.3, 2.5])
def test_gaussian_blur_matches_scipy(sigma: float) -> None:
    image = np.random.default_rng(0).normal(size=(23, 31)) * 1000 + 30_000
    expected = ndimage.gaussian_filter(image, sigma, mode="mirror", truncate=4.0)
    np.testing.assert_allclose(gaussian_blur(image, sigma), expected, rtol=1e-12, atol=1e-8)
