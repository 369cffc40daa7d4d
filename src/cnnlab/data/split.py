"""Stratified training / validation / test splits, and the manifest that makes them reproducible.

A model is only as trustworthy as the images it was *not* trained on, so the split is the first
decision of the workflow and it must be (1) fair: every class keeps the same share in every
subset, or validation accuracy measures a different problem than training optimizes; (2)
repeatable: the same seed gives the same split; and (3) recordable: a manifest CSV lists which file
went where, so a split can be rebuilt exactly on another machine or after the folder is reloaded.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnlab import views
from cnnlab.data.dataset import SUBSETS, ImageDataset, proportions
from cnnlab.errors import CnnlabError
from cnnlab.files import write_text

MANIFEST_HEADER = ("path", "class", "subset")

# A subset whose largest class is more than this many times its smallest class is flagged.
IMBALANCE_RATIO = 1.5


@dataclass(frozen=True)
class Split:
    """The training set and, when their share is nonzero, the validation and test sets."""

    train: ImageDataset
    valid: ImageDataset | None = None
    test: ImageDataset | None = None

    def items(self) -> list[tuple[str, ImageDataset]]:
        """(subset name, dataset) for the subsets that exist, in train/valid/test order."""
        subsets = (("train", self.train), ("valid", self.valid), ("test", self.test))
        return [(name, dataset) for name, dataset in subsets if dataset is not None]

    def __repr__(self) -> str:
        """One line: ``Split(train 600, valid 300, test 100 images; 10 classes)``."""
        sizes = ", ".join(f"{name} {len(dataset):,}" for name, dataset in self.items())
        classes = len(self.train.class_names)
        return f"Split({sizes} images; {classes} class{'' if classes == 1 else 'es'})"

    def _repr_html_(self) -> str:
        """Jupyter's view: images per class and subset, with the balance warnings."""
        return views.render("split.html", self)


# --------------------------------------------------------------------------------- splitting
def split_dataset(
    dataset: ImageDataset,
    percents: Sequence[float] = (60, 30, 10),
    seed: int = 0,
    equalize: bool = False,
) -> Split:
    """Split ``dataset`` into train/valid/test, class by class.

    ``percents`` is (train, valid) or (train, valid, test) and must sum to 100; a 0 share leaves
    that subset out (None). Within each class the images are shuffled with ``seed`` and cut at the
    rounded cumulative shares, so every subset holds its share of every class to within one image.
    When a class is too small for every subset to get one image, the training set is served
    first and a warning names the class and the subset left without it.

    ``equalize=True`` (``--equalize``) randomly drops images of the larger classes *from the
    training set only* until every class has as many as the smallest one, so the model is not
    pushed towards the majority class; validation and test keep their natural proportions, which
    is what the model will meet later. Each subset is finally shuffled so that classes are
    interleaved.

    This is not the course's ``equalize=T``, which asks for the same class proportions in every
    subset: the stratified split always gives that, with or without ``equalize``.
    """
    shares = _check_percents(percents)
    if len(dataset) == 0:
        raise CnnlabError(f"{dataset.name} is empty: there is nothing to split")
    # Independent streams, so that equalizing the training set leaves valid and test as they are.
    cut_rng, equalize_rng, *order_rngs = map(
        np.random.default_rng, np.random.SeedSequence(int(seed)).spawn(2 + len(SUBSETS))
    )
    members = _stratified_indices(dataset, shares, cut_rng)
    if equalize:
        members[0] = _equalize_indices(dataset.labels, members[0], equalize_rng)
    subsets: list[ImageDataset | None] = []
    for name, share, index, rng in zip(SUBSETS, shares, members, order_rngs, strict=False):
        if share == 0:
            subsets.append(None)
            continue
        subsets.append(dataset.select(rng.permutation(index)).with_subset(name))
    subsets += [None] * (3 - len(subsets))
    return Split(train=subsets[0], valid=subsets[1], test=subsets[2])


def carve_validation(
    train: ImageDataset, percent: float, seed: int = 0
) -> tuple[ImageDataset, ImageDataset]:
    """(smaller training set, validation set) carved out of a training set, class by class.

    For datasets that ship with their own test set (MNIST): hyperparameters must be tuned on
    images the final test never sees, so the validation share comes out of the training images.
    """
    if train.subset in ("valid", "test"):
        raise CnnlabError(
            f"cannot carve a validation set out of the {train.subset} set; carve it out of the "
            "training set"
        )
    if not 0 < percent < 100:
        raise CnnlabError(
            f"--split (percent=): the validation percent must be between 0 and 100, not {percent}"
        )
    split = split_dataset(train, (100 - percent, percent), seed=seed)
    assert split.valid is not None
    return split.train, split.valid


