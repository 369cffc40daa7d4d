"""Batched image transforms shared by the static and the on-the-fly augmentation.

Every function takes a batch (N, C, H, W) and per-image parameters as tensors, and runs on the
batch's device without a Python loop over images.

Geometry is described as an affine map from output to input positions in *pixel* units,
measured from the image centre, x to the right and y down: ``input = M @ output + t``, with
``M`` of shape (N, 2, 2) and ``t`` (N, 2). Flips, 90-degree rotations and whole-pixel shifts
make ``M`` a signed permutation and ``t`` whole numbers; such maps are pixel moves and
:func:`warp` does them by indexing, bit for bit. Any other map is one bilinear ``grid_sample``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from cnnlab.data.dataset import _cast_like
from cnnlab.errors import CnnlabError

Fill = float | str
FILL_MODES = ("edge", "mean", "min")

# Images per interpolation call: bounds the temporary float copies for MNIST-sized sets.
CHUNK = 4096


def exact(images: torch.Tensor, operation: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``operation`` (a flip or 90-degree rotation) on any dtype, widening those torch lacks."""
    if images.dtype in (torch.uint16, torch.uint32):
        return operation(images.to(torch.int64)).to(images.dtype)
    return operation(images)


def fill_values(images: torch.Tensor, fill: Fill) -> torch.Tensor | None:
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


