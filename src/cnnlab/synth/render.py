"""Imaging primitives shared by the synthetic crops and fields: blur, distances, optics, camera.

A synthetic phase-contrast image is made in three steps: a *scene* says, per pixel, how much the
specimen darkens or brightens the background (fractions of it); an *illumination* map says how
bright the background is; :func:`expose` blurs their product with the objective's point-spread
function and adds the camera's photon shot noise and read noise. The per-acquisition settings
(illumination level, focus, halo strength, noise) are one :class:`Acquisition`, shared by every
crop of one acquisition and by the whole of one field, so that variation between acquisitions is
realistic and variation within one is small.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import tifffile

#: Spawn-key prefix of the acquisitions' generators, apart from the crops' ``(class, index)``.
ACQUISITION_KEY = 1000


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


def capsule_sdf(
    yy: np.ndarray, xx: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float
) -> np.ndarray:
    """Signed distance (pixels, negative inside) to a spherocylinder from ``a`` to ``b``."""
    pay, pax = yy - a[0], xx - a[1]
    bay, bax = b[0] - a[0], b[1] - a[1]
    h = np.clip((pay * bay + pax * bax) / max(bay * bay + bax * bax, 1e-12), 0.0, 1.0)
    return np.hypot(pay - bay * h, pax - bax * h) - radius


@dataclass(frozen=True)
class Acquisition:
    """Settings shared by all images of one acquisition (one ``.nd2`` file of the course)."""

    level: float  # background counts at the centre of the illumination
    focus: float  # sigma (pixels) of the point-spread function: larger is more out of focus
    halo: float  # brightness of the phase halo just outside a cell, fraction of the background
    halo_sigma: float  # how far (pixels) the halo reaches out from the cell
    edge: float  # softness (pixels) of the cell's outline before the optics blur it further
    gain: float  # counts per photoelectron: the shot noise's variance is gain x counts
    read_noise: float  # camera read noise, counts (standard deviation)


def draw_acquisition(rng: np.random.Generator) -> Acquisition:
    """One acquisition's settings, drawn within the ranges measured on the course's crops."""
    # One acquisition in six has a strong halo (a slightly misaligned phase ring, say) that
    # saturates the camera next to some cells, as seen now and then on the course's crops.
    halo = rng.uniform(0.45, 0.55) if rng.random() < 1 / 6 else rng.uniform(0.12, 0.4)
    return Acquisition(
        level=rng.uniform(44_300.0, 45_500.0),
        focus=rng.uniform(1.0, 1.7),
        halo=halo,
        halo_sigma=rng.uniform(1.5, 2.2),
        edge=rng.uniform(1.2, 2.0),
        gain=rng.uniform(1.0, 3.0),
        read_noise=rng.uniform(10.0, 30.0),
    )


def acquisition(seed: int, number: int, stack: int) -> Acquisition:
    """The settings of acquisition ``number`` / ``stack`` of a dataset made with ``seed``.

    Keyed by the seed and the acquisition alone, so that every crop naming this acquisition
    in its file name shares its look, whatever class or index the crop has.
    """
    sequence = np.random.SeedSequence(seed, spawn_key=(ACQUISITION_KEY, number, stack))
    return draw_acquisition(np.random.default_rng(sequence))


def illumination(
    shape: tuple[int, int], level: float, rng: np.random.Generator, strength: float = 0.025
) -> np.ndarray:
    """Uneven illumination: ``level`` times a smooth field within about ``strength`` of 1.

    A tilt and two broad Gaussian blobs, as on a real microscope (vignetting, a lamp that is
    not quite centred); ``strength`` bounds each term so the background stays in the
    measured range.
    """
    height, width = shape
    yy = (np.arange(height, dtype=np.float64)[:, None] + 0.5) / max(height, width) - 0.5
    xx = (np.arange(width, dtype=np.float64)[None, :] + 0.5) / max(height, width) - 0.5
    angle = rng.uniform(0, 2 * math.pi)
    field = 1.0 + rng.uniform(-strength, strength) * (yy * math.sin(angle) + xx * math.cos(angle))
    for _ in range(2):
        cy, cx = rng.uniform(-0.6, 0.6, size=2)
        sigma = rng.uniform(0.3, 0.8)
        amplitude = rng.uniform(-strength, strength)
        field = field + amplitude * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    return level * field


def expose(ideal: np.ndarray, look: Acquisition, rng: np.random.Generator) -> np.ndarray:
    """The camera's 16-bit image of the ``ideal`` intensity (counts) through the optics.

    Blur by the point-spread function, photon shot noise (Poisson in photoelectrons, scaled by
    the gain) and Gaussian read noise, then rounding and clipping to ``uint16``: the clip at
    65,535 is the saturation seen around bright debris.
    """
    optical = gaussian_blur(ideal, look.focus)
    photons = rng.poisson(np.clip(optical, 0.0, None) / look.gain)
    counts = photons * look.gain + rng.normal(0.0, look.read_noise, size=optical.shape)
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)


def tiff_bytes(image: np.ndarray) -> bytes:
    """``image`` as the bytes of a 2D ImageJ TIFF, as ImageJ saves crops and fields."""
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, image, imagej=True, metadata={"axes": "YX"})
    return buffer.getvalue()
