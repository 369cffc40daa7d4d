"""Predictions for new image files or arrays, preprocessed exactly as the training data was.

Files and in-memory arrays take one path: a reader turns each file into a ``(C, H, W)`` array
and its bit depth, and :func:`_prepare` checks every image against the model and converts it,
so that an image predicts the same whether it comes from a file or from memory.
"""

from __future__ import annotations

import csv
import fnmatch
import functools
import io
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
from torch import nn

from cnnlab import views
from cnnlab.data.channels import convert_array
from cnnlab.data.dataset import ImageDataset
from cnnlab.data.imageio import IMAGE_EXTENSIONS, read_array, tensor_dtype
from cnnlab.data.sources import MAX_UPSCALE
from cnnlab.errors import CnnlabError
from cnnlab.evaluate import predict_proba
from cnnlab.evaluate.evaluate import INFERENCE_BATCH
from cnnlab.export.saved import BIT_DEPTHS
from cnnlab.files import write_text

#: Rows a notebook shows of a prediction table, each with its thumbnail.
PREVIEW_ROWS = 20
#: How many times the training data's largest images, on each side, a file may be before
#: prediction warns that it is shrunk whole (a field image given as a file, say).
FAR_LARGER = 4


@dataclass(frozen=True)
class PredictionTable:
    """One row per image: its path, the predicted class and each class's probability."""

    paths: tuple[str, ...]
    predicted: tuple[str, ...]
    probabilities: torch.Tensor
    class_names: tuple[str, ...]
    #: ``(path or name, reason)`` of the images left out by ``skip_bad``.
    skipped: tuple[tuple[str, str], ...] = ()
    #: The first :data:`PREVIEW_ROWS` images as the model saw them (resized, source units): the
    #: thumbnails of the notebook view, kept small whatever the number of images.
    preview: torch.Tensor | None = field(default=None, repr=False, compare=False)

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
        rows = (
            {k: f"{v:.6f}" if isinstance(v, float) else v for k, v in row.items()} for row in self
        )
        write_table(target, self.columns, rows)

    def __repr__(self) -> str:
        """One line: ``PredictionTable(25 images, 2 classes; predicted rod 12, coccus 13)``."""
        counts = {name: self.predicted.count(name) for name in self.class_names}
        predicted = ", ".join(f"{name} {count:,}" for name, count in counts.items() if count)
        text = f"{_count(len(self), 'image')}, {_count(len(self.class_names), 'class')}"
        text += f"; predicted {predicted}" if predicted else ""
        text += f"; {len(self.skipped)} skipped" if self.skipped else ""
        return f"PredictionTable({text})"

    def _repr_html_(self) -> str:
        """Jupyter's view: the first rows with thumbnails and probabilities, and the count left."""
        return views.render("predictions.html", self)

    def to_pandas(self):  # pragma: no cover - pandas is optional
        import pandas as pd

        return pd.DataFrame(self.rows())


