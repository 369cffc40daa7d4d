"""Tests for the lab-look synthetic crops, measured against the course's real crops.

The figures come from the course's ImageJ ROI crops (issue 11): background median about
45,000-47,000 counts, cell interiors down to 18,000-21,000, a phase halo of 50,000-63,000 that
saturates around debris, cells about 18 pixels wide whose dark body covers 25-40 % of a 1cell or
2cell crop, groups filling most of theirs, small ``rien`` crops. Each is measured here on a
generated set: dark pixels counted by hand with NumPy and cross-checked with
``scipy.ndimage.label``, widths from the second moments of the largest dark component.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

from cnnlab.errors import CnnlabError
from cnnlab.synth import CLASSES, MANIFEST_NAME, render_crop, synth_bacteria
from cnnlab.synth.render import acquisition

ndimage = pytest.importorskip("scipy.ndimage")

PER_CLASS = 40
#: Between a cell's interior (about 19,000) and the background (about 46,000).
DARK = 33_000
CELLS = ("1cell", "2cell", "groups")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lab") / "bacteria"
    assert synth_bacteria(out, per_class=PER_CLASS, seed=3) == dict.fromkeys(CLASSES, PER_CLASS)
    return out


def _crops(out: Path, name: str) -> list[np.ndarray]:
    return [tifffile.imread(path) for path in sorted((out / name).glob("*.tif"))]


def _smooth(image: np.ndarray) -> np.ndarray:
    return ndimage.gaussian_filter(image.astype(np.float64), 1.0)


def _dark(image: np.ndarray) -> np.ndarray:
    return _smooth(image) < DARK


def _dark_share(image: np.ndarray) -> float:
    """Share of dark pixels, counted by hand and checked against SciPy's components."""
    dark = _dark(image)
    by_hand = int(np.count_nonzero(dark))
    labels, count = ndimage.label(dark)
    assert int(np.bincount(labels.ravel(), minlength=count + 1)[1:].sum()) == by_hand
    return by_hand / dark.size


def _width(image: np.ndarray) -> float:
    """Minor axis (4 standard deviations) of the largest dark component."""
    labels, count = ndimage.label(_dark(image))
    assert count >= 1
    largest = 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    ys, xs = np.nonzero(labels == largest)
    return 4.0 * float(np.sqrt(np.linalg.eigvalsh(np.cov(np.stack([ys, xs])))[0]))


def _is_debris(image: np.ndarray) -> bool:
    return bool(_smooth(image).min() < 0.8 * np.median(image))


def test_layout_counts_and_names(dataset: Path) -> None:
    acquisitions = set()
    for name in CLASSES:
        files = sorted((dataset / name).iterdir())
        assert len(files) == PER_CLASS
        for path in files:
            match = re.fullmatch(r"roi (\d+) - (\d+_1354(?:-001)?)\.nd2 - C=0\.tif", path.name)
            assert match, path.name
            acquisitions.add(match.group(2))
        with tifffile.TiffFile(files[0]) as tif:
            assert tif.is_imagej and tif.pages[0].bitspersample == 16
    assert len(acquisitions) >= 8  # several acquisitions, not one look


def test_background_median_is_45000_to_47000(dataset: Path) -> None:
    for name in CELLS:  # debris crops are small and mostly bright halo: see below
        medians = [float(np.median(image)) for image in _crops(dataset, name)]
        assert 45_000 <= np.median(medians) <= 47_000, name
        # An acquisition with a strong halo lifts a tight crop's median a little.
        assert np.mean([43_000 <= m <= 49_500 for m in medians]) >= 0.9, (name, medians)
        assert all(41_000 <= m <= 52_000 for m in medians), (name, medians)
    empty = [np.median(i) for i in _crops(dataset, "rien") if not _is_debris(i)]
    assert len(empty) >= 10 and all(43_500 <= m <= 47_500 for m in empty)


def test_cell_interiors_reach_18000_to_21000(dataset: Path) -> None:
    lows = [_smooth(image).min() for name in CELLS for image in _crops(dataset, name)]
    assert 18_000 <= np.median(lows) <= 21_000
    assert all(16_500 <= low <= 22_000 for low in lows)


def test_halo_maxima_and_saturation(dataset: Path) -> None:
    """Halos reach 50,000-63,000 next to cells and saturate the camera around debris."""
    highs = np.array([image.max() for name in CELLS for image in _crops(dataset, name)])
    assert 50_000 <= np.median(highs) <= 63_000
    assert np.mean(highs >= 48_000) >= 0.9
    assert np.mean(highs == 65_535) <= 0.25  # only sometimes near cells
    debris = [image for image in _crops(dataset, "rien") if _is_debris(image)]
    assert len(debris) >= 10
    assert np.mean([image.max() == 65_535 for image in debris]) >= 0.5


def test_debris_is_a_dark_ring_around_a_bright_centre(dataset: Path) -> None:
    """Most debris shows a centre brighter than its ring (a defocused one may blur it away)."""
    brighter = []
    for image in _crops(dataset, "rien"):
        if _is_debris(image):
            smooth = _smooth(image)
            ys, xs = np.nonzero(smooth < 0.8 * np.median(image))
            brighter.append(smooth[round(ys.mean()), round(xs.mean())] > 1.03 * smooth.min())
    assert len(brighter) >= 10 and np.mean(brighter) >= 0.8


