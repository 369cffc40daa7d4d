"""The first synthetic look (style ``classic``): thin sharp rods in a crop of a drawn size.

Kept unchanged, byte for byte, so that datasets and figures made before the lab look can be
remade. It renders an imaging model rather than a drawing:

* a bright, uneven background (20,000-40,000 counts, a random tilt plus broad blobs),
* dark rod-shaped cells (spherocylinders rasterized from signed-distance functions, 40-60 % of
  the local background) surrounded by the bright phase-contrast halo,
* optical blur (Gaussian point-spread function), photon shot noise and camera read noise,
* any orientation and a crop size drawn uniformly between two limits.

Real crops look different (fat soft ovals, tight framing, a brighter background): see
:mod:`cnnlab.synth.lab`.
"""

from __future__ import annotations

import math

import numpy as np

from cnnlab.synth.render import capsule_sdf as _capsule_sdf
from cnnlab.synth.render import gaussian_blur

#: Crop side (pixels) for which the native cell sizes below were chosen; crops of other sizes
#: scale the cells gently so that small crops are not filled by a single cell.
_REFERENCE_SIDE = 48.0


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


def render_classic(kind: str, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """One classic crop of ``kind`` as a ``(height, width)`` ``uint16`` array (checked sizes)."""
    height, width = size
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


def crop_size(rng: np.random.Generator, min_size: int, max_size: int) -> tuple[int, int]:
    """Square or slightly rectangular (up to 15 % apart) crop, both sides within the range."""
    height = int(rng.integers(min_size, max_size + 1))
    spread = int(0.15 * height)
    width = int(np.clip(height + rng.integers(-spread, spread + 1), min_size, max_size))
    if rng.random() < 0.5:
        height, width = width, height
    return height, width
