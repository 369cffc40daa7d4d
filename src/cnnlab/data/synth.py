"""Synthetic phase-contrast bacteria crops in the layout of the course's real data.

The course classifies 16-bit TIFF crops of *E. coli*-like bacteria into four folders (``1cell``,
``2cell``, ``groups``, ``rien``), but those images are not public. This module renders look-alikes
so that every step of cnnlab (16-bit loading, file names with spaces and several dots, crops of
varying size, training, inspection) can be exercised and taught without the real data.

Each crop is an imaging model rather than a drawing, because the point is to reproduce the
properties a CNN has to cope with on real phase-contrast images:

* a bright, uneven background (20,000-40,000 counts, a random tilt plus broad blobs, like uneven
  illumination),
* dark rod-shaped cells (spherocylinders rasterized from signed-distance functions, 40-60 % of
  the local background) surrounded by the bright phase-contrast halo,
* optical blur (Gaussian point-spread function), photon shot noise and camera read noise,
* any orientation and a crop size that varies from image to image.

Everything is vectorized NumPy on a coordinate grid (no per-pixel loops) and driven by a
``numpy.random.Generator``: one child generator per image, keyed by the seed, the class and the
image index, so the same seed gives byte-identical files and asking for more images per class
keeps the first ones unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import tifffile

from cnnlab.errors import CnnlabError

CLASSES = ("1cell", "2cell", "groups", "rien")

#: Crop side (pixels) for which the native cell sizes below were chosen; crops of other sizes
#: scale the cells gently so that small crops are not filled by a single cell.
_REFERENCE_SIDE = 48.0
#: Largest crop side accepted, so that a typo cannot ask for gigabytes of images.
MAX_CROP_SIDE = 1024
#: Written in ``out`` to remember which files this module created, so that ``overwrite`` can
#: remove exactly those (a smaller rerun must not leave stale crops behind) and nothing else.
MANIFEST_NAME = ".cnnlab-synth-manifest.txt"
_STACKS = ("1354", "1354-001")


# --------------------------------------------------------------------------------- helpers
def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Blur a 2D float image with a Gaussian of standard deviation ``sigma`` pixels.

    Separable: one 1D convolution along each axis, each written as a weighted sum of shifted
    views of a mirror-padded array (a loop over kernel taps, never over pixels). The kernel and
    the ``reflect`` padding match ``scipy.ndimage.gaussian_filter(..., mode="mirror")``, so the
    generator needs no SciPy at runtime.
    """
    if sigma <= 0:
        return image.astype(np.float64, copy=True)
    radius = int(4.0 * sigma + 0.5)
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    out = image.astype(np.float64, copy=False)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="reflect")
        length = out.shape[axis]
        blurred = np.zeros_like(out)
        for k, weight in enumerate(kernel):
            window = padded[k : k + length, :] if axis == 0 else padded[:, k : k + length]
            blurred += weight * window
        out = blurred
    return out


def _capsule_sdf(
    yy: np.ndarray, xx: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float
) -> np.ndarray:
    """Signed distance (pixels, negative inside) to a spherocylinder from ``a`` to ``b``."""
    pay, pax = yy - a[0], xx - a[1]
    bay, bax = b[0] - a[0], b[1] - a[1]
    h = np.clip((pay * bay + pax * bax) / max(bay * bay + bax * bax, 1e-12), 0.0, 1.0)
    return np.hypot(pay - bay * h, pax - bax * h) - radius


