"""The lab look: fat soft ovals, pairs, overlapping groups and debris, as in the course's crops.

A *thing* is one object a person would draw a ROI around: one cell, two touching cells, a group
of three or more overlapping cells, or a piece of debris. Cells are short, fat spherocylinders
(capsules about 18 pixels wide) whose outline is softened before the optics blur it again, which
together give the soft ovals of real phase-contrast crops. Things are laid out around the
origin in pixel units; :func:`paint` draws them into the maps of a scene and :func:`compose`
turns the maps into the ideal intensity that :func:`cnnlab.synth.render.expose` photographs.
Crops (:mod:`cnnlab.synth.crops`) and whole fields (:mod:`cnnlab.synth.field`) share all of it,
so that crops cut from a synthetic field look like the synthetic crops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cnnlab.synth.render import Acquisition, capsule_sdf

CLASSES = ("1cell", "2cell", "groups", "rien")

#: How far beyond a cell's outline its soft edge is still visibly darker, in units of the
#: acquisition's edge softness: where a person drawing a ROI sees the cell end.
VISIBLE_EDGE = 1.5
#: The cell's soft outline and the optics' blur flatten the halo's peak to about 1/3 of the
#: drawn one: this gain makes ``Acquisition.halo`` the brightness measured in the crops.
HALO_GAIN = 4.0
#: How far beyond a debris ring its bright rim reaches, in ring widths.
DEBRIS_REACH = 3.0


@dataclass(frozen=True)
class Thing:
    """One object in pixel coordinates.

    ``rods`` holds one row per cell: ``ay, ax, by, bx, radius, depth`` (a capsule from ``a`` to
    ``b``; ``depth`` is how much of the background its interior removes). ``debris`` holds
    ``cy, cx, radius, ring width, ring depth, centre brightness, rim brightness``.
    """

    kind: str
    rods: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))
    debris: np.ndarray | None = None

    def moved(self, offset: np.ndarray, scale: float = 1.0) -> Thing:
        """The thing scaled by ``scale`` about the origin, then shifted by ``offset``."""
        rods = self.rods.copy()
        rods[:, :5] *= scale
        rods[:, [0, 2]] += offset[0]
        rods[:, [1, 3]] += offset[1]
        debris = None
        if self.debris is not None:
            debris = self.debris.copy()
            debris[:4] *= scale
            debris[:2] += offset
        return Thing(self.kind, rods, debris)

    def extent(self, edge: float) -> tuple[np.ndarray, np.ndarray]:
        """Corners ``(low, high)`` of the box a person sees around the thing (float pixels)."""
        if self.debris is not None:
            reach = self.debris[2] + DEBRIS_REACH * self.debris[3]
            return self.debris[:2] - reach, self.debris[:2] + reach
        ends = np.concatenate([self.rods[:, 0:2], self.rods[:, 2:4]])
        reach = np.concatenate([self.rods[:, 4], self.rods[:, 4]])[:, None] + VISIBLE_EDGE * edge
        return (ends - reach).min(axis=0), (ends + reach).max(axis=0)


# ----------------------------------------------------------------------------- layouts
def _rod(centre: np.ndarray, angle: float, length: float, radius: float, depth: float) -> list:
    """A capsule row of total length ``length`` (caps included) around ``centre``."""
    half = max(length / 2.0 - radius, 0.0)
    direction = np.array([math.sin(angle), math.cos(angle)])
    a, b = centre - half * direction, centre + half * direction
    return [a[0], a[1], b[0], b[1], radius, depth]


def _depth(rng: np.random.Generator) -> float:
    """Interior darkness: about 18,000-21,000 counts on a 45,000-47,000 background."""
    return rng.uniform(0.55, 0.61)


def one_cell(rng: np.random.Generator) -> Thing:
    radius = rng.uniform(8.5, 10.0)
    length = rng.uniform(2.2 * radius, 3.3 * radius)
    rod = _rod(np.zeros(2), rng.uniform(0, math.pi), length, radius, _depth(rng))
    return Thing("1cell", np.array([rod]))


def two_cells(rng: np.random.Generator) -> Thing:
    """Two daughters touching end to end, in line or bent at an angle at the joint."""
    angle = rng.uniform(0, math.pi)
    bend = rng.normal(0.0, math.radians(8)) if rng.random() < 0.5 else rng.uniform(0.4, 1.2)
    bend *= rng.choice([-1.0, 1.0])
    rods = []
    first_radius = rng.uniform(8.5, 10.0)
    first_length = rng.uniform(2.2 * first_radius, 3.0 * first_radius)
    rods.append(_rod(np.zeros(2), angle, first_length, first_radius, _depth(rng)))
    tip = first_length / 2 * np.array([math.sin(angle), math.cos(angle)])
    radius = first_radius * rng.uniform(0.9, 1.1)
    length = rng.uniform(2.2 * radius, 3.0 * radius)
    gap = rng.uniform(-0.25, 0.0) * radius  # pressed together at the division site
    direction = np.array([math.sin(angle + bend), math.cos(angle + bend)])
    rods.append(
        _rod(tip + (length / 2 + gap) * direction, angle + bend, length, radius, _depth(rng))
    )
    return Thing("2cell", np.array(rods))


def group(rng: np.random.Generator) -> Thing:
    """Three to six overlapping cells, roughly side by side as in a microcolony, packed tight."""
    count = int(rng.integers(4, 9))
    heading = rng.uniform(0, math.pi)
    rods: list[list[float]] = []
    centres: list[np.ndarray] = []
    for k in range(count):
        radius = rng.uniform(7.5, 9.5)
        length = rng.uniform(2.0, 2.8) * radius
        centre = np.zeros(2)
        if k:
            # Anchor on the cells nearest the cluster's middle so the group stays compact.
            spread = np.hypot(*(np.array(centres) - np.mean(centres, axis=0)).T)
            anchor = centres[int(np.argsort(spread)[int(rng.integers(min(k, 2)))])]
            phi = rng.uniform(0, 2 * math.pi)
            reach = rng.uniform(0.4, 0.65) * (radius + rods[-1][4])
            centre = anchor + reach * np.array([math.sin(phi), math.cos(phi)])
        centres.append(centre)
        angle = heading + rng.normal(0.0, math.radians(25))
        rods.append(_rod(centre, angle, length, radius, _depth(rng)))
    return Thing("groups", np.array(rods))


def debris(rng: np.random.Generator) -> Thing:
    """A dark ring around a bright centre, inside a bright rim that often saturates."""
    radius = rng.uniform(3.0, 4.5)
    width = rng.uniform(1.6, 2.2)
    values = [0.0, 0.0, radius, width, rng.uniform(0.5, 0.7), rng.uniform(0.35, 0.6)]
    return Thing("rien", debris=np.array([*values, rng.uniform(0.6, 0.9)]))


LAYOUTS = {"1cell": one_cell, "2cell": two_cells, "groups": group, "rien": debris}


# ---------------------------------------------------------------------------- painting
@dataclass
class Scene:
    """Per-pixel maps of a scene, as fractions of the background (labels: object numbers)."""

    darkness: np.ndarray
    coverage: np.ndarray
    brightness: np.ndarray
    distance: np.ndarray  # to the nearest cell's outline, pixels (far: a large number)
    labels: np.ndarray

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> Scene:
        zeros = np.zeros(shape)
        far = np.full(shape, 1e3)
        return cls(zeros, zeros.copy(), zeros.copy(), far, np.zeros(shape, dtype=np.uint16))


def paint(scene: Scene, thing: Thing, edge: float, label: int = 0) -> None:
    """Draw ``thing`` into ``scene`` (in place), over the window its soft edges reach.

    Only that window is computed, so a field of hundreds of objects costs about as much as the
    objects' own pixels. The label ``label`` marks the object's body: the cells' outline or the
    debris' ring and centre.
    """
    low, high = thing.extent(edge)
    height, width = scene.labels.shape
    top, left = (max(int(v), 0) for v in np.floor(low - 3 * edge - 2))
    bottom = min(int(np.ceil(high[0] + 3 * edge + 2)), height)
    right = min(int(np.ceil(high[1] + 3 * edge + 2)), width)
    if top >= bottom or left >= right:
        return
    window = np.s_[top:bottom, left:right]
    yy, xx = np.mgrid[top:bottom, left:right].astype(np.float64) + 0.5
    if thing.debris is not None:
        cy, cx, radius, ring, depth, centre, rim = thing.debris
        rr = np.hypot(yy - cy, xx - cx)
        dark = depth * np.exp(-(((rr - radius) / ring) ** 2))
        bright = centre * np.exp(-((rr / max(0.5 * radius, 1.8)) ** 2))
        bright += rim * np.exp(-(((rr - radius - 2.2 * ring) / (1.2 * ring)) ** 2))
        scene.darkness[window] = np.maximum(scene.darkness[window], dark)
        scene.brightness[window] += bright
        body = rr <= radius + ring
    else:
        body = np.zeros(yy.shape, dtype=bool)
        for ay, ax, by, bx, radius, depth in thing.rods:
            distance = capsule_sdf(yy, xx, np.array([ay, ax]), np.array([by, bx]), radius)
            cover = 0.5 * (1.0 - np.tanh(distance / edge))
            # Thick cytoplasm is a little darker along the cell's axis.
            dark = depth * cover * (0.92 + 0.08 * np.clip(-distance / radius, 0.0, 1.0))
            scene.darkness[window] = np.maximum(scene.darkness[window], dark)
            scene.coverage[window] = np.maximum(scene.coverage[window], cover)
            scene.distance[window] = np.minimum(scene.distance[window], distance)
            body |= distance < 0
    if label:
        scene.labels[window][body] = label


def compose(scene: Scene, background: np.ndarray | float, look: Acquisition) -> np.ndarray:
    """Ideal intensity (counts) of ``scene`` on ``background``, halos included.

    The phase halo follows the distance to the nearest cell: brightest at the outline, fading
    within a few pixels. Taking the distance rather than spreading the cells' coverage keeps the
    halo as bright in the corner between two touching cells as along a single cell's side.
    """
    outside = np.clip(scene.distance, 0.0, None)
    halo = HALO_GAIN * look.halo * np.exp(-outside / look.halo_sigma) * (1.0 - scene.coverage) ** 2
    return background * (1.0 - scene.darkness + halo + scene.brightness)
