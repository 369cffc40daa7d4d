"""Predictions for new image files, preprocessed exactly as the training data was."""

from __future__ import annotations

import csv
import fnmatch
import functools
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import torch
from torch import nn

from cnnlab.data.dataset import ImageDataset, convert_channels
from cnnlab.data.imageio import IMAGE_EXTENSIONS, read_image
from cnnlab.errors import CnnlabError
from cnnlab.evaluate import predict_proba
from cnnlab.evaluate.evaluate import INFERENCE_BATCH
from cnnlab.files import write_text


@dataclass(frozen=True)
class PredictionTable:
    """One row per image: its path, the predicted class and each class's probability."""

    paths: tuple[str, ...]
    predicted: tuple[str, ...]
    probabilities: torch.Tensor
    class_names: tuple[str, ...]

    @property
    def columns(self) -> list[str]:
        return ["path", "predicted", *(f"p_{name}" for name in self.class_names)]

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[dict]:
        for i, path in enumerate(self.paths):
            row = {"path": path, "predicted": self.predicted[i]}
            for name, p in zip(self.class_names, self.probabilities[i].tolist(), strict=True):
                row[f"p_{name}"] = p
            yield row

    def rows(self) -> list[dict]:
        return list(self)

    def to_csv(self, target: str | Path | TextIO) -> None:
        """Writes the table as CSV to a file path or an open text stream.

        A file is replaced atomically: a reader (or a crash) never sees half a table. A table
        with a probability that is not a finite number is refused, naming its image.
        """
        check_finite(self.paths, self.probabilities)
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=self.columns)
        writer.writeheader()
        for row in self:
            writer.writerow({k: f"{v:.6f}" if isinstance(v, float) else v for k, v in row.items()})
        if isinstance(target, str | Path):
            try:
                write_text(target, buffer.getvalue())
            except OSError as error:
                raise CnnlabError(
                    f"{target}: cannot write the predictions ({error.strerror or error})"
                ) from error
        else:
            target.write(buffer.getvalue())

    def to_pandas(self):  # pragma: no cover - pandas is optional
        import pandas as pd

        return pd.DataFrame(self.rows())


def check_finite(paths: Sequence[str], probabilities: torch.Tensor) -> None:
    """Refuses probabilities that are not finite numbers, naming the first such image."""
    finite = torch.isfinite(probabilities).all(dim=1)
    if not bool(finite.all()):
        first = int((~finite).nonzero()[0])
        raise CnnlabError(
            f"{paths[first]}: the model gives no finite class probabilities for this image "
            "(pixel values too extreme for the network?); check the file, or leave it out"
        )


def _wanted(path: Path, folder: Path, pattern: str | None) -> bool:
    """An image file below ``folder``, matched as :func:`cnnlab.datasets.load_folders` does:
    hidden files and folders skipped, the pattern's case ignored (``*.tif`` finds ``A.TIF``)."""
    if not path.is_file() or any(part.startswith(".") for part in path.relative_to(folder).parts):
        return False
    if pattern is None:
        return path.suffix.lower() in IMAGE_EXTENSIONS
    return fnmatch.fnmatchcase(path.name.lower(), pattern.lower())


def collect_images(paths: Sequence[str | Path], pattern: str | None = None) -> list[Path]:
    """Files as given, and the image files inside given folders (recursively, sorted)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if _wanted(p, path, pattern))
            if not found:
                raise CnnlabError(f"{path}: no image files in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise CnnlabError(f"{path}: no such file or folder")
    return files


def prepare_images(model: nn.Module, files: Sequence[Path]) -> ImageDataset:
    """Reads files and converts them to the model's channels, size and value range."""
    images, depths = [], []
    for file in files:
        image, depth = read_image(file)
        images.append(image)
        depths.append(depth)
    trained_depth = getattr(model, "bit_depth", None)
    if trained_depth is not None:
        for file, depth in zip(files, depths, strict=True):
            if depth != trained_depth:
                raise CnnlabError(
                    f"{file}: a {depth}-bit image, but the model learned on {trained_depth}-bit "
                    f"images; its intensities would be misread. Convert it to {trained_depth}-bit"
                )
    # A type that holds every image's values exactly (float for float images, wide ints).
    dtype = functools.reduce(torch.promote_types, (im.dtype for im in images))
    dataset = ImageDataset(
        images=[im.to(dtype) for im in images],
        labels=torch.zeros(len(images), dtype=torch.int64),
        class_names=("?",),
        paths=tuple(str(f) for f in files),
        name="prediction input",
        bit_depth=max(depths),
    )
    converted = []
    for file, image in zip(files, dataset.images, strict=True):
        try:
            converted.append(convert_channels(image, model.in_chans))
        except CnnlabError as error:
            raise CnnlabError(
                f"{file}: {error}; the model takes {model.in_chans} channels"
            ) from None
    return dataset.replace(images=converted).resize(tuple(model.input_size))


def predict(
    model: nn.Module,
    paths: Sequence[str | Path] | str | Path,
    *,
    pattern: str | None = None,
    batch_size: int = INFERENCE_BATCH,
    device: str = "cpu",
) -> PredictionTable:
    """Class probabilities for image files or folders, with a loaded cnnlab model."""
    if isinstance(paths, str | Path):
        paths = [paths]
    class_names = tuple(getattr(model, "class_names", ()))
    if len(class_names) != model.num_classes:
        class_names = tuple(str(i) for i in range(model.num_classes))
    files = collect_images(paths, pattern)
    dataset = prepare_images(model, files)
    probabilities = predict_proba(model, dataset.images, batch_size=batch_size, device=device)
    check_finite(dataset.paths, probabilities)
    predicted = tuple(class_names[i] for i in probabilities.argmax(1).tolist())
    return PredictionTable(dataset.paths, predicted, probabilities.cpu(), class_names)
