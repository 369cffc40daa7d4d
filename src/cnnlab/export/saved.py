"""Saved models: weights in safetensors, everything else in JSON.

A model file must be safe to open from a stranger, so nothing is ever unpickled: the weights are
plain tensors and the JSON says how to rebuild the network (the registry name and arguments),
what it expects (channels, size, bit depth) and what it learned on (classes, normalization,
training configuration, library versions).
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.train.checkpoint import write_json, write_tensors

FORMAT = "cnnlab-model"
FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
META_NAME = "model.json"


def save_model(
    model: nn.Module,
    folder: str | Path,
    class_names: tuple[str, ...] | list[str],
    *,
    bit_depth: int = 8,
    training: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Writes ``model.safetensors`` and ``model.json`` into ``folder``; returns the JSON path."""
    from cnnlab import __version__

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if len(class_names) != model.num_classes:
        raise CnnlabError(
            f"{len(class_names)} class names for a model with {model.num_classes} outputs"
        )
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": model.cnnlab_config,
        "class_names": list(class_names),
        "in_chans": model.in_chans,
        "input_size": list(model.input_size),
        "bit_depth": bit_depth,
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
    _, meta_path = model_files(path)
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CnnlabError(f"{meta_path}: unreadable model description ({error})") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CnnlabError(f"{meta_path}: not a cnnlab model description")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CnnlabError(f"{meta_path}: written by a newer cnnlab; upgrade cnnlab to read it")
    return meta


def load(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuilds a saved model from its JSON description and safetensors weights.

    The returned module carries ``class_names``, ``bit_depth`` and the whole description as
    ``cnnlab_meta``, which prediction needs to preprocess new images the way training did.
    """
    from cnnlab.models import create_model

    weights_path, meta_path = model_files(path)
    meta = read_model_meta(meta_path)
    arch = meta.get("architecture") or {}
    try:
        model = create_model(
            arch["name"],
            in_chans=arch["in_chans"],
            num_classes=arch["num_classes"],
            input_size=tuple(arch["input_size"]),
            **arch.get("kwargs", {}),
        )
    except KeyError as error:
        raise CnnlabError(
            f"{meta_path}: architecture lacks {error}; the file is damaged"
        ) from error
    except CnnlabError as error:
        raise CnnlabError(f"{meta_path}: {error}") from error
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CnnlabError(f"{weights_path}: weights unreadable or truncated ({error})") from error
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise CnnlabError(f"{weights_path}: weights do not fit {arch['name']} ({first})") from error
    model.class_names = tuple(meta["class_names"])
    model.bit_depth = int(meta.get("bit_depth", 8))
    model.cnnlab_meta = meta
    return model.to(device).eval()