def write_table(
    target: str | os.PathLike | TextIO, columns: Sequence[str], rows: Iterable[dict]
) -> None:
    """Writes prediction rows as CSV to a file path (atomically) or to an open text stream."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
    if not isinstance(target, str | os.PathLike):
        target.write(buffer.getvalue())
        return
    try:
        write_text(target, buffer.getvalue())
    except OSError as error:
        raise CnnlabError(
            f"{target}: cannot write the predictions ({error.strerror or error})"
        ) from error


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
                what = f"files matching {pattern!r}" if pattern else "image files"
                raise CnnlabError(f"{path}: no {what} in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise CnnlabError(f"{path}: no such file or folder")
    return files


def prepare_images(
    model: nn.Module,
    files: Sequence[str | Path],
    *,
    skip_bad: bool = False,
    plane: int | None = None,
) -> ImageDataset:
    """Reads files and converts them to the model's channels, size and value range.

    ``plane`` chooses the plane of multi-plane TIFF stacks (which are refused without it).
    A file that cannot be read, or does not fit the model (bit depth, channels), is an error
    naming it; with ``skip_bad`` it is left out with a warning, and listed with its reason in
    ``dataset.meta["skipped"]`` as ``(path, reason)`` pairs. ``dataset.meta["far_larger"]`` lists
    ``(path, height, width)`` of the files far larger than the model's training images (a
    whole field given as a file, say), of which :func:`predict` warns.
    """
    inputs: list[_Input] = []
    for file in files:
        try:
            array, depth = read_array(file, plane=plane)
        except CnnlabError as error:
            if not skip_bad:
                raise
            inputs.append(_Input(str(file), None, 0, _reason(str(file), error)))
            continue
        inputs.append(_Input(str(file), array, depth))
    return _prepare(model, inputs, skip_bad, whole_files=True)


def prepare_arrays(
    model: nn.Module,
    images: Sequence[np.ndarray | torch.Tensor],
    names: Sequence[str],
    bit_depths: Sequence[int] | int,
    *,
    skip_bad: bool = False,
) -> ImageDataset:
    """Images already in memory, prepared exactly as :func:`prepare_images` prepares files.

    Each image is 2D ``(H, W)`` or channel-first ``(C, H, W)`` in its native dtype (``uint16``
    for 16-bit counts, not scaled to 0..1); ``bit_depths`` gives the depth of each (or of all)
    and is checked against the model, as a file's is. ``names`` name the images in errors and
    in the table.
    """
    if not len(images):
        raise CnnlabError("images: no images given; pass at least one")
    if len(names) != len(images):
        raise CnnlabError(
            f"names: {_count(len(names), 'name')} for {_count(len(images), 'image')}; give one each"
        )
    depths = [bit_depths] * len(images) if isinstance(bit_depths, int) else list(bit_depths)
    if len(depths) != len(images):
        raise CnnlabError(
            f"bit_depths: {_count(len(depths), 'bit depth')} for {_count(len(images), 'image')}; "
            "give one each, or one for all"
        )
    inputs = []
    for image, name, depth in zip(images, names, depths, strict=True):
        try:
            inputs.append(_Input(str(name), _array_of(image, str(name), depth), depth))
        except CnnlabError as error:
            if not skip_bad:
                raise
            inputs.append(_Input(str(name), None, 0, _reason(str(name), error)))
    return _prepare(model, inputs, skip_bad)


@dataclass(frozen=True)
class _Input:
    """One image on its way to the model: ``(C, H, W)`` pixels, or why it has none."""

    name: str
    array: np.ndarray | None
    bit_depth: int
    error: str | None = None


def _reason(name: str, error: CnnlabError) -> str:
    """The error without its leading ``name: ``, which the skipped list holds separately."""
    text = str(error)
    return text[len(name) + 2 :] if text.startswith(f"{name}: ") else text


def _array_of(image: np.ndarray | torch.Tensor, name: str, bit_depth: int) -> np.ndarray:
    """A 2D or channel-first image as a ``(C, H, W)`` array in the file reader's dtype."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        # NumPy has no bfloat16; float16 is held as float32, as a half-float file would be.
        image = image.float() if image.dtype in (torch.bfloat16, torch.float16) else image
        image = image.numpy()
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[np.newaxis]
    if image.ndim != 3 or image.shape[0] not in (1, 3, 4):
        raise CnnlabError(
            f"{name}: an array of shape {image.shape}; give (H, W) or channel-first (C, H, W) "
            "with 1, 3 or 4 channels"
        )
    if bit_depth not in BIT_DEPTHS:
        raise CnnlabError(f"{name}: bit depth {bit_depth!r} is not one of {BIT_DEPTHS}")
    array, _ = tensor_dtype(image[:3], name)
    # A 16-bit array said to be 8-bit would be read at 257 times its brightness.
    narrower = array.dtype.kind in "iu" and bit_depth < 8 * image.dtype.itemsize
    if narrower and (high := int(array.max())) >= 1 << bit_depth:
        raise CnnlabError(
            f"{name}: holds values up to {high:,}, beyond {bit_depth}-bit; give its real bit depth"
        )
    return array


def size_problem(model: nn.Module, height: int, width: int) -> str | None:
    """Why an image of ``height`` x ``width`` is too small for ``model``, or None.

    The rule training applies to ``--size``: enlarging more than :data:`MAX_UPSCALE` times
    invents the detail the model looks at, so its answer would be a confident guess.
    """
    model_height, model_width = (int(side) for side in model.input_size)
    if height * MAX_UPSCALE < model_height or width * MAX_UPSCALE < model_width:
        return (
            f"{height}x{width} pixels is too small for the model's {model_height}x{model_width} "
            f"input (more than {MAX_UPSCALE:g}x enlargement)"
        )
    return None