def _point_segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from ``points`` (..., P, 2) to segments ``a``-``b`` (..., 1, 2), shape (..., P)."""
    ab = b - a
    length2 = np.maximum(np.sum(ab * ab, axis=-1), 1e-12)
    h = np.clip(np.sum((points - a) * ab, axis=-1) / length2, 0.0, 1.0)
    return np.linalg.norm(points - a - h[..., None] * ab, axis=-1)


def _cluster_gaps(starts: np.ndarray, stops: np.ndarray, radius: float, rods: list) -> np.ndarray:
    """Surface distance from each candidate rod to the nearest of ``rods`` (< 0: overlap).

    Candidates are segments ``starts[k]``-``stops[k]`` of one ``radius``. The segment-to-segment
    distance is taken over points sampled along the segments, for all candidates and all rods at
    once, which is exact enough for placing cells that should touch.
    """
    t = np.linspace(0.0, 1.0, 17)[:, None]
    their_a = np.array([other[0] for other in rods])[None, :, None, :]  # (1, n, 1, 2)
    their_b = np.array([other[1] for other in rods])[None, :, None, :]
    radii = np.array([other[2] for other in rods])[None, :]
    own_a, own_b = starts[:, None, None, :], stops[:, None, None, :]  # (T, 1, 1, 2)
    own_points = own_a + t * (own_b - own_a)  # (T, 1, P, 2)
    their_points = their_a + t * (their_b - their_a)  # (1, n, P, 2)
    to_theirs = _point_segment_distance(own_points, their_a, their_b).min(axis=-1)
    to_own = _point_segment_distance(their_points, own_a, own_b).min(axis=-1)
    return np.min(np.minimum(to_theirs, to_own) - radii, axis=1) - radius


def _rod(centre: np.ndarray, angle: float, length: float, radius: float) -> tuple:
    """A rod ``(a, b, radius)`` of total length ``length`` (caps included) around ``centre``."""
    half = max(length / 2.0 - radius, 0.0)
    direction = np.array([math.sin(angle), math.cos(angle)])
    return (centre - half * direction, centre + half * direction, radius)


# ----------------------------------------------------------------------------- layouts
def _one_cell(rng: np.random.Generator) -> list[tuple]:
    width = rng.uniform(5.0, 8.0)
    length = rng.uniform(max(10.0, 1.6 * width), 30.0)
    return [_rod(np.zeros(2), rng.uniform(0, math.pi), length, width / 2)]


def _two_cells(rng: np.random.Generator) -> list[tuple]:
    """Two daughters end to end: a dividing cell with a constriction or a small gap."""
    width = rng.uniform(5.0, 8.0)
    radius = width / 2
    axis_angle = rng.uniform(0, math.pi)
    rods = []
    for sign in (-1.0, 1.0):
        length = rng.uniform(max(9.0, 1.5 * width), 18.0)
        angle = axis_angle + rng.normal(0.0, math.radians(6))
        gap = rng.uniform(-0.15, 0.25) * width  # negative: still joined at a constriction
        offset = gap / 2 + length / 2
        direction = np.array([math.sin(axis_angle), math.cos(axis_angle)])
        rods.append(_rod(sign * offset * direction, angle, length, radius))
    return rods


def _touching_offset(
    anchor: np.ndarray, direction: np.ndarray, half: np.ndarray, radius: float, rods: list
) -> float:
    """How far from ``anchor`` along ``direction`` a new rod just touches the cluster.

    The rod slides in from far away: the answer is the first offset beyond the outermost one at
    which it would overlap (by more than half a pixel: cells pressed together), found on a
    1-pixel grid and refined on a 1/8-pixel grid, each evaluated in one vectorized call.
    """

    def outermost_clear(steps: np.ndarray, default: float) -> float:
        centres = anchor + steps[:, None] * direction
        gaps = _cluster_gaps(centres - half, centres + half, radius, rods)
        overlapping = np.flatnonzero(gaps <= -0.5)
        if not len(overlapping):
            return default
        return float(steps[min(overlapping[-1] + 1, len(steps) - 1)])

    coarse = outermost_clear(np.arange(0.0, 60.0, 1.0), 0.0)
    return outermost_clear(coarse - 1.0 + np.arange(1, 9) / 8.0, coarse)


def _group(rng: np.random.Generator) -> list[tuple]:
    """Three to six rods clustered so that each touches one placed before it."""
    count = int(rng.integers(3, 7))
    rods = [
        _rod(np.zeros(2), rng.uniform(0, math.pi), rng.uniform(12.0, 24.0), rng.uniform(2.5, 3.75))
    ]
    for _ in range(count - 1):
        width = rng.uniform(5.0, 7.5)
        length = rng.uniform(max(10.0, 1.6 * width), 24.0)
        angle = rng.uniform(0, math.pi)
        anchor = rods[int(rng.integers(len(rods)))]
        anchor_centre = (anchor[0] + anchor[1]) / 2
        phi = rng.uniform(0, 2 * math.pi)
        direction = np.array([math.sin(phi), math.cos(phi)])

        half = max(length / 2 - width / 2, 0.0) * np.array([math.sin(angle), math.cos(angle)])
        outside = _touching_offset(anchor_centre, direction, half, width / 2, rods)
        rods.append(_rod(anchor_centre + outside * direction, angle, length, width / 2))
    return rods


def _fit_rods(rods: list[tuple], height: int, width: int, rng: np.random.Generator) -> list:
    """Scale and shift rods (native pixel units around the origin) to sit inside the crop.

    Cells grow gently with the crop (square root of the size ratio) so a class keeps its look at
    every crop size, and shrink further only when they would not fit with room for the halo.
    """
    ends = np.array([p for rod in rods for p in (rod[0], rod[1])])
    radii = np.array([rod[2] for rod in rods for _ in (0, 1)])
    low = (ends - radii[:, None]).min(axis=0)
    high = (ends + radii[:, None]).max(axis=0)
    extent = high - low
    side = min(height, width)
    scale = math.sqrt(side / _REFERENCE_SIDE)
    room = np.array([height, width], dtype=np.float64) - 4.0  # keep the halo inside
    scale = min(scale, float(np.min(room / np.maximum(extent, 1e-6))))
    slack = np.maximum(room - scale * extent, 0.0)
    origin = np.array([2.0, 2.0]) + slack * rng.uniform(0.25, 0.75, size=2) - scale * low
    return [(origin + scale * a, origin + scale * b, scale * r) for a, b, r in rods]


# ---------------------------------------------------------------------------- rendering
def _background(yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bright, uneven illumination: a level, a random tilt and two broad Gaussian blobs."""
    height, width = yy.shape
    level = rng.uniform(24_000.0, 34_000.0)
    span = max(height, width)
    tilt_angle = rng.uniform(0, 2 * math.pi)
    tilt = rng.uniform(0.0, 0.12) / span
    ramp = (yy - height / 2) * math.sin(tilt_angle) + (xx - width / 2) * math.cos(tilt_angle)
    field = 1.0 + tilt * ramp
    for _ in range(2):
        cy, cx = rng.uniform(-0.3, 1.3) * height, rng.uniform(-0.3, 1.3) * width
        sigma = rng.uniform(0.4, 1.2) * span
        amplitude = rng.uniform(-0.08, 0.08)
        field += amplitude * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma * sigma))
    return level * field


