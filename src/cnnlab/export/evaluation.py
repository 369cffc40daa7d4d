"""Metrics of a saved model: on its run's own subsets, or on new labelled data."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from cnnlab.data.dataset import ImageDataset
from cnnlab.data.sources import load_sources
from cnnlab.errors import CnnlabError
from cnnlab.evaluate import evaluate_subsets
from cnnlab.export.saved import load
from cnnlab.runs.folder import is_run_folder
from cnnlab.runs.reading import load_run_split


def evaluate_saved(
    model_path: str | Path,
    data: Sequence[str] | None = None,
    pattern: str | None = None,
    convert_bit_depth: bool = False,
    skip_bad: bool = False,
) -> dict[str, dict]:
    """Metrics of a saved model: on ``data`` specs, or on its run's own subsets.

    Folder data is matched to the model by class name, converted to its channels and resized
    to its input size, as at training time; folders of mixed bit depths are refused, or with
    ``convert_bit_depth`` scaled to the deepest (see :func:`cnnlab.data.load_folders`).
    ``skip_bad`` leaves unreadable files of ``data`` out, with a count, instead of refusing.
    """
    if not data:
        # A run's own subsets are re-read as the run read them: these choose among other files.
        given = [
            name
            for name, value in (
                ("--pattern (pattern=)", pattern),
                ("--skip-bad (skip_bad=True)", skip_bad),
                ("--convert-bit-depth (convert_bit_depth=True)", convert_bit_depth),
            )
            if value
        ]
        if given:
            raise CnnlabError(
                f"{given[0]} applies to the files of --data (data=); give --data or leave it out"
            )
    model = load(model_path)
    if not data:
        run_dir = Path(model_path) if Path(model_path).is_dir() else Path(model_path).parent
        if not is_run_folder(run_dir):
            raise CnnlabError(
                f"{model_path}: not a run folder; name the data to evaluate on with --data"
            )
        split = load_run_split(run_dir)
        return evaluate_subsets(
            model, {"train": split.train, "valid": split.valid, "test": split.test}
        )
    sources = load_sources(
        data,
        pattern=pattern,
        channels=model.in_chans,
        convert_bit_depth=convert_bit_depth,
        skip_bad=skip_bad,
        min_classes=1,  # new images of one class the model knows are worth scoring too
    )
    return evaluate_subsets(model, {name: fit_to_model(ds, model) for name, ds in sources.items()})


def fit_to_model(dataset: ImageDataset, model: torch.nn.Module) -> ImageDataset:
    """The dataset relabelled to the model's class order and resized to its input size."""
    names = tuple(model.class_names)
    unknown = [c for c in dataset.class_names if c not in names]
    if unknown:
        raise CnnlabError(
            f"{dataset.name}: class(es) {', '.join(unknown)} unknown to the model, which knows "
            f"{', '.join(names)}; rename the folders or evaluate on matching data"
        )
    if dataset.bit_depth != model.bit_depth:
        raise CnnlabError(
            f"{dataset.name}: {dataset.bit_depth}-bit images, but the model learned on "
            f"{model.bit_depth}-bit images; convert them first"
        )
    mapping = torch.tensor([names.index(c) for c in dataset.class_names])
    relabelled = dataset.replace(labels=mapping[dataset.labels], class_names=names)
    return relabelled.to_channels(model.in_chans).resize(tuple(model.input_size))
