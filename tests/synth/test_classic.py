"""Tests for the classic synthetic look (style ``classic``), kept unchanged beside the lab look.

The images are checked against what a phase-contrast crop is (16-bit counts on a bright
background, dark cells, Poisson shot noise) with SciPy as the independent image-processing
reference, and the files against SHA-256 digests of files written before the lab look existed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import tifffile

from cnnlab.errors import CnnlabError
from cnnlab.synth import CLASSES, render_crop, synth_bacteria
from cnnlab.synth.render import gaussian_blur

ndimage = pytest.importorskip("scipy.ndimage")

PER_CLASS = 20


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("synth") / "bacteria"
    counts = synth_bacteria(out, per_class=PER_CLASS, seed=3, min_size=20, style="classic")
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
    counts = synth_bacteria(
        tmp_path / "d", per_class=15, seed=1, min_size=24, max_size=40, style="classic"
    )
    assert sum(counts.values()) == 60
    shapes = [img.shape for name in CLASSES for img in _crops(tmp_path / "d", name)]
    assert all(24 <= side <= 40 for shape in shapes for side in shape)
    assert len(set(shapes)) > 10
    assert max(max(s) / min(s) for s in shapes) <= 1.2  # square or slightly rectangular
    fixed = synth_bacteria(
        tmp_path / "f", per_class=2, seed=1, min_size=30, max_size=30, style="classic"
    )
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


@pytest.mark.parametrize("sigma", [0.8, 1.3, 2.5])
def test_gaussian_blur_matches_scipy(sigma: float) -> None:
    image = np.random.default_rng(0).normal(size=(23, 31)) * 1000 + 30_000
    expected = ndimage.gaussian_filter(image, sigma, mode="mirror", truncate=4.0)
    np.testing.assert_allclose(gaussian_blur(image, sigma), expected, rtol=1e-12, atol=1e-8)


# SHA-256 of the files written by the generator before the lab look was added
# (``synth_bacteria(out, per_class=2, seed=5, min_size=20, max_size=48)``, then the default).
CLASSIC_SHA256 = {
    "1cell/roi 0 - 6_1354.nd2 - C=0.tif": (
        "05edeac4db100c93bebcd13e68fb83404e3a1fe7d59663b206530f79b958e83e"
    ),
    "1cell/roi 1 - 4_1354-001.nd2 - C=0.tif": (
        "c357cfc1f99b843551dac012786f19b4beeeea413b29d93a090afa1f33be28b0"
    ),
    "2cell/roi 0 - 7_1354.nd2 - C=0.tif": (
        "fdf5fc0e4b832fb84cf0761dc8422c2b52897e487ce8f33403c66aa129b0e2ce"
    ),
    "2cell/roi 1 - 1_1354-001.nd2 - C=0.tif": (
        "5c47fc473ae3fbff806afaec9f77fbee73baed0a52f1e798715b9820fdb49aeb"
    ),
    "groups/roi 0 - 1_1354.nd2 - C=0.tif": (
        "cc9e219d4ce73fcfe76f082d038013b6de09dd70c9705e3a845e701cbda3a11b"
    ),
    "groups/roi 1 - 2_1354-001.nd2 - C=0.tif": (
        "3987f002118f0761730caa8ee2f7e34ef0a42973e51e49b81868df8578f11ce7"
    ),
    "rien/roi 0 - 4_1354.nd2 - C=0.tif": (
        "4ef047787bd88bec550942b72cc73bf0b9c0b693f3c7be5766044caf4b2f5cd0"
    ),
    "rien/roi 1 - 4_1354.nd2 - C=0.tif": (
        "f530d1f0669cd3dbb33b5e19a412de799ff9776dda9f1a7b0997414aaa9e905d"
    ),
}


def test_classic_files_are_byte_identical_to_the_first_generator(tmp_path: Path) -> None:
    synth_bacteria(tmp_path, per_class=2, seed=5, min_size=20, max_size=48, style="classic")
    written = {
        str(path.relative_to(tmp_path)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(tmp_path.glob("*/*.tif"))
    }
    assert written == CLASSIC_SHA256


def test_render_crop_classic_needs_a_size() -> None:
    first = render_crop("2cell", (33, 41), np.random.default_rng(5), style="classic")
    again = render_crop("2cell", (33, 41), np.random.default_rng(5), style="classic")
    assert first.shape == (33, 41) and first.dtype == np.uint16
    np.testing.assert_array_equal(first, again)
    with pytest.raises(CnnlabError, match="size"):
        render_crop("1cell", None, np.random.default_rng(0), style="classic")