def _cells_contrast(yy: np.ndarray, xx: np.ndarray, rods: list, rng: np.random.Generator):
    """Per-pixel darkening of the cells and the halo ring around them (fractions of background).

    Coverage is anti-aliased from the signed distance; each cell keeps 40-60 % of the background
    and is a little darker towards its axis, as thick cytoplasm is in phase contrast.
    """
    darkness = np.zeros(yy.shape)
    coverage = np.zeros(yy.shape)
    for a, b, radius in rods:
        distance = _capsule_sdf(yy, xx, a, b, radius)
        cover = np.clip(0.5 - distance, 0.0, 1.0)
        depth = (1.0 - rng.uniform(0.4, 0.6)) * (0.85 + 0.15 * np.clip(-distance / radius, 0, 1))
        darkness = np.maximum(darkness, cover * depth)
        coverage = np.maximum(coverage, cover)
    halo_sigma = rng.uniform(2.0, 3.5)
    ring = np.clip(gaussian_blur(coverage, halo_sigma) - coverage, 0.0, None)
    # The ring's peak sets the halo's brightness: 30-50 % above the background before blur.
    halo = rng.uniform(0.3, 0.5) * ring / max(float(ring.max()), 1e-6)
    return darkness, halo


def _bead(yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator):
    """A round bead or debris: bright centre, dark ring, faint bright rim (fractions)."""
    height, width = yy.shape
    side = min(height, width)
    radius = min(rng.uniform(3.5, 7.0) * math.sqrt(side / _REFERENCE_SIDE), side / 2 - 3.0)
    radius = max(radius, 2.5)
    cy = height / 2 + rng.uniform(-0.2, 0.2) * (height / 2 - radius - 2)
    cx = width / 2 + rng.uniform(-0.2, 0.2) * (width / 2 - radius - 2)
    rr = np.hypot(yy - cy, xx - cx)
    ring_width = max(0.35 * radius, 1.2)
    dark = rng.uniform(0.5, 0.7) * np.exp(-(((rr - radius) / ring_width) ** 2))
    bright = rng.uniform(0.3, 0.6) * np.exp(-((rr / max(0.45 * radius, 1.5)) ** 2))
    rim = rng.uniform(0.08, 0.15) * np.exp(-(((rr - radius - 2.2 * ring_width) / ring_width) ** 2))
    return dark, bright + rim