def test_single_cells_and_pairs_cover_25_to_40_percent(dataset: Path) -> None:
    for name in ("1cell", "2cell"):
        shares = [_dark_share(image) for image in _crops(dataset, name)]
        assert 0.25 <= np.median(shares) <= 0.40, name
        assert all(0.15 <= share <= 0.5 for share in shares), (name, shares)


def test_cells_are_about_18_pixels_wide(dataset: Path) -> None:
    for name in ("1cell", "2cell"):
        widths = [_width(image) for image in _crops(dataset, name)]
        assert 15.5 <= np.median(widths) <= 20.0, name
        assert all(12.0 <= width <= 23.0 for width in widths), (name, widths)


def test_groups_fill_their_crop(dataset: Path) -> None:
    """A group is several cells: more dark area than one cell, spanning nearly the whole crop."""
    groups = _crops(dataset, "groups")
    shares = [_dark_share(image) for image in groups]
    singles = [_dark_share(image) for image in _crops(dataset, "1cell")]
    assert np.median(shares) >= 0.3 and np.median(shares) > np.median(singles)
    spans = []
    for image in groups:
        dark = _dark(image)
        rows, cols = np.flatnonzero(dark.any(axis=1)), np.flatnonzero(dark.any(axis=0))
        spans.append((rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1) / dark.size)
    assert np.median(spans) >= 0.45 and min(spans) >= 0.3
    assert np.median([_width(image) for image in groups]) > 20.0  # wider than any one cell


def test_crop_sizes_follow_the_object(dataset: Path) -> None:
    shapes = {name: np.array([i.shape for i in _crops(dataset, name)]) for name in CLASSES}
    assert all(24 <= side <= 80 for s in shapes.values() for side in s.ravel())
    single = np.sort(shapes["1cell"], axis=1)  # (short, long)
    assert 24 <= np.median(single[:, 0]) <= 34 and 30 <= np.median(single[:, 1]) <= 42
    assert np.median(shapes["rien"].max(axis=1)) <= 30  # small ROIs around debris
    sides = {name: np.median(s) for name, s in shapes.items()}
    assert sides["rien"] < sides["1cell"] < sides["2cell"] and sides["1cell"] < sides["groups"]
    assert len({tuple(s) for s in shapes["2cell"]}) > 10


def test_size_limits_shrink_the_object_not_the_frame(tmp_path: Path) -> None:
    synth_bacteria(tmp_path / "small", per_class=6, seed=2, min_size=16, max_size=20)
    synth_bacteria(tmp_path / "large", per_class=6, seed=2, min_size=60, max_size=64)
    for folder, (low, high) in (("small", (16, 20)), ("large", (60, 64))):
        for name in CELLS:
            for image in _crops(tmp_path / folder, name):
                assert low <= min(image.shape) and max(image.shape) <= high
                assert _smooth(image).min() < DARK  # the cell is still there, whole


def test_acquisitions_are_shared_by_their_crops() -> None:
    assert acquisition(3, 5, 1) == acquisition(3, 5, 1)
    looks = {acquisition(3, number, stack) for number in range(1, 13) for stack in (0, 1)}
    assert len(looks) == 24
    assert len({round(look.focus, 6) for look in looks}) == 24


def test_same_seed_same_bytes_and_prefix_stability(tmp_path: Path) -> None:
    for folder, per_class, seed in (("a", 4, 7), ("b", 4, 7), ("c", 4, 8), ("small", 2, 7)):
        synth_bacteria(tmp_path / folder, per_class=per_class, seed=seed)
    for name in CLASSES:
        read = {f: {p.name: p.read_bytes() for p in (tmp_path / f / name).iterdir()} for f in "abc"}
        small = {p.name: p.read_bytes() for p in (tmp_path / "small" / name).iterdir()}
        assert read["a"] == read["b"]
        assert set(read["a"].values()).isdisjoint(read["c"].values())
        assert small.items() <= read["a"].items()  # more images per class keep the first ones


def test_render_crop_is_deterministic_and_checked() -> None:
    first = render_crop("2cell", None, np.random.default_rng(5))
    again = render_crop("2cell", None, np.random.default_rng(5))
    np.testing.assert_array_equal(first, again)
    assert first.dtype == np.uint16 and 24 <= min(first.shape) <= max(first.shape) <= 80
    fixed = render_crop("groups", (33, 41), np.random.default_rng(5))
    assert fixed.shape == (33, 41) and _smooth(fixed).min() < DARK
    with pytest.raises(CnnlabError, match="kind"):
        render_crop("3cell", None, np.random.default_rng(0))
    with pytest.raises(CnnlabError, match="size"):
        render_crop("1cell", (4, 32), np.random.default_rng(0))
    with pytest.raises(CnnlabError, match="--style"):
        render_crop("1cell", None, np.random.default_rng(0), style="sketch")


def test_refuses_non_empty_out_and_overwrite_keeps_user_files(tmp_path: Path) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    # --overwrite does not write among files synth did not make (a user's folder, a run), and
    # the refusal says so without being asked, rather than suggesting --overwrite first.
    for overwrite in (False, True):
        with pytest.raises(CnnlabError, match=r"did not write; choose another folder"):
            synth_bacteria(out, per_class=2, overwrite=overwrite)
        assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]

    (out / "notes.txt").unlink()
    synth_bacteria(out, per_class=3, overwrite=True)
    (out / "notes.txt").write_text("mine")
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
        ({"style": "sketch"}, "--style"),
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
