"""Saved models: weights in safetensors, everything else in JSON.

A model file must be safe to open from a stranger, so nothing is ever unpickled: the weights are
plain tensors and the JSON says how to rebuild the network (the registry name and arguments),
what it expects (channels, size, bit depth) and what it learned on (classes, normalization,
training configuration, library versions).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import platform
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.files import write_json, write_tensors
from cnnlab.version import __version__

FORMAT = "cnnlab-model"
FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
META_NAME = "model.json"
#: Bit depths that cnnlab's image readers report.
BIT_DEPTHS = (8, 16, 32, 64)
DAMAGED = "the file is damaged; restore it or retrain the model"


def save_model(
    model: nn.Module,
    folder: str | Path,
    class_names: tuple[str, ...] | list[str],
    *,
    bit_depth: int = 8,
    largest_source: tuple[int, int] | None = None,
    training: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Writes ``model.safetensors`` and ``model.json`` into ``folder``; returns the JSON path.

    ``largest_source`` is the largest height and width of the training data's images before
    they were resized to the model's input (:meth:`~cnnlab.ImageDataset.largest_source`; by
    default the model's own, as :func:`load` gives it): prediction tells when it is given a
    picture far larger than those, such as a whole field.
    """
    folder = Path(folder)
    if len(class_names) != model.num_classes:
        raise CnnlabError(
            f"{len(class_names)} class names for a model with {model.num_classes} outputs"
        )
    largest_source = largest_source or getattr(model, "largest_source", None)
    if largest_source is not None and not is_size(largest_source):
        raise CnnlabError(f"largest_source {largest_source!r}: give (height, width) in pixels")
    folder.mkdir(parents=True, exist_ok=True)  # only once the description is sound
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": model.cnnlab_config,
        "class_names": list(class_names),
        "in_chans": model.in_chans,
        "input_size": list(model.input_size),
        "bit_depth": bit_depth,
        **({"largest_source": [int(side) for side in largest_source]} if largest_source else {}),
        "normalization": {
            "mean": model.standardize.mean.tolist(),
            "std": model.standardize.std.tolist(),
        },
        "training": training or {},
        "versions": {
            "cnnlab": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    state = {k: v for k, v in model.state_dict().items()}
    write_tensors(folder / WEIGHTS_NAME, state, metadata={"format": FORMAT})
    write_json(folder / META_NAME, meta)
    return folder / META_NAME


def model_files(path: str | Path) -> tuple[Path, Path]:
    """The (weights, metadata) pair for a run folder, a model.json or a model.safetensors."""
    path = Path(path)
    if path.is_dir():
        folder = path
    elif path.suffix in (".json", ".safetensors"):
        folder = path.parent
    elif not path.exists():
        raise CnnlabError(f"{path}: no such model; give a run folder or its model.json")
    else:
        raise CnnlabError(f"{path}: not a cnnlab model; give a run folder or its model.json")
    weights, meta = folder / WEIGHTS_NAME, folder / META_NAME
    for required in (meta, weights):
        if not required.exists():
            raise CnnlabError(
                f"{required}: missing; is {folder} a finished cnnlab run or model folder?"
            )
    return weights, meta


def read_model_meta(path: str | Path) -> dict:
    """The checked description of a saved model (its ``model.json``).

    Everything that prediction relies on is checked here, so that a damaged or hand-edited
    file fails with one line naming it instead of predicting silently wrong (or NaN) classes.
    """
    _, meta_path = model_files(path)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CnnlabError(f"{meta_path}: unreadable model description ({error})") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CnnlabError(f"{meta_path}: not a cnnlab model description")
    version = meta.get("format_version", 0)
    if not _is_int(version):
        raise CnnlabError(f"{meta_path}: format_version {version!r} is not a number; {DAMAGED}")
    if version > FORMAT_VERSION:
        raise CnnlabError(f"{meta_path}: written by a newer cnnlab; upgrade cnnlab to read it")
    _check_meta(meta, meta_path)
    return meta


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_size(value: object) -> bool:
    """Whether ``value`` is ``[height, width]`` (or a tuple) of whole numbers >= 1."""
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(_is_int(side) and side >= 1 for side in value)
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_meta(meta: dict, meta_path: Path) -> None:
    """Refuses a description whose fields have the wrong type or contradict each other."""

    def damaged(problem: str) -> CnnlabError:
        return CnnlabError(f"{meta_path}: {problem}; {DAMAGED}")

    arch = meta.get("architecture")
    if not isinstance(arch, dict):
        raise damaged("no architecture object")
    for key in ("name", "in_chans", "num_classes", "input_size"):
        if key not in arch:
            raise damaged(f"architecture lacks {key!r}")
    if not isinstance(arch["name"], str):
        raise damaged(f"architecture name {arch['name']!r} is not a model name")
    for key, minimum in (("in_chans", 1), ("num_classes", 2)):
        if not _is_int(arch[key]) or arch[key] < minimum:
            raise damaged(f"architecture {key} {arch[key]!r} is not a whole number >= {minimum}")
    size = arch["input_size"]
    if not (isinstance(size, list) and is_size(size)):
        raise damaged(f"architecture input_size {size!r} is not [height, width]")
    if not isinstance(arch.get("kwargs", {}), dict):
        raise damaged(f"architecture kwargs {arch['kwargs']!r} is not an object")
    for key in ("in_chans", "input_size"):
        if key in meta and meta[key] != arch[key]:
            raise damaged(f"{key} {meta[key]!r} differs from the architecture's {arch[key]!r}")

    names = meta.get("class_names")
    if names is None:
        raise damaged("no class_names")
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise damaged("class_names is not a list of class names")
    if len(names) != arch["num_classes"]:
        raise damaged(
            f"{len(names)} class name(s) for a network with {arch['num_classes']} outputs"
        )
    if len(set(names)) != len(names):
        raise damaged("class_names repeats a name")

    depth = meta.get("bit_depth", 8)
    if depth not in BIT_DEPTHS or not _is_int(depth):
        raise damaged(f"bit_depth {depth!r} is not one of {', '.join(map(str, BIT_DEPTHS))}")

    source = meta.get("largest_source")
    if source is not None and not (isinstance(source, list) and is_size(source)):
        raise damaged(f"largest_source {source!r} is not [height, width]")

    norm = meta.get("normalization")
    if not isinstance(norm, dict):
        raise damaged("no normalization object")
    for key in ("mean", "std"):
        values = norm.get(key)
        if not isinstance(values, list) or len(values) != arch["in_chans"]:
            raise damaged(f"normalization {key} is not a list of {arch['in_chans']} number(s)")
        if not all(_is_number(v) and math.isfinite(v) for v in values):
            raise damaged(f"normalization {key} {values!r} is not finite")
    if not all(v > 0 for v in norm["std"]):
        raise damaged(f"normalization std {norm['std']!r} is not positive")


def load(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuilds a saved model from its JSON description and safetensors weights.

    The returned module carries ``class_names``, ``bit_depth``, ``largest_source`` (None when
    the file has none) and the whole description as
    ``cnnlab_meta``, which prediction needs to preprocess new images the way training did.
    """
    from cnnlab.models import create_model

    weights_path, meta_path = model_files(path)
    meta = read_model_meta(meta_path)
    arch = meta["architecture"]
    try:
        model = create_model(
            arch["name"],
            in_chans=arch["in_chans"],
            num_classes=arch["num_classes"],
            input_size=tuple(arch["input_size"]),
            **arch.get("kwargs", {}),
        )
    except CnnlabError as error:
        raise CnnlabError(f"{meta_path}: {error}") from error
    except (TypeError, ValueError) as error:  # an option of the wrong type inside a builder
        raise CnnlabError(
            f"{meta_path}: architecture {arch['name']} cannot be built from {arch!r} ({error}); "
            f"{DAMAGED}"
        ) from error
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CnnlabError(f"{weights_path}: weights unreadable or truncated ({error})") from error
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CnnlabError(
                f"{weights_path}: tensor {name!r} holds NaN or infinite values; the training "
                "diverged or the file is damaged; retrain (e.g. with a lower --lr)"
            )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise CnnlabError(f"{weights_path}: weights do not fit {arch['name']} ({first})") from error
    _check_standardization(model, meta, weights_path)
    model.class_names = tuple(meta["class_names"])
    model.bit_depth = int(meta.get("bit_depth", 8))
    model.largest_source = tuple(meta["largest_source"]) if "largest_source" in meta else None
    model.cnnlab_meta = meta
    return model.to(device).eval()


def _check_standardization(model: nn.Module, meta: dict, weights_path: Path) -> None:
    """The weights' own statistics (which the network uses) must be those the JSON states."""
    standardize = getattr(model, "standardize", None)
    if standardize is None:
        return
    if not bool((standardize.std > 0).all()):
        raise CnnlabError(
            f"{weights_path}: standardize.std {standardize.std.tolist()} is not positive; {DAMAGED}"
        )
    for key in ("mean", "std"):
        stated = torch.tensor(meta["normalization"][key], dtype=torch.float32)
        stored = getattr(standardize, key).float()
        if not torch.allclose(stated, stored, rtol=1e-6, atol=0.0):
            raise CnnlabError(
                f"{weights_path}: standardize.{key} {stored.tolist()} differs from the "
                f"normalization {key} {stated.tolist()} in {META_NAME}; {DAMAGED}"
            )
