"""The augmentation spec language (``rotate:90,-90``, ``flip+noise:0.1``), parsed for both modes.

A spec is a chain of steps joined by "+"; each step parses into a :class:`StepSpec` that says
what to do and how many images the static mode makes from one (:attr:`StepSpec.count`). The
static mode (``augment.py``) turns the steps into copies of the dataset; the on-the-fly mode
(``augment_online.py``) draws one of those copies per image and batch. Parsing in one place
keeps the two modes accepting the same specs with the same error messages.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cnnlab.errors import CnnlabError

SPEC_FORMS = (
    "rotate:ANGLE[,ANGLE...], rotate:random:MAX[:COPIES], randrot:MAX[:COPIES], "
    "flip, flip:h, flip:v, flip:hv, noise:STD[:MEAN], shift:PIXELS[:COPIES], "
    "crop:MINSCALE[:COPIES], brightness:DELTA[:COPIES], contrast:FACTOR[:COPIES], "
    "joined with '+' to chain them (e.g. flip+noise:0.1)"
)

# The steps that move pixels (and compose into one resampling on the fly); the others change
# intensities.
GEOMETRIC = frozenset({"rotate", "randrot", "flip", "shift", "crop"})


@dataclass(frozen=True)
class StepSpec:
    """One parsed step of a spec.

    ``kind`` is one of rotate, randrot, flip, noise, shift, crop, brightness, contrast.
    ``angles`` (rotate) and ``axes`` (flip: "horizontal", "vertical") list the copies a step
    makes one of each; ``amount`` is the step's number (maximum angle, noise std, pixels,
    minimum crop scale, brightness delta, contrast factor), ``mean`` the noise mean, and
    ``copies`` the number of independent random copies.
    """

    kind: str
    amount: float = 0.0
    copies: int = 1
    angles: tuple[float, ...] = ()
    axes: tuple[str, ...] = ()
    mean: float = 0.0

    @property
    def count(self) -> int:
        """How many images the static mode makes from one image with this step."""
        if self.kind == "rotate":
            return len(self.angles)
        if self.kind == "flip":
            return len(self.axes)
        return self.copies

    @property
    def geometric(self) -> bool:
        return self.kind in GEOMETRIC


def spec_error(spec: str, reason: str) -> CnnlabError:
    return CnnlabError(
        f"--augment: bad augmentation spec {spec!r}: {reason}; valid forms: {SPEC_FORMS}"
    )


def _number(spec: str, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise spec_error(spec, f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise spec_error(spec, f"{what} {text!r} is not a finite number")
    return value


def _count(spec: str, text: str, what: str) -> int:
    if not re.fullmatch(r"\d+", text.strip()) or int(text) < 1:
        raise spec_error(spec, f"{what} {text!r} is not a whole number of at least 1")
    return int(text)


def _amount_and_copies(spec: str, kind: str, parts: list[str], name: str) -> tuple[float, int]:
    """``AMOUNT[:COPIES]`` with a non-negative amount."""
    if len(parts) not in (1, 2):
        raise spec_error(spec, f"{kind} needs {name.upper()} and optionally COPIES")
    amount = _number(spec, parts[0], name)
    if amount < 0:
        raise spec_error(spec, f"{name} {parts[0]} is negative")
    return amount, _count(spec, parts[1], "copies") if len(parts) == 2 else 1


_FLIP_AXES = {
    "": ("horizontal",),
    "h": ("horizontal",),
    "v": ("vertical",),
    "hv": ("horizontal", "vertical"),
    "vh": ("horizontal", "vertical"),
}


def parse_step(spec: str, step: str) -> StepSpec:
    """One step of ``spec`` (the text between '+'), checked."""
    kind, _, argument = step.strip().partition(":")
    kind = kind.strip().lower()
    parts = [p.strip() for p in argument.split(":")] if argument else []
    if kind == "rotate" and parts and parts[0].lower() == "random":
        kind, parts = "randrot", parts[1:]
    if kind == "rotate":
        if len(parts) != 1 or not parts[0]:
            raise spec_error(spec, "rotate needs a comma-separated list of angles")
        angles = tuple(_number(spec, a, "angle") for a in parts[0].split(","))
        for text, angle in zip(parts[0].split(","), angles, strict=True):
            if angle % 360 == 0:
                raise spec_error(spec, f"angle {text.strip()} leaves the image as it is")
        return StepSpec("rotate", angles=angles)
    if kind == "randrot":
        if len(parts) not in (1, 2):
            raise spec_error(spec, "random rotation needs MAX and optionally COPIES")
        max_degrees, copies = _amount_and_copies(spec, kind, parts, "maximum angle")
        if not 0 < max_degrees <= 180:
            raise spec_error(spec, f"maximum angle {parts[0]} is not in (0, 180]")
        return StepSpec("randrot", max_degrees, copies)
    if kind == "flip":
        axes = _FLIP_AXES.get(parts[0].lower() if len(parts) == 1 else "" if not parts else "?")
        if axes is None:
            raise spec_error(spec, "flip takes h, v or hv")
        return StepSpec("flip", axes=axes)
    if kind == "noise":
        if len(parts) not in (1, 2):
            raise spec_error(spec, "noise needs STD and optionally MEAN")
        std = _number(spec, parts[0], "noise std")
        if std < 0:
            raise spec_error(spec, f"noise std {parts[0]} is negative")
        mean = _number(spec, parts[1], "noise mean") if len(parts) == 2 else 0.0
        if std == 0 and mean == 0:
            raise spec_error(spec, "noise of std 0 and mean 0 leaves the image as it is")
        return StepSpec("noise", std, mean=mean)
    if kind == "shift":
        if len(parts) not in (1, 2):
            raise spec_error(spec, "shift needs PIXELS and optionally COPIES")
        if not re.fullmatch(r"\d+", parts[0]):
            raise spec_error(spec, f"shift {parts[0]!r} is not a whole number of pixels")
        copies = _count(spec, parts[1], "copies") if len(parts) == 2 else 1
        if int(parts[0]) == 0:
            raise spec_error(spec, "a shift of 0 pixels leaves the image as it is")
        return StepSpec("shift", int(parts[0]), copies)
    if kind == "crop":
        scale, copies = _amount_and_copies(spec, kind, parts, "minimum scale")
        if not 0 < scale < 1:
            raise spec_error(spec, f"minimum scale {parts[0]} is not in (0, 1): 1 crops nothing")
        return StepSpec("crop", scale, copies)
    if kind == "brightness":
        delta, copies = _amount_and_copies(spec, kind, parts, "delta")
        if delta == 0:
            raise spec_error(spec, "a delta of 0 leaves the image as it is")
        return StepSpec("brightness", delta, copies)
    if kind == "contrast":
        factor, copies = _amount_and_copies(spec, kind, parts, "factor")
        if factor > 1:
            raise spec_error(spec, f"factor {parts[0]} is above 1 (it would invert the contrast)")
        if factor == 0:
            raise spec_error(spec, "a factor of 0 leaves the image as it is")
        return StepSpec("contrast", factor, copies)
    raise spec_error(spec, f"unknown augmentation {kind!r}" if kind else "empty augmentation")


def spec_list(specs: Sequence[str] | str) -> list[str]:
    """The specs as a list (a string holds specs separated by spaces)."""
    return specs.split() if isinstance(specs, str) else list(specs)


def parse_chains(specs: Sequence[str] | str) -> list[tuple[StepSpec, ...]]:
    """Each spec as its chain of steps; every spec is checked before any image is touched."""
    specs = spec_list(specs)
    if not specs:
        raise CnnlabError(f"--augment: no augmentation given; valid forms: {SPEC_FORMS}")
    return [tuple(parse_step(spec, step) for step in spec.split("+")) for spec in specs]


def chain_count(chain: Sequence[StepSpec]) -> int:
    """Images the static mode makes from one image with this chain: the product of its steps'."""
    return math.prod(step.count for step in chain)


def check_fits(specs: Sequence[str] | str, height: int, width: int) -> None:
    """Refuses a shift that would move ``height`` x ``width`` images out of their frame."""
    for spec, chain in zip(spec_list(specs), parse_chains(specs), strict=True):
        for step in chain:
            if step.kind == "shift" and step.amount >= min(height, width):
                raise spec_error(
                    spec,
                    f"a shift of {int(step.amount)} pixels moves {height}x{width} images out of "
                    "their frame; give fewer pixels than the image's side",
                )
