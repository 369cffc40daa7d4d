"""On-the-fly augmentation: every batch of every epoch gets freshly drawn copies.

The static mode (:func:`cnnlab.data.augment.augment`) multiplies the training set before
training: ``rotate:90 flip`` stores three images for each one, and every epoch sees the same
copies. Here the training set stays as it is, and for each image of each batch one of the
images the static mode *would* have made from it is drawn uniformly, with fresh random angles,
offsets, crops and noise: the original (when ``include_original``) or one of the copies. A spec
``rotate:90,-90,45`` stands for 3 copies, ``flip:hv`` 2, ``randrot:15:3`` 3, ``shift:2:2`` 2, and
a chain ``a+b`` the product of its steps' counts. So ``flip`` alone is a horizontal flip with
probability 1/2, ``rotate:90 flip`` gives the original, the turned and the flipped image a third
of the time each, and training sees the same distribution as on the static set, without storing
it.

The work is batched on the images' device. Within a chain, consecutive geometric steps compose
into one map per image: flips, quarter turns of square images and whole-pixel shifts are done by
indexing and stay bit for bit; anything else is one bilinear ``grid_sample`` (so a chain of two
rotations interpolates once, where the static mode interpolates twice). Intensity steps (noise,
brightness, contrast) apply in their place in the chain. Results are float32 and not rounded.

Randomness: :meth:`OnTheFly.sample` draws every parameter on the CPU from the generator it is
given, so a seeded run repeats exactly on any device, and :meth:`AugmentParams.select` gives a
data-parallel rank its share of the global batch's parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from cnnlab.data.augment_ops import (
    Fill,
    channel_scale,
    crop_boxes,
    fill_values,
    rotation_maps,
    scale_contrast,
    warp,
)
from cnnlab.data.augment_specs import StepSpec, chain_count, parse_chains
from cnnlab.errors import CnnlabError

_FLIP_MAPS = {"horizontal": (-1.0, 1.0), "vertical": (1.0, -1.0)}
# Widths of the per-image random values each step draws (noise draws one seed per batch).
_WIDTHS = {"randrot": 1, "shift": 2, "crop": 4, "brightness": 1, "contrast": 1}


@dataclasses.dataclass(frozen=True)
class AugmentParams:
    """The random parameters of one global batch, and which of its images this share holds.

    ``variant[k]`` is the drawn variant of global image k (0 is the original when it is
    included); ``values[i][j]`` holds step j of spec i's values for every global image (or, for
    noise, the seed of the batch's noise). ``positions`` are the global images of this share.
    """

    variant: torch.Tensor
    values: tuple[tuple[torch.Tensor | None, ...], ...]
    positions: torch.Tensor

    def __len__(self) -> int:
        return len(self.positions)

    def select(self, index: torch.Tensor | Sequence[int]) -> AugmentParams:
        """The parameters of the images at positions ``index`` of this batch.

        A rank of data-parallel training takes its share of the global batch's parameters, so
        that 1 and 2 processes see the same augmented images.
        """
        index = torch.as_tensor(index).cpu()
        return dataclasses.replace(self, positions=self.positions[index])


class OnTheFly:
    """Fresh augmented copies for each batch, drawn like the static mode's (see the module)."""

    def __init__(
        self,
        chains: Sequence[tuple[StepSpec, ...]],
        fill: Fill,
        channel_std: Sequence[float],
        include_original: bool,
    ) -> None:
        self.chains = [tuple(chain) for chain in chains]
        self.fill = fill
        self.channel_std = tuple(float(s) for s in channel_std)
        self.include_original = bool(include_original)
        self.counts = [chain_count(chain) for chain in self.chains]

    @classmethod
    def from_specs(
        cls,
        specs: Sequence[str] | str,
        *,
        fill: Fill = "edge",
        channel_std: Sequence[float],
        include_original: bool = True,
    ) -> OnTheFly:
        """Checks the specs (the static mode's forms and errors, naming --augment) and the fill
        before any training.

        ``channel_std`` is the training set's per-channel std in source units (one value is used
        for every channel): what turns the z-score amounts of noise and brightness into source
        units, as the static :func:`~cnnlab.data.augment.add_noise` does.
        """
        chains = parse_chains(specs)
        fill_values(torch.zeros((1, 1, 1, 1)), fill)
        stds = torch.as_tensor(channel_std, dtype=torch.float64).flatten()
        if len(stds) == 0 or not bool(torch.isfinite(stds).all()) or bool((stds <= 0).any()):
            raise CnnlabError(
                f"channel_std must be positive finite numbers (the training set's per-channel "
                f"std in source units), not {list(channel_std)}"
            )
        return cls(chains, fill, stds.tolist(), include_original)

    @property
    def variants(self) -> int:
        """How many images the static mode makes from one (the original included when it is)."""
        return int(self.include_original) + sum(self.counts)

    def __repr__(self) -> str:
        return (
            f"OnTheFly({len(self.chains)} specs, {self.variants} variants, fill={self.fill!r}, "
            f"include_original={self.include_original})"
        )

    # ------------------------------------------------------------------------------ sampling
    def sample(self, count: int, generator: torch.Generator) -> AugmentParams:
        """Random parameters for ``count`` images, drawn on the CPU from ``generator`` only.

        The same generator state gives the same parameters, whatever device the images are on.
        Every step's values are drawn for every image, in a fixed order, so the draws do not
        depend on which variants came up.
        """
        variant = torch.randint(0, self.variants, (count,), generator=generator)
        values = []
        for chain in self.chains:
            row: list[torch.Tensor | None] = []
            for step in chain:
                if step.kind == "noise":
                    row.append(torch.randint(0, 2**62, (), generator=generator))
                elif step.kind in _WIDTHS:
                    size = (count, _WIDTHS[step.kind])
                    row.append(torch.rand(size, generator=generator, dtype=torch.float64))
                else:  # a list of angles or flips: the variant says which
                    row.append(None)
            values.append(tuple(row))
        return AugmentParams(variant, tuple(values), torch.arange(count))

    def _decode(self, variant: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Each variant's spec (-1 for the original) and its choice index within every step.

        Variants number the original first, then the copies spec by spec; within a spec the
        index is read as mixed-radix digits, one per step, so each list choice is uniform.
        """
        rest = variant - int(self.include_original)
        ends = torch.cumsum(torch.tensor(self.counts), 0)
        spec = torch.searchsorted(ends, rest, right=True)
        spec = torch.where(rest < 0, -1, spec)
        starts = torch.cat([torch.zeros(1, dtype=torch.int64), ends])
        rest = rest - starts[spec.clamp(min=0)]
        depth = max((len(chain) for chain in self.chains), default=0)
        radix = [
            [step.count for step in chain] + [1] * (depth - len(chain)) for chain in self.chains
        ]
        radix_table = torch.tensor(radix, dtype=torch.int64).view(len(self.chains), depth)
        digits = []
        for j in range(depth):
            base = radix_table[spec.clamp(min=0), j]
            digits.append(rest % base)
            rest = rest // base
        return spec, digits

    # ------------------------------------------------------------------------------ applying
    def apply(self, images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """The augmented float32 batch, on the images' device, in their shape.

        ``images`` is (B, C, H, W) of any dtype (uint8/uint16/int/float) on any device, and
        ``params`` holds B images' parameters. Batched: a Python loop runs over the specs and
        their steps, never over images; which image takes which path is read from the CPU
        parameters, so nothing waits for the device.
        """
        if images.ndim != 4:
            raise CnnlabError(f"augmentation needs a batch (B, C, H, W), not shape {images.shape}")
        if len(images) != len(params):
            raise CnnlabError(
                f"{len(images)} images but parameters for {len(params)}; sample one per image"
            )
        out = images.to(torch.float32, copy=True)
        spec, digits = self._decode(params.variant)
        scale = channel_scale(self.channel_std, images.shape[1], images.device)
        local_spec = spec[params.positions]
        for i in range(len(self.chains)):
            local = torch.nonzero(local_spec == i).flatten()
            if len(local) == 0:
                continue
            members = params.positions[local]
            where = local.to(images.device)
            out[where] = self._chain(i, out[where], params, members, spec, digits, scale)
        return out

    def _chain(
        self,
        i: int,
        batch: torch.Tensor,
        params: AugmentParams,
        members: torch.Tensor,
        spec: torch.Tensor,
        digits: list[torch.Tensor],
        scale: torch.Tensor,
    ) -> torch.Tensor:
        """Spec ``i``'s steps on its images (global positions ``members``), each run of
        geometric steps fused into one warp. ``spec`` and ``digits`` are the decoded variants
        of the whole global batch."""
        n, height, width = len(batch), batch.shape[-2], batch.shape[-1]
        matrices = torch.eye(2, dtype=torch.float64).repeat(n, 1, 1)
        offsets = torch.zeros((n, 2), dtype=torch.float64)
        for j, step in enumerate(self.chains[i]):
            values = params.values[i][j]
            if step.geometric:
                picked = values[members] if values is not None else None
                step_m, step_t = self._map(step, picked, digits[j][members], height, width)
                # Steps apply in order, so the output-to-input maps compose last-inside-first.
                offsets = (matrices @ step_t.unsqueeze(-1)).squeeze(-1) + offsets
                matrices = matrices @ step_m
                continue
            batch = self._warp(batch, matrices, offsets)
            matrices = torch.eye(2, dtype=torch.float64).repeat(n, 1, 1)
            offsets = torch.zeros((n, 2), dtype=torch.float64)
            if step.kind == "noise":
                z = self._noise(values, spec == i, members, batch.shape[1:]).to(batch.device)
                batch = batch + (step.mean + step.amount * z) * scale
            elif step.kind == "brightness":
                offset = (2 * values[members, 0] - 1) * step.amount
                batch = batch + offset.float().view(-1, 1, 1, 1).to(batch.device) * scale
            else:  # contrast
                factors = 1 + (2 * values[members, 0] - 1) * step.amount
                batch = scale_contrast(batch, factors.float().to(batch.device))
        return self._warp(batch, matrices, offsets)

    def _warp(
        self, batch: torch.Tensor, matrices: torch.Tensor, offsets: torch.Tensor
    ) -> torch.Tensor:
        identity = torch.eye(2, dtype=torch.float64)
        if bool((matrices == identity).all()) and not bool(offsets.any()):
            return batch
        return warp(batch, matrices, offsets, self.fill)

    @staticmethod
    def _map(
        step: StepSpec, values: torch.Tensor | None, digit: torch.Tensor, height: int, width: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One geometric step as output-to-input pixel maps (see ``augment_ops``)."""
        n = len(digit)
        none = torch.zeros((n, 2), dtype=torch.float64)
        if step.kind == "rotate":
            return rotation_maps(torch.tensor(step.angles, dtype=torch.float64)[digit]), none
        if step.kind == "randrot":
            return rotation_maps((2 * values[:, 0] - 1) * step.amount), none
        if step.kind == "flip":
            signs = torch.tensor([_FLIP_MAPS[axis] for axis in step.axes], dtype=torch.float64)
            return torch.diag_embed(signs[digit]), none
        if step.kind == "shift":
            # Whole pixels uniform in [-PIXELS, PIXELS], as the static shift draws them.
            pixels = torch.floor(values * (2 * step.amount + 1)) - step.amount
            return torch.eye(2, dtype=torch.float64).repeat(n, 1, 1), -pixels
        return crop_boxes(values, step.amount, height, width)

    @staticmethod
    def _noise(
        seed: torch.Tensor, in_spec: torch.Tensor, members: torch.Tensor, shape: torch.Size
    ) -> torch.Tensor:
        """Standard normal noise for ``members``, drawn for all of the global batch's images of
        this spec: an image's noise does not depend on which share of the batch it is in."""
        everyone = torch.nonzero(in_spec).flatten()
        generator = torch.Generator().manual_seed(int(seed))
        z = torch.randn((len(everyone), *shape), generator=generator)
        return z[torch.searchsorted(everyone, members)]
