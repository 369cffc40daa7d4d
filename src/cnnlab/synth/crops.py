"""Synthetic phase-contrast bacteria crops in the layout of the course's real data.

The course classifies 16-bit TIFF crops of *E. coli*-like bacteria into four folders (``1cell``,
``2cell``, ``groups``, ``rien``), but those images are not public. This module writes look-alikes
so that every step of cnnlab (16-bit loading, file names with spaces and several dots, crops of
varying size, training, inspection) can be exercised and taught without the real data.

The default style ``lab`` follows the measured look of the real crops (:mod:`cnnlab.synth.lab`)
and frames each object as a person drawing a ROI does: the crop is the object's box plus a small
margin, so its size follows the object and ``min_size``/``max_size`` are only limits. Each crop
belongs to one of several acquisitions, named in its file name, whose illumination, focus, halo
and noise it shares. Style ``classic`` is the first, simpler look (:mod:`cnnlab.synth.classic`).

One child generator per image, keyed by the seed, the class and the image index: the same seed
gives byte-identical files and asking for more images per class keeps the first ones unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab import files
from cnnlab.errors import CnnlabError
from cnnlab.synth.classic import crop_size, render_classic
from cnnlab.synth.lab import CLASSES, LAYOUTS, Scene, compose, paint
from cnnlab.synth.render import Acquisition, acquisition, draw_acquisition, expose, tiff_bytes

STYLES = ("lab", "classic")
#: Largest crop side accepted, so that a typo cannot ask for gigabytes of images.
MAX_CROP_SIDE = 1024
#: Written in ``out`` to remember which files this module created, so that ``overwrite`` can
#: remove exactly those (a smaller rerun must not leave stale crops behind) and nothing else.
MANIFEST_NAME = ".cnnlab-synth-manifest.txt"
_STACKS = ("1354", "1354-001")
#: Acquisitions per stack name in a lab-style dataset (file names ``1_1354.nd2`` to ``12_...``).
_ACQUISITIONS = 12
#: Pixels a person leaves between the object's visible edge and the ROI, per side.
MARGIN = (1.0, 4.0)
#: Side of an empty ``rien`` crop: the small ROIs drawn on background.
_EMPTY_SIDE = (24, 30)


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise CnnlabError(f"{name} must be a whole number, not {value!r}")
    if value < minimum:
        raise CnnlabError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _lab_crop(
    kind: str,
    rng: np.random.Generator,
    look: Acquisition,
    limits: tuple[int, int],
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """A lab-look crop framed around one object (an empty background for half of ``rien``).

    The object is rendered on a canvas wider than the crop by the reach of the halo and the
    blur, then cut out: the crop's borders then hold what a crop cut from a field would hold,
    not a mirror image of the object.
    """
    low_side, high_side = limits
    thing = None if kind == "rien" and rng.random() < 0.5 else LAYOUTS[kind](rng)
    margins = rng.uniform(*MARGIN, size=(2, 2))
    if thing is None:
        shape = np.array(size or rng.integers(_EMPTY_SIDE[0], _EMPTY_SIDE[1] + 1, size=2))
        shape = np.clip(shape, low_side, high_side)
    else:
        low, high = thing.extent(look.edge)
        extent = high - low
        if size is None:
            wanted = np.ceil(extent + margins.sum(axis=1)).astype(int)
            shape = np.clip(wanted, low_side, high_side)
        else:
            shape = np.array(size)
        # A crop too small for the object shrinks the object, never cuts it.
        margins = np.minimum(margins, shape[:, None] / 8.0)
        room = shape - margins.sum(axis=1)
        scale = min(1.0, float(np.min(room / extent)))
        slack = room - scale * extent
        offset = margins[:, 0] + slack * rng.uniform(0.0, 1.0, size=2) - scale * low
    pad = int(4 * max(look.halo_sigma, look.focus)) + 2
    canvas = (int(shape[0]) + 2 * pad, int(shape[1]) + 2 * pad)
    scene = Scene.empty(canvas)
    if thing is not None:
        paint(scene, thing.moved(offset + pad, scale), look.edge)
    # Where in the field the crop was cut: a slightly different illumination level.
    ideal = compose(scene, look.level * rng.uniform(0.975, 1.025), look)
    return expose(ideal, look, rng)[pad:-pad, pad:-pad]


def render_crop(
    kind: str,
    size: tuple[int, int] | None,
    rng: np.random.Generator,
    *,
    style: str = "lab",
    look: Acquisition | None = None,
) -> np.ndarray:
    """Render one synthetic phase-contrast crop as a ``(height, width)`` ``uint16`` array.

    ``kind`` is one of ``1cell``, ``2cell``, ``groups`` or ``rien`` (empty background or
    debris, half of each). In style ``lab``, ``size=None`` frames the object tightly (sides 24 to
    80 pixels) and ``look`` is the acquisition's settings (drawn from ``rng`` when not given);
    style ``classic`` needs a ``size``. All randomness comes from ``rng``.
    """
    if kind not in CLASSES:
        raise CnnlabError(
            f"kind {kind!r} is not a synthetic class; use one of {', '.join(CLASSES)}"
        )
    if style not in STYLES:
        raise CnnlabError(f"style (--style) {style!r} is unknown; use {' or '.join(STYLES)}")
    if size is not None:
        height, width = (int(side) for side in size)
        if min(height, width) < 8 or max(height, width) > MAX_CROP_SIDE:
            raise CnnlabError(
                f"size {size} must have both sides between 8 and {MAX_CROP_SIDE} pixels"
            )
        size = (height, width)
    if style == "classic":
        if size is None:
            raise CnnlabError("size is required in style classic; give (height, width)")
        return render_classic(kind, size, rng)
    look = look if look is not None else draw_acquisition(rng)
    return _lab_crop(kind, rng, look, (24, 80), size)


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise CnnlabError(f"{out} is a file, not a folder; choose another output folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST_NAME).is_file():
        # Without the manifest, this is not a folder synth made: crops written among a user's
        # files (or into a run folder) would mix with them, and could replace some. Said first,
        # so that nobody is sent to try --overwrite for nothing.
        raise CnnlabError(
            f"{out} holds files that cnnlab synth did not write; choose another folder "
            "(--overwrite only replaces a folder made by cnnlab synth bacteria)"
        )
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise CnnlabError(
            f"{out} holds data that cnnlab synth made already; choose another folder or pass "
            "--overwrite to replace it"
        )
    for name in CLASSES:
        folder = out / name
        if folder.exists() and not folder.is_dir():
            raise CnnlabError(f"{folder} is a file, not a folder; remove it or choose another out")


def synth_bacteria(
    out: str | Path,
    per_class: int = 100,
    seed: int = 0,
    min_size: int = 24,
    max_size: int = 80,
    overwrite: bool = False,
    style: str = "lab",
) -> dict[str, int]:
    """Write a synthetic bacteria dataset to ``out`` and return the number of crops per class.

    ``out`` receives the four class folders of the course (``1cell``, ``2cell``, ``groups``,
    ``rien``), each with ``per_class`` 16-bit grayscale TIFF crops named like the real ones
    (``roi 12 - 3_1354-001.nd2 - C=0.tif``, the acquisition's name after the dash). In style
    ``lab`` each crop frames its object tightly and its sides stay within ``min_size`` and
    ``max_size`` (an object too large for ``max_size`` is shrunk); in style ``classic`` the
    sides are drawn between them. A non-empty ``out`` is refused unless ``overwrite`` is true;
    then files of the same names are replaced, files that an earlier run of this function wrote
    there (listed in ``.cnnlab-synth-manifest.txt``) are removed first so a smaller rerun leaves
    no stale crops, and every other file of the user's stays untouched.

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
    if style not in STYLES:
        raise CnnlabError(f"style (--style) {style!r} is unknown; use {' or '.join(STYLES)}")

    out = Path(out)
    _check_out(out, overwrite)
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
            if style == "classic":
                height, width = crop_size(rng, min_size, max_size)
                number = int(rng.integers(1, 13))
                stack = int(rng.integers(len(_STACKS)))
                image = render_classic(name, (height, width), rng)
            else:
                number = int(rng.integers(1, _ACQUISITIONS + 1))
                stack = int(rng.integers(len(_STACKS)))
                look = acquisition(seed, number, stack)
                image = _lab_crop(name, rng, look, (min_size, max_size))
            filename = f"roi {i} - {number}_{_STACKS[stack]}.nd2 - C=0.tif"
            files.write_bytes(folder / filename, tiff_bytes(image))
            written.append(f"{name}/{filename}")
        counts[name] = per_class
    files.write_text(manifest, "\n".join(written) + "\n")
    return counts