def _sample(batch: torch.Tensor, theta: torch.Tensor, fill: Fill) -> torch.Tensor:
    """Bilinear ``grid_sample`` of a float batch by affine_grid matrices ``theta`` (N, 2, 3)."""
    grid = F.affine_grid(theta.to(batch.device), list(batch.shape), align_corners=False)
    constant = fill_values(batch, fill)
    if constant is None:
        return F.grid_sample(
            batch, grid, mode="bilinear", padding_mode="border", align_corners=False
        )
    # Zero padding of (image - fill) plus fill is padding with the fill value itself,
    # including the blend along the edges of the transformed image.
    return (
        F.grid_sample(
            batch - constant, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        + constant
    )


# --------------------------------------------------------------------------------- rotation
def rotation_thetas(angles: torch.Tensor, height: int, width: int) -> torch.Tensor:
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


def resample(images: torch.Tensor, angles: torch.Tensor, fill: Fill) -> torch.Tensor:
    """Bilinear rotation of each image by its angle, same size and dtype, corners filled."""
    out = torch.empty_like(images)
    height, width = images.shape[-2:]
    for start in range(0, len(images), CHUNK):
        batch = images[start : start + CHUNK].float()
        theta = rotation_thetas(angles[start : start + CHUNK], height, width)
        out[start : start + CHUNK] = _cast_like(_sample(batch, theta, fill), images.dtype)
    return out


def translate(
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
    constant = fill_values(images, fill)
    if constant is None:  # clamped indices already repeat the edge pixels
        return moved
    return torch.where(inside, moved, _cast_like(constant, images.dtype))


# --------------------------------------------------------------------------------- affine maps
def rotation_maps(degrees: torch.Tensor) -> torch.Tensor:
    """(N, 2, 2) pixel maps of counter-clockwise rotations (y down, so sin enters as below)."""
    radians = degrees.to(torch.float64) * math.pi / 180
    cos, sin = torch.cos(radians), torch.sin(radians)
    return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)


def crop_boxes(
    uniforms: torch.Tensor, min_scale: float, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random resized crops as affine maps, from four uniforms in [0, 1) per image.

    The box covers an area fraction uniform in [min_scale, 1] with a width/height ratio (relative
    to the image's own) log-uniform in [3/4, 4/3], as torchvision's RandomResizedCrop. A box that
    would be wider (or taller) than the image is made exactly as wide (or tall), keeping its
    area; its ratio then lies between 1 and the drawn one. The position is uniform over the
    places where the box fits, and the box is stretched back to the full image.
    """
    uniforms = uniforms.to(torch.float64)
    area = min_scale + (1 - min_scale) * uniforms[:, 0]
    ratio = torch.exp(math.log(3 / 4) + math.log(16 / 9) * uniforms[:, 1])
    side_x, side_y = torch.sqrt(area * ratio), torch.sqrt(area / ratio)
    side_x, side_y = (
        torch.where(side_x > 1, 1.0, torch.where(side_y > 1, area, side_x)),
        torch.where(side_y > 1, 1.0, torch.where(side_x > 1, area, side_y)),
    )
    matrices = torch.diag_embed(torch.stack([side_x, side_y], -1))
    centre_x = (2 * uniforms[:, 2] - 1) * (1 - side_x) * width / 2
    centre_y = (2 * uniforms[:, 3] - 1) * (1 - side_y) * height / 2
    return matrices, torch.stack([centre_x, centre_y], -1)


def _pixel_moves(
    matrices: torch.Tensor, offsets: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """Which maps move whole pixels: a signed permutation (a swap only on a square image) and a
    whole-number offset. A CPU computation on the small parameter tensors."""
    whole = (matrices - matrices.round()).abs().amax(dim=(1, 2)) < 1e-9
    whole &= (offsets - offsets.round()).abs().amax(dim=1) < 1e-9
    rounded = matrices.round()
    unit = (rounded.abs().sum(dim=1) == 1).all(dim=1) & (rounded.abs().sum(dim=2) == 1).all(dim=1)
    swaps = rounded[:, 0, 1] != 0
    return whole & unit & (~swaps | (height == width))


@functools.lru_cache(maxsize=32)
def _dihedral_maps(height: int, width: int, device: torch.device) -> torch.Tensor:
    """(8, H*W) flat source indices of the 8 flips and quarter turns, by :func:`_dihedral_code`.

    Doubled coordinates keep the half-pixel centre of an even-sized image in whole numbers, so
    every index is computed in integers. Turns that swap the axes exist only for square images
    (the others keep the identity, never used: such maps are resampled).
    """
    x2 = (2 * torch.arange(width) - (width - 1)).view(1, width).expand(height, width)
    y2 = (2 * torch.arange(height) - (height - 1)).view(height, 1).expand(height, width)
    maps = []
    for code in range(8):
        swap, a, b = code >= 4, -1 if code & 2 else 1, -1 if code & 1 else 1
        if swap and height != width:
            maps.append(torch.arange(height * width))
            continue
        source_x2, source_y2 = (a * y2, b * x2) if swap else (a * x2, b * y2)
        cols, rows = (source_x2 + width - 1) // 2, (source_y2 + height - 1) // 2
        maps.append((rows * width + cols).flatten())
    return torch.stack(maps).to(device)


def _dihedral_code(matrices: torch.Tensor) -> torch.Tensor:
    """The index of each signed permutation ``[[a, 0], [0, b]]`` or ``[[0, a], [b, 0]]``."""
    m = matrices.round().to(torch.int64)
    swap = m[:, 0, 1] != 0
    a = torch.where(swap, m[:, 0, 1], m[:, 0, 0])
    b = torch.where(swap, m[:, 1, 0], m[:, 1, 1])
    return 4 * swap + 2 * (a < 0) + (b < 0)


def _gather(
    images: torch.Tensor, matrices: torch.Tensor, offsets: torch.Tensor, fill: Fill
) -> torch.Tensor:
    """Pixel moves by indexing: ``in(M p + t)`` is ``in`` moved by ``-t``, then flipped/turned."""
    n, channels, height, width = images.shape
    whole = offsets.round().to(torch.int64)
    if bool(whole.any()):
        images = translate(images, -whole[:, 1], -whole[:, 0], fill)
    code = _dihedral_code(matrices)
    if not bool(code.any()):
        return images
    flat = _dihedral_maps(height, width, images.device)[code.to(images.device)]
    moved = images.flatten(2).gather(2, flat.unsqueeze(1).expand(n, channels, -1))
    return moved.view(images.shape)


def warp(
    images: torch.Tensor, matrices: torch.Tensor, offsets: torch.Tensor, fill: Fill
) -> torch.Tensor:
    """A float batch transformed by per-image pixel maps (see the module docstring).

    Pixel moves are done by indexing, exactly; the other maps by one bilinear ``grid_sample``
    for the images that need it. The maps are small CPU tensors, so which image takes which path
    is known without waiting for the device.
    """
    height, width = images.shape[-2:]
    moves = _pixel_moves(matrices, offsets, height, width)
    out = images.clone()
    if moves.any():
        index = torch.nonzero(moves).flatten()
        device_index = index.to(images.device)
        out[device_index] = _gather(images[device_index], matrices[index], offsets[index], fill)
    if not moves.all():
        index = torch.nonzero(~moves).flatten()
        # Pixel units to affine_grid's [-1, 1] units, which differ per axis on non-square images.
        scale = torch.tensor([2 / width, 2 / height], dtype=torch.float64)
        linear = scale.view(1, 2, 1) * matrices[index] / scale.view(1, 1, 2)
        theta = torch.cat([linear, (scale * offsets[index]).unsqueeze(-1)], dim=2).float()
        device_index = index.to(images.device)
        out[device_index] = _sample(images[device_index], theta, fill)
    return out


# --------------------------------------------------------------------------------- intensity
def scale_contrast(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Each float image scaled around its own per-channel mean by its factor."""
    mean = images.mean(dim=(2, 3), keepdim=True)
    return mean + factors.view(-1, 1, 1, 1).to(images) * (images - mean)


def channel_scale(
    channel_std: Sequence[float], channels: int, device: torch.device
) -> torch.Tensor:
    """Per-channel z-score-to-source factors, (1, C, 1, 1), checked against the images."""
    scale = torch.as_tensor(channel_std, dtype=torch.float32).flatten()
    if len(scale) == 1 and channels > 1:
        scale = scale.expand(channels)
    if len(scale) != channels:
        raise CnnlabError(
            f"channel_std has {len(scale)} values but the images have {channels} channels; "
            "give the training set's per-channel std"
        )
    return scale.view(1, -1, 1, 1).to(device)