def _check_percents(percents: Sequence[float]) -> list[float]:
    expected = "give 2 (train, valid) or 3 (train, valid, test) percents that sum to 100"
    try:
        values = [float(p) for p in percents]
    except (TypeError, ValueError):
        raise CnnlabError(f"--split (percents=) {percents!r}: not numbers; {expected}") from None
    given = f"--split (percents=) {','.join(f'{v:g}' for v in values)}"
    if len(values) not in (2, 3):
        raise CnnlabError(f"{given}: {expected}")
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise CnnlabError(f"{given}: percents must be numbers of 0 or more; {expected}")
    if not math.isclose(sum(values), 100.0, abs_tol=1e-6):
        raise CnnlabError(f"{given}: the percents sum to {sum(values):g}, not 100; {expected}")
    if values[0] == 0:
        raise CnnlabError(f"{given}: leaves no training set; {expected}")
    return values


def _stratified_indices(
    dataset: ImageDataset, shares: list[float], rng: np.random.Generator
) -> list[np.ndarray]:
    """Dataset positions of each subset, every class cut at its rounded cumulative shares."""
    labels = dataset.labels.numpy()
    per_subset: list[list[np.ndarray]] = [[] for _ in shares]
    for label, class_name in enumerate(dataset.class_names):
        positions = rng.permutation(np.flatnonzero(labels == label))
        if len(positions) == 0:
            raise CnnlabError(
                f"{dataset.name}: class '{class_name}' has no images, so no subset can hold it; "
                "add images to it or remove the class"
            )
        counts = _allocate(len(positions), shares)
        for subset, (name, share, count) in enumerate(zip(SUBSETS, shares, counts, strict=False)):
            if share > 0 and count == 0:
                warnings.warn(
                    f"class '{class_name}' has only {len(positions)} image(s), too few to put "
                    f"one in the {name} set ({share:g}%); that set has none of it",
                    stacklevel=3,
                )
            start = sum(counts[:subset])
            per_subset[subset].append(positions[start : start + count])
    return [np.concatenate(parts).astype(np.int64) for parts in per_subset]


def _allocate(n: int, shares: list[float]) -> list[int]:
    """How many of ``n`` images go to each subset, each within one image of its exact share.

    Rounding the cumulative shares (rather than each share) keeps the total exact and every
    count within one of ``n * share``. Then a subset with a nonzero share but no image takes one
    from the subset with the most to spare, but only when that keeps both within one image of
    their share; the training set is served first because a class it lacks cannot be learned.
    """
    ideal = [n * s / 100 for s in shares]
    bounds = [math.floor(n * sum(shares[:k]) / 100 + 0.5) for k in range(len(shares) + 1)]
    bounds[-1] = n
    counts = [bounds[k + 1] - bounds[k] for k in range(len(shares))]
    for taker in range(len(shares)):
        if shares[taker] == 0 or counts[taker] > 0:
            continue
        keep = 0 if taker == 0 else 1  # only the training set may take another set's last image
        donors = [
            d
            for d in range(len(shares))
            if d != taker and counts[d] > keep and counts[d] - 1 >= ideal[d] - 1
        ]
        if donors:
            donor = max(donors, key=lambda d: counts[d] - ideal[d])
            counts[donor] -= 1
            counts[taker] += 1
    return counts