def render_crop(kind: str, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Render one synthetic phase-contrast crop as a ``(height, width)`` ``uint16`` array.

    ``kind`` is one of ``1cell``, ``2cell``, ``groups`` (three to six touching rods) or ``rien``
    (empty background or a bead, half of each). All randomness comes from ``rng``, so a
    generator seeded the same way renders the same crop.
    """
    if kind not in CLASSES:
        raise CnnlabError(
            f"kind {kind!r} is not a synthetic class; use one of {', '.join(CLASSES)}"
        )
    height, width = (int(side) for side in size)
    if min(height, width) < 8 or max(height, width) > MAX_CROP_SIDE:
        raise CnnlabError(f"size {size} must have both sides between 8 and {MAX_CROP_SIDE} pixels")
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5

    background = _background(yy, xx, rng)
    if kind == "rien":
        if rng.random() < 0.5:
            darkness, brightness = np.zeros(yy.shape), np.zeros(yy.shape)
        else:
            darkness, brightness = _bead(yy, xx, rng)
    else:
        layout = {"1cell": _one_cell, "2cell": _two_cells, "groups": _group}[kind](rng)
        rods = _fit_rods(layout, height, width, rng)
        darkness, brightness = _cells_contrast(yy, xx, rods, rng)

    ideal = background * (1.0 - darkness + brightness)
    optical = gaussian_blur(ideal, rng.uniform(1.0, 1.5))
    gain = rng.uniform(1.5, 3.0)  # counts per photoelectron
    photons = rng.poisson(np.clip(optical, 0.0, None) / gain)
    counts = photons * gain + rng.normal(0.0, rng.uniform(15.0, 40.0), size=optical.shape)
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)


# ------------------------------------------------------------------------------ dataset
def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise CnnlabError(f"{name} must be a whole number, not {value!r}")
    if value < minimum:
        raise CnnlabError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _crop_size(rng: np.random.Generator, min_size: int, max_size: int) -> tuple[int, int]:
    """Square or slightly rectangular (up to 15 % apart) crop, both sides within the range."""
    height = int(rng.integers(min_size, max_size + 1))
    spread = int(0.15 * height)
    width = int(np.clip(height + rng.integers(-spread, spread + 1), min_size, max_size))
    if rng.random() < 0.5:
        height, width = width, height
    return height, width


def synth_bacteria(
    out: str | Path,
    per_class: int = 100,
    seed: int = 0,
    min_size: int = 20,
    max_size: int = 80,
    overwrite: bool = False,
) -> dict[str, int]:
    """Write a synthetic bacteria dataset to ``out`` and return the number of crops per class.

    ``out`` receives the four class folders of the course (``1cell``, ``2cell``, ``groups``,
    ``rien``), each with ``per_class`` 16-bit grayscale TIFF crops named like the real ones
    (``roi 12 - 3_1354-001.nd2 - C=0.tif``), with sides drawn between ``min_size`` and
    ``max_size`` pixels. A non-empty ``out`` is refused unless ``overwrite`` is true; then files
    of the same names are replaced, files that an earlier run of this function wrote there (listed
    in ``.cnnlab-synth-manifest.txt``) are removed first so a smaller rerun leaves no stale
    crops, and every other file of the user's stays untouched.

    Image ``i`` of class ``c`` uses the child generator keyed by ``(seed, c, i)``: the same seed
    gives byte-identical files, and raising ``per_class`` keeps the first crops unchanged.
    """
    per_class = _check_int("per_class (--per-class)", per_class, 1)
    min_size = _check_int("min_size (--min-size)", min_size, 8)
    max_size = _check_int("max_size (--max-size)", max_size, 8)
    seed = _check_int("seed (--seed)", seed, 0)
    if min_size > max_size:
        raise CnnlabError(
            f"min_size (--min-size) {min_size} is larger than max_size (--max-size) {max_size}"
        )
    if max_size > MAX_CROP_SIDE:
        raise CnnlabError(f"max_size (--max-size) must be at most {MAX_CROP_SIDE}, got {max_size}")

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CnnlabError(f"{out} is a file, not a folder; choose another output folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise CnnlabError(
            f"{out} exists and is not empty; choose another folder or pass --overwrite"
        )
    for name in CLASSES:
        folder = out / name
        if folder.exists() and not folder.is_dir():
            raise CnnlabError(f"{folder} is a file, not a folder; remove it or choose another out")

    manifest = out / MANIFEST_NAME
    if manifest.is_file():
        for line in manifest.read_text(encoding="utf-8").splitlines():
            class_name, _, filename = line.partition("/")
            previous = out / class_name / filename
            if class_name in CLASSES and filename and "/" not in filename and previous.is_file():
                previous.unlink()

    written: list[str] = []
    counts: dict[str, int] = {}
    for class_index, name in enumerate(CLASSES):
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            sequence = np.random.SeedSequence(seed, spawn_key=(class_index, i))
            rng = np.random.default_rng(sequence)
            height, width = _crop_size(rng, min_size, max_size)
            acquisition = int(rng.integers(1, 13))
            stack = _STACKS[int(rng.integers(len(_STACKS)))]
            image = render_crop(name, (height, width), rng)
            filename = f"roi {i} - {acquisition}_{stack}.nd2 - C=0.tif"
            tifffile.imwrite(folder / filename, image, imagej=True, metadata={"axes": "YX"})
            written.append(f"{name}/{filename}")
        counts[name] = per_class
    manifest.write_text("\n".join(written) + "\n", encoding="utf-8")
    return counts
