"""Data augmentation: more training images from rotated, flipped, shifted and noisy copies.

A small training set can be stretched with copies that differ in ways the label does not care
about (a bacterium is the same bacterium upside down). Only the *training* set may be augmented:
copies in the validation or test set would be near-duplicates of each other and make the
measured accuracy a measure of memory, so every function here refuses those sets unless
``allow_eval=True`` says that this is really meant.

All functions work in the units the images are in: source units for raw images (integers stay
integers: exact operations such as flips and 90-degree rotations keep the values bit for bit,
interpolated ones are rounded and clamped back into the type), z-scores for a dataset that has
been normalized. The one exception is :func:`add_noise`, whose ``std`` is always in z-score units
so that ``0.1`` means the same amount of noise for 8-bit, 16-bit and float images. Every random
choice comes from a generator seeded by ``seed``: the same call gives the same images.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.data.dataset import ImageDataset, Normalizer, _cast_like, merge
from cnnlab.errors import CnnlabError

Fill = float | str
FILL_MODES = ("edge", "mean", "min")

# Images per interpolation call: bounds the temporary float copies for MNIST-sized sets.
_CHUNK = 4096

SPEC_FORMS = (
    "rotate:ANGLE[,ANGLE...], rotate:random:MAX[:COPIES], randrot:MAX[:COPIES], "
    "flip, flip:h, flip:v, flip:hv, noise:STD[:MEAN], shift:PIXELS[:COPIES], "
    "joined with '+' to chain them (e.g. flip+noise:0.1)"
)


# --------------------------------------------------------------------------------- checks
def _check_trainable(dataset: ImageDataset, allow_eval: bool) -> None:
    if dataset.subset in ("valid", "test") and not allow_eval:
        raise CnnlabError(
            "augmenting the valid set would bias its evaluation; augment the training set only"
            if dataset.subset == "valid"
            else "augmenting the test set would bias its evaluation; augment the training set only"
        )
    dataset.require_uniform("augmenting")


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


def _exact(images: torch.Tensor, operation: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``operation`` (a flip or 90-degree rotation) on any dtype, widening those torch lacks."""
    if images.dtype in (torch.uint16, torch.uint32):
        return operation(images.to(torch.int64)).to(images.dtype)
    return operation(images)


def _fill_values(images: torch.Tensor, fill: Fill) -> torch.Tensor | None:
    """Per-image, per-channel constant (N, C, 1, 1) for the uncovered area; None for "edge"."""
    if isinstance(fill, str):
        if fill == "edge":
            return None
        if fill == "mean":
            return images.float().mean(dim=(2, 3), keepdim=True)
        if fill == "min":
            return images.float().amin(dim=(2, 3), keepdim=True)
        raise CnnlabError(f"fill must be a number or one of {', '.join(FILL_MODES)}, not {fill!r}")
    if not math.isfinite(float(fill)):
        raise CnnlabError(f"fill must be a finite number, not {fill}")
    return torch.full((len(images), images.shape[1], 1, 1), float(fill), device=images.device)


def _generator(seed: int) -> torch.Generator:
    """A CPU generator, whatever device the images are on.

    The random angles, offsets and noise are drawn on the CPU and moved to the images, so a
    seed gives the same augmented set on a laptop and on a GPU; the work on the pixels
    (resampling, indexing, adding) runs where the images are.
    """
    return torch.Generator().manual_seed(int(seed))