def _prepare(
    model: nn.Module, inputs: list[_Input], skip_bad: bool, whole_files: bool = False
) -> ImageDataset:
    """Checks each image against the model, converts its channels, and resizes them all.

    ``whole_files``: the images are files as a user gave them (not crops cut from a field),
    so those far larger than the training data's are noted for :func:`_far_larger`.
    """
    trained_depth = getattr(model, "bit_depth", None)
    good, skipped = [], []
    for item in inputs:
        if item.error is not None:
            skipped.append((item.name, item.error))
            continue
        try:
            if trained_depth is not None and item.bit_depth != trained_depth:
                raise CnnlabError(
                    f"{item.name}: {_a(item.bit_depth)}-bit image, but the model learned on "
                    f"{trained_depth}-bit images; its intensities would be misread. Convert it "
                    f"to {trained_depth}-bit"
                )
            try:
                array = convert_array(item.array, model.in_chans)
            except CnnlabError as error:
                raise CnnlabError(
                    f"{item.name}: {error}; the model takes {model.in_chans} channels"
                ) from None
            problem = size_problem(model, *array.shape[-2:])
            if problem:
                raise CnnlabError(
                    f"{item.name}: {problem}; give a larger image, or --skip-bad to leave it out"
                )
        except CnnlabError as error:
            if not skip_bad:
                raise
            skipped.append((item.name, _reason(item.name, error)))
            continue
        good.append((item, array))
    if trained_depth is None and len({item.bit_depth for item, _ in good}) > 1:
        # Without a depth to check against, mixed depths would be misread: refuse them all.
        first = good[0][0]
        other = next(item for item, _ in good if item.bit_depth != first.bit_depth)
        raise CnnlabError(
            f"{first.name} is {first.bit_depth}-bit but {other.name} is {other.bit_depth}-bit; "
            "predict images of one bit depth at a time"
        )
    if skipped and not good:
        name, reason = skipped[0]
        raise CnnlabError(
            f"none of the {_count(len(inputs), 'image')} could be used, e.g. {name}: {reason}"
        )
    source = getattr(model, "largest_source", None) if whole_files else None
    far_larger = []
    for item, array in good:
        height, width = array.shape[-2:]
        if source and height > FAR_LARGER * source[0] and width > FAR_LARGER * source[1]:
            far_larger.append((item.name, height, width))
    # Arrays of their own (tensor_dtype copies), so the tensors share no caller's memory.
    tensors = [torch.from_numpy(array) for _, array in good]
    # A type that holds every image's values exactly (float for float images, wide ints).
    dtype = functools.reduce(torch.promote_types, (t.dtype for t in tensors), torch.uint8)
    dataset = ImageDataset(
        images=[tensor.to(dtype) for tensor in tensors],
        labels=torch.zeros(len(good), dtype=torch.int64),
        class_names=("?",),
        paths=tuple(item.name for item, _ in good),
        name="prediction input",
        bit_depth=max((item.bit_depth for item, _ in good), default=8),
        meta={"skipped": skipped, "far_larger": far_larger},
    )
    return dataset.resize(tuple(model.input_size))


def _far_larger(model: nn.Module, large: list[tuple[str, int, int]]) -> str:
    """The warning for files more than :data:`FAR_LARGER` times the training data's images on
    both sides: each is shrunk whole to the model's input and gets one class. That is right
    for a large photo of one digit, and a wrong number for a field of cells, whose objects
    ``--field`` classifies one by one."""
    name, height, width = large[0]
    source = model.largest_source
    model_height, model_width = (int(side) for side in model.input_size)
    what, it = (f"{name} ({height}x{width} pixels) is", "it is")
    if len(large) > 1:
        what, it = f"{len(large)} images are, e.g. {name} ({height}x{width} pixels),", "each is"
    return (
        f"{what} more than {FAR_LARGER}x the model's training images (up to "
        f"{source[0]}x{source[1]}) on each side: {it} shrunk whole to {model_height}x"
        f"{model_width} and gets one class for the whole picture; if it holds many objects "
        "(a field), give --field with --rois or --labels to classify each"
    )


def _a(bit_depth: int) -> str:
    return f"{'an' if bit_depth == 8 else 'a'} {bit_depth}"


def _count(n: int, what: str) -> str:
    plural = "es" if what.endswith("s") else "s"
    return f"{n} {what}{'' if n == 1 else plural}"


