"""Data augmentation: more training images from rotated, flipped, shifted and noisy copies.

A small training set can be stretched with copies that differ in ways the label does not care
about (a bacterium is the same bacterium upside down). Only the *training* set may be augmented:
copies in the validation or test set would be near-duplicates of each other and make the
measured accuracy a measure of memory, so every function here refuses those sets unless
``allow_eval=True`` says that this is really meant.

This is the static mode: the copies are made once, before training, and stored. The on-the-fly
mode (:mod:`cnnlab.data.augment_online`) draws fresh copies of the same kinds for every batch.

All functions work in the units the images are in: source units for raw images (integers stay
integers: exact operations such as flips and 90-degree rotations keep the values bit for bit,
interpolated ones are rounded and clamped back into the type), z-scores for a dataset that has
been normalized. The exceptions are :func:`add_noise` and :func:`random_brightness`, whose
amounts are always in z-score units so that ``0.1`` means the same for 8-bit, 16-bit and float
images. Every random choice comes from a generator seeded by ``seed``: the same call gives the
same images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from cnnlab.data.augment_ops import (
    FILL_MODES,
    Fill,
    crop_boxes,
    exact,
    fill_values,
    resample,
    scale_contrast,
    translate,
    warp,
)
from cnnlab.data.augment_specs import (
    SPEC_FORMS,
    StepSpec,
    check_fits,
    parse_chains,
    spec_list,
)
from cnnlab.data.dataset import ImageDataset, Normalizer, _cast_like, merge
from cnnlab.errors import CnnlabError

__all__ = [
    "FILL_MODES",
    "SPEC_FORMS",
    "add_noise",
    "augment",
    "flip",
    "parse_specs",
    "random_brightness",
    "random_contrast",
    "random_crop",
    "random_rotate",
    "rotate",
    "shift",
]


# --------------------------------------------------------------------------------- checks
def _check_trainable(dataset: ImageDataset, allow_eval: bool) -> None:
    if dataset.subset in ("valid", "test") and not allow_eval:
        raise CnnlabError(
            "augmenting the valid set would bias its evaluation; augment the training set only"
            if dataset.subset == "valid"
            else "augmenting the test set would bias its evaluation; augment the training set only"
        )
    dataset.require_uniform("augmenting")


def _check_copies(copies: int) -> None:
    if isinstance(copies, bool) or int(copies) != copies or copies < 1:
        raise CnnlabError(f"copies must be a whole number of at least 1, not {copies}")


def _check_amount(value: float, what: str, high: float = math.inf) -> None:
    if not math.isfinite(value) or not 0 <= value <= high:
        limit = "non-negative number" if high == math.inf else f"number in [0, {high:g}]"
        raise CnnlabError(f"the {what} must be a {limit}, not {value}")


def _copies(dataset: ImageDataset, images: list[torch.Tensor]) -> ImageDataset:
    """One dataset of the copies in ``images``, each with the labels and paths of ``dataset``."""
    copies = len(images)
    if copies == 0:
        return dataset.select([])
    return dataset.replace(
        images=torch.cat(images),
        labels=dataset.labels.repeat(copies),
        paths=dataset.paths * copies,
    )


def _generator(seed: int) -> torch.Generator:
    """A CPU generator, whatever device the images are on.

    The random angles, offsets and noise are drawn on the CPU and moved to the images, so a
    seed gives the same augmented set on a laptop and on a GPU; the work on the pixels
    (resampling, indexing, adding) runs where the images are.
    """
    return torch.Generator().manual_seed(int(seed))


def _z_scale(dataset: ImageDataset) -> torch.Tensor:
    """(1, C, 1, 1) factors from z-score units to the dataset's units.

    A raw dataset is the training set the normalizer will be fitted on, so its own per-channel
    standard deviation is the factor; a normalized dataset is in z-scores already.
    """
    if dataset.normalizer is None and len(dataset):
        statistics = Normalizer.fit(dataset.with_subset(None))
        scale = torch.tensor(statistics.std, dtype=torch.float32).view(1, -1, 1, 1)
    else:
        scale = torch.ones((1, dataset.images.shape[1], 1, 1))
    return scale.to(dataset.images.device)


# --------------------------------------------------------------------------------- rotation
def _quarter_turns(angle: float) -> int | None:
    """The number of counter-clockwise quarter turns, when ``angle`` is a multiple of 90."""
    turns = angle / 90
    return round(turns) % 4 if abs(turns - round(turns)) < 1e-9 else None


def rotate(
    dataset: ImageDataset,
    angles: Sequence[float],
    fill: Fill = "edge",
    allow_eval: bool = False,
) -> ImageDataset:
    """One copy of ``dataset`` rotated by each angle (degrees, positive = counter-clockwise).

    The output keeps the input size. Multiples of 90 degrees are exact pixel moves (no
    interpolation) for square images, and so is 180 degrees for any image. A 90-degree turn of a
    non-square image cannot keep its height x width, so it is resampled into the same size like
    any other angle: the ends of the long side are cut off and the short side is filled. Other
    angles are bilinear; the corners the rotated image no longer covers are filled with
    ``fill``: "edge" (repeat the border pixels), "mean" or "min" (of each image and channel), or
    a number in the images' units.
    """
    _check_trainable(dataset, allow_eval)
    angles = [float(a) for a in angles]
    if not angles:
        raise CnnlabError("rotate needs at least one angle")
    fill_values(dataset.images[:1], fill)  # reject a bad fill before any work
    images = dataset.images
    height, width = images.shape[-2:]
    copies = []
    for angle in angles:
        turns = _quarter_turns(angle)
        if turns is not None and (turns % 2 == 0 or height == width):
            copies.append(exact(images, lambda im, k=turns: torch.rot90(im, k, dims=(-2, -1))))
        else:
            copies.append(resample(images, torch.full((len(images),), angle), fill))
    return _copies(dataset, copies)


def random_rotate(
    dataset: ImageDataset,
    max_degrees: float,
    copies: int = 1,
    seed: int = 0,
    fill: Fill = "edge",
    allow_eval: bool = False,
) -> ImageDataset:
    """``copies`` copies, each image rotated by its own uniform random angle in [-max, max]."""
    _check_trainable(dataset, allow_eval)
    _check_copies(copies)
    if not math.isfinite(max_degrees) or max_degrees < 0:
        raise CnnlabError(f"the maximum rotation must be a non-negative number, not {max_degrees}")
    fill_values(dataset.images[:1], fill)
    generator = _generator(seed)
    out = []
    for _ in range(copies):
        angles = torch.rand(len(dataset), generator=generator, dtype=torch.float64) * 2 - 1
        out.append(resample(dataset.images, angles * max_degrees, fill))
    return _copies(dataset, out)


# --------------------------------------------------------------------------------- flips, shifts
_FLIP_AXES = {"horizontal": [(-1,)], "vertical": [(-2,)], "both": [(-1,), (-2,)]}


def flip(dataset: ImageDataset, axis: str = "horizontal", allow_eval: bool = False) -> ImageDataset:
    """Mirrored copies: "horizontal" (left-right), "vertical" (top-bottom), or "both" (two copies,
    one of each, not a combined flip, which would be a 180-degree rotation)."""
    _check_trainable(dataset, allow_eval)
    if axis not in _FLIP_AXES:
        raise CnnlabError(f"flip axis must be one of {', '.join(_FLIP_AXES)}, not {axis!r}")
    images = dataset.images
    copies = [exact(images, lambda im, d=dims: im.flip(d)) for dims in _FLIP_AXES[axis]]
    return _copies(dataset, copies)


def shift(
    dataset: ImageDataset,
    max_pixels: int,
    copies: int = 1,
    seed: int = 0,
    fill: Fill = "edge",
    allow_eval: bool = False,
) -> ImageDataset:
    """``copies`` copies, each image moved by its own random whole-pixel offset.

    The offsets (down, right) are uniform integers in [-max_pixels, max_pixels]; the image keeps
    its size, the content moved out is lost and the uncovered band is filled with ``fill`` (see
    :func:`rotate`). Values are moved, never interpolated, so integer images stay exact.
    """
    _check_trainable(dataset, allow_eval)
    _check_copies(copies)
    if isinstance(max_pixels, bool) or int(max_pixels) != max_pixels or max_pixels < 0:
        raise CnnlabError(
            f"the shift must be a non-negative whole number of pixels, not {max_pixels}"
        )
    max_pixels = int(max_pixels)
    fill_values(dataset.images[:1], fill)
    images = dataset.images
    n = len(images)
    generator = _generator(seed)
    out = []
    for _ in range(copies):
        offsets = torch.randint(-max_pixels, max_pixels + 1, (2, n), generator=generator)
        out.append(translate(images, offsets[0], offsets[1], fill))
    return _copies(dataset, out)


def random_crop(
    dataset: ImageDataset,
    min_scale: float,
    copies: int = 1,
    seed: int = 0,
    allow_eval: bool = False,
) -> ImageDataset:
    """``copies`` copies, each a random box of the image stretched back to the full size.

    The box covers a uniform random fraction in [min_scale, 1] of the image's area, with a
    width/height ratio in [3/4, 4/3] (see :func:`cnnlab.data.augment_ops.crop_boxes`); the
    stretch is bilinear, rounded and clamped back into an integer type. A microscope sees the
    same cells a little closer or further: this teaches the model to ignore their exact size.
    """
    _check_trainable(dataset, allow_eval)
    _check_copies(copies)
    if not math.isfinite(min_scale) or not 0 < min_scale <= 1:
        raise CnnlabError(f"the minimum crop scale must be in (0, 1], not {min_scale}")
    images = dataset.images
    height, width = images.shape[-2:]
    generator = _generator(seed)
    out = []
    for _ in range(copies):
        uniforms = torch.rand((len(images), 4), generator=generator, dtype=torch.float64)
        matrices, offsets = crop_boxes(uniforms, min_scale, height, width)
        cropped = torch.empty_like(images)
        for start in range(0, len(images), 4096):  # bounds the temporary float copies
            part = slice(start, start + 4096)
            moved = warp(images[part].float(), matrices[part], offsets[part], "edge")
            cropped[part] = _cast_like(moved, images.dtype)
        out.append(cropped)
    return _copies(dataset, out)


# --------------------------------------------------------------------------------- intensity
def add_noise(
    dataset: ImageDataset,
    std: float,
    mean: float = 0.0,
    copies: int = 1,
    seed: int = 0,
    allow_eval: bool = False,
) -> ImageDataset:
    """``copies`` copies with additive Gaussian noise N(mean, std) in z-score units.

    Noise is specified in the units the model sees after normalization, as in the course
    (``mmx.noiseDataImages(m=0, sd=0.10)`` on z-scored data), so the same ``std`` suits any bit
    depth. A raw dataset is the training set the normalizer will be fitted on, so its own
    per-channel standard deviation converts the noise to source units: noise = (mean + std * z) *
    channel_std. A normalized dataset gets the noise directly. The result is float32 and is not
    clipped, so the noise statistics are exactly the ones asked for.
    """
    _check_trainable(dataset, allow_eval)
    _check_copies(copies)
    if not math.isfinite(std) or std < 0:
        raise CnnlabError(f"the noise std must be a non-negative number, not {std}")
    if not math.isfinite(mean):
        raise CnnlabError(f"the noise mean must be a finite number, not {mean}")
    images = dataset.images.float()
    scale = _z_scale(dataset)
    generator = _generator(seed)
    out = []
    for _ in range(copies):
        z = torch.randn(images.shape, generator=generator).to(images.device)
        out.append(images + (mean + std * z) * scale)
    return _copies(dataset, out)


def random_brightness(
    dataset: ImageDataset,
    delta: float,
    copies: int = 1,
    seed: int = 0,
    allow_eval: bool = False,
) -> ImageDataset:
    """``copies`` copies, each image offset by its own uniform amount in [-delta, delta].

    ``delta`` is in z-score units, converted to source units as in :func:`add_noise`; one offset
    per image, the same in z-scores for all its channels (a brighter lamp). Integer images are
    rounded and clamped back into their type.
    """
    _check_trainable(dataset, allow_eval)
    _check_copies(copies)
    _check_amount(delta, "brightness delta")
    images = dataset.images
    scale = _z_scale(dataset)
    generator = _generator(seed)
    out = []
    for _ in range(copies):
        offsets = (torch.rand(len(images), generator=generator) * 2 - 1) * delta
        moved = images.float() + offsets.view(-1, 1, 1, 1).to(images.device) * scale
        out.append(_cast_like(moved, images.dtype))
    return _copies(dataset, out)


def random_contrast(
    dataset: ImageDataset,
    factor: float,
    copies: int = 1,
    seed: int = 0,
    allow_eval: bool = False,
) -> ImageDataset:
    """``copies`` copies, each image scaled around its own per-channel mean by a uniform random
    factor in [1 - factor, 1 + factor] (``factor`` in [0, 1]). Integer images are rounded and
    clamped back into their type."""
    _check_trainable(dataset, allow_eval)
    _check_copies(copies)
    _check_amount(factor, "contrast factor", high=1)
    images = dataset.images
    generator = _generator(seed)
    out = []
    for _ in range(copies):
        factors = 1 + (torch.rand(len(images), generator=generator) * 2 - 1) * factor
        scaled = scale_contrast(images.float(), factors.to(images.device))
        out.append(_cast_like(scaled, images.dtype))
    return _copies(dataset, out)


# --------------------------------------------------------------------------------- specs
Step = Callable[[ImageDataset, int], ImageDataset]
_AXIS_NAMES = {("horizontal",): "horizontal", ("vertical",): "vertical"}


def _static_step(step: StepSpec, fill: Fill) -> Step:
    """A parsed step as a function of (dataset, seed) that makes its copies."""
    kind, amount, copies = step.kind, step.amount, step.copies
    if kind == "rotate":
        return lambda ds, seed: rotate(ds, step.angles, fill=fill, allow_eval=True)
    if kind == "randrot":
        return lambda ds, seed: random_rotate(ds, amount, copies, seed, fill, allow_eval=True)
    if kind == "flip":
        axis = _AXIS_NAMES.get(step.axes, "both")
        return lambda ds, seed: flip(ds, axis, allow_eval=True)
    if kind == "noise":
        return lambda ds, seed: add_noise(ds, amount, step.mean, 1, seed, allow_eval=True)
    if kind == "shift":
        return lambda ds, seed: shift(ds, int(amount), copies, seed, fill, allow_eval=True)
    if kind == "crop":
        return lambda ds, seed: random_crop(ds, amount, copies, seed, allow_eval=True)
    if kind == "brightness":
        return lambda ds, seed: random_brightness(ds, amount, copies, seed, allow_eval=True)
    if kind == "contrast":
        return lambda ds, seed: random_contrast(ds, amount, copies, seed, allow_eval=True)
    raise AssertionError(f"unhandled augmentation {kind!r}")


def parse_specs(specs: Sequence[str] | str, fill: Fill = "edge") -> list[list[Step]]:
    """Each spec as its chain of steps; every spec is checked before any image is touched."""
    return [[_static_step(step, fill) for step in chain] for chain in parse_chains(specs)]


def augment(
    dataset: ImageDataset,
    specs: Sequence[str] | str,
    seed: int = 0,
    include_original: bool = True,
    fill: Fill = "edge",
    allow_eval: bool = False,
) -> ImageDataset:
    """The training set together with augmented copies, shuffled into one training set.

    ``specs`` is a list of specs (or one string of specs separated by spaces). Each spec makes
    copies of the *original* images, as in the course; within a spec, steps joined by "+" are
    applied one after the other ("flip+noise:0.1" gives noisy flipped copies, and a chain makes
    the product of its steps' copies). Spec forms:

    - ``rotate:A[,A...]``: one copy per angle in degrees, counter-clockwise (``rotate:90,-90,45``)
    - ``rotate:random:MAX[:COPIES]`` or ``randrot:MAX[:COPIES]``: random angle in [-MAX, MAX]
    - ``flip`` or ``flip:h`` (left-right), ``flip:v`` (top-bottom), ``flip:hv`` (one copy of each)
    - ``noise:STD[:MEAN]``: Gaussian noise with STD (and MEAN) in z-score units (``noise:0.1``)
    - ``shift:PIXELS[:COPIES]``: random whole-pixel moves of up to PIXELS in each direction
    - ``crop:MINSCALE[:COPIES]``: random resized crops of an area fraction in [MINSCALE, 1] and
      a width/height ratio in [3/4, 4/3], stretched back to the image size (``crop:0.7``)
    - ``brightness:DELTA[:COPIES]``: a random offset in [-DELTA, DELTA] z-score units per image
    - ``contrast:FACTOR[:COPIES]``: scaled around each image's mean by a random factor in
      [1 - FACTOR, 1 + FACTOR], FACTOR at most 1

    ``fill`` sets what rotations and shifts put in uncovered pixels (see :func:`rotate`). Every
    random step has its own seed derived from ``seed`` and its position, so a spec given twice
    gives two different noisy copies, and the same call always gives the same dataset.
    """
    _check_trainable(dataset, allow_eval)
    check_fits(specs, *dataset.image_size)
    chains = parse_specs(specs, fill)
    parts = [dataset] if include_original else []
    for i, chain in enumerate(chains):
        copy = dataset
        for j, step in enumerate(chain):
            step_seed = int(np.random.SeedSequence([int(seed), i, j]).generate_state(1)[0])
            copy = step(copy, step_seed)
        parts.append(copy)
    merged = merge(parts, name=dataset.name).shuffle(seed)
    subset = dataset.subset if dataset.subset in ("valid", "test") else "train"
    return merged.replace(subset=subset, meta={**dataset.meta, "augment": spec_list(specs)})