# --------------------------------------------------------------------------------- rotation
def _rotation_thetas(angles: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """affine_grid matrices that rotate by ``angles`` (degrees, counter-clockwise) in place.

    affine_grid maps output to input positions in coordinates normalized to [-1, 1] along each
    axis, so for a non-square image the rotation is corrected by the aspect ratio to stay a
    rotation in pixels. The centre is the image centre, as in scipy.ndimage.rotate.
    """
    radians = angles.to(torch.float64) * math.pi / 180
    cos, sin = torch.cos(radians), torch.sin(radians)
    theta = torch.zeros((len(angles), 2, 3), dtype=torch.float64)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin * height / width
    theta[:, 1, 0] = sin * width / height
    theta[:, 1, 1] = cos
    return theta.float()


def _resample(images: torch.Tensor, angles: torch.Tensor, fill: Fill) -> torch.Tensor:
    """Bilinear rotation of each image by its angle, same size, corners filled by ``fill``."""
    out = torch.empty_like(images)
    height, width = images.shape[-2:]
    for start in range(0, len(images), _CHUNK):
        batch = images[start : start + _CHUNK].float()
        theta = _rotation_thetas(angles[start : start + _CHUNK], height, width).to(batch.device)
        grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
        constant = _fill_values(batch, fill)
        if constant is None:
            rotated = F.grid_sample(
                batch, grid, mode="bilinear", padding_mode="border", align_corners=False
            )
        else:
            # Zero padding of (image - fill) plus fill is padding with the fill value itself,
            # including the blend along the edges of the rotated image.
            rotated = (
                F.grid_sample(
                    batch - constant,
                    grid,
                    mode="bilinear",
                    padding_mode="zeros",
                    align_corners=False,
                )
                + constant
            )
        out[start : start + _CHUNK] = _cast_like(rotated, images.dtype)
    return out


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
    _fill_values(dataset.images[:1], fill)  # reject a bad fill before any work
    images = dataset.images
    height, width = images.shape[-2:]
    copies = []
    for angle in angles:
        turns = _quarter_turns(angle)
        if turns is not None and (turns % 2 == 0 or height == width):
            copies.append(_exact(images, lambda im, k=turns: torch.rot90(im, k, dims=(-2, -1))))
        else:
            copies.append(_resample(images, torch.full((len(images),), angle), fill))
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
    _fill_values(dataset.images[:1], fill)
    generator = _generator(seed)
    out = []
    for _ in range(copies):
        angles = torch.rand(len(dataset), generator=generator, dtype=torch.float64) * 2 - 1
        out.append(_resample(dataset.images, angles * max_degrees, fill))
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
    copies = [_exact(images, lambda im, d=dims: im.flip(d)) for dims in _FLIP_AXES[axis]]
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
    _fill_values(dataset.images[:1], fill)
    images = dataset.images
    n = len(images)
    generator = _generator(seed)
    out = []
    for _ in range(copies):
        offsets = torch.randint(-max_pixels, max_pixels + 1, (2, n), generator=generator)
        out.append(_translate(images, offsets[0], offsets[1], fill))
    return _copies(dataset, out)


def _translate(
    images: torch.Tensor, down: torch.Tensor, right: torch.Tensor, fill: Fill
) -> torch.Tensor:
    """Each image moved by (down[i], right[i]) pixels: out[y, x] = in[y - down, x - right]."""
    n, channels, height, width = images.shape
    device = images.device
    rows = torch.arange(height, device=device).view(1, height) - down.to(device).view(n, 1)
    cols = torch.arange(width, device=device).view(1, width) - right.to(device).view(n, 1)
    inside = ((rows >= 0) & (rows < height)).view(n, 1, height, 1) & (
        (cols >= 0) & (cols < width)
    ).view(n, 1, 1, width)
    moved = images[
        torch.arange(n, device=device).view(n, 1, 1, 1),
        torch.arange(channels, device=device).view(1, channels, 1, 1),
        rows.clamp(0, height - 1).view(n, 1, height, 1),
        cols.clamp(0, width - 1).view(n, 1, 1, width),
    ]
    constant = _fill_values(images, fill)
    if constant is None:  # clamped indices already repeat the edge pixels
        return moved
    return torch.where(inside, moved, _cast_like(constant, images.dtype))


# --------------------------------------------------------------------------------- noise
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
    if dataset.normalizer is None and len(dataset):
        statistics = Normalizer.fit(dataset.with_subset(None))
        scale = torch.tensor(statistics.std, dtype=torch.float32).view(1, -1, 1, 1)
    else:
        scale = torch.ones((1, images.shape[1], 1, 1))
    scale = scale.to(images.device)
    generator = _generator(seed)
    out = []
    for _ in range(copies):
        z = torch.randn(images.shape, generator=generator).to(images.device)
        out.append(images + (mean + std * z) * scale)
    return _copies(dataset, out)


def _check_copies(copies: int) -> None:
    if isinstance(copies, bool) or int(copies) != copies or copies < 1:
        raise CnnlabError(f"copies must be a whole number of at least 1, not {copies}")


# --------------------------------------------------------------------------------- specs
Step = Callable[[ImageDataset, int], ImageDataset]


def _spec_error(spec: str, reason: str) -> CnnlabError:
    return CnnlabError(
        f"--augment (specs=): bad augmentation spec {spec!r}: {reason}; valid forms: {SPEC_FORMS}"
    )


def _number(spec: str, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _spec_error(spec, f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise _spec_error(spec, f"{what} {text!r} is not a finite number")
    return value


def _count(spec: str, text: str, what: str) -> int:
    if not re.fullmatch(r"\d+", text.strip()) or int(text) < 1:
        raise _spec_error(spec, f"{what} {text!r} is not a whole number of at least 1")
    return int(text)


def _parse_step(spec: str, step: str, fill: Fill) -> Step:
    """One augmentation of a spec (between '+') as a function of (dataset, seed)."""
    kind, _, argument = step.strip().partition(":")
    kind = kind.strip().lower()
    parts = [p.strip() for p in argument.split(":")] if argument else []
    if kind == "rotate" and parts and parts[0].lower() == "random":
        kind, parts = "randrot", parts[1:]
    if kind == "rotate":
        if len(parts) != 1 or not parts[0]:
            raise _spec_error(spec, "rotate needs a comma-separated list of angles")
        angles = [_number(spec, a, "angle") for a in parts[0].split(",")]
        return lambda ds, seed: rotate(ds, angles, fill=fill, allow_eval=True)
    if kind == "randrot":
        if len(parts) not in (1, 2):
            raise _spec_error(spec, "random rotation needs MAX and optionally COPIES")
        max_degrees = _number(spec, parts[0], "maximum angle")
        if max_degrees < 0:
            raise _spec_error(spec, f"maximum angle {parts[0]} is negative")
        copies = _count(spec, parts[1], "copies") if len(parts) == 2 else 1
        return lambda ds, seed: random_rotate(ds, max_degrees, copies, seed, fill, allow_eval=True)
    if kind == "flip":
        axes = {"": "horizontal", "h": "horizontal", "v": "vertical", "hv": "both", "vh": "both"}
        axis = axes.get(parts[0].lower() if len(parts) == 1 else "" if not parts else "?")
        if axis is None:
            raise _spec_error(spec, "flip takes h, v or hv")
        return lambda ds, seed: flip(ds, axis, allow_eval=True)
    if kind == "noise":
        if len(parts) not in (1, 2):
            raise _spec_error(spec, "noise needs STD and optionally MEAN")
        std = _number(spec, parts[0], "noise std")
        if std < 0:
            raise _spec_error(spec, f"noise std {parts[0]} is negative")
        mean = _number(spec, parts[1], "noise mean") if len(parts) == 2 else 0.0
        return lambda ds, seed: add_noise(ds, std, mean, 1, seed, allow_eval=True)
    if kind == "shift":
        if len(parts) not in (1, 2):
            raise _spec_error(spec, "shift needs PIXELS and optionally COPIES")
        if not re.fullmatch(r"\d+", parts[0]):
            raise _spec_error(spec, f"shift {parts[0]!r} is not a whole number of pixels")
        pixels = int(parts[0])
        copies = _count(spec, parts[1], "copies") if len(parts) == 2 else 1
        return lambda ds, seed: shift(ds, pixels, copies, seed, fill, allow_eval=True)
    raise _spec_error(spec, f"unknown augmentation {kind!r}" if kind else "empty augmentation")


def parse_specs(specs: Sequence[str] | str, fill: Fill = "edge") -> list[list[Step]]:
    """Each spec as its chain of steps; every spec is checked before any image is touched."""
    if isinstance(specs, str):
        specs = specs.split()
    if not specs:
        raise CnnlabError(f"--augment (specs=): no augmentation given; valid forms: {SPEC_FORMS}")
    return [[_parse_step(spec, step, fill) for step in spec.split("+")] for spec in specs]


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
    applied one after the other ("flip+noise:0.1" gives noisy flipped copies). Spec forms:

    - ``rotate:A[,A...]``: one copy per angle in degrees, counter-clockwise (``rotate:90,-90,45``)
    - ``rotate:random:MAX[:COPIES]`` or ``randrot:MAX[:COPIES]``: random angle in [-MAX, MAX]
    - ``flip`` or ``flip:h`` (left-right), ``flip:v`` (top-bottom), ``flip:hv`` (one copy of each)
    - ``noise:STD[:MEAN]``: Gaussian noise with STD (and MEAN) in z-score units (``noise:0.1``)
    - ``shift:PIXELS[:COPIES]``: random whole-pixel moves of up to PIXELS in each direction

    ``fill`` sets what rotations and shifts put in uncovered pixels (see :func:`rotate`). Every
    random step has its own seed derived from ``seed`` and its position, so a spec given twice
    gives two different noisy copies, and the same call always gives the same dataset.
    """
    _check_trainable(dataset, allow_eval)
    chains = parse_specs(specs, fill)
    spec_list = specs.split() if isinstance(specs, str) else list(specs)
    parts = [dataset] if include_original else []
    for i, chain in enumerate(chains):
        copy = dataset
        for j, step in enumerate(chain):
            step_seed = int(np.random.SeedSequence([int(seed), i, j]).generate_state(1)[0])
            copy = step(copy, step_seed)
        parts.append(copy)
    merged = merge(parts, name=dataset.name).shuffle(seed)
    subset = dataset.subset if dataset.subset in ("valid", "test") else "train"
    return merged.replace(subset=subset, meta={**dataset.meta, "augment": spec_list})