def predict(
    model: nn.Module,
    paths: Sequence[str | Path] | str | Path,
    *,
    pattern: str | None = None,
    batch_size: int = INFERENCE_BATCH,
    device: str = "cpu",
    skip_bad: bool = False,
    plane: int | None = None,
) -> PredictionTable:
    """Class probabilities for image files or folders, with a loaded cnnlab model.

    ``plane`` chooses the plane of multi-plane TIFF stacks, as ``--plane`` does for training.

    With ``skip_bad``, files that cannot be read or do not fit the model (bit depth,
    channels), and images for which it gives no finite probabilities, are left out: each is
    named in a warning, a last warning counts them, and ``table.skipped`` lists them with
    their reasons. Without it, the first such file is an error naming it.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    files = collect_images(paths, pattern)
    dataset = prepare_images(model, files, skip_bad=skip_bad, plane=plane)
    return _classify(model, dataset, len(files), "file", batch_size, device, skip_bad)


def predict_arrays(
    model: nn.Module,
    images: Sequence[np.ndarray | torch.Tensor],
    names: Sequence[str],
    bit_depths: Sequence[int] | int,
    *,
    batch_size: int = INFERENCE_BATCH,
    device: str = "cpu",
    skip_bad: bool = False,
) -> PredictionTable:
    """Class probabilities for images in memory, e.g. crops cut from a field.

    Images are 2D or channel-first arrays (or tensors) in their native dtype, with their bit
    depths, prepared exactly as :func:`predict` prepares files (see :func:`prepare_arrays`);
    the table's ``paths`` are ``names``.
    """
    dataset = prepare_arrays(model, images, names, bit_depths, skip_bad=skip_bad)
    return _classify(model, dataset, len(images), "image", batch_size, device, skip_bad)


def class_probabilities(
    model: nn.Module, images: torch.Tensor, batch_size: int, device: str
) -> torch.Tensor:
    """Softmax probabilities of prepared images, from a torch model or an exported one.

    A model that is not a torch module (an ONNX file run by ONNX Runtime, see
    :class:`cnnlab.deploy.OnnxModel`) brings its own ``predict_proba(images, batch_size)`` and
    the ``in_chans``, ``input_size``, ``bit_depth`` and ``class_names`` that the checks above
    read, so it goes through the same reading, checks and table as a run's model.
    """
    if isinstance(model, nn.Module):
        return predict_proba(model, images, batch_size=batch_size, device=device)
    if device != "cpu":
        raise CnnlabError(f"device {device!r}: {model!r} runs on the CPU only; leave device out")
    return model.predict_proba(images, batch_size=batch_size)


def _classify(
    model: nn.Module,
    dataset: ImageDataset,
    total: int,
    what: str,
    batch_size: int,
    device: str,
    skip_bad: bool,
) -> PredictionTable:
    class_names = tuple(getattr(model, "class_names", ()))
    if len(class_names) != model.num_classes:
        class_names = tuple(str(i) for i in range(model.num_classes))
    probabilities = class_probabilities(model, dataset.images, batch_size, device)
    skipped = list(dataset.meta["skipped"])
    finite = torch.isfinite(probabilities).all(dim=1)
    if skip_bad and not bool(finite.all()):
        for i in (~finite).nonzero()[:, 0].tolist():
            reason = "the model gives no finite class probabilities for this image"
            skipped.append((dataset.paths[i], reason))
        if not bool(finite.any()):
            raise CnnlabError(
                f"none of the {_count(total, what)} could be used, e.g. {skipped[0][0]}: "
                f"{skipped[0][1]}"
            )
        dataset, probabilities = dataset.select(finite.nonzero()[:, 0]), probabilities[finite]
    check_finite(dataset.paths, probabilities)
    kept = set(dataset.paths)
    large = [entry for entry in dataset.meta.get("far_larger", ()) if entry[0] in kept]
    if large:
        warnings.warn(_far_larger(model, large), stacklevel=3)
    for name, reason in skipped:
        warnings.warn(f"skipped {name}: {reason}", stacklevel=3)
    if skipped:
        shown = ", ".join(name for name, _ in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        warnings.warn(f"skipped {len(skipped)} of {_count(total, what)}: {shown}", stacklevel=3)
    predicted = tuple(class_names[i] for i in probabilities.argmax(1).tolist())
    # A copy, so the table does not keep every prepared image alive through a view.
    preview = dataset.images[:PREVIEW_ROWS].clone()
    return PredictionTable(
        dataset.paths, predicted, probabilities.cpu(), class_names, tuple(skipped), preview
    )
