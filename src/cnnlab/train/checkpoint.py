"""Resumable training state: one safetensors file per run, never pickle.

``torch.save`` would be the obvious choice, but loading it unpickles arbitrary objects. Instead
every tensor of the training state (the last epoch's weights, the best epoch's weights,
optimizer moments, random-generator states) and, in the file's metadata header, every other
value (epoch, history, schedule and early-stopping counters, the configuration's digest) go into
one safetensors file, written atomically. One file is one consistent unit: the weights of one
epoch can never be paired with the bookkeeping of another, nor "best" with the wrong "last".
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from cnnlab.errors import CnnlabError
from cnnlab.files import parse_json, to_json, write_tensors

FORMAT = "cnnlab-checkpoint"
FORMAT_VERSION = "2"
STATE_NAME = "state.safetensors"


def config_digest(config: dict) -> str:
    """A short digest of a training configuration, to tie a checkpoint to its run."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def optimizer_to_parts(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state dict into tensors and JSON-able values."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"scalars": scalars, "param_groups": state["param_groups"]}


def optimizer_from_parts(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(folder: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Writes the whole training state to ``folder/state.safetensors`` in one atomic step."""
    folder.mkdir(parents=True, exist_ok=True)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "meta": to_json(meta)}
    write_tensors(folder / STATE_NAME, tensors, metadata=header)


def load_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict] | None:
    """The state saved by :func:`save_checkpoint`, or None when there is none yet."""
    return _read(folder, tensors=True)


def read_checkpoint_meta(folder: Path) -> dict | None:
    """The bookkeeping of the saved state (its epoch, history, ...) without its tensors."""
    saved = _read(folder, tensors=False)
    return None if saved is None else saved[1]


def _read(folder: Path, tensors: bool) -> tuple[dict[str, torch.Tensor], dict] | None:
    path = folder / STATE_NAME
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            keys = list(handle.keys()) if tensors else []
            loaded = {key: handle.get_tensor(key) for key in keys}
        if header.get("format") != FORMAT:
            raise ValueError("not a cnnlab checkpoint")
        if header.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format version {header.get('format_version')}")
        return loaded, parse_json(header["meta"])
    except (OSError, SafetensorError, ValueError, KeyError, RuntimeError) as error:
        raise CnnlabError(
            f"{path}: checkpoint unreadable ({error}); it cannot be resumed, start a new run"
        ) from error


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors whose keys start with ``prefix``, without it."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
