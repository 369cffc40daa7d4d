"""Resumable training state in safetensors and JSON, never pickle.

``torch.save`` would be the obvious choice, but loading it unpickles arbitrary objects. Instead
every tensor (weights, optimizer moments, random-generator states) goes into one safetensors
file and every other value (epoch, history, scheduler counters) into a JSON file beside it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from cnnlab.errors import CnnlabError


def _json_default(value: object) -> object:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint")


def write_json(path: Path, data: dict) -> None:
    """Atomic JSON write: a reader never sees half a file, even after a crash."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default, allow_nan=True) + "\n")
    os.replace(tmp, path)


def write_tensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None
) -> None:
    tmp = path.with_name(path.name + ".tmp")
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    save_file(contiguous, str(tmp), metadata=metadata)
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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


def save_training_state(
    folder: Path, name: str, tensors: dict[str, torch.Tensor], meta: dict
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_tensors(folder / f"{name}.safetensors", tensors)
    write_json(folder / f"{name}.json", meta)


def load_training_state(folder: Path, name: str) -> tuple[dict[str, torch.Tensor], dict]:
    tensor_path, meta_path = folder / f"{name}.safetensors", folder / f"{name}.json"
    if not tensor_path.exists() or not meta_path.exists():
        raise CnnlabError(
            f"{folder}: no '{name}' checkpoint to resume from; was the run started with --out here?"
        )
    try:
        meta = json.loads(
            meta_path.read_text(),
            parse_constant=lambda c: {
                "Infinity": math.inf,
                "-Infinity": -math.inf,
                "NaN": math.nan,
            }[c],
        )
        return load_file(str(tensor_path)), meta
    except (OSError, ValueError, RuntimeError) as error:
        raise CnnlabError(
            f"{tensor_path}: checkpoint is unreadable ({error}); start a new run"
        ) from error
