"""Label decisions from a review (``relabel.csv``): reading, writing and applying them.

``cnnlab serve`` lets a person look at a run's worst-scored test and validation images and
decide, image by image, to keep its label, relabel it as another class, or exclude it. The
decisions are a CSV file (:data:`HEADER`) keyed by the image's path as the run's ``split.csv``
records it (``mnist/test/00017`` for MNIST). ``cnnlab train --relabel FILE`` applies them to a
new run *after* the data is read and split, so the split is drawn exactly as in the reviewed run
(same data, same seed, same subsets) and the new test set stays comparable with the old one:
a relabelled image keeps its subset with its new class, an excluded one leaves its subset, and
"keep" changes nothing. Nothing here writes into the user's data folders.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.dataset import ImageDataset
from cnnlab.data.split import Split
from cnnlab.errors import CnnlabError
from cnnlab.files import write_bytes, write_text

HEADER = (
    "path",
    "subset",
    "true_class",
    "action",
    "new_class",
    "predicted_class",
    "loss",
    "decided_at",
)
#: The columns a hand-written decisions file needs; the others may be left out.
REQUIRED = ("path", "action", "new_class")
ACTIONS = ("keep", "relabel", "exclude")
#: The name of the decisions a run was trained with, copied into its folder. Not
#: ``relabel.csv``: that is the file a review of *this* run writes, and the copy a run was
#: trained with must never change under it (a resume or a report re-applies it).
APPLIED_NAME = "relabel-applied.csv"


@dataclass(frozen=True)
class Decision:
    """One row of a decisions file: what to do with the image at ``path``.

    ``line`` is the row's line in the file it was read from (0 when made in memory), so that
    an error about the decision can name it.
    """

    path: str
    action: str
    new_class: str = ""
    subset: str = ""
    true_class: str = ""
    predicted_class: str = ""
    loss: str = ""
    decided_at: str = ""
    line: int = 0

    def row(self) -> tuple[str, ...]:
        return tuple(getattr(self, name) for name in HEADER)


# --------------------------------------------------------------------------------- the file
def read_decisions(path: str | Path) -> list[Decision]:
    """The decisions in ``path``, checked line by line (a one-line error naming the line).

    A path decided twice is an error: which decision was meant cannot be guessed.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CnnlabError(f"{path}: no such decisions file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CnnlabError(f"{path}: cannot read the decisions file ({error})") from None
    return parse_decisions(text, str(path))


def parse_decisions(text: str, name: str) -> list[Decision]:
    """:func:`read_decisions` of ``text``; errors name ``name`` and the line."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader, [])]
        missing = [column for column in REQUIRED if column not in header]
        if missing:
            raise CnnlabError(
                f"{name}, line 1: expected the header {','.join(HEADER)} (at least "
                f"{','.join(REQUIRED)}), found {','.join(header) or 'an empty file'}"
            )
        unknown = [column for column in header if column not in HEADER]
        if unknown or len(set(header)) != len(header):
            raise CnnlabError(
                f"{name}, line 1: unknown or repeated column(s) "
                f"{','.join(unknown) or 'in the header'}; the columns are {','.join(HEADER)}"
            )
        decisions: list[Decision] = []
        seen: dict[str, int] = {}
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise CnnlabError(
                    f"{name}, line {line}: expected {len(header)} fields, found {len(row)}"
                )
            fields = {column: cell.strip() for column, cell in zip(header, row, strict=True)}
            decision = Decision(**fields, line=line)
            _check_row(decision, name)
            if decision.path in seen:
                raise CnnlabError(
                    f"{name}, line {line}: {decision.path} is decided twice (also on line "
                    f"{seen[decision.path]}); keep one decision per image"
                )
            seen[decision.path] = line
            decisions.append(decision)
    except csv.Error as error:
        raise CnnlabError(f"{name}, line {reader.line_num}: not valid CSV ({error})") from None
    return decisions


def _check_row(decision: Decision, name: str) -> None:
    where = f"{name}, line {decision.line}"
    if not decision.path:
        raise CnnlabError(f"{where}: empty path")
    if decision.action not in ACTIONS:
        raise CnnlabError(
            f"{where}: unknown action {decision.action!r}; use one of {', '.join(ACTIONS)}"
        )
    if decision.action == "relabel" and not decision.new_class:
        raise CnnlabError(f"{where}: 'relabel' needs the new class in the new_class column")
    if decision.action != "relabel" and decision.new_class:
        raise CnnlabError(
            f"{where}: new_class {decision.new_class!r} given for '{decision.action}'; only "
            "'relabel' takes a new class"
        )


def format_decisions(decisions: Iterable[Decision]) -> str:
    """The CSV text of ``decisions`` (:data:`HEADER` columns), one row per image."""
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(decision.row() for decision in decisions)
    return text.getvalue()


def write_decisions(path: str | Path, decisions: Iterable[Decision]) -> None:
    """Writes ``decisions`` to ``path`` atomically: a reader sees the old file or the new one."""
    write_text(path, format_decisions(decisions))


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------------- applying
@dataclass(frozen=True)
class Change:
    """An image a decision changed: its subset, its class before, and after (None: excluded)."""

    path: str
    subset: str
    old: str
    new: str | None


def relabel_split(split: Split, path: str | Path) -> tuple[Split, dict]:
    """``split`` with the decisions in ``path`` applied, and the record a run keeps of them.

    Call it after the data is read and split: every image stays in the subset the seed put it
    in. A decision whose image is not in the data gives a warning with the count (the data may
    have changed since the review); when none of them names an image of the data, the file is
    for other data, and that is an error. The record holds the file, its SHA-256, the counts and
    the changes (:func:`describe`); :func:`summary_line` says it in one line.
    """
    path = Path(path)
    decisions = read_decisions(path)
    subsets, changes, matched = {}, [], set()
    for name, dataset in split.items():
        found = match_decisions(dataset.paths, decisions)
        matched.update(found.values())
        subsets[name], changed = _apply(dataset, found, decisions, str(path))
        changes += changed
    unmatched = len(decisions) - len(matched)
    if unmatched:
        example = next(d.path for i, d in enumerate(decisions) if i not in matched)
        if not matched:
            raise CnnlabError(
                f"--relabel {path}: none of its {len(decisions)} decision(s) names an image of "
                f"--data {_data_of(split)} (e.g. {example}); give the relabel.csv of a review of "
                "a run on this data"
            )
        warnings.warn(
            f"{path}: {unmatched} decision(s) name images that are not in the data, e.g. "
            f"{example}; they are ignored",
            stacklevel=2,
        )
    relabelled = Split(train=subsets["train"], valid=subsets.get("valid"), test=subsets.get("test"))
    return relabelled, describe(path, decisions, changes, unmatched)


def _data_of(split: Split) -> str:
    """Where the split's images come from, for a message: ``mnist``, or their common folder."""
    paths = [p for _, dataset in split.items() for p in dataset.paths]
    if not paths or paths[0].startswith("mnist/"):
        return "mnist"
    try:  # the class folders' parent: the data folder (or the parent of several)
        return os.path.commonpath([os.path.dirname(os.path.dirname(p)) for p in paths])
    except ValueError:  # relative and absolute paths mixed
        return "(its folders)"


def summary_line(record: dict) -> str:
    """What ``--relabel`` applied, in the one line ``cnnlab train`` prints on stderr.

    ``relabel: 3 relabelled, 1 excluded, from RUN/relabel.csv`` (kept and ignored decisions
    are added when there are any).
    """
    parts = [f"{record['relabelled']} relabelled", f"{record['excluded']} excluded"]
    if record.get("kept"):
        parts.append(f"{record['kept']} kept")
    if record.get("unmatched"):
        parts.append(f"{record['unmatched']} not in the data")
    return f"relabel: {', '.join(parts)}, from {record['file']}"


def relabel_dataset(dataset: ImageDataset, path: str | Path) -> ImageDataset:
    """``dataset`` (not yet split) with the decisions in ``path`` applied, quietly.

    For re-reading a run trained with decisions: its ``split.csv`` records the new classes and
    leaves the excluded images out, so the decisions go on before the manifest is applied.
    """
    decisions = read_decisions(path)
    relabelled, _ = _apply(dataset, match_decisions(dataset.paths, decisions), decisions, str(path))
    return relabelled


def match_decisions(paths: Sequence[str], decisions: Sequence[Decision]) -> dict[int, int]:
    """Dataset position -> index of the decision naming that image.

    A decision names an image by the exact path cnnlab recorded (``split.csv``), else by the
    same file reached another way (a relative path, a link: compared resolved), else, when the
    data folder has moved, by its last two parts (class folder and file name) where those are
    unique in the data, as :func:`~cnnlab.data.split.apply_manifest` matches a manifest.
    """
    exact = {source: i for i, source in enumerate(paths)}
    resolved: dict[str, int] | None = None
    tails: dict[tuple[str, ...], int | None] = {}
    for i, source in enumerate(paths):
        tail = Path(source).parts[-2:]
        tails[tail] = None if tail in tails else i  # None: ambiguous, never matched by tail
    found: dict[int, int] = {}
    for index, decision in enumerate(decisions):
        position = exact.get(decision.path)
        if position is None and not decision.path.startswith("mnist/"):
            if resolved is None:  # only when needed: it asks the file system for every path
                resolved = {os.path.realpath(source): i for i, source in enumerate(paths)}
            position = resolved.get(os.path.realpath(decision.path))
            if position is None:
                position = tails.get(Path(decision.path).parts[-2:])
        if position is not None:
            found[position] = index
    return found


def _apply(
    dataset: ImageDataset, found: dict[int, int], decisions: Sequence[Decision], name: str
) -> tuple[ImageDataset, list[Change]]:
    """``dataset`` with the matched decisions applied (vectorized), and what changed."""
    labels = dataset.labels.clone()
    keep = np.ones(len(dataset), dtype=bool)
    changes: list[Change] = []
    subset = dataset.subset or ""
    for position, index in sorted(found.items()):
        decision = decisions[index]
        old = dataset.class_names[int(labels[position])]
        if decision.action == "exclude":
            keep[position] = False
            changes.append(Change(dataset.paths[position], subset, old, None))
        elif decision.action == "relabel":
            if decision.new_class not in dataset.class_names:
                raise CnnlabError(
                    f"{name}, line {decision.line}: unknown class {decision.new_class!r}; the "
                    f"classes are {', '.join(dataset.class_names)}"
                )
            labels[position] = dataset.class_names.index(decision.new_class)
            if decision.new_class != old:
                changes.append(Change(dataset.paths[position], subset, old, decision.new_class))
    changed = dataset.replace(labels=labels)
    if not keep.all():
        changed = changed.select(torch.from_numpy(np.flatnonzero(keep)))
    return changed, changes


def describe(
    path: Path, decisions: Sequence[Decision], changes: Sequence[Change], unmatched: int
) -> dict:
    """What a run records of the decisions it applied (``config.json``, ``resolved.relabel``).

    ``relabelled`` and ``excluded`` count images (an image in two subsets counts twice);
    ``kept`` counts "keep" decisions; ``unmatched`` the decisions naming no image of the data.
    """
    return {
        "file": str(path.absolute()),
        "copy": APPLIED_NAME,
        "sha256": file_sha256(path),
        "decisions": len(decisions),
        "relabelled": sum(change.new is not None for change in changes),
        "excluded": sum(change.new is None for change in changes),
        "kept": sum(decision.action == "keep" for decision in decisions),
        "unmatched": unmatched,
        "changes": [[c.path, c.subset, c.old, c.new] for c in changes],
    }


def applied_decisions(run_dir: str | Path, config: dict) -> Path | None:
    """The decisions file a run was trained with (its copy), or None for a run without one.

    The copy must be the file the run recorded (same SHA-256): applying a changed file would
    re-read the run's data with other labels than it trained on.
    """
    record = (config.get("resolved") or {}).get("relabel")
    if not record:
        return None
    copy = Path(run_dir) / record.get("copy", APPLIED_NAME)
    if not copy.is_file():
        raise CnnlabError(
            f"{copy}: missing; the run was trained with these label decisions and cannot be "
            "re-read without them"
        )
    if file_sha256(copy) != record.get("sha256"):
        raise CnnlabError(
            f"{copy}: changed since the run was trained (its SHA-256 differs from config.json); "
            "put the original back, or train a new run with --relabel"
        )
    return copy


def keep_copy(record: dict, folder: str | Path) -> Path:
    """Copies the decisions file of ``record`` into the run ``folder`` (atomically), checked
    against the SHA-256 recorded when it was applied, so the run keeps exactly what it used."""
    source, target = Path(record["file"]), Path(folder) / record["copy"]
    data = source.read_bytes()
    if hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise CnnlabError(
            f"--relabel {source}: the file changed while the run started; start it again"
        )
    write_bytes(target, data)
    return target


__all__ = [
    "ACTIONS",
    "APPLIED_NAME",
    "HEADER",
    "Change",
    "Decision",
    "applied_decisions",
    "file_sha256",
    "format_decisions",
    "keep_copy",
    "match_decisions",
    "parse_decisions",
    "read_decisions",
    "relabel_dataset",
    "relabel_split",
    "summary_line",
    "write_decisions",
]