def _equalize_indices(
    labels: torch.Tensor, index: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """``index`` with every class randomly cut down to the size of the smallest class."""
    subset_labels = labels.numpy()[index]
    present = np.unique(subset_labels)
    smallest = min(int((subset_labels == label).sum()) for label in present)
    kept = [
        rng.choice(index[subset_labels == label], size=smallest, replace=False) for label in present
    ]
    return np.sort(np.concatenate(kept))


# --------------------------------------------------------------------------------- manifest
def write_manifest(split: Split, path: str | Path) -> Path:
    """Write the split as a CSV manifest (``path,class,subset``), each subset in its order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(MANIFEST_HEADER)
    for subset, dataset in split.items():
        for source, label in zip(dataset.paths, dataset.labels.tolist(), strict=True):
            writer.writerow((source, dataset.class_names[label], subset))
    write_text(path, text.getvalue())
    return path


def read_manifest(path: str | Path) -> list[tuple[str, str, str]]:
    """The (path, class, subset) rows of a manifest, checked line by line."""
    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"split manifest {path} does not exist; write one with the split step")
    rows: list[tuple[str, str, str]] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != MANIFEST_HEADER:
            raise CnnlabError(
                f"{path}, line 1: expected the header {','.join(MANIFEST_HEADER)}, found "
                f"{','.join(header) if header else 'an empty file'}"
            )
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) != 3:
                raise CnnlabError(
                    f"{path}, line {line}: expected 3 fields (path,class,subset), found {len(row)}"
                )
            source, class_name, subset = row
            if subset not in SUBSETS:
                raise CnnlabError(
                    f"{path}, line {line}: unknown subset {subset!r}; use one of "
                    f"{', '.join(SUBSETS)}"
                )
            if not source:
                raise CnnlabError(f"{path}, line {line}: empty path")
            rows.append((source, class_name, subset))
    return rows


def apply_manifest(dataset: ImageDataset, path: str | Path) -> Split:
    """Rebuild the exact split (same samples, same order) that a manifest recorded.

    Samples are matched by their source path or, when the data folder has been moved or
    copied, by their last two path parts (class folder and file name) where those are unique.
    Images of ``dataset`` that the manifest does not list are left out with a warning (they were
    probably added after the split was made).
    """
    rows = read_manifest(path)
    position: dict[str, int] = {}
    for i, source in enumerate(dataset.paths):
        if source in position:
            raise CnnlabError(
                f"{dataset.name} holds {source} twice; a manifest can only be applied to a "
                "dataset of distinct files (apply it before augmenting)"
            )
        position[source] = i
    tails: dict[tuple[str, ...], int | None] = {}
    for source, i in position.items():
        tail = Path(source).parts[-2:]
        tails[tail] = None if tail in tails else i  # None: ambiguous, never matched by tail
    members: dict[str, list[int]] = {name: [] for name in SUBSETS}
    seen: set[str] = set()
    for source, class_name, subset in rows:
        if source in seen:
            raise CnnlabError(f"split manifest {path} lists {source} twice")
        seen.add(source)
        i = position.get(source, tails.get(Path(source).parts[-2:]))
        if i is None:
            raise CnnlabError(
                f"split manifest {path} lists {source}, which is not in {dataset.name}; load the "
                "same files the manifest was written from"
            )
        actual = dataset.class_names[int(dataset.labels[i])]
        if actual != class_name:
            raise CnnlabError(
                f"split manifest {path} puts {source} in class '{class_name}' but "
                f"{dataset.name} has it in class '{actual}'"
            )
        members[subset].append(i)
    if not members["train"]:
        raise CnnlabError(f"split manifest {path} has no training images")
    unlisted = len(dataset) - len(seen)
    if unlisted:
        warnings.warn(
            f"{unlisted} image(s) of {dataset.name} are not in the split manifest {path} and are "
            "left out",
            stacklevel=2,
        )
    subsets = {
        name: dataset.select(index).with_subset(name) if index else None
        for name, index in members.items()
    }
    assert subsets["train"] is not None
    return Split(train=subsets["train"], valid=subsets["valid"], test=subsets["test"])


# --------------------------------------------------------------------------------- reporting
SplitLike = Split | Mapping[str, ImageDataset] | Iterable[ImageDataset]


def _named_subsets(split: SplitLike) -> list[tuple[str, ImageDataset]]:
    if isinstance(split, Split):
        return split.items()
    if isinstance(split, ImageDataset):
        return [(split.subset or split.name, split)]
    if isinstance(split, Mapping):
        return [(str(name), dataset) for name, dataset in split.items() if dataset is not None]
    return [(dataset.subset or dataset.name, dataset) for dataset in split]


def class_table(split: SplitLike) -> dict[str, dict[str, int]]:
    """subset -> class -> number of images (every class listed, zeros included)."""
    return {name: dataset.class_counts() for name, dataset in _named_subsets(split)}


def balance_warnings(split: SplitLike) -> list[str]:
    """Plain-language problems with the class balance of each subset.

    A subset without some class cannot teach or measure it; a training set whose largest class
    is much larger than its smallest teaches the model to favour the large class.
    """
    problems: list[str] = []
    for name, counts in class_table(split).items():
        missing = [c for c, n in counts.items() if n == 0]
        if missing:
            problems.append(
                f"the {name} set has no images of class {', '.join(repr(c) for c in missing)}"
            )
        present = {c: n for c, n in counts.items() if n > 0}
        if len(present) < 2:
            continue
        largest = max(present, key=present.__getitem__)
        smallest = min(present, key=present.__getitem__)
        ratio = present[largest] / present[smallest]
        if ratio > IMBALANCE_RATIO:
            problems.append(
                f"the {name} set is imbalanced: class '{largest}' has {present[largest]} images, "
                f"'{smallest}' only {present[smallest]} ({ratio:.1f}x); "
                + (
                    "consider --equalize (equalize=True in Python)"
                    if name == "train"
                    else "judge it by per-class results, not only overall accuracy"
                )
            )
    return problems


def format_class_table(split: SplitLike) -> str:
    """An aligned text table of images per class (rows) and subset (columns), with totals.

    Each cell is a count and the class's share of its column, ``1,234 (12.3%)``; the total
    column's shares are of all the images.
    """
    table = class_table(split)
    subsets = list(table)
    classes: list[str] = []
    for counts in table.values():
        classes += [c for c in counts if c not in classes]
    columns = [{c: table[s].get(c, 0) for c in classes} for s in subsets]
    columns.append({c: sum(column[c] for column in columns) for c in classes})
    texts = []
    for column in columns:
        share = proportions(column)
        counts = [f"{column[c]:,}" for c in classes] + [f"{sum(column.values()):,}"]
        parts = ["" if share[c] is None else f"({share[c]:.1%})" for c in classes] + [""]
        count_width, share_width = max(map(len, counts)), max(map(len, parts))
        # Every cell of a column has one length, so counts align with counts, shares with shares.
        texts.append(
            [f"{n:>{count_width}} {p:>{share_width}}" for n, p in zip(counts, parts, strict=True)]
        )
    header = ["class", *subsets, "total"]
    rows = [[name, *(column[r] for column in texts)] for r, name in enumerate([*classes, "total"])]
    widths = [max(len(row[k]) for row in [header, *rows]) for k in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *map(line, rows[:-1]), rule, line(rows[-1])])
